"""GAVIE, the paper's hallucination metric: a text-only judge scores answers for accuracy and relevancy (0-10).

`evaluate_predictions` scores a predictions file end to end through a `lrv_hf.judge.Judge` built by the caller;
`score` works on predictions and dense captions in memory; `write_outputs` writes summary.json, scores.jsonl and the
report. `lrv-hf gavie` and `evaluate.load("metrics/gavie")` wrap the same code.
"""

from .parse import ParsedReply, parse_reply
from .prompt import build_messages, build_prompt
from .report import format_table, write_outputs
from .score import (
    GavieResult,
    GavieRun,
    Prediction,
    describe,
    estimate,
    evaluate_predictions,
    pack,
    read_predictions,
    score,
    summarise,
)


__all__ = [
    "GavieResult",
    "GavieRun",
    "ParsedReply",
    "Prediction",
    "build_messages",
    "build_prompt",
    "describe",
    "estimate",
    "evaluate_predictions",
    "format_table",
    "pack",
    "parse_reply",
    "read_predictions",
    "score",
    "summarise",
    "write_outputs",
]
