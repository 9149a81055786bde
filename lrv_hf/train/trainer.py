"""The training run: checks, data sized before batching, model, `Trainer` with a NaN guard, resume, adapter + card.

Launch with `accelerate launch [--config_file lrv_hf/recipes/accelerate/<cfg>.yaml] -m lrv_hf.train --recipe NAME`,
`lrv-hf train --recipe NAME`, or from Python with `train(model_args, adapter_args, data_args, training_args)`.
"""

import json
import math
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

import torch
from accelerate.logging import get_logger
from datasets import Dataset, load_dataset
from safetensors import SafetensorError, safe_open
from transformers import Trainer

from ..data.views import chat_view
from ..errors import InputError
from .card import push_adapter, read_gavie, read_pope, write_model_card
from .collator import AnswerOnlyCollator
from .config import AdapterArguments, DataArguments, LRVTrainingArguments, ModelArguments, parse_train_args
from .model import load_adapter_model, load_processor_for


logger = get_logger(__name__)

FRESH = ("no", "none", "false")  # `resume_from_checkpoint` values that start over instead of resuming
LATEST = ("true", "yes", "last")  # values that mean "the newest intact checkpoint in output_dir"
MEASURE_BATCH = 16  # samples measured per processor call before training


@dataclass
class TrainResult:
    """What a run produced: where the adapter is, how far it got, and what the data sizing left out."""

    output_dir: Path
    adapter_path: Path
    global_step: int
    conversations: int = field(metadata={"help": "Conversations trained on (after `overlong`)."})
    dropped: int = field(metadata={"help": "Conversations left out as longer than `max_length`."})
    truncated: int = field(metadata={"help": "Conversations whose answers were cut at `max_length`."})
    resumed_from: str | None = None
    card_path: Path | None = None
    hub_url: str | None = None
    trainer: Trainer | None = field(default=None, repr=False)


class LRVTrainer(Trainer):
    """`Trainer` that stops at the first non-finite loss instead of burning GPU hours on a diverged run."""

    def training_step(self, model, inputs, num_items_in_batch=None):
        loss = super().training_step(model, inputs, num_items_in_batch)
        if not torch.isfinite(loss).all():
            precision = "fp16" if self.args.fp16 else "bf16" if self.args.bf16 else "fp32"
            raise FloatingPointError(
                f"the training loss became {loss.item()} at step {self.state.global_step + 1} ({precision}); the run "
                "was stopped. Lower `learning_rate`, raise `warmup_steps` or `max_grad_norm`, check the data, and "
                f"resume from the last checkpoint in {self.args.output_dir}"
            )
        return loss


def load_conversations(data_args: DataArguments, training_args: LRVTrainingArguments) -> Dataset:
    """The chat view of the dataset; without `dataset_name`, the synthetic release built into the run folder."""
    name = data_args.dataset_name
    if name is None:
        from ..data.export import build_dataset
        from ..data.synth import write_synthetic_release

        root = Path(training_args.output_dir, "synthetic")
        with training_args.main_process_first(desc="synthetic data"):
            if not (root / "dataset" / data_args.dataset_config).is_dir():
                write_synthetic_release(
                    root / "release", num_images=data_args.synthetic_images, seed=training_args.seed
                )
                build_dataset(
                    [root / "release" / "filter_cap.json", root / "release" / "filter_cap_more.json"],
                    root / "release" / "images",
                    root / "dataset",
                    config_name=data_args.dataset_config,
                    split=data_args.dataset_split,
                )
        name = str(root / "dataset")
    dataset = load_dataset(name, data_args.dataset_config, split=data_args.dataset_split)
    if data_args.max_samples is not None and not data_args.multi_turn:
        dataset = dataset.select(range(min(len(dataset), data_args.max_samples)))
    conversations = chat_view(dataset, multi_turn=data_args.multi_turn)
    if data_args.max_samples is not None:
        conversations = conversations.select(range(min(len(conversations), data_args.max_samples)))
    if len(conversations) == 0:
        raise InputError(f"`dataset_name` {name}: no answered instructions in config {data_args.dataset_config!r}")
    return conversations


def overlong_split(
    conversations: Dataset, collator: AnswerOnlyCollator, max_length: int, overlong: str
) -> tuple[list[int], int, int]:
    """(indices to train on, number dropped, number truncated) under `overlong`, decided before any batch.

    A batch of only over-long samples cannot train and a resumed run would meet it again, so sizes are settled
    here. `truncate` keeps a sample whose first answer starts within `max_length` (its image must fit whole).
    """
    keep, dropped, truncated = [], 0, 0
    for start in range(0, len(conversations), MEASURE_BATCH):
        rows = conversations[start : start + MEASURE_BATCH]
        features = [dict(zip(rows, values)) for values in zip(*rows.values())]
        for offset, (length, first_answer) in enumerate(collator.measure(features)):
            if length <= max_length:
                keep.append(start + offset)
            elif overlong == "truncate" and first_answer < max_length:
                keep.append(start + offset)
                truncated += 1
            else:
                dropped += 1
    return keep, dropped, truncated


def _damage(checkpoint: Path) -> str | None:
    """Why a checkpoint cannot be resumed from (a kill or a full disk while saving), or None when it is intact."""
    state = checkpoint / "trainer_state.json"
    if not state.is_file():
        return "no trainer_state.json"
    try:
        json.loads(state.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError):
        return "trainer_state.json is truncated"
    for path in sorted(checkpoint.rglob("*.safetensors")):
        try:
            with safe_open(path, framework="pt") as weights:
                weights.keys()
        except (SafetensorError, OSError) as err:
            return f"{path.name} is unreadable ({err})"
    # torch.save writes zip archives whose directory is at the end: a cut file has none
    for path in sorted([*checkpoint.rglob("*.pt"), *checkpoint.rglob("*.pth"), *checkpoint.rglob("*.bin")]):
        if not zipfile.is_zipfile(path):
            return f"{path.name} is truncated"
    return None


def resume_point(training_args: LRVTrainingArguments) -> str | None:
    """The checkpoint to resume from: the one asked for, else the newest intact one in `output_dir`.

    A damaged checkpoint named in `resume_from_checkpoint` is an error; found by itself, it is skipped with a
    warning and the one before it is used.
    """
    asked = training_args.resume_from_checkpoint
    if asked is not None and str(asked).lower() in FRESH:
        return None
    if asked is not None and str(asked).lower() not in LATEST:
        damage = _damage(Path(asked))
        if damage:
            raise InputError(f"`resume_from_checkpoint` {asked}: {damage}; name an intact checkpoint or `no`")
        return str(asked)
    output_dir = Path(training_args.output_dir)
    steps = sorted(
        (int(p.name.split("-")[1]) for p in output_dir.glob("checkpoint-*") if p.name.split("-")[1].isdigit()),
        reverse=True,
    )
    for step in steps:
        checkpoint = output_dir / f"checkpoint-{step}"
        damage = _damage(checkpoint)
        if damage is None:
            logger.info("resuming from %s (set `resume_from_checkpoint: no` to start over)", checkpoint)
            return str(checkpoint)
        logger.warning("skipping %s: %s (the run was stopped while saving it)", checkpoint, damage)
    return None


def _settings(trainer: Trainer, adapter_args: AdapterArguments) -> dict:
    args = trainer.args
    settings = {"adapter": adapter_args.adapter}
    if adapter_args.adapter == "lora":
        settings.update(
            lora_r=adapter_args.lora_r,
            lora_alpha=adapter_args.lora_alpha,
            lora_dropout=adapter_args.lora_dropout,
            lora_target_modules=f"{adapter_args.lora_scope}: {', '.join(adapter_args.lora_target_modules)}",
        )
    if adapter_args.trainable_modules:
        settings["trainable_modules"] = ", ".join(adapter_args.trainable_modules)
    settings.update(
        precision="fp16" if args.fp16 else "bf16" if args.bf16 else "fp32",
        learning_rate=args.learning_rate,
        lr_scheduler=str(getattr(args.lr_scheduler_type, "value", args.lr_scheduler_type)),
        steps=trainer.state.global_step,
        batch_size=f"{args.per_device_train_batch_size} x {args.gradient_accumulation_steps} accumulation "
        f"x {args.world_size} processes",
    )
    return settings


def train(
    model_args: ModelArguments,
    adapter_args: AdapterArguments,
    data_args: DataArguments,
    training_args: LRVTrainingArguments,
) -> TrainResult:
    """Train, save the adapter (safetensors) + processor + model card in `output_dir`, push when asked.

    Everything a user can get wrong (recipe values, Hub settings, the data, over-long samples) is checked before
    the model loads.
    """
    if training_args.hub_token:
        raise InputError("`hub_token`: pass the Hub token through the HF_TOKEN environment variable, not the recipe")
    push = training_args.push_to_hub
    # we upload adapter + our card ourselves at the end; the Trainer's push would write its generic card
    training_args.push_to_hub = False
    if push and not training_args.hub_model_id:
        raise InputError("`push_to_hub` needs `hub_model_id` (the model repo to create, e.g. you/llava-lrv-lora)")
    gavie, pope = read_gavie(training_args.gavie_summary), read_pope(training_args.pope_summary)
    processor = load_processor_for(model_args, training_args)
    conversations = load_conversations(data_args, training_args)
    collator = AnswerOnlyCollator(
        processor, max_length=data_args.max_length if data_args.overlong == "truncate" else None
    )
    keep, dropped, truncated = overlong_split(conversations, collator, data_args.max_length, data_args.overlong)
    if dropped or truncated:
        logger.warning(
            "%d of %d conversations are longer than `max_length`=%d: %d dropped, %d with their answers cut "
            "(`overlong: %s`)",
            dropped + truncated, len(conversations), data_args.max_length, dropped, truncated, data_args.overlong,
        )  # fmt: skip
    if not keep:
        raise InputError(
            f"`max_length` {data_args.max_length}: every one of the {len(conversations)} conversations is longer "
            "(image tokens included); raise it"
        )
    if len(keep) < len(conversations):
        conversations = conversations.select(keep)
    model = load_adapter_model(model_args, adapter_args, training_args)
    trainer = LRVTrainer(
        model=model,
        args=training_args,
        train_dataset=conversations,
        data_collator=collator,
        processing_class=processor,
    )
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    total = sum(p.numel() for p in model.parameters())
    logger.info("training %d of %d parameters (%.3f%%)", trainable, total, 100 * trainable / max(total, 1))
    checkpoint = resume_point(training_args)
    trainer.train(resume_from_checkpoint=checkpoint)
    trainer.save_model(training_args.output_dir)
    if trainer.is_world_process_zero():
        from ..adapters import vllm_problems

        for problem in vllm_problems(model.peft_config["default"].to_dict()):
            logger.warning("vLLM will not serve this adapter with --enable-lora: %s", problem)
    result = TrainResult(
        output_dir=Path(training_args.output_dir),
        adapter_path=Path(training_args.output_dir, "adapter_model.safetensors"),
        global_step=trainer.state.global_step,
        conversations=len(conversations),
        dropped=dropped,
        truncated=truncated,
        resumed_from=checkpoint,
        trainer=trainer,
    )
    if trainer.is_world_process_zero():
        data = {
            "dataset": data_args.dataset_name or "synthetic release (lrv_hf.data.synth)",
            "config": data_args.dataset_config,
            "split": data_args.dataset_split,
            "view": "multi-turn per image" if data_args.multi_turn else "one instruction per conversation",
            "conversations": len(conversations),
            f"dropped (longer than max_length={data_args.max_length})": dropped,
            "answers cut at max_length": truncated,
        }
        base = model.peft_config["default"].base_model_name_or_path
        # the commit the revision resolved to when the base was downloaded: a branch name moves, a commit does not
        revision = getattr(model.get_base_model().config, "_commit_hash", None) or model_args.model_revision
        result.card_path = write_model_card(
            training_args.output_dir,
            base,
            revision,
            training_args.recipe,
            _settings(trainer, adapter_args),
            data,
            dataset_id=data_args.dataset_name,
            gavie=gavie,
            pope=pope,
        )
        if push:
            result.hub_url = push_adapter(
                training_args.output_dir, training_args.hub_model_id, private=bool(training_args.hub_private_repo)
            )
    losses = [entry["loss"] for entry in trainer.state.log_history if "loss" in entry]
    if losses and not math.isfinite(losses[-1]):
        logger.warning("the last logged loss is %s", losses[-1])
    return result


def main(argv: list[str] | None = None, prog: str | None = None) -> TrainResult:
    """`python -m lrv_hf.train --recipe NAME|PATH [--output_dir D] [--key value ...]`."""
    return train(*parse_train_args(argv, prog=prog))
