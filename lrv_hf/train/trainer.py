"""The training run: data, model, `Trainer` with a NaN guard, resume from the last checkpoint, adapter + card + push.

Launch with `accelerate launch [--config_file lrv_hf/recipes/accelerate/<cfg>.yaml] -m lrv_hf.train --recipe NAME`
or `lrv-hf train --recipe NAME`; both run `main`.
"""

import logging
import math
from pathlib import Path

import torch
from datasets import Dataset, load_dataset
from transformers import Trainer

from ..data.views import chat_view
from ..errors import InputError
from .card import model_card, push_adapter, read_gavie
from .collator import AnswerOnlyCollator
from .config import AdapterArguments, DataArguments, LRVTrainingArguments, ModelArguments, parse_train_args
from .model import load_model_and_processor


logger = logging.getLogger(__name__)

FRESH = ("no", "none", "false")  # `resume_from_checkpoint` values that start over instead of resuming


class LRVTrainer(Trainer):
    """`Trainer` that stops at the first non-finite loss instead of burning GPU hours on a diverged run.

    It also counts the samples the collator dropped as too long (`num_dropped` in the batch, popped here).
    """

    num_dropped = 0

    def training_step(self, model, inputs, num_items_in_batch=None):
        if "num_dropped" in inputs:
            self.num_dropped += int(inputs.pop("num_dropped"))
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
        raise InputError(f"{name}: no answered instructions in config {data_args.dataset_config!r}")
    return conversations


def resume_point(training_args: LRVTrainingArguments) -> str | None:
    """The checkpoint to resume from: the one asked for, else the newest complete one in `output_dir` (a killed run).

    The Trainer writes `trainer_state.json` last, so a checkpoint without it was cut short by the kill and is skipped.
    """
    asked = training_args.resume_from_checkpoint
    if asked is not None:
        return None if str(asked).lower() in FRESH else asked
    output_dir = Path(training_args.output_dir)
    steps = sorted(
        (int(p.name.split("-")[1]) for p in output_dir.glob("checkpoint-*") if p.name.split("-")[1].isdigit()),
        reverse=True,
    )
    for step in steps:
        checkpoint = output_dir / f"checkpoint-{step}"
        if (checkpoint / "trainer_state.json").is_file():
            logger.info("resuming from %s (set `resume_from_checkpoint: no` to start over)", checkpoint)
            return str(checkpoint)
        logger.warning("skipping %s: incomplete (the run was killed while saving it)", checkpoint)
    return None


def write_card(trainer: Trainer, model_args, adapter_args, data_args, conversations: int, dropped: int) -> Path:
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
    data = {
        "dataset": data_args.dataset_name or "synthetic release (lrv_hf.data.synth)",
        "config": data_args.dataset_config,
        "split": data_args.dataset_split,
        "view": "multi-turn per image" if data_args.multi_turn else "one instruction per conversation",
        "conversations": conversations,
        "dropped (longer than max_length)": dropped,
    }
    base = trainer.model.peft_config["default"].base_model_name_or_path
    # the commit the revision resolved to when the base was downloaded: a branch name moves, a commit does not
    revision = getattr(trainer.model.get_base_model().config, "_commit_hash", None) or model_args.model_revision
    text = model_card(base, revision, args.recipe, settings, data, gavie=read_gavie(args.gavie_summary))
    path = Path(args.output_dir, "README.md")
    path.write_text(text)
    return path


def run(
    model_args: ModelArguments,
    adapter_args: AdapterArguments,
    data_args: DataArguments,
    training_args: LRVTrainingArguments,
) -> Trainer:
    """Train, save the adapter (safetensors) + processor + model card in `output_dir`, push when asked."""
    if training_args.hub_token:
        raise InputError("`hub_token`: pass the Hub token through the HF_TOKEN environment variable, not the recipe")
    push = training_args.push_to_hub
    # we upload adapter + our card ourselves at the end; the Trainer's push would write its generic card
    training_args.push_to_hub = False
    if push and not training_args.hub_model_id:
        raise InputError("`push_to_hub` needs `hub_model_id` (the model repo to create, e.g. you/llava-lrv-lora)")
    model, processor = load_model_and_processor(model_args, adapter_args, training_args)
    conversations = load_conversations(data_args, training_args)
    collator = AnswerOnlyCollator(processor, max_length=data_args.max_length, report_dropped=True)
    trainer = LRVTrainer(
        model=model,
        args=training_args,
        train_dataset=conversations,
        data_collator=collator,
        processing_class=processor,
    )
    if trainer.is_world_process_zero():
        trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
        total = sum(p.numel() for p in model.parameters())
        logger.info("training %d of %d parameters (%.3f%%)", trainable, total, 100 * trainable / max(total, 1))
    trainer.train(resume_from_checkpoint=resume_point(training_args))
    trainer.save_model(training_args.output_dir)
    if trainer.num_dropped:
        logger.warning("dropped %d samples longer than max_length=%d", trainer.num_dropped, data_args.max_length)
    if trainer.is_world_process_zero():
        write_card(trainer, model_args, adapter_args, data_args, len(conversations), trainer.num_dropped)
        if push:
            push_adapter(
                training_args.output_dir, training_args.hub_model_id, private=bool(training_args.hub_private_repo)
            )
    losses = [entry["loss"] for entry in trainer.state.log_history if "loss" in entry]
    if losses and not math.isfinite(losses[-1]):
        logger.warning("the last logged loss is %s", losses[-1])
    return trainer


def main(argv: list[str] | None = None) -> Trainer:
    """`python -m lrv_hf.train --recipe NAME|PATH [--output-dir D] [--key value ...]`."""
    return run(*parse_train_args(argv))
