"""GAVIE, the paper's hallucination metric: a text-only judge scores answers for accuracy and relevancy (0-10).

`score` takes predictions, dense captions and a `lrv_hf.judge.Judge` built by the caller; `write_outputs` writes
summary.json, scores.jsonl and the report. `lrv-hf gavie` and `evaluate.load("metrics/gavie")` wrap the same code.
"""

from .parse import ParsedReply, parse_reply
from .prompt import build_messages, build_prompt
from .report import format_table, write_outputs
from .score import GavieRun, Prediction, describe, estimate, pack, read_predictions, score, summarise


__all__ = [
    "GavieRun",
    "ParsedReply",
    "Prediction",
    "build_messages",
    "build_prompt",
    "describe",
    "estimate",
    "format_table",
    "pack",
    "parse_reply",
    "read_predictions",
    "score",
    "summarise",
    "write_outputs",
]
