"""The predictions JSONL: one schema, one reader, one writer, shared by inference (which writes it) and every scorer.

A row is `{"image_id", "question", "answer", "model"?, "task"?, "polarity"?, "question_id"?}`. Rows keep the source's
`question_id` when it has one; scorers join on it first, then on image id + question (`Prediction.join_key`).
"""

import json
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from .data.release import polarity_of
from .errors import InputError


OPTIONAL_FIELDS = ("model", "task", "polarity", "question_id")


@dataclass
class Prediction:
    """One model's answer to one instruction on one image; `row` is its position among the file's predictions and
    `where` names its file and line for messages. `image_id` may be absent (None), and `question` too in a row that
    carries the source's `question_id` (MME, POPE and GQA files); a scorer that needs them says so (`require`)."""

    row: int
    image_id: str | None
    question: str | None
    answer: str
    model: str | None = None
    task: str | None = None
    polarity: str | None = None
    question_id: str | None = None
    where: str = field(default="", compare=False, repr=False)

    def require(self, *names: str, purpose: str) -> None:
        """An `InputError` naming this row when one of the fields `names` is absent."""
        for name in names:
            if getattr(self, name) is None:
                raise InputError(f"{self.where}: field `{name}` is missing ({purpose})")

    @property
    def join_key(self) -> tuple:
        """What a scorer matches this answer to a reference on: the source's question id, else image + question."""
        return ("question_id", self.question_id) if self.question_id is not None else (self.image_id, self.question)

    def to_row(self) -> dict:
        """The JSONL row: the three required fields, then the optional ones that are set."""
        row = {"image_id": self.image_id, "question": self.question, "answer": self.answer}
        row = {name: value for name, value in row.items() if value is not None}
        row.update({name: getattr(self, name) for name in OPTIONAL_FIELDS if getattr(self, name) is not None})
        return row


def iter_jsonl(path: str | Path) -> Iterator[tuple[str, dict]]:
    """`(where, row)` for each non-blank line of a JSONL file of objects; `where` is `"<path>: line <n>"`."""
    path = Path(path)
    if not path.is_file():
        raise InputError(f"{path}: no such file")
    with open(path, encoding="utf-8-sig") as handle:
        for number, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            where = f"{path}: line {number}"
            try:
                row = json.loads(line)
            except json.JSONDecodeError as err:
                raise InputError(f"{where}: not valid JSON ({err.msg}); one object per line expected") from None
            if not isinstance(row, dict):
                raise InputError(f"{where}: expected a JSON object, got {type(row).__name__}")
            yield where, row


def question_id_of(row: dict, where: str) -> str | None:
    """The source's question id (POPE and most benchmark files carry one), as a string; None when absent."""
    value = row.get("question_id")
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (str, int)):
        raise InputError(f"{where}: field `question_id` must be a string or an integer")
    return str(value)


def prediction_from_row(row: dict, where: str, index: int) -> Prediction:
    """Check one parsed row against the schema; `where` names it in the error (`"<path>: line <n>"`)."""
    if not isinstance(row, dict):
        raise InputError(f"{where}: expected a JSON object, got {type(row).__name__}")
    question_id = question_id_of(row, where)
    image_id = row.get("image_id")
    if image_id is not None:  # absent in rows matched by question id or text alone (GQA); GAVIE and POPE require it
        if isinstance(image_id, bool) or not isinstance(image_id, (str, int)):
            raise InputError(f"{where}: field `image_id` must be a string")
        image_id = str(image_id)
    # the July-2023 evaluation set says `instruction`; every later file says `question`
    question = row.get("question", row.get("instruction"))
    if question is not None or question_id is None:
        if not isinstance(question, str) or not question.strip():
            raise InputError(f"{where}: field `question` is missing or empty (and there is no `question_id`)")
    answer = row.get("answer")
    if not isinstance(answer, str):
        raise InputError(f"{where}: field `answer` is missing or not a string (write the model's reply there)")
    for name in ("model", "task", "polarity"):
        if row.get(name) is not None and not isinstance(row[name], str):
            raise InputError(f"{where}: field `{name}` must be a string")
    polarity = row.get("polarity") or polarity_of(row.get("task"))
    return Prediction(
        index, image_id, question, answer, row.get("model"), row.get("task"), polarity, question_id, where=where
    )


def read_predictions(path: str | Path) -> list[Prediction]:
    """The rows of one predictions JSONL file, checked; an empty file is an error (it is never what was meant)."""
    predictions = [prediction_from_row(row, where, index) for index, (where, row) in enumerate(iter_jsonl(path))]
    if not predictions:
        raise InputError(f"{path}: the file holds no predictions")
    return predictions


def to_line(prediction: Prediction) -> str:
    return json.dumps(prediction.to_row(), ensure_ascii=False) + "\n"


def write_predictions(predictions: Iterable[Prediction], path: str | Path) -> int:
    """Write (replace) a predictions JSONL file; returns the number of rows."""
    count = 0
    with open(path, "w", encoding="utf-8") as handle:
        for prediction in predictions:
            handle.write(to_line(prediction))
            count += 1
    return count


def read_written(path: str | Path) -> list[Prediction]:
    """The rows a killed writer left in `path`. Only a last line cut mid-write (no newline) is removed, to be redone;
    a bad line anywhere else is damage a resume must not paper over: an `InputError` naming its line."""
    path = Path(path)
    if not path.is_file():
        return []
    rows, good_bytes = [], 0
    with open(path, "rb") as handle:
        for number, line in enumerate(handle, start=1):
            if not line.endswith(b"\n"):
                break
            good_bytes += len(line)
            if not line.strip():
                continue
            where = f"{path}: line {number}"
            try:
                row = json.loads(line)
            except ValueError as err:  # invalid JSON or invalid UTF-8
                raise InputError(
                    f"{where}: not valid JSON ({getattr(err, 'msg', err)}); fix or delete that line, "
                    "or delete the file to start over"
                ) from None
            rows.append(prediction_from_row(row, where, len(rows)))
    if good_bytes < path.stat().st_size:
        with open(path, "r+b") as handle:
            handle.truncate(good_bytes)
    return rows
