"""`run_inference`: every question of a data source answered by one or two models -> the predictions JSONL.

Resumable (rows already written are skipped) and sharded under `accelerate launch` (each process answers its share
into `<output>.part-<rank>-of-<n>`, process 0 merges them in data order). Settings go to `<output>.meta.json` once.
"""

import json
import logging
import os
from collections import Counter, defaultdict, deque
from dataclasses import asdict, dataclass
from pathlib import Path

from ..errors import InputError
from ..predictions import read_written, to_line
from .generate import Answerer, GenerationSettings
from .inputs import Item, read_items


logger = logging.getLogger(__name__)


@dataclass
class InferResult:
    """What one `run_inference` call did (`written` and `skipped` count this process's rows)."""

    rows: int
    written: int
    skipped: int
    output: Path

    @property
    def meta(self) -> Path:
        return meta_path(self.output)


def meta_path(output: str | Path) -> Path:
    return Path(f"{output}.meta.json")


def _key(prediction) -> tuple:
    return prediction.model, prediction.image_id, prediction.question


def _check_meta(path: Path, meta: dict) -> None:
    """Write the sidecar, or refuse to append to an output written with other settings."""
    if path.is_file():
        old = json.loads(path.read_text())
        keys = ("model", "adapter", "models", "data", "config", "split", "generation")
        if any(old.get(k) != meta.get(k) for k in keys):
            raise InputError(
                f"{path}: the output was written with other settings ({ {k: old.get(k) for k in keys} }); "
                "choose another `output` or delete it to start over",
                "output",
            )
    else:
        path.write_text(json.dumps(meta, indent=2) + "\n")


def run_inference(
    model: str,
    data: str,
    output: str,
    adapter: str | None = None,
    images: str | None = None,
    config: str | None = None,
    split: str | None = None,
    both: bool = False,
    settings: GenerationSettings | None = None,
    dtype: str = "auto",
    limit: int | None = None,
) -> InferResult:
    """Answer every question of `data` and write the predictions JSONL (see the module docstring).

    Args:
        model (`str`): base model as `PATH`, `REPO_ID` or `REPO_ID@REVISION`.
        data (`str`): a built dataset folder, or a release JSON / JSONL file (then `images` is needed).
        output (`str`): the predictions JSONL; resumed when it exists and was written with the same settings.
        adapter (`str`, *optional*): LoRA adapter (safetensors, trained on `model`).
        images (`str`, *optional*): the folder of `<image_id>.jpg` of a release file.
        config, split (`str`, *optional*): which config/split of a built folder (needed when it has several).
        both (`bool`, *optional*, defaults to `False`): with an adapter, also write the base's answers (labelled by
            the base's name), from the same loaded weights.
        settings (`GenerationSettings`, *optional*): generation settings.
        dtype (`str`, *optional*, defaults to `"auto"`): dtype the model loads in.
        limit (`int`, *optional*): answer only the first `limit` questions.
    """
    import torch
    from accelerate import PartialState

    settings = settings or GenerationSettings()
    if both and not adapter:
        raise InputError(
            "`both` needs `adapter` (it writes the base's and the adapter's answers)", ("both", "adapter")
        )
    items, load_image = read_items(data, images, config, split)
    items = items[:limit] if limit is not None else items
    labels = ([model] if both or not adapter else []) + ([adapter] if adapter else [])
    output = Path(output)
    output.parent.mkdir(parents=True, exist_ok=True)
    # without `cpu=True`, accelerate treats processes launched on a machine without CUDA as independent runs
    state = PartialState(cpu=not torch.cuda.is_available())
    meta = {
        "model": model,
        "adapter": adapter,
        "models": labels,
        "data": str(data),
        "images": images,
        "config": config,
        "split": split,
        "generation": asdict(settings),
        "dtype": dtype,
        "num_processes": state.num_processes,
    }
    if state.is_main_process:
        _check_meta(meta_path(output), meta)
    state.wait_for_everyone()

    part = (
        output if state.num_processes == 1 else Path(f"{output}.part-{state.process_index}-of-{state.num_processes}")
    )
    # a merged output from an earlier run counts as done for every process
    done = Counter(_key(p) for p in read_written(part if part.is_file() or not output.is_file() else output))
    mine = items[state.process_index :: state.num_processes]
    todo = []
    for item in mine:
        missing = []
        for label in labels:
            if done[(label, item.image_id, item.question)] > 0:
                done[(label, item.image_id, item.question)] -= 1
            else:
                missing.append(label)
        if missing:
            todo.append((item, missing))
    written = sum(len(missing) for _, missing in todo)
    logger.info("process %d: %d of %d rows to write", state.process_index, written, len(mine) * len(labels))

    if todo:
        from .generate import TransformersAnswerer
        from .load import load_model

        loaded, processor = load_model(model, adapter, dtype=dtype, device=str(state.device))
        answerer = TransformersAnswerer(loaded, processor, settings, adapter=adapter)
        write_answers(answerer, todo, load_image, labels, settings.batch_size, part)
    state.wait_for_everyone()
    if state.num_processes > 1 and state.is_main_process:
        _merge_parts(output, state.num_processes, items, labels)
    state.wait_for_everyone()
    total = len(items) * len(labels)
    if state.is_main_process:
        meta["rows"] = total
        meta_path(output).write_text(json.dumps(meta, indent=2) + "\n")
    return InferResult(rows=total, written=written, skipped=len(mine) * len(labels) - written, output=output)


def write_answers(
    answerer: Answerer, todo: list[tuple[Item, list[str]]], load_image, labels: list[str], batch_size: int, part: Path
) -> None:
    """Append the missing answers of `todo` to `part`, one flushed batch at a time (a kill loses one batch at most)."""
    from tqdm.auto import tqdm

    with open(part, "a", encoding="utf-8") as fh, tqdm(total=len(todo), desc="answering", unit="question") as bar:
        for start in range(0, len(todo), batch_size):
            batch = todo[start : start + batch_size]
            answers = {}
            for label in labels:
                chosen = [k for k, (_, missing) in enumerate(batch) if label in missing]
                if chosen:
                    texts = answerer.answer(
                        label,
                        [load_image(batch[k][0].image_key) for k in chosen],
                        [batch[k][0].question for k in chosen],
                    )
                    answers.update({(k, label): text for k, text in zip(chosen, texts)})
            # data order, each question's answers together: the order the merge of sharded parts gives too
            for k, (item, missing) in enumerate(batch):
                fh.writelines(to_line(item.prediction(answers[k, label], label)) for label in missing)
            fh.flush()
            bar.update(len(batch))


def _merge_parts(output: Path, num_processes: int, items: list[Item], labels: list[str]) -> None:
    """Process 0: the parts' rows in data order into `output` (written whole, then renamed), parts removed."""
    parts = [Path(f"{output}.part-{rank}-of-{num_processes}") for rank in range(num_processes)]
    by_key = defaultdict(deque)
    for part in parts:
        for prediction in read_written(part):
            by_key[_key(prediction)].append(prediction)
    tmp = Path(f"{output}.tmp")
    with open(tmp, "w", encoding="utf-8") as fh:
        for item in items:
            for label in labels:
                rows = by_key.get((label, item.image_id, item.question))
                if not rows:
                    raise RuntimeError(f"no answer of {label} to {item.question!r} on {item.image_id} in the parts")
                fh.write(to_line(rows.popleft()))
    os.replace(tmp, output)
    for part in parts:
        part.unlink()
