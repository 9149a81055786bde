"""GQA judge scoring: references + K models' answers -> one release prompt per question -> verdicts -> accuracy.

An answer whose verdict cannot be read (the call failed, or no reply could be read after the re-asks) is *unscored*:
it is counted in the coverage and never as wrong.
"""

import json
import math
from collections import Counter, defaultdict
from dataclasses import dataclass
from pathlib import Path

from ..data.jsonstream import iter_items, iter_records, top_level_kind
from ..errors import InputError
from ..gavie.score import judge_usage, nothing_scored
from ..judge import Judge, JudgeRequest, JudgeResult
from .parse import CORRECT, parse_verdicts
from .prompt import build_messages


REASK_STRIDE = 1000  # re-ask r of a prompt uses sample r * REASK_STRIDE: its own cache entry
Z95 = 1.959963984540054


@dataclass
class Reference:
    """One GQA question with its correct answer."""

    question_id: str
    question: str
    answer: str
    image_id: str | None = None


@dataclass
class GQAAnswer:
    """One model's answer to one question, as read from a predictions file (`where` is its file and line)."""

    where: str
    model: str
    question: str | None
    answer: str
    question_id: str | None = None
    image_id: str | None = None


def _identifier(value) -> str | None:
    """A question or image id as text: GQA writes them as strings, other files as integers."""
    if value is None or isinstance(value, bool) or not isinstance(value, (str, int)):
        return None
    return str(value)


def _reference(row, where: str, question_id=None) -> Reference:
    if not isinstance(row, dict):
        raise InputError(f"{where}: expected a JSON object, got {type(row).__name__}")
    question_id = _identifier(row.get("question_id") if question_id is None else question_id)
    if question_id is None:
        raise InputError(f"{where}: field `question_id` is missing or not a string")
    question, answer = row.get("question"), row.get("answer")
    if not isinstance(question, str) or not question.strip():
        raise InputError(f"{where}: field `question` is missing or empty")
    if not isinstance(answer, str) or not answer.strip():
        raise InputError(
            f"{where}: field `answer` is missing or empty (GQA's test questions have no answers: use testdev or val)"
        )
    return Reference(question_id, question, answer, _identifier(row.get("image_id", row.get("imageId"))))


def read_references(path: str | Path) -> dict[str, Reference]:
    """GQA questions with answers: JSONL rows `{question_id, question, answer}` (or a JSON list of them), or GQA's
    own questions file `{question_id: {"question", "answer", "imageId", ...}}`, streamed one question at a time."""
    path = Path(path)
    if not path.is_file():
        raise InputError(f"{path}: no such file")
    if path.suffix == ".jsonl":
        rows = _jsonl(path)
    elif top_level_kind(path) == "{":
        rows = ((f"{path}: question {key!r}", key, value) for key, value in iter_items(path))
    else:
        rows = ((f"{path}: item {index}", None, row) for index, row in enumerate(iter_records(path)))
    references: dict[str, Reference] = {}
    for where, key, row in rows:
        reference = _reference(row, where, key)
        known = references.setdefault(reference.question_id, reference)
        if known != reference:
            raise InputError(f"{where}: question_id {reference.question_id!r} appears twice with different content")
    if not references:
        raise InputError(f"{path}: the file holds no questions")
    return references


def _jsonl(path: Path):
    with path.open(encoding="utf-8-sig") as handle:
        for number, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            where = f"{path}: line {number}"
            try:
                yield where, None, json.loads(line)
            except json.JSONDecodeError as err:
                raise InputError(f"{where}: not valid JSON ({err.msg}); one object per line expected") from None


def read_predictions(path: str | Path) -> list[GQAAnswer]:
    """Rows `{question_id?, image_id?, question, answer, model?}` of one predictions JSONL file (read and checked by
    `lrv_hf.predictions`); `model` defaults to the file's name without its suffix."""
    from ..predictions import read_predictions as read_rows

    rows = read_rows(path)
    return [
        GQAAnswer(r.where, r.model or Path(path).stem, r.question, r.answer, r.question_id, r.image_id) for r in rows
    ]


def join(answers: list[GQAAnswer], references: dict[str, Reference], references_name: str = "references"):
    """The question id of every answer: its own `question_id` first, then image id + question, then the question
    alone when exactly one reference asks it. An answer that matches nothing, or two answers of one model to one
    question, is an `InputError` naming the row."""
    by_image_question: dict[tuple[str | None, str], str] = {}
    by_question: dict[str, list[str]] = defaultdict(list)
    if any(a.question_id is None for a in answers):  # the text indexes only when some row needs them
        for reference in references.values():
            by_question[reference.question].append(reference.question_id)
            if reference.image_id:
                by_image_question[(reference.image_id, reference.question)] = reference.question_id
    seen: dict[tuple[str, str], str] = {}
    question_ids = []
    for answer in answers:
        if answer.question_id is not None:
            question_id = answer.question_id
            if question_id not in references:
                raise InputError(f"{answer.where}: question_id {question_id!r} is not in {references_name}")
        elif (answer.image_id, answer.question) in by_image_question:
            question_id = by_image_question[(answer.image_id, answer.question)]
        else:
            matches = by_question.get(answer.question, [])
            if len(matches) != 1:
                found = "no question" if not matches else f"{len(matches)} questions"
                raise InputError(
                    f"{answer.where}: {found} in {references_name} read {answer.question!r}; add its `question_id`"
                )
            question_id = matches[0]
        if (answer.model, question_id) in seen:
            raise InputError(
                f"{answer.where}: model {answer.model!r} answers question {question_id!r} twice (first at "
                f"{seen[(answer.model, question_id)]})"
            )
        seen[(answer.model, question_id)] = answer.where
        question_ids.append(question_id)
    return question_ids


def pack(question_ids: list[str], answers_per_prompt: int | None = None) -> list[list[int]]:
    """Group the answers to one question (one per model) into prompts of up to K answers (`None`: all of them)."""
    if answers_per_prompt is not None and answers_per_prompt < 1:
        raise InputError(f"`answers_per_prompt` must be >= 1, got {answers_per_prompt}")
    groups: dict[str, list[int]] = defaultdict(list)
    for index, question_id in enumerate(question_ids):
        groups[question_id].append(index)
    size = answers_per_prompt or max(len(members) for members in groups.values())
    return [members[start : start + size] for members in groups.values() for start in range(0, len(members), size)]


def build_requests(answers, question_ids, references, packs, sample: int = 0) -> list[JudgeRequest]:
    """One judge request per pack."""
    requests = []
    for number, members in enumerate(packs):
        reference = references[question_ids[members[0]]]
        messages = build_messages(reference.question, reference.answer, [answers[i].answer for i in members])
        requests.append(JudgeRequest(messages, sample=sample, metadata={"pack": number}))
    return requests


def wilson(correct: int, n: int) -> list[float] | None:
    """The Wilson score 95% interval of a proportion (sound at 0 or n successes, unlike the normal one)."""
    if n == 0:
        return None
    p, z2 = correct / n, Z95**2
    centre = (p + z2 / (2 * n)) / (1 + z2 / n)
    half = Z95 / (1 + z2 / n) * math.sqrt(p * (1 - p) / n + z2 / (4 * n * n))
    return [max(0.0, centre - half), min(1.0, centre + half)]


@dataclass
class GQAResult:
    """What `score_gqa` produced: per-answer records (the lines of scores.jsonl) and every judge result it used."""

    rows: list[dict]
    results: list[JudgeResult]
    judge: Judge
    settings: dict
    n_references: int

    def nothing_scored(self) -> str | None:
        """Why no answer got a verdict (the reasons and the judge's own words), or `None` when any did."""
        return nothing_scored(self.rows)

    def summary(self) -> dict:
        """The content of summary.json: accuracy with its 95% CI and coverage per model, judge usage, settings."""
        models = {}
        for model in dict.fromkeys(r["model"] for r in self.rows):
            mine = [r for r in self.rows if r["model"] == model]
            scored = [r for r in mine if r["scored"]]
            correct = sum(r["verdict"] == CORRECT for r in scored)
            models[model] = {
                "n": len(mine),
                "n_scored": len(scored),
                "correct": correct,
                "incorrect": len(scored) - correct,
                "unscored": len(mine) - len(scored),
                "accuracy": correct / len(scored) if scored else None,
                "accuracy_ci95": wilson(correct, len(scored)),
                "coverage": len(scored) / len(mine),
                "missing": self.n_references - len(mine),  # reference questions this model did not answer
            }
        scored = sum(m["n_scored"] for m in models.values())
        return {
            "n_references": self.n_references,
            "n": len(self.rows),
            "n_scored": scored,
            "coverage": scored / len(self.rows) if self.rows else None,
            "by_model": models,
            "unscored": dict(Counter(r["unscored_reason"].split(":")[0] for r in self.rows if r["unscored_reason"])),
            "judge": judge_usage(self.results, self.judge),
            "settings": self.settings,
        }


def score_gqa(
    references: dict[str, Reference],
    predictions: list[GQAAnswer],
    judge: Judge,
    answers_per_prompt: int | None = None,
    max_reasks: int = 2,
    batch: bool = False,
    poll_interval: float = 30.0,
    progress: bool = True,
    references_name: str = "references",
) -> GQAResult:
    """Judge every answer in `predictions` against GQA's correct answer with the release's GQA prompt.

    Args:
        references (`dict[str, Reference]`): Questions with answers, by question id (see `read_references`).
        predictions (`list[GQAAnswer]`): The answers of one or more models (see `read_predictions`).
        judge (`Judge`): The client to ask; built by the caller.
        answers_per_prompt (`int`, *optional*): K answers to one question (from K models) per prompt, as the
            release does; defaults to all the models' answers in one prompt.
        max_reasks (`int`, *optional*, defaults to `2`): Re-asks of a prompt whose verdicts could not all be read.
        batch (`bool`, *optional*, defaults to `False`): Go through the OpenAI Batch API (half price, slow).
    """
    if max_reasks < 0:
        raise InputError(f"`max_reasks` must be >= 0, got {max_reasks}")
    if not predictions:
        raise InputError("`predictions` holds no answers")
    question_ids = join(predictions, references, references_name)
    packs = pack(question_ids, answers_per_prompt)
    requests = build_requests(predictions, question_ids, references, packs)
    verdicts: dict[int, list[tuple | None]] = {n: [None] * len(members) for n, members in enumerate(packs)}
    failures: dict[int, tuple[str, str | None]] = {}  # pack -> (reason, the reply that could not be read)
    used: list[JudgeResult] = []
    for attempt in range(max_reasks + 1):
        if not requests:
            break
        if batch:
            results = judge.run_batch(requests, poll_interval=poll_interval, progress=progress)
        else:
            results = judge.run(requests, progress=progress)
        used.extend(results)
        reask = []
        for result in results:
            number = result.request.metadata["pack"]
            slots = verdicts[number]
            if result.text is None:
                failures[number] = (f"judge call failed: {result.error}", None)
            else:
                for slot, verdict in enumerate(parse_verdicts(result.text, len(slots))):
                    if slots[slot] is None and verdict is not None:
                        slots[slot] = (verdict, result)
                if not all(slots):
                    failures[number] = ("judge reply could not be read", result.text)
            if not all(slots) and attempt < max_reasks:
                sample = (attempt + 1) * REASK_STRIDE
                reask.append(JudgeRequest(result.request.messages, sample=sample, metadata=result.request.metadata))
        requests = reask
    rows: list[dict] = [{} for _ in predictions]
    for number, members in enumerate(packs):
        for slot, index in enumerate(members):
            answer, reference = predictions[index], references[question_ids[index]]
            got = verdicts[number][slot]
            reason, unread = failures.get(number, (None, None))
            rows[index] = {
                "question_id": reference.question_id,
                "model": answer.model,
                "question": reference.question,
                "correct_answer": reference.answer,
                "answer": answer.answer,
                "verdict": got[0] if got else "unscored",
                "scored": got is not None,
                "unscored_reason": None if got else reason,
                "answer_slot": slot + 1,
                "answers_in_prompt": len(members),
                "raw_reply": got[1].text if got else unread,
                "cache_key": got[1].cache_key if got else None,
                "source": answer.where,
            }
    settings = {"answers_per_prompt": answers_per_prompt, "max_reasks": max_reasks, "batch": batch,
                "prompts": len(packs)}  # fmt: skip
    return GQAResult(rows, used, judge, settings, len(references))


def estimate_gqa(
    references: dict[str, Reference],
    predictions: list[GQAAnswer],
    judge: Judge,
    answers_per_prompt: int | None = None,
    references_name: str = "references",
):
    """The judge's `JudgeEstimate` for scoring `predictions` (first asks only; re-asks cannot be known up front)."""
    question_ids = join(predictions, references, references_name)
    packs = pack(question_ids, answers_per_prompt)
    requests = build_requests(predictions, question_ids, references, packs)
    # a verdict line is about 8 tokens ("Student Answer1: Correct"), plus a short reason some judges add
    per_call = 4 + 16 * len(predictions) / len(packs)
    return judge.estimate(requests, completion_tokens=round(per_call))
