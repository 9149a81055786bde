"""Importable helpers for tests, benchmarks and users trying things offline: tiny models, a local Hub cache.

Nothing heavy is imported here; each helper module imports what it needs.
"""
