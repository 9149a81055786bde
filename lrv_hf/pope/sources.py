"""POPE probe sources: the package's own probe JSONL, POPE's released files and the Hub's `lmms-lab/POPE` Parquet.

Every reader gives the same probe rows, so scoring and inference never care where the probes came from.
"""

from pathlib import Path

from ..errors import InputError
from ..predictions import iter_jsonl, question_id_of
from .probes import STRATEGIES


# the columns of lmms-lab/POPE (its `id` column is a row number and is not needed)
HUB_COLUMNS = ("question_id", "question", "answer", "image_source", "category")
_IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png")


def _text(row: dict, key: str, where: str, kinds=(str,)) -> str:
    value = row.get(key)
    if not isinstance(value, kinds) or isinstance(value, bool) or str(value).strip() == "":
        raise InputError(f"{where}: field `{key}` is missing or not a {' or '.join(k.__name__ for k in kinds)}")
    return str(value)


def _label(value, where: str, key: str) -> str:
    label = value.strip().lower() if isinstance(value, str) else None
    if label not in ("yes", "no"):
        raise InputError(f"{where}: field `{key}` must be 'yes' or 'no', got {value!r}")
    return label


def _image_id(file_name: str) -> str:
    # POPE's files name the image file ("COCO_val2014_000000548882.jpg"), the Hub names it without the suffix;
    # one id for both lets a prediction of either source join the other on image + question
    stem, dot, suffix = file_name.rpartition(".")
    return stem if dot and f".{suffix.lower()}" in _IMAGE_SUFFIXES else file_name


def split_of(path: Path) -> str:
    """The split a POPE file holds, from its name: `coco_pope_random.json` -> `random`; else the file's stem."""
    return next((s for s in STRATEGIES if s in path.stem.lower()), path.stem)


def is_pope_row(row: dict) -> bool:
    """A row of POPE's own files (`question_id`, `image`, `text`, `label`) rather than one of the package's probes."""
    return "text" in row and "label" in row and "question" not in row


def _pope_row(row: dict, where: str, split: str, stem: str) -> dict:
    question_id = question_id_of(row, where)
    if question_id is None:
        raise InputError(f"{where}: field `question_id` is missing")
    image = _text(row, "image", where)
    return {
        "image_id": _image_id(image),
        "question": _text(row, "text", where),
        "label": _label(row["label"], where, "label"),
        "strategy": str(row.get("category") or split),
        # POPE numbers each file from 0: the file's name makes the id unique among several files, and apart from
        # the Hub copy's ids (`random/1`), which number the same questions from 1
        "question_id": f"{stem}/{question_id}",
        "image": image,
        "where": where,
    }


def _own_row(row: dict, where: str) -> dict:
    probe = {
        "image_id": _text(row, "image_id", where, (str, int)),
        "question": _text(row, "question", where),
        "label": _label(row.get("label"), where, "label"),
        # probe files from elsewhere may hold one strategy and not say which
        "strategy": str(row.get("strategy") or "all"),
        "object": row.get("object"),
        "where": where,
    }
    question_id = question_id_of(row, where)
    if question_id is not None:
        probe["question_id"] = question_id
    return probe


def _read_jsonl(path: Path) -> list[dict]:
    split = split_of(path)
    return [
        _pope_row(row, where, split, path.stem) if is_pope_row(row) else _own_row(row, where)
        for where, row in iter_jsonl(path)
    ]


def _hub_row(record: dict, where: str) -> dict:
    question_id = question_id_of(record, where)
    if question_id is None:
        raise InputError(f"{where}: field `question_id` is missing")
    category = _text(record, "category", where)
    return {
        "image_id": _image_id(_text(record, "image_source", where)),
        "question": _text(record, "question", where),
        "label": _label(record.get("answer"), where, "answer"),
        "strategy": category,
        # lmms-lab/POPE numbers each category from 1: the category makes the id unique
        "question_id": f"{category}/{question_id}",
        "where": where,
    }


def _image_bytes(value, where: str) -> bytes | None:
    if isinstance(value, dict) and value.get("bytes"):
        return value["bytes"]
    raise InputError(f"{where}: field `image` holds no image bytes")


def _read_parquet(files: list[Path], with_images: bool) -> list[dict]:
    import pyarrow.parquet as pq

    probes = []
    for file in files:
        parquet = pq.ParquetFile(file)
        needed = HUB_COLUMNS + (("image",) if with_images else ())
        absent = [c for c in needed if c not in parquet.schema_arrow.names]
        if absent:
            raise InputError(f"{file}: no column {', '.join(f'`{c}`' for c in absent)} (expected lmms-lab/POPE's)")
        # batch by batch: each of the 9000 rows embeds its image, but only ~500 images differ; keeping one copy
        # per image holds ~80 MB instead of the 1.5 GB the column takes
        seen: set[str] = set()
        for batch in parquet.iter_batches(columns=list(needed), batch_size=512):
            for record in batch.to_pylist():
                where = f"{file}: row {len(probes)}"
                probe = _hub_row(record, where)
                if with_images and probe["image_id"] not in seen:
                    probe["image"] = _image_bytes(record["image"], where)
                    seen.add(probe["image_id"])
                probes.append(probe)
    return probes


def _read_hub(repo_id: str, with_images: bool) -> list[dict]:
    import datasets

    try:
        dataset = datasets.load_dataset(repo_id, split="test")
    except (OSError, ValueError, datasets.exceptions.DatasetNotFoundError) as err:  # offline: ConnectionError
        raise InputError(f"{repo_id}: cannot load the Hub dataset ({str(err).splitlines()[0]})") from None
    return from_dataset(dataset, repo_id, with_images)


def from_dataset(dataset, source: str, with_images: bool) -> list[dict]:
    """Probe rows of a loaded `lmms-lab/POPE` split (a `datasets.Dataset`)."""
    import datasets

    absent = [c for c in HUB_COLUMNS if c not in dataset.column_names]
    if absent:
        raise InputError(f"{source}: no column {', '.join(f'`{c}`' for c in absent)} (expected lmms-lab/POPE's)")
    texts = dataset.select_columns(list(HUB_COLUMNS))
    probes = [_hub_row(record, f"{source}: row {index}") for index, record in enumerate(texts)]
    if with_images:
        images = dataset.cast_column("image", datasets.Image(decode=False))
        seen: set[str] = set()
        for index, probe in enumerate(probes):
            if probe["image_id"] not in seen:
                probe["image"] = _image_bytes(images[index]["image"], f"{source}: row {index}")
                seen.add(probe["image_id"])
    for probe in probes:
        del probe["where"]  # rows of a loaded dataset are named by their index: messages name it already
    return probes


def is_hub_id(source: str) -> bool:
    return source.count("/") == 1 and not source.startswith((".", "/", "~")) and not Path(source).exists()


def _read_one(source: str | Path, with_images: bool) -> list[dict]:
    path = Path(source)
    if path.is_file():
        return _read_parquet([path], with_images) if path.suffix == ".parquet" else _read_jsonl(path)
    if path.is_dir():
        shards = sorted(path.rglob("*.parquet"))
        if not shards:
            raise InputError(f"{path}: the folder holds no Parquet file (lmms-lab/POPE's `data/`)", "probes")
        return _read_parquet(shards, with_images)
    if is_hub_id(str(source)) and not path.suffix:
        return _read_hub(str(source), with_images)
    raise InputError(f"{source}: no such file" if path.suffix else f"{source}: no such file, folder or Hub dataset id")


def read_probes(sources: str | Path | list[str | Path], with_images: bool = False) -> list[dict]:
    """Read probes from any of POPE's sources, checked, in source order.

    Args:
        sources (`str`, `Path` or a list of them): each one of
            - a JSONL of the package's probes (`{"image_id", "question", "label", "strategy"?, "question_id"?}`,
              written by `lrv-hf pope build`);
            - one of POPE's own files (`output/coco/coco_pope_random.json`: JSON lines `question_id`, `image`,
              `text`, `label`); its split is in its name (random, popular or adversarial), else its stem;
            - `lmms-lab/POPE` as a Parquet file, a folder of them or the Hub id (split `test`); the split is the
              row's `category`.
        with_images (`bool`, *optional*, defaults to `False`): keep the image file name (POPE's files) or the
            encoded bytes (Parquet, on the first row of each image) under `image`; scoring needs none.

    Returns:
        `list[dict]`: rows `image_id`, `question`, `label` ("yes"/"no"), `strategy` (the split), `question_id`
        (POPE's files: `<file stem>/<id>`, the Hub's: `<category>/<id>`, as each numbers its splits from 0 or 1),
        `object` (the package's probes), and `image` when asked.
    """
    probes, seen = [], {}
    for source in sources if isinstance(sources, list) else [sources]:
        for probe in _read_one(source, with_images):
            where = probe.pop("where", str(source))
            if not with_images:
                probe.pop("image", None)
            key = (probe["strategy"], probe.get("question_id") or (probe["image_id"], probe["question"]))
            if key in seen:
                raise InputError(
                    f"{where}: the {probe['strategy']} probe {probe['question']!r} on image {probe['image_id']} "
                    f"(question_id {probe.get('question_id')}) is already in {seen[key]}; score a split's file once, "
                    "and other datasets' sets in runs of their own"
                )
            seen[key] = where
            probes.append(probe)
    if not probes:
        shown = ", ".join(map(str, sources if isinstance(sources, list) else [sources]))
        raise InputError(f"{shown}: holds no probes", "probes")
    return probes
