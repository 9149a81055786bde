"""Batched generation over LRV questions -> the predictions JSONL that `lrv-hf gavie` (and `lrv-hf pope score`) read.

lrv-hf infer --model runs/quickstart/base --adapter runs/quickstart/adapter --both \
    --data release/evaluation_set.json --images release/images --output runs/predictions.jsonl
accelerate launch -m lrv_hf.infer --model ... --data built/ --config evaluation --output runs/predictions.jsonl

Rows are `{"image_id", "question", "answer", "model"}` (+ `task`/`polarity` when the data has them); the settings
are written once, to the sidecar `<output>.meta.json`. Base and adapter answers come from one loaded base
(`disable_adapter()` for the base). A rerun resumes: rows already written are skipped. Under `accelerate launch`
each process answers its share into `<output>.part-<rank>-of-<n>` and process 0 merges them in data order.
"""

import argparse
import functools
import json
import logging
import os
import sys
from collections import Counter, defaultdict, deque
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path

from .adapters import ModelRef, check_base, fetch_adapter
from .errors import InputError


logger = logging.getLogger(__name__)

ADAPTER_NAME = "lrv"


@dataclass
class GenerationSettings:
    """How answers are generated; recorded in `<output>.meta.json` and checked again on resume."""

    max_new_tokens: int = field(default=128, metadata={"help": "most tokens generated per answer"})
    batch_size: int = field(default=8, metadata={"help": "questions per `generate` call (left-padded)"})
    do_sample: bool = field(default=False, metadata={"help": "greedy by default, so reruns give the same answers"})
    num_beams: int = field(default=1, metadata={"help": "beam search width"})

    def __post_init__(self):
        if self.max_new_tokens < 1:
            raise InputError(f"`max_new_tokens` must be at least 1, got {self.max_new_tokens}")
        if self.batch_size < 1:
            raise InputError(f"`batch_size` must be at least 1, got {self.batch_size}")

    def generate_kwargs(self) -> dict:
        return {"max_new_tokens": self.max_new_tokens, "do_sample": self.do_sample, "num_beams": self.num_beams}


@dataclass
class Item:
    """One question to answer; `image_key` is what the image loader takes (a dataset row or an image id)."""

    image_id: str
    question: str
    image_key: object
    task: str | None = None
    polarity: str | None = None

    def row(self, answer: str, model: str) -> dict:
        row = {"image_id": self.image_id, "question": self.question, "answer": answer, "model": model}
        if self.task is not None:
            row["task"] = self.task
        if self.polarity is not None:
            row["polarity"] = self.polarity
        return row


# -- loading ----------------------------------------------------------------------------------------------------------
def load_model(
    model: str, adapter: str | None = None, dtype: str = "auto", device: str | None = None, token: str | None = None
):
    """The base model (+ the checked adapter as `"lrv"`) in eval mode and its processor, left-padding.

    Args:
        model (`str`): base as `PATH`, `REPO_ID` or `REPO_ID@REVISION`.
        adapter (`str`, *optional*): LoRA adapter, same forms; refused unless safetensors and trained on `model`.
        dtype (`str`, *optional*, defaults to `"auto"`): `auto` keeps the checkpoint's dtype.
        device (`str`, *optional*): where to put the model; CPU when None.

    Returns:
        `tuple`: `(model, processor)`; the model is a `PeftModel` when an adapter is given.
    """
    from transformers import AutoModelForImageTextToText, AutoProcessor

    base_ref = ModelRef.parse(model)
    adapter_dir = None
    if adapter:
        adapter_ref = ModelRef.parse(adapter)
        adapter_dir = fetch_adapter(adapter_ref, token=token)
        check_base(adapter_dir, base_ref.name, str(adapter_ref))  # before loading 7B of weights for nothing
    kwargs = {"revision": base_ref.revision, "token": token or os.environ.get("HF_TOKEN")}
    try:
        processor = AutoProcessor.from_pretrained(base_ref.name, **kwargs)
        loaded = AutoModelForImageTextToText.from_pretrained(
            base_ref.name, dtype=dtype, use_safetensors=True, **kwargs
        )
    except OSError as err:
        raise InputError(f"model {base_ref}: cannot be loaded ({str(err).splitlines()[0]})") from None
    if not getattr(processor, "chat_template", None):
        raise InputError(f"model {base_ref}: the processor has no chat template")
    processor.tokenizer.padding_side = "left"  # generation continues from the last position of every row
    if device:
        loaded = loaded.to(device)
    if adapter_dir is not None:
        from peft import PeftModel

        loaded = PeftModel.from_pretrained(loaded, adapter_dir, adapter_name=ADAPTER_NAME)
    return loaded.eval(), processor


# -- generation -------------------------------------------------------------------------------------------------------
def render_prompts(processor, questions: list[str]) -> list[str]:
    """Each question as a one-turn conversation with the image, through the processor's chat template."""
    from .data.views import to_messages

    return [processor.apply_chat_template(to_messages([q]), add_generation_prompt=True) for q in questions]


def generate_answers(
    model, processor, images: list, questions: list[str], settings: GenerationSettings, **generate_kwargs
) -> list[str]:
    """Answers to `questions` about `images` in one left-padded `generate` call (extra kwargs go to `generate`)."""
    import torch

    inputs = processor(
        images=[image.convert("RGB") for image in images],
        text=render_prompts(processor, questions),
        padding=True,
        return_tensors="pt",
    ).to(model.device)
    if "pixel_values" in inputs:
        inputs["pixel_values"] = inputs["pixel_values"].to(model.dtype)
    with torch.inference_mode():
        output = model.generate(
            **inputs, **settings.generate_kwargs(), pad_token_id=processor.tokenizer.pad_token_id, **generate_kwargs
        )
    new_tokens = output[:, inputs["input_ids"].shape[1] :]
    return [text.strip() for text in processor.batch_decode(new_tokens, skip_special_tokens=True)]


# -- data -------------------------------------------------------------------------------------------------------------
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
            raise InputError(f"{data}: a built dataset folder carries its images; drop --images")
        return _dataset_items(path, config, split)
    if not path.is_file():
        raise InputError(f"{data}: no such file or folder")
    if not images:
        raise InputError(f"{data}: a release file needs --images (the folder of <image_id>.jpg)")
    if not Path(images).is_dir():
        raise InputError(f"{images}: no such folder")
    from .data import image_path, read_instructions
    from .data.release import parse_instruction

    if path.suffix == ".jsonl":
        rows = (parse_instruction(row, path, index) for index, row in _read_jsonl(path))
    else:
        rows = read_instructions(path)
    items = [Item(r.image_id, r.question, r.image_id, r.task, r.polarity) for r in rows]

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


def _read_jsonl(path: Path) -> Iterator[tuple[int, dict]]:
    with open(path, encoding="utf-8") as fh:
        for index, line in enumerate(fh):
            if line.strip():
                try:
                    yield index, json.loads(line)
                except json.JSONDecodeError as err:
                    raise InputError(f"{path}: line {index + 1}: not JSON ({err.msg})") from None


def _dataset_items(path: Path, config: str | None, split: str | None) -> tuple[list[Item], Callable]:
    import datasets

    configs = datasets.get_dataset_config_names(str(path))
    if config is None:
        if len(configs) > 1:
            raise InputError(f"{path}: holds configs {', '.join(configs)}; choose one with --config")
        config = configs[0]
    elif config not in configs:
        raise InputError(f"{path}: no config {config!r} (it has {', '.join(configs)})")
    splits = datasets.load_dataset(str(path), config)
    if split is None:
        if len(splits) > 1:
            raise InputError(f"{path}: config {config!r} has splits {', '.join(splits)}; choose one with --split")
        split = next(iter(splits))
    elif split not in splits:
        raise InputError(f"{path}: config {config!r} has no split {split!r} (it has {', '.join(splits)})")
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


# -- resumable, sharded writing ---------------------------------------------------------------------------------------
def _key(row: dict) -> tuple:
    return row["model"], row["image_id"], row["question"]


def read_written(path: Path) -> list[dict]:
    """Complete rows already in `path`; a last line cut by a kill is dropped from the file, to be redone."""
    if not path.is_file():
        return []
    rows, good_bytes = [], 0
    with open(path, "rb") as fh:
        for line in fh:
            if not line.endswith(b"\n"):
                break
            try:
                rows.append(json.loads(line))
            except json.JSONDecodeError:
                break
            good_bytes += len(line)
    if good_bytes < path.stat().st_size:
        with open(path, "r+b") as fh:
            fh.truncate(good_bytes)
    return rows


def _check_meta(path: Path, meta: dict) -> None:
    """Write the sidecar, or refuse to append to an output written with other settings."""
    if path.is_file():
        old = json.loads(path.read_text())
        keys = ("model", "adapter", "models", "data", "config", "split", "generation")
        if any(old.get(k) != meta.get(k) for k in keys):
            raise InputError(
                f"{path}: the output was written with other settings ({ {k: old.get(k) for k in keys} }); "
                "choose another --output or delete it to start over"
            )
    else:
        path.write_text(json.dumps(meta, indent=2) + "\n")


def meta_path(output: str | Path) -> Path:
    return Path(f"{output}.meta.json")


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
) -> dict:
    """Answer every question of `data` and write the predictions JSONL (see the module docstring).

    Args:
        both (`bool`, *optional*, defaults to `False`): with an adapter, also write the base's answers (labelled by
            the base's name), from the same loaded weights.
        limit (`int`, *optional*): answer only the first `limit` questions.

    Returns:
        `dict`: `{"rows": int, "written": int, "skipped": int, "output": str}` (`written` by this run, this process).
    """
    import torch
    from accelerate import PartialState

    settings = settings or GenerationSettings()
    if both and not adapter:
        raise InputError("--both needs --adapter (it writes the base's and the adapter's answers)")
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
    done = Counter(_key(row) for row in read_written(part if part.is_file() or not output.is_file() else output))
    todo = []
    for item in items[state.process_index :: state.num_processes]:
        missing = []
        for label in labels:
            if done[(label, item.image_id, item.question)] > 0:
                done[(label, item.image_id, item.question)] -= 1
            else:
                missing.append(label)
        if missing:
            todo.append((item, missing))
    mine = len(items[state.process_index :: state.num_processes]) * len(labels)
    written = sum(len(missing) for _, missing in todo)
    logger.info("process %d: %d of %d rows to write", state.process_index, written, mine)

    if todo:
        loaded, processor = load_model(model, adapter, dtype=dtype, device=str(state.device))
        _write_answers(loaded, processor, todo, load_image, labels, adapter, settings, part)
    state.wait_for_everyone()
    if state.num_processes > 1 and state.is_main_process:
        _merge_parts(output, state.num_processes, items, labels)
    state.wait_for_everyone()
    total = len(items) * len(labels)
    if state.is_main_process:
        meta["rows"] = total
        meta_path(output).write_text(json.dumps(meta, indent=2) + "\n")
    return {"rows": total, "written": written, "skipped": mine - written, "output": str(output)}


def _write_answers(model, processor, todo, load_image, labels, adapter, settings, part: Path) -> None:
    import contextlib

    from tqdm.auto import tqdm

    with open(part, "a", encoding="utf-8") as fh, tqdm(total=len(todo), desc="answering", unit="question") as bar:
        for start in range(0, len(todo), settings.batch_size):
            batch = todo[start : start + settings.batch_size]
            answers = {}
            for label in labels:
                chosen = [k for k, (_, missing) in enumerate(batch) if label in missing]
                if not chosen:
                    continue
                use_base = adapter is not None and label != adapter
                # the base's answers from the same weights: LoRA switched off, nothing reloaded
                context = model.disable_adapter() if use_base else contextlib.nullcontext()
                with context:
                    texts = generate_answers(
                        model,
                        processor,
                        [load_image(batch[k][0].image_key) for k in chosen],
                        [batch[k][0].question for k in chosen],
                        settings,
                    )
                answers.update({(k, label): text for k, text in zip(chosen, texts)})
            # data order, each question's answers together: the order the merge of sharded parts gives too
            for k, (item, missing) in enumerate(batch):
                fh.writelines(
                    json.dumps(item.row(answers[k, label], label), ensure_ascii=False) + "\n" for label in missing
                )
            fh.flush()
            bar.update(len(batch))


def _merge_parts(output: Path, num_processes: int, items: list[Item], labels: list[str]) -> None:
    """Process 0: the parts' rows in data order into `output` (written whole, then renamed), parts removed."""
    parts = [Path(f"{output}.part-{rank}-of-{num_processes}") for rank in range(num_processes)]
    by_key = defaultdict(deque)
    for part in parts:
        for row in read_written(part):
            by_key[_key(row)].append(row)
    tmp = Path(f"{output}.tmp")
    with open(tmp, "w", encoding="utf-8") as fh:
        for item in items:
            for label in labels:
                rows = by_key.get((label, item.image_id, item.question))
                if not rows:
                    raise RuntimeError(f"no answer of {label} to {item.question!r} on {item.image_id} in the parts")
                fh.write(json.dumps(rows.popleft(), ensure_ascii=False) + "\n")
    os.replace(tmp, output)
    for part in parts:
        part.unlink()


# -- command line -----------------------------------------------------------------------------------------------------
def add_arguments(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    parser.add_argument("--model", required=True, help="base model: PATH, REPO_ID or REPO_ID@REVISION")
    parser.add_argument("--adapter", help="LoRA adapter (safetensors): PATH, REPO_ID or REPO_ID@REVISION")
    parser.add_argument("--both", action="store_true", help="with --adapter, also write the base's answers")
    parser.add_argument("--data", required=True, help="built dataset folder, or a release/JSONL file with --images")
    parser.add_argument("--images", help="images folder of a release file (<image_id>.jpg)")
    parser.add_argument("--config", help="config of a built dataset folder (needed when it has several)")
    parser.add_argument("--split", help="split of that config (needed when it has several)")
    parser.add_argument("--output", required=True, help="predictions JSONL to write (resumed when it exists)")
    parser.add_argument("--batch-size", type=int, default=GenerationSettings.batch_size)
    parser.add_argument("--max-new-tokens", type=int, default=GenerationSettings.max_new_tokens)
    parser.add_argument("--num-beams", type=int, default=GenerationSettings.num_beams)
    parser.add_argument("--dtype", default="auto", choices=("auto", "float32", "float16", "bfloat16"))
    parser.add_argument("--limit", type=int, help="answer only the first N questions")
    return parser


def add_parser(subparsers):
    parser = subparsers.add_parser("infer", help="batched answers of a model (+ LoRA adapter) -> predictions JSONL")
    add_arguments(parser).set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    settings = GenerationSettings(
        max_new_tokens=args.max_new_tokens, batch_size=args.batch_size, num_beams=args.num_beams
    )
    result = run_inference(
        args.model,
        args.data,
        args.output,
        adapter=args.adapter,
        images=args.images,
        config=args.config,
        split=args.split,
        both=args.both,
        settings=settings,
        dtype=args.dtype,
        limit=args.limit,
    )
    from accelerate import PartialState

    if PartialState().is_main_process:
        print(
            f"wrote {result['written']} rows ({result['skipped']} already there) to {result['output']}; "
            f"settings in {meta_path(result['output'])}"
        )
    return 0


def main(argv: list[str] | None = None) -> int:
    """`python -m lrv_hf.infer` / `accelerate launch -m lrv_hf.infer`: the same flags as `lrv-hf infer`."""
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    args = add_arguments(argparse.ArgumentParser(prog="lrv_hf.infer", description=__doc__.splitlines()[0])).parse_args(
        argv
    )
    try:
        return run(args)
    except InputError as err:
        print(f"lrv_hf.infer: error: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
