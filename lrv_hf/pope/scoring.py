"""POPE scoring: free-form answers -> yes/no by POPE's own rule, then accuracy, precision, recall, F1 and yes-ratio.

"yes" is the positive class. Answers with neither a "yes" nor a negation are counted as `unknown` and enter the metrics
as `unknown_as` says: `"yes"` (POPE's behaviour, the default, for comparable numbers), `"wrong"` or `"exclude"`.
"""

import logging
import re
from collections import Counter, defaultdict
from dataclasses import dataclass
from pathlib import Path

from ..errors import InputError
from ..predictions import read_predictions as read_rows
from .sources import read_probes


logger = logging.getLogger(__name__)

UNKNOWN_AS = ("yes", "wrong", "exclude")
_NEGATION = re.compile(r"\b(no|not|none|nope|never)\b|n't\b", re.IGNORECASE)
_YES = re.compile(r"\byes\b", re.IGNORECASE)


def _first_sentence(text: str) -> str:
    # POPE keeps the text before the first "." (so "No." and "No, there is..." both reduce to "No")
    return text.split(".")[0] if "." in text else text


def pope_label(text: str) -> str:
    """POPE's rule, kept exactly: in the first sentence, commas removed and split on spaces, a word `No`, `no` or
    `not` makes the answer "no"; anything else is "yes".

    The rule is literal: `"NO"`, `"No!"` and `"Not"` read as "yes". Those answers are not `unknown` (they hold a
    negation), so they stay "yes" in every `unknown_as` mode, as in POPE's published numbers.
    """
    words = _first_sentence(text).replace(",", "").split(" ")
    return "no" if "No" in words or "not" in words or "no" in words else "yes"


def is_unknown(text: str) -> bool:
    """True when the first sentence holds neither the word "yes" nor a negation (no, not, none, nope, never, -n't).

    Such answers ("", "I cannot tell", "There is a dog") say neither yes nor no; POPE reads them all as "yes". The
    count shows how much of a model's "yes" rests on that reading.
    """
    first = _first_sentence(text)
    return not (_YES.search(first) or _NEGATION.search(first))


def _reference(value, index: int) -> str:
    label = value.strip().lower() if isinstance(value, str) else None
    if label not in ("yes", "no"):
        raise ValueError(f"reference {index} must be 'yes' or 'no', got {value!r}")
    return label


def compute_metrics(predictions: list[str], references: list[str], unknown_as: str = "yes") -> dict:
    """POPE's metrics over free-form answers and "yes"/"no" references ("yes" is the positive class).

    Args:
        predictions (`list[str]`): the model's answers, free-form text.
        references (`list[str]`): "yes" or "no" per answer (case and surrounding spaces ignored).
        unknown_as (`str`, *optional*, defaults to `"yes"`):
            how an answer with neither "yes" nor a negation is scored: `"yes"` as POPE does (comparable with
            published numbers), `"wrong"` as the opposite of its reference (a non-answer earns no credit), or
            `"exclude"` (left out of every metric, `n` included).

    Returns:
        `dict`: `accuracy`, `precision`, `recall`, `f1`, `yes_ratio` (share of scored answers read as "yes") as
        floats (0.0 when undefined, e.g. precision with no "yes"), and the counts `n` (answers scored), `unknown`
        (answers with neither "yes" nor a negation, scored or not), `tp`, `fp`, `tn`, `fn`.
    """
    if unknown_as not in UNKNOWN_AS:
        raise InputError(f"`unknown_as` must be one of {', '.join(UNKNOWN_AS)}, got {unknown_as!r}", "unknown_as")
    if len(predictions) != len(references):
        raise ValueError(f"got {len(predictions)} predictions but {len(references)} references")
    counts = {"tp": 0, "fp": 0, "tn": 0, "fn": 0}
    unknown = 0
    for index, (answer, reference) in enumerate(zip(predictions, references)):
        reference = _reference(reference, index)
        if not isinstance(answer, str):
            raise ValueError(f"prediction {index} must be a string, got {type(answer).__name__}")
        predicted = pope_label(answer)
        if is_unknown(answer):
            unknown += 1
            if unknown_as == "exclude":
                continue
            if unknown_as == "wrong":
                predicted = "no" if reference == "yes" else "yes"
        counts[("t" if predicted == reference else "f") + ("p" if predicted == "yes" else "n")] += 1
    tp, fp, tn, fn = counts["tp"], counts["fp"], counts["tn"], counts["fn"]
    n = tp + fp + tn + fn
    precision = tp / (tp + fp) if tp + fp else 0.0
    recall = tp / (tp + fn) if tp + fn else 0.0
    return {
        "accuracy": (tp + tn) / n if n else 0.0,
        "precision": precision,
        "recall": recall,
        "f1": 2 * precision * recall / (precision + recall) if precision + recall else 0.0,
        "yes_ratio": (tp + fp) / n if n else 0.0,
        "n": n,
        "unknown": unknown,
        **counts,
    }


def read_predictions(paths: list[str | Path]) -> dict[str, dict[tuple, list[str]]]:
    """Read predictions JSONL files into `{model: {join key: [answers in file order]}}`; a row without `model`
    belongs to a model named after its file.

    A row is filed under its question id (`("question_id", id)`) and under `(image_id, question)`, so that probes
    of another source (POPE's files and the Hub's copy number their questions apart) still join on the latter.
    """
    models: dict[str, dict[tuple, list[str]]] = defaultdict(lambda: defaultdict(list))
    for path in map(Path, paths):
        for prediction in read_rows(path):
            if prediction.question_id is None:
                prediction.require(
                    "image_id", purpose="POPE matches an answer on question_id, else image_id + question"
                )
            answers = models[prediction.model or path.stem]
            if prediction.question_id is not None:
                answers[("question_id", prediction.question_id)].append(prediction.answer)
            if prediction.image_id is not None and prediction.question is not None:
                answers[(prediction.image_id, prediction.question)].append(prediction.answer)
    return {model: dict(answers) for model, answers in models.items()}


def _probe_key(probe: dict, answers: dict) -> tuple:
    """Join on the question id first (when both sides have it), then on image id + question."""
    key = ("question_id", probe.get("question_id"))
    return key if key in answers else (probe["image_id"], probe["question"])


def score_predictions(
    probes: list[dict], predictions: dict[str, dict[tuple[str, str], list[str]]], unknown_as: str = "yes"
) -> tuple[dict, list[dict]]:
    """Join predictions with probes (on `question_id` when both have it, else on `(image_id, question)`) and score
    each model on each strategy (a split of POPE's sources).

    A question recurs across strategies (the positives are shared). One answer to it (or several, all the same, as
    greedy decoding gives) serves every probe row that asks it; as many answers as rows (inference ran over the probe
    file row by row) are matched in file order; other differing answers are an error, since which answer belongs to
    which strategy would be a guess.

    Returns:
        `tuple[dict, list[dict]]`: the summary `{"unknown_as", "models": {model: {strategy: metrics}}}` where metrics
        are those of `compute_metrics` plus `missing` (probes the model did not answer, left out), and one row per
        answered probe (the probe, `model`, `answer`, `predicted`, `unknown`).
    """
    summary = {"unknown_as": unknown_as, "models": {}}
    rows = []
    for model, answers in sorted(predictions.items()):
        by_strategy: dict[str, tuple[list, list]] = {}
        missing: dict[str, int] = defaultdict(int)
        keys = [_probe_key(probe, answers) for probe in probes]
        asked = Counter(keys)
        seen: Counter = Counter()
        for probe, key in zip(probes, keys):
            given = answers.get(key, [])
            answered, labels = by_strategy.setdefault(probe["strategy"], ([], []))
            if not given:
                missing[probe["strategy"]] += 1
                continue
            if len(set(given)) > 1 and len(given) != asked[key]:
                raise InputError(
                    f"model {model!r} answers {probe['question']!r} on image {probe['image_id']} {len(given)} times, "
                    f"but the probes ask "
                    f"it {asked[key]} times, and the answers differ; give one answer per question or one per probe row"
                )
            answer = given[seen[key]] if len(given) == asked[key] else given[0]
            seen[key] += 1
            answered.append(answer)
            labels.append(probe["label"])
            rows.append(
                {
                    **probe,
                    "model": model,
                    "answer": answer,
                    "predicted": pope_label(answer),
                    "unknown": is_unknown(answer),
                }
            )
        summary["models"][model] = {
            strategy: {**compute_metrics(answered, labels, unknown_as), "missing": missing[strategy]}
            for strategy, (answered, labels) in by_strategy.items()
        }
        if sum(missing.values()):
            logger.warning(
                "%s left %d of %d probes unanswered; they are not scored", model, sum(missing.values()), len(probes)
            )
    if not rows:
        raise InputError(
            "no prediction matches a probe on question_id or (image_id, question): were they made from this probe file?"
        )
    return summary, rows


def write_scores(summary: dict, rows: list[dict], output_dir: str | Path) -> Path:
    """Write `summary.json` and `scores.jsonl` (one row per answered probe) under `output_dir`; returns the summary
    path."""
    from ..results import write_run

    return write_run(output_dir, summary, rows)["summary"]


@dataclass
class PopeResult:
    """What `score_files` wrote: the summary (`{"unknown_as", "models": {model: {strategy: metrics}}}`), the
    per-probe rows and the path of summary.json."""

    summary: dict
    rows: list[dict]
    path: Path


def score_files(
    probes: str | Path | list[str | Path],
    predictions: list[str | Path],
    output_dir: str | Path,
    unknown_as: str = "yes",
) -> PopeResult:
    """POPE over files -> summary.json and scores.jsonl in `output_dir`, per model and split.

    Args:
        probes (`str`, `Path` or a list of them): the probes, from any source `read_probes` takes (the package's
            probe JSONL, POPE's `coco_pope_{random,popular,adversarial}.json`, `lmms-lab/POPE` Parquet or Hub id).
        predictions (`list`): predictions JSONL files (`lrv-hf infer` output); rows join on `question_id` first.
        output_dir (`str` or `Path`): where summary.json and scores.jsonl go.
        unknown_as (`str`, *optional*, defaults to `"yes"`): see `compute_metrics`.
    """
    if unknown_as not in UNKNOWN_AS:  # before reading anything
        raise InputError(f"`unknown_as` must be one of {', '.join(UNKNOWN_AS)}, got {unknown_as!r}", "unknown_as")
    from ..results import run_identity

    summary, rows = score_predictions(read_probes(probes), read_predictions(predictions), unknown_as=unknown_as)
    summary["identity"] = run_identity("pope", predictions, probes)
    return PopeResult(summary, rows, write_scores(summary, rows, output_dir))
