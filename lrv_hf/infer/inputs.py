"""The questions inference answers: a built dataset folder, a release file, a JSONL of rows, MME or POPE.

Each comes as an `Item` with a key the image loader takes, so images are decoded only when their batch comes.
"""

import functools
import io
import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from ..errors import InputError
from ..predictions import Prediction, iter_jsonl, question_id_of


@dataclass
class Item:
    """One question to answer; `image_key` is what the image loader takes (a dataset row or an image id)."""

    image_id: str
    question: str
    image_key: object
    task: str | None = None
    polarity: str | None = None
    question_id: str | None = None

    def prediction(self, answer: str, model: str) -> Prediction:
        return Prediction(-1, self.image_id, self.question, answer, model, self.task, self.polarity, self.question_id)


def read_items(
    data: str, images: str | None = None, config: str | None = None, split: str | None = None
) -> tuple[list[Item], Callable]:
    """The questions of `data` and an image loader. `data` is one of
    - a built dataset folder (it carries its images; `config`, `split` choose among several);
    - a release file or a JSONL of rows `{image_id, question, question_id?}` (+ `images`, the folder of
      `<image_id>.jpg`);
    - MME: `lmms-lab/MME` as a Parquet file, a folder of them or the Hub id, or the release folder (images inside);
    - POPE: one of POPE's own files (`coco_pope_random.json`, + `images`: COCO's val2014 folder), or
      `lmms-lab/POPE` as a Parquet file, a folder of them or the Hub id (images inside).
    The benchmarks' items keep their `question_id` (MME: `category/image file`, POPE: `split/id`) for the scorers.

    Returns:
        `tuple`: `(items, load_image)`; `load_image(item.image_key)` gives the PIL image.
    """
    benchmark = benchmark_of(data)
    if benchmark is not None:
        return _benchmark_items(benchmark, data, images)
    path = Path(data)
    if path.is_dir():
        if images:
            raise InputError(f"{data}: a built dataset folder carries its images; leave `images` unset", "images")
        return _dataset_items(path, config, split)
    if not path.is_file():
        raise InputError(f"{data}: no such file or folder", "data")
    if not images:
        raise InputError(f"{data}: a release file needs `images` (the folder of <image_id>.jpg)", "images")
    if not Path(images).is_dir():
        raise InputError(f"{images}: no such folder", "images")
    from ..data import image_path, read_instructions
    from ..data.release import parse_instruction

    if path.suffix == ".jsonl":
        items = []
        for index, (where, row) in enumerate(iter_jsonl(path)):
            r = parse_instruction(row, path, index)
            items.append(Item(r.image_id, r.question, r.image_id, r.task, r.polarity, question_id_of(row, where)))
    else:
        items = [Item(r.image_id, r.question, r.image_id, r.task, r.polarity) for r in read_instructions(path)]

    @functools.lru_cache(maxsize=32)
    def load_image(image_id: str):
        return _read_rgb(image_path(images, image_id), f"the image of image_id {image_id!r}")

    return items, load_image


def _read_rgb(file: Path, what: str):
    """An image file as RGB; an unreadable one is one line naming the file and `what` it is."""
    from PIL import Image

    try:
        with Image.open(file) as image:
            return image.convert("RGB")
    except OSError as err:
        raise InputError(f"{file}: cannot read {what} ({err})") from None


def _dataset_items(path: Path, config: str | None, split: str | None) -> tuple[list[Item], Callable]:
    import datasets

    configs = datasets.get_dataset_config_names(str(path))
    if config is None:
        if len(configs) > 1:
            raise InputError(f"{path}: holds configs {', '.join(configs)}; choose one with `config`", "config")
        config = configs[0]
    elif config not in configs:
        raise InputError(f"{path}: no config {config!r} (it has {', '.join(configs)})", "config")
    splits = datasets.load_dataset(str(path), config)
    if split is None:
        if len(splits) > 1:
            raise InputError(
                f"{path}: config {config!r} has splits {', '.join(splits)}; choose one with `split`", "split"
            )
        split = next(iter(splits))
    elif split not in splits:
        raise InputError(f"{path}: config {config!r} has no split {split!r} (it has {', '.join(splits)})", "split")
    dataset = splits[split]
    items = []
    # the text columns only: images are decoded when their batch comes
    for index, row in enumerate(dataset.select_columns(["image_id", "question", "task", "polarity"])):
        for k, question in enumerate(row["question"]):
            items.append(Item(row["image_id"], question, index, row["task"][k], row["polarity"][k]))

    @functools.lru_cache(maxsize=32)
    def load_image(index: int):
        return dataset[index]["image"].convert("RGB")

    return items, load_image


def _first_row(path: Path) -> dict | None:
    """The first line of a file parsed as a JSON object, or None (a JSON array, a pretty-printed file)."""
    with open(path, encoding="utf-8-sig") as handle:
        line = next((line for line in handle if line.strip()), "")
    try:
        row = json.loads(line)
    except json.JSONDecodeError:
        return None
    return row if isinstance(row, dict) else None


def _parquet_benchmark(file: Path) -> str | None:
    import pyarrow.parquet as pq

    names = pq.read_schema(file).names
    if "image_source" in names:
        return "pope"
    return "mme" if {"question_id", "category"} <= set(names) else None


def benchmark_of(data: str) -> str | None:
    """`"mme"` or `"pope"` when `data` is one of those benchmarks' sources (see `read_items`), else None."""
    from ..pope.sources import is_hub_id, is_pope_row

    path = Path(data)
    if path.is_file():
        if path.suffix == ".parquet":
            return _parquet_benchmark(path)
        row = _first_row(path)
        return "pope" if row is not None and is_pope_row(row) else None
    if path.is_dir():
        shard = next(iter(sorted(path.rglob("*.parquet"))), None)
        if shard is not None:
            return _parquet_benchmark(shard)  # a built dataset folder holds Parquet of its own schema
        # MME's release: one folder per category, questions in `<image>.txt` or questions_answers_YN/
        for folder in (p for p in path.iterdir() if p.is_dir()):
            if (folder / "questions_answers_YN").is_dir() or next(folder.glob("*.txt"), None):
                return "mme"
        return None
    if is_hub_id(str(data)) and not path.suffix:
        return "hub"
    return None


def _benchmark_items(benchmark: str, data: str, images: str | None) -> tuple[list[Item], Callable]:
    from PIL import Image

    if benchmark == "hub":
        benchmark, dataset = _hub_dataset(data)
    else:
        dataset = None
    pope_file = benchmark == "pope" and Path(data).is_file() and Path(data).suffix != ".parquet"
    if pope_file and not images:
        raise InputError(f"{data}: POPE's files name COCO images; give `images` (the val2014 folder)", "images")
    if not pope_file and images:
        raise InputError(f"{data}: the benchmark carries its images; leave `images` unset", "images")
    if pope_file and not Path(images).is_dir():
        raise InputError(f"{images}: no such folder", "images")

    if benchmark == "mme":
        from ..mme.data import open_image, read_mme

        rows = read_mme(data, with_images=True)
        items = [Item(r["question_id"], r["question"], k, question_id=r["question_id"]) for k, r in enumerate(rows)]

        @functools.lru_cache(maxsize=32)
        def load_mme_image(index: int):
            with open_image(rows[index]) as image:
                return image.convert("RGB")

        return items, load_mme_image

    from ..pope.sources import from_dataset, read_probes

    probes = from_dataset(dataset, data, with_images=True) if dataset is not None else read_probes(data, True)
    blobs = {p["image_id"]: p["image"] for p in probes if isinstance(p.get("image"), bytes)}
    # POPE's files name the image file; the Parquet rows carry its bytes (kept once per image)
    items = [Item(p["image_id"], p["question"], p.get("image") if pope_file else p["image_id"],
                  question_id=p["question_id"]) for p in probes]  # fmt: skip

    @functools.lru_cache(maxsize=32)
    def load_pope_image(key: str):
        if not pope_file:
            with Image.open(io.BytesIO(blobs[key])) as image:
                return image.convert("RGB")
        from ..data import image_path

        return _read_rgb(image_path(images, key), f"the image {key!r}")

    return items, load_pope_image


def _hub_dataset(repo_id: str):
    """Load a Hub id once and say which benchmark it is: lmms-lab/POPE has `image_source`, lmms-lab/MME not."""
    import datasets

    try:
        dataset = datasets.load_dataset(repo_id, split="test")
    except (OSError, ValueError, datasets.exceptions.DatasetNotFoundError) as err:  # offline: ConnectionError
        raise InputError(f"{repo_id}: cannot load the Hub dataset ({str(err).splitlines()[0]})", "data") from None
    if "image_source" in dataset.column_names:
        return "pope", dataset
    if {"question_id", "category"} <= set(dataset.column_names):
        return "mme", None  # read again by lrv_hf.mme, from the local cache this load filled
    raise InputError(f"{repo_id}: neither lmms-lab/MME nor lmms-lab/POPE (columns {dataset.column_names})", "data")
