"""The paper's GQA judge protocol: a text-only judge says whether each model's answer matches GQA's answer.

`score_gqa` takes references, predictions and a `lrv_hf.judge.Judge` built by the caller; `write_outputs` writes
summary.json, scores.jsonl and report.md. `lrv-hf gqa-judge` wraps the same code.
"""

from .parse import parse_verdicts
from .prompt import build_messages, build_prompt
from .report import format_table, write_outputs
from .score import GQAAnswer, GQAResult, Reference, estimate_gqa, read_predictions, read_references, score_gqa, wilson


__all__ = [
    "GQAAnswer",
    "GQAResult",
    "Reference",
    "build_messages",
    "build_prompt",
    "estimate_gqa",
    "format_table",
    "parse_verdicts",
    "read_predictions",
    "read_references",
    "score_gqa",
    "wilson",
    "write_outputs",
]
