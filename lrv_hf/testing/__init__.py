"""Importable helpers for tests, benchmarks and users: tiny models and the tiny base that sees.

Nothing here downloads; everything is built from configs or shipped with the package.
"""
