"""The questions inference answers: read from a built dataset folder, a release file or a JSONL of rows.

Each comes as an `Item` with a key the image loader takes, so images are decoded only when their batch comes.
"""

import functools
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
    """The questions of a built dataset folder, a release file (+ `images`) or a JSONL of rows, and an image loader.

    Returns:
        `tuple`: `(items, load_image)`; `load_image(item.image_key)` gives the PIL image.
    """
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
        from PIL import Image

        file = image_path(images, image_id)
        try:
            with Image.open(file) as image:
                return image.convert("RGB")
        except OSError as err:
            raise InputError(f"{file}: cannot read the image of image_id {image_id!r} ({err})") from None

    return items, load_image


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
