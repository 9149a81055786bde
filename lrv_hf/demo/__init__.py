"""The base-vs-LRV-adapter demo: one loaded base, adapters fetched from an allowlist, answers streamed side by side.

`spaces_app/app.py` (the Space) and `lrv-hf demo` are both thin over `demo.app.build_app` and
`demo.compare.Comparison`. Nothing heavy is imported here, so `lrv-hf --help` stays instant.
"""
