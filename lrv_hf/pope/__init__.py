"""POPE (Li et al., 2023): offline object-hallucination probing with yes/no questions, beside GAVIE.

`build_probe_file` (over `build_probes`) turns object annotations into balanced probe sets; `score_files` (over
`compute_metrics` and `score_predictions`) scores free-form answers. `lrv-hf pope build|score` and the `evaluate` module in `metrics/pope/` are thin over
these.
"""

from .probes import (
    STRATEGIES,
    ProbeConfig,
    ProbeFile,
    build_probe_file,
    build_probes,
    normalize_object_name,
    question_for,
    read_objects,
    with_article,
    write_probes,
)
from .scoring import (
    UNKNOWN_AS,
    PopeResult,
    compute_metrics,
    is_unknown,
    pope_label,
    read_predictions,
    read_probes,
    score_files,
    score_predictions,
    write_scores,
)


__all__ = [
    "STRATEGIES",
    "UNKNOWN_AS",
    "PopeResult",
    "ProbeConfig",
    "ProbeFile",
    "build_probe_file",
    "build_probes",
    "compute_metrics",
    "is_unknown",
    "normalize_object_name",
    "pope_label",
    "question_for",
    "read_objects",
    "read_predictions",
    "read_probes",
    "score_files",
    "score_predictions",
    "with_article",
    "write_probes",
    "write_scores",
]
