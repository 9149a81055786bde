"""MME benchmark readers: the Hub's Parquet (`lmms-lab/MME`), a Parquet file or folder, or the release's folders.

Every reader yields the same items: `question_id` (the image, `category/file name`, shared by its two questions),
`image` (a `Path` or the encoded `bytes`; `open_image` decodes either), `question`, `answer` ("yes"/"no"), `category`.
"""

import io
from collections import Counter
from pathlib import Path

from ..errors import InputError


PERCEPTION = ("existence", "count", "position", "color", "posters", "celebrity", "scene", "landmark", "artwork", "OCR")
COGNITION = ("commonsense_reasoning", "numerical_calculation", "text_translation", "code_reasoning")
IMAGE_SUFFIXES = (".jpg", ".png", ".jpeg", ".JPG", ".PNG", ".JPEG")
_COLUMNS = ("question_id", "question", "answer", "category")


def open_image(item: dict):
    """The item's image as a PIL image (decoded on demand: the readers keep only the path or the bytes)."""
    from PIL import Image

    image = item["image"]
    return Image.open(io.BytesIO(image) if isinstance(image, bytes) else image)


def _answer(value, where: str) -> str:
    label = value.strip().lower() if isinstance(value, str) else None
    if label not in ("yes", "no"):
        raise InputError(f"{where}: field `answer` must be Yes or No, got {value!r}")
    return label


def _check_pairs(items: list[dict], source: str) -> list[dict]:
    if not items:
        raise InputError(f"{source}: holds no MME questions")
    counts = Counter(item["question_id"] for item in items)
    odd = next((qid for qid, n in counts.items() if n != 2), None)
    if odd is not None:  # acc+ needs both questions of every image, as calculation.py asserts
        raise InputError(f"{source}: image {odd!r} has {counts[odd]} questions; MME asks exactly two per image")
    return items


def _from_records(records, source: str, with_images: bool) -> list[dict]:
    items = []
    for index, record in enumerate(records):
        where = f"{source}: row {index}"
        for column in _COLUMNS:
            if not isinstance(record.get(column), str) or not record[column].strip():
                raise InputError(f"{where}: field `{column}` is missing or empty")
        item = {
            "question_id": record["question_id"],
            "question": record["question"],
            "answer": _answer(record["answer"], where),
            "category": record["category"],
        }
        if with_images:
            image = record.get("image")
            if not isinstance(image, dict) or not (image.get("bytes") or image.get("path")):
                raise InputError(f"{where}: field `image` holds no image")
            item["image"] = image["bytes"] or Path(image["path"])
        items.append(item)
    return items


def _read_parquet(files: list[Path], source: str, with_images: bool) -> list[dict]:
    import pyarrow.parquet as pq

    items = []
    for file in files:
        schema = pq.read_schema(file)
        needed = _COLUMNS + (("image",) if with_images else ())
        absent = [column for column in needed if column not in schema.names]
        if absent:
            raise InputError(f"{file}: no column {', '.join(f'`{c}`' for c in absent)} (expected lmms-lab/MME's)")
        # reading only the text columns keeps scoring off the ~1 GB of image bytes
        items += _from_records(pq.read_table(file, columns=list(needed)).to_pylist(), str(file), with_images)
    return _check_pairs(items, source)


def _release_pairs(text_file: Path) -> list[tuple[str, str]]:
    pairs = []
    for number, line in enumerate(text_file.read_text(encoding="utf-8-sig").splitlines(), start=1):
        if not line.strip():
            continue
        question, tab, answer = line.rstrip("\r").rpartition("\t")
        if not tab or not question.strip():
            raise InputError(f"{text_file}: line {number}: expected `question<TAB>answer`")
        pairs.append((question.strip(), _answer(answer, f"{text_file}: line {number}")))
    return pairs


def _read_release(root: Path, with_images: bool) -> list[dict]:
    items = []
    for folder in sorted(p for p in root.iterdir() if p.is_dir()):
        # two layouts in the release: `<image>.txt` beside the image, or images/ + questions_answers_YN/
        nested = folder / "questions_answers_YN"
        text_files = sorted(nested.glob("*.txt")) if nested.is_dir() else sorted(folder.glob("*.txt"))
        image_dir = folder / "images" if nested.is_dir() else folder
        if not text_files:
            continue  # not a category (eval_tool/, a README folder)
        for text_file in text_files:
            image = next((image_dir / (text_file.stem + s) for s in IMAGE_SUFFIXES
                          if (image_dir / (text_file.stem + s)).is_file()), None)  # fmt: skip
            if image is None:
                raise InputError(f"{text_file}: no image {text_file.stem}.jpg or .png in {image_dir}")
            for question, answer in _release_pairs(text_file):
                item = {"question_id": f"{folder.name}/{image.name}", "question": question, "answer": answer,
                        "category": folder.name}  # fmt: skip
                if with_images:
                    item["image"] = image
                items.append(item)
    return _check_pairs(items, str(root))


def read_mme(data: str | Path, with_images: bool = True) -> list[dict]:
    """Read the MME benchmark: a Parquet file, a folder of Parquet files (the Hub repo's `data/`), the release folder
    (one folder per category) or a Hub dataset id (`lmms-lab/MME`, loaded with `datasets`, split `test`).

    Args:
        data (`str` or `Path`): where the benchmark is.
        with_images (`bool`, *optional*, defaults to `True`): keep each image (its path or bytes); scoring needs none.

    Returns:
        `list[dict]`: items `question_id`, `question`, `answer` ("yes"/"no"), `category` (and `image`).
    """
    path = Path(data)
    if path.is_file():
        if path.suffix != ".parquet":
            raise InputError(f"{path}: `data` must be a Parquet file, a folder or a Hub dataset id")
        return _read_parquet([path], str(path), with_images)
    if path.is_dir():
        shards = sorted(path.rglob("*.parquet"))
        return _read_parquet(shards, str(path), with_images) if shards else _read_release(path, with_images)
    if str(data).count("/") == 1 and not str(data).startswith((".", "/")):
        return _read_hub(str(data), with_images)
    raise InputError(f"{data}: `data` is neither a file, a folder nor a Hub dataset id")


def _read_hub(repo_id: str, with_images: bool) -> list[dict]:
    import datasets

    try:
        dataset = datasets.load_dataset(repo_id, split="test")
    except (OSError, ValueError, datasets.exceptions.DatasetNotFoundError) as err:  # offline: ConnectionError
        raise InputError(f"{repo_id}: cannot load the Hub dataset ({str(err).splitlines()[0]})") from None
    if with_images:
        dataset = dataset.cast_column("image", datasets.Image(decode=False))
    else:
        dataset = dataset.select_columns([c for c in _COLUMNS if c in dataset.column_names])
    return _check_pairs(_from_records(dataset, repo_id, with_images), repo_id)
