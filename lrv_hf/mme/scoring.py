"""MME scoring as the MME authors' `eval_tool/calculation.py` does it: yes/no/other, acc and acc+ per category.

Category score = (acc + acc+) x 100; perception sums its 10 categories (max 2000), cognition its 4 (max 800). An
image whose two questions are not both answered is *missing*: left out and reported, never scored as wrong.
"""

import hashlib
import json
import logging
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import InputError
from .data import COGNITION, PERCEPTION, read_mme


logger = logging.getLogger(__name__)


def mme_label(answer: str) -> str:
    """calculation.py's `parse_pred_ans` after lower-casing: "yes"/"no" as is, else "yes" if the first four characters
    hold "yes", else "no" if they hold "no", else "other" (so "Not sure" reads "no", as there).

    The one addition: surrounding whitespace is stripped first (calculation.py reads answers from lines whose
    newline it keeps, which its four-character window tolerates; a leading space would shift the window here).
    """
    answer = answer.lower().strip()
    if answer in ("yes", "no"):
        return answer
    prefix = answer[:4]
    return "yes" if "yes" in prefix else "no" if "no" in prefix else "other"


def score_answers(answers: list[str], references: list[str], question_ids: list[str], categories: list[str]) -> dict:
    """MME's figures for one model from aligned lists, one entry per question (`None` answer: not answered).

    Returns:
        `dict`: `perception`, `cognition` (sums over the categories present; `None` when none of theirs is), and
        `categories`: `{category: {"acc", "acc_plus", "score", "images", "missing_images", "other_answers"}}`
        (acc and acc+ x100; `score` = acc + acc+), `other_answers` and `missing_images` in all.
    """
    lengths = {len(answers), len(references), len(question_ids), len(categories)}
    if len(lengths) != 1:
        raise ValueError("`predictions`, `references`, `question_ids` and `categories` must have the same length")
    images: dict[tuple[str, str], list[tuple[str, str]]] = defaultdict(list)
    for answer, reference, question_id, category in zip(answers, references, question_ids, categories):
        reference = reference.strip().lower() if isinstance(reference, str) else reference
        if reference not in ("yes", "no"):
            raise ValueError(f"the reference of {question_id!r} must be yes or no, got {reference!r}")
        images[(category, question_id)].append((None if answer is None else mme_label(answer), reference))
    table: dict[str, dict] = {}
    for (category, question_id), pairs in sorted(images.items()):
        stats = table.setdefault(
            category, {"correct": 0, "questions": 0, "images": 0, "both": 0, "missing_images": [], "other_answers": 0}
        )
        if len(pairs) > 2:
            raise ValueError(f"image {question_id!r} has {len(pairs)} answers; MME asks two questions per image")
        if len(pairs) < 2 or any(label is None for label, _ in pairs):
            stats["missing_images"].append(question_id)
            continue
        right = sum(label == reference for label, reference in pairs)
        stats["correct"] += right
        stats["questions"] += 2
        stats["images"] += 1
        stats["both"] += right == 2
        stats["other_answers"] += sum(label == "other" for label, _ in pairs)
    categories_out = {}
    for category, stats in table.items():
        acc = 100 * stats["correct"] / stats["questions"] if stats["questions"] else None
        acc_plus = 100 * stats["both"] / stats["images"] if stats["images"] else None
        categories_out[category] = {
            "acc": acc,
            "acc_plus": acc_plus,
            "score": acc + acc_plus if acc is not None else None,
            "images": stats["images"],
            "missing_images": stats["missing_images"],
            "other_answers": stats["other_answers"],
        }
    result = {}
    for name, members in (("perception", PERCEPTION), ("cognition", COGNITION)):
        scores = [categories_out[c]["score"] for c in members if categories_out.get(c, {}).get("score") is not None]
        result[name] = sum(scores) if scores else None
        result[f"{name}_categories"] = len(scores)
    result["other_answers"] = sum(c["other_answers"] for c in categories_out.values())
    result["missing_images"] = sum(len(c["missing_images"]) for c in categories_out.values())
    result["categories"] = categories_out
    return result


# -- predictions ---------------------------------------------------------------------------------------------------
def _read_predictions(path: Path) -> list[dict]:
    """Rows `{question_id?, image_id, question, answer, model?}` (read and checked by `lrv_hf.predictions`); a row
    without `model` belongs to a model named after its file."""
    from ..predictions import read_predictions

    rows = []
    for p in read_predictions(path):
        p.require("question", purpose="MME matches an answer to its question by the question text")
        rows.append({**p.to_row(), "model": p.model or Path(path).stem, "where": p.where})
    return rows


def join_predictions(items: list[dict], predictions: list[dict], source: str) -> tuple[dict[str, dict], int]:
    """Match prediction rows to items on (`question_id`, question), then on (`image_id`, question).

    Returns:
        `tuple`: `{model: {item index: answer}}` and the number of rows that matched no item (reported, not scored).
    """
    index = {(item["question_id"], item["question"].strip()): i for i, item in enumerate(items)}
    answers: dict[str, dict[int, str]] = defaultdict(dict)
    unmatched = 0
    for row in predictions:
        question = row["question"].strip()
        found = index.get((row.get("question_id"), question))
        if found is None:
            found = index.get((row.get("image_id"), question))
        if found is None:
            unmatched += 1
            continue
        if found in answers[row["model"]]:
            raise InputError(
                f"{row['where']}: model {row['model']!r} answers {items[found]['question_id']} "
                f"{row['question']!r} a second time"
            )
        answers[row["model"]][found] = row["answer"]
    if not answers:
        raise InputError(f"{source}: no prediction matches an MME question on question_id or image_id + question")
    return dict(answers), unmatched


def fingerprint(items: list[dict]) -> str:
    """A digest of the questions and their answers: two runs compare only when they scored the same benchmark."""
    digest = hashlib.sha256()
    for key in sorted((i["question_id"], i["question"], i["answer"]) for i in items):
        digest.update(json.dumps(key).encode())
    return digest.hexdigest()[:16]


@dataclass
class MMEResult:
    """What `score_mme` found: `summary` (the content of summary.json), per-answer `rows`, and the files written."""

    summary: dict
    rows: list[dict]
    files: dict[str, Path] = field(default_factory=dict)

    def scores(self, model: str | None = None) -> dict:
        """One model's figures (`perception`, `cognition`, `categories`, ...); the only model when `None`."""
        models = self.summary["models"]
        if model is None and len(models) != 1:
            raise ValueError(f"`model` must name one of {', '.join(models)}")
        return models[model if model is not None else next(iter(models))]


def score_mme(data: str | Path, predictions: str | Path, output_dir: str | Path | None = None) -> MMEResult:
    """Score predictions on MME as calculation.py does, per model, and write summary.json, scores.jsonl, report.md.

    Args:
        data (`str` or `Path`): the benchmark (see `read_mme`): Parquet file or folder, release folder, Hub id.
        predictions (`str` or `Path`): JSONL rows `{question_id?, image_id, question, answer, model?}`.
        output_dir (`str` or `Path`, *optional*): where to write the outputs; nothing is written when `None`.
    """
    from .report import write_outputs

    items = read_mme(data, with_images=False)
    predictions = Path(predictions)
    answers, unmatched = join_predictions(items, _read_predictions(predictions), str(predictions))
    if unmatched:
        logger.warning("%s: %d predictions match no MME question; they are not scored", predictions, unmatched)
    summary = {
        "scorer": "mme",
        "data": {
            "source": str(data),
            "questions": len(items),
            "images": len(items) // 2,
            "fingerprint": fingerprint(items),
        },
        "unmatched_predictions": unmatched,
        "models": {},
    }
    rows = []
    for model, given in sorted(answers.items()):
        # every question goes in, unanswered ones as None: an image the model skipped is missing in its category
        figures = score_answers(
            [given.get(i) for i in range(len(items))],
            [item["answer"] for item in items],
            [item["question_id"] for item in items],
            [item["category"] for item in items],
        )
        figures["complete"] = figures["missing_images"] == 0
        summary["models"][model] = figures
        missing = {qid for c in figures["categories"].values() for qid in c["missing_images"]}
        for i in sorted(given):
            item, label = items[i], mme_label(given[i])
            if item["question_id"] in missing:
                continue
            rows.append({"model": model, "question_id": item["question_id"], "category": item["category"],
                         "question": item["question"], "reference": item["answer"], "answer": given[i],
                         "predicted": label, "correct": label == item["answer"]})  # fmt: skip
    if len(summary["models"]) > 1:  # one run, several models: the paired section comes with it
        from ..compare import Run, compare_models

        summary["comparison"] = compare_models(Run(Path(output_dir or "."), "mme", summary, rows))
    from ..results import run_identity

    summary["identity"] = run_identity("mme", [predictions], data, fingerprint=summary["data"]["fingerprint"])
    result = MMEResult(summary, rows)
    if output_dir is not None:
        result.files = write_outputs(output_dir, summary, rows)
    return result
