"""POPE (Li et al., 2023): offline object-hallucination probing with yes/no questions, beside GAVIE.

`build_probe_file` (over `build_probes`) turns object annotations into balanced probe sets; `score_files` (over
`compute_metrics` and `score_predictions`) scores free-form answers. `lrv-hf pope build|score` and the `evaluate`
module in `metrics/pope/` are thin over these. Names load lazily, so `lrv-hf --help` does not import numpy.
"""

import importlib


_EXPORTS = {
    "PopeResult": "scoring",
    "ProbeConfig": "probes",
    "ProbeFile": "probes",
    "STRATEGIES": "probes",
    "UNKNOWN_AS": "scoring",
    "build_probe_file": "probes",
    "build_probes": "probes",
    "compute_metrics": "scoring",
    "is_unknown": "scoring",
    "normalize_object_name": "probes",
    "pope_label": "scoring",
    "question_for": "probes",
    "read_objects": "probes",
    "read_predictions": "scoring",
    "read_probes": "sources",
    "score_files": "scoring",
    "score_predictions": "scoring",
    "split_of": "sources",
    "with_article": "probes",
    "write_probes": "probes",
    "write_scores": "scoring",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    if name not in _EXPORTS:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f".{_EXPORTS[name]}", __name__), name)
