"""`run_inference`: every question of a data source answered by one or two models -> the predictions JSONL.

Resumable (rows already written are skipped) and sharded under `accelerate launch` (each process answers its share
into `<output>.part-<rank>-of-<n>`, process 0 merges them in data order). One run writes an output at a
time, and only with the settings that made its rows (`.output`: `<output>.lock`, `<output>.meta.json`).
"""

import contextlib
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
from .output import OutputLock, meta_path, record_settings, write_meta


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


def _key(prediction) -> tuple:
    return prediction.model, prediction.image_id, prediction.question


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
    # everything that changes an answer; paths made absolute, so a rerun from another folder still matches
    answer_settings = {
        "model": model,
        "adapter": adapter,
        "dtype": dtype,
        "data": os.path.abspath(data),
        "images": os.path.abspath(images) if images else None,
        "config": config,
        "split": split,
        **{name: value for name, value in asdict(settings).items() if name != "batch_size"},
    }
    # process 0 holds the lock for the whole run: the other processes write only parts it merges
    with OutputLock(output) if state.is_main_process else contextlib.nullcontext():
        if state.is_main_process:
            run = {"models": labels, "batch_size": settings.batch_size, "num_processes": state.num_processes}
            record_settings(output, answer_settings, run)
        state.wait_for_everyone()

        part = (
            output
            if state.num_processes == 1
            else Path(f"{output}.part-{state.process_index}-of-{state.num_processes}")
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
            # the settings stay as the first run recorded them (they matched); only the row count grows
            meta = json.loads(meta_path(output).read_text(encoding="utf-8"))
            write_meta(meta_path(output), {**meta, "rows": total})
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
