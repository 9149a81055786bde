"""Readers for every file shape of the LRV-Instruction release and Visual Genome's dense captions.

Each reader streams its file and yields normalised records; a bad row is an `InputError` naming the file and row,
or, when the caller passes a `BadRows` in skip mode, a counted skip with its reason.
"""

import functools
import os
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import InputError
from .jsonstream import iter_items, iter_records, top_level_kind


IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".webp", ".bmp", ".gif")
NEGATIVE_TASK = "negative"
NAME_MAX = 255  # bytes in one file name on every common file system
INT32 = (-(2**31), 2**31 - 1)  # `bbox` is stored as int32


@dataclass
class BadRows:
    """What to do with a bad row (`"error"` or `"skip"`) and, when skipping, how many were skipped and why."""

    mode: str = "error"
    counts: Counter = field(default_factory=Counter)
    examples: dict = field(default_factory=dict)

    def __post_init__(self):
        if self.mode not in ("error", "skip"):
            raise ValueError(f"`on_bad_rows` must be 'error' or 'skip', got {self.mode!r}")

    def handle(self, message: str, reason: str, count: int = 1, examples: list[str] | None = None):
        """Raise `message` in error mode; in skip mode count `count` rows under `reason` and keep the first few
        messages (`examples` when one message stands for several rows)."""
        if self.mode == "error":
            raise InputError(message)
        self.counts[reason] += count
        kept = self.examples.setdefault(reason, [])
        kept.extend((examples or [message])[: 3 - len(kept)])

    @property
    def total(self) -> int:
        return sum(self.counts.values())


@dataclass
class Instruction:
    """One normalised instruction row, whatever release file it came from."""

    image_id: str
    question: str
    answer: str | None
    task: str | None
    source: str
    row: int
    # the July-2023 evaluation set's `answer_gt`: a reference answer to compare with, never a model answer to learn
    reference_answer: str | None = None

    @property
    def polarity(self) -> str | None:
        return polarity_of(self.task)


def polarity_of(task: str | None) -> str | None:
    """'negative' when the release marks the row negative, 'positive' for any other task, None when untasked.

    The evaluation set carries no task, and its negative questions are not marked: guessing would be wrong.
    """
    if task is None:
        return None
    return "negative" if task.strip().lower().startswith(NEGATIVE_TASK) else "positive"


def check_text(value: str, where: str, key: str) -> str:
    """Refuse a lone surrogate (JSON allows `"\\ud800"`): neither a file name, SQLite nor Arrow can store it."""
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        shown = value if len(value) <= 40 else value[:40] + "..."
        raise InputError(f"{where}: field `{key}` is not valid unicode ({shown!r}: a lone surrogate)") from None
    return value


def _text(row: dict, keys: tuple[str, ...], where: str, required: bool) -> str | None:
    for key in keys:
        if key in row and row[key] is not None:
            value = row[key]
            if not isinstance(value, str):
                raise InputError(f"{where}: field `{key}` must be a string, got {type(value).__name__}")
            return check_text(value, where, key)
    if required:
        raise InputError(f"{where}: field `{keys[0]}` is missing")
    return None


def parse_instruction(row, path: Path, index: int) -> Instruction:
    """Normalise one release row: V1/V2 instruction files, chart data, and both evaluation-set shapes."""
    where = f"{path}: row {index}"
    if not isinstance(row, dict):
        raise InputError(f"{where}: expected an object, got {type(row).__name__}")
    image_id = row.get("image_id")
    if image_id is None:
        raise InputError(f"{where}: field `image_id` is missing")
    if isinstance(image_id, bool) or not isinstance(image_id, (str, int)):
        raise InputError(f"{where}: field `image_id` must be a string, got {type(image_id).__name__}")
    image_id = check_text(str(image_id), where, "image_id")
    check_image_id(image_id, where)
    check_file_name(image_id, where)
    # July-2023 evaluation set: `instruction` + `answer_gt`; everything else: `question` + `answer`
    question = _text(row, ("question", "instruction"), where, required=True)
    if not question.strip():
        raise InputError(f"{where}: field `question` is empty")
    answer = _text(row, ("answer",), where, required=False)
    reference = _text(row, ("answer_gt",), where, required=False)
    task = _text(row, ("task",), where, required=False)
    return Instruction(image_id, question, answer, task, source=path.name, row=index, reference_answer=reference)


def read_instructions(path: str | Path, bad_rows: BadRows | None = None) -> Iterator[Instruction]:
    """Stream the rows of one instruction or evaluation file (`{"annotations": [...]}` or a top-level list)."""
    path = Path(path)
    bad_rows = bad_rows or BadRows()
    if not path.is_file():
        raise InputError(f"{path}: no such file")
    top_level_kind(path)
    count = 0
    for index, row in enumerate(iter_records(path, list_key="annotations")):
        try:
            yield parse_instruction(row, path, index)
            count += 1
        except InputError as err:
            if isinstance(err, UnsafeImageId):
                raise  # never skippable: a crafted id must stop the build
            bad_rows.handle(str(err), reason="bad row")
    if count == 0 and bad_rows.total == 0:
        raise InputError(f"{path}: the file holds no rows")


class UnsafeImageId(InputError):
    """An image id that would name a file outside the images folder: refused even with `on_bad_rows="skip"`."""


def check_image_id(image_id: str, where: str = "image_id"):
    """Refuse ids that could name a file outside the images folder (absolute, `..`, backslashes, NUL)."""
    if (
        not image_id
        or "\x00" in image_id
        or "\\" in image_id
        or image_id.startswith(("/", "~"))
        or (len(image_id) > 1 and image_id[1] == ":")
        or (".." in image_id and ".." in image_id.split("/"))
    ):
        raise UnsafeImageId(f"{where}: image_id {image_id!r} escapes the images folder; refused")


def _file_name(image_id: str) -> str:
    return image_id if image_id.lower().endswith(IMAGE_SUFFIXES) else f"{image_id}.jpg"


def check_file_name(image_id: str, where: str = "image_id"):
    """Refuse ids whose file name the file system cannot hold (a bad row, unlike an id escaping the folder)."""
    longest = max(len(part.encode("utf-8")) for part in _file_name(image_id).split("/"))
    if longest > NAME_MAX:
        shown = image_id[:40] + "..." if len(image_id) > 40 else image_id
        raise InputError(
            f"{where}: image_id {shown!r} is too long for a file name ({longest} bytes, at most {NAME_MAX})"
        )


def image_path(images_dir: str | Path, image_id: str) -> Path:
    """`<images>/<image_id>.jpg`, or `<images>/<image_id>` when the id is already a file name (chart data).

    The resolved path must stay inside `images_dir`, symlinks included.
    """
    check_image_id(image_id)
    check_file_name(image_id)
    name = _file_name(image_id)
    root = _resolved(str(images_dir))
    path = os.path.join(root, name)
    # a symlink inside the folder may still point outside it: resolve only those (cheap for the usual plain files)
    if os.path.islink(path) or "/" in name:
        path = os.path.realpath(path)
        if not path.startswith(root + os.sep):
            raise UnsafeImageId(f"image_id {image_id!r} escapes the images folder {images_dir}; refused")
    return Path(path)


@functools.lru_cache(maxsize=64)
def _resolved(folder: str) -> str:
    return os.path.realpath(folder)


def _bbox(values, where: str) -> list[int]:
    if not isinstance(values, (list, tuple)) or len(values) != 4:
        raise InputError(f"{where}: `bbox` must be [x, y, w, h]")
    if all(type(v) is int for v in values):  # the common case, without the float round trip
        box = list(values)
    else:
        try:
            box = [round(float(v)) for v in values]
        except (TypeError, ValueError, OverflowError):  # OverflowError: round(inf)
            raise InputError(f"{where}: `bbox` must hold finite numbers, got {values!r}") from None
    if not all(INT32[0] <= v <= INT32[1] for v in box):
        raise InputError(f"{where}: `bbox` {values!r} out of range (pixel coordinates, 32-bit integers)")
    return box


def read_regions(path: str | Path) -> Iterator[tuple[str, list[dict]]]:
    """Stream `(image_id, regions)` with regions normalised to `[{"caption", "bbox": [x, y, w, h]}]`.

    Accepts LRV's `vg_annotation.json` (`{image_id: [{"caption", "bbox"}]}`) and Visual Genome's
    `region_descriptions.json` (`[{"id", "regions": [{"phrase", "x", "y", "width", "height"}]}]`).
    """
    path = Path(path)
    if not path.is_file():
        raise InputError(f"{path}: no such file")
    if top_level_kind(path) == "{":
        for image_id, regions in iter_items(path):
            where = f"{path}: image {image_id}"
            if not isinstance(regions, list):
                raise InputError(f"{where}: expected a list of regions")
            out = []
            for j, region in enumerate(regions):
                if not isinstance(region, dict) or not isinstance(region.get("caption"), str):
                    raise InputError(f"{where}: region {j}: field `caption` is missing or not a string")
                caption = check_text(region["caption"], f"{where}: region {j}", "caption")
                out.append({"caption": caption, "bbox": _bbox(region.get("bbox"), f"{where}: region {j}")})
            yield str(image_id), out
        return
    for index, entry in enumerate(iter_records(path)):
        where = f"{path}: row {index}"
        if not isinstance(entry, dict) or not isinstance(entry.get("regions"), list):
            raise InputError(f"{where}: expected an object with a `regions` list")
        image_id = entry.get("id", entry.get("image_id"))
        if image_id is None and entry["regions"]:
            image_id = entry["regions"][0].get("image_id")
        if image_id is None:
            raise InputError(f"{where}: field `id` is missing")
        out = []
        for j, region in enumerate(entry["regions"]):
            if not isinstance(region, dict) or not isinstance(region.get("phrase"), str):
                raise InputError(f"{where}: region {j}: field `phrase` is missing or not a string")
            values = [region.get(k) for k in ("x", "y", "width", "height")]
            caption = check_text(region["phrase"], f"{where}: region {j}", "phrase")
            out.append({"caption": caption, "bbox": _bbox(values, f"{where}: region {j}")})
        yield str(image_id), out


def load_regions(path: str | Path, image_ids: set[str] | None = None) -> dict[str, list[dict]]:
    """All regions of a file as a dict (only those of `image_ids` when given): for the evaluation set's 120 images."""
    return {
        image_id: regions for image_id, regions in read_regions(path) if image_ids is None or image_id in image_ids
    }
