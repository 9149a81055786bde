"""Training configuration: model, adapter and data sections plus `TrainingArguments`, layered from recipes.

Layering is dataclass defaults < recipe YAML < command-line flags; a key the dataclasses do not know is an error, in
the YAML as on the command line, so recipes cannot drift from the field names.
"""

import argparse
from dataclasses import dataclass, field, fields
from pathlib import Path

import yaml
from transformers import HfArgumentParser, TrainingArguments

from ..errors import InputError
from .recipes import recipe_path


ADAPTERS = ("lora", "projector")
DTYPES = ("auto", "float32", "float16", "bfloat16")
TINY_MODEL = "tiny-llava"


@dataclass
class ModelArguments:
    """Which model to fine-tune and how to load it."""

    model_name_or_path: str = field(
        default=TINY_MODEL,
        metadata={"help": f"Hub id or local folder of the base model; `{TINY_MODEL}` builds the tiny test LLaVA."},
    )
    model_revision: str = field(default="main", metadata={"help": "Branch, tag or commit of the base model."})
    dtype: str = field(
        default="float16",
        metadata={"help": f"dtype of the frozen base weights, one of {DTYPES}; trainable weights are always fp32."},
    )
    attn_implementation: str = field(
        default="sdpa",
        metadata={"help": "`sdpa`, `eager` or `flash_attention_2` (the latter falls back to sdpa below sm80)."},
    )
    load_in_4bit: bool = field(
        default=False, metadata={"help": "QLoRA: load the frozen base in 4-bit NF4 (needs bitsandbytes)."}
    )
    chat_template: str | None = field(
        default=None,
        metadata={"help": "Jinja chat template replacing the processor's (for models that ship none)."},
    )
    trust_remote_code: bool = field(default=False, metadata={"help": "Allow model code from the Hub repo."})

    def __post_init__(self):
        if self.dtype not in DTYPES:
            raise ValueError(f"`dtype` must be one of {DTYPES}, got {self.dtype!r}")
        if self.attn_implementation not in ("sdpa", "eager", "flash_attention_2"):
            raise ValueError(
                f"`attn_implementation` must be sdpa, eager or flash_attention_2, got {self.attn_implementation!r}"
            )


@dataclass
class AdapterArguments:
    """What trains: LoRA on the language model (LRV V2, mPLUG-Owl style) or only the projector (LRV V1, MiniGPT-4)."""

    adapter: str = field(default="lora", metadata={"help": f"One of {ADAPTERS}."})
    lora_r: int = field(default=8, metadata={"help": "LoRA rank (LRV V2: 8)."})
    lora_alpha: int = field(default=32, metadata={"help": "LoRA alpha (LRV V2: 32)."})
    lora_dropout: float = field(default=0.05, metadata={"help": "LoRA dropout (LRV V2: 0.05)."})
    lora_target_modules: list[str] = field(
        default_factory=lambda: ["q_proj", "v_proj"],
        metadata={"help": "Linear layer names that get LoRA, inside `lora_scope` only."},
    )
    lora_scope: str = field(
        default="language_model",
        metadata={"help": "Submodule name that LoRA is restricted to (the vision tower has q_proj/v_proj too)."},
    )
    trainable_modules: list[str] = field(
        default_factory=list,
        metadata={"help": "Modules trained in full and saved with the adapter (projector-only: the projector)."},
    )

    def __post_init__(self):
        if self.adapter not in ADAPTERS:
            raise ValueError(f"`adapter` must be one of {ADAPTERS}, got {self.adapter!r}")
        if self.adapter == "projector" and not self.trainable_modules:
            raise ValueError("`trainable_modules` must name the projector when `adapter` is 'projector'")
        if self.adapter == "lora" and (self.lora_r < 1 or not self.lora_target_modules):
            raise ValueError("`lora_r` must be >= 1 and `lora_target_modules` non-empty when `adapter` is 'lora'")


@dataclass
class DataArguments:
    """Which LRV-Instruction data to train on and how it is turned into conversations."""

    dataset_name: str | None = field(
        default=None,
        metadata={"help": "Built dataset folder or Hub dataset id; none: the synthetic release, built on the fly."},
    )
    dataset_config: str = field(default="instructions", metadata={"help": "Dataset config name."})
    dataset_split: str = field(default="train", metadata={"help": "Dataset split."})
    multi_turn: bool = field(
        default=True,
        metadata={"help": "One conversation per image with all its instructions: the image is encoded once."},
    )
    max_length: int = field(
        default=2048,
        metadata={"help": "Longer samples (image tokens included) are dropped and counted, never cut."},
    )
    max_samples: int | None = field(default=None, metadata={"help": "Train on the first N conversations only."})
    synthetic_images: int = field(default=48, metadata={"help": "Images in the synthetic release (no dataset)."})

    def __post_init__(self):
        if self.max_length < 16:
            raise ValueError(f"`max_length` must be at least 16, got {self.max_length}")
        if self.max_samples is not None and self.max_samples < 1:
            raise ValueError(f"`max_samples` must be positive, got {self.max_samples}")


@dataclass
class LRVTrainingArguments(TrainingArguments):
    """`TrainingArguments` with the defaults a frozen-base VLM fine-tune needs, plus what the model card records."""

    recipe: str | None = field(default=None, metadata={"help": "Recipe the run came from (set by `--recipe`)."})
    gavie_summary: str | None = field(
        default=None, metadata={"help": "GAVIE `summary.json` whose figures go into the model card."}
    )
    # LoRA learning rate of the LRV V2 / LLaVA LoRA recipes (upstream default 5e-5 is for full fine-tuning)
    learning_rate: float = field(default=2e-4, metadata={"help": "Initial AdamW learning rate."})
    # activations of a 7B model at 576 image tokens do not fit a 32 GB V100 otherwise
    activation_checkpointing: bool | None = field(
        default=True, metadata={"help": "Recompute activations in backward."}
    )
    # the reentrant variant needs inputs that require grad, which a frozen embedding never gives
    activation_checkpointing_kwargs: dict | str | None = field(
        default_factory=lambda: {"use_reentrant": False},
        metadata={"help": "Keyword arguments of `activation_checkpointing_enable`."},
    )
    # the collator reads `messages` and `images`; the Trainer would drop them as unknown to forward()
    remove_unused_columns: bool = field(default=False, metadata={"help": "Drop columns forward() does not take."})
    # a PeftModel hides forward()'s signature, so the Trainer cannot find the labels by itself
    label_names: list[str] | None = field(default_factory=lambda: ["labels"], metadata={"help": "Label keys."})
    # every trainable weight takes part in every step; searching for unused ones costs a graph walk per step
    ddp_find_unused_parameters: bool | None = field(default=False, metadata={"help": "DDP find_unused_parameters."})
    logging_steps: float = field(default=10, metadata={"help": "Log every N steps."})
    save_total_limit: int | None = field(default=2, metadata={"help": "Keep the last N checkpoints."})


SECTIONS = (ModelArguments, AdapterArguments, DataArguments, LRVTrainingArguments)


def load_recipe(name_or_path: str) -> dict:
    """The recipe's flat key -> value mapping; a key that no section knows is an `InputError` naming it."""
    path = recipe_path(name_or_path)
    values = yaml.safe_load(path.read_text()) or {}
    if not isinstance(values, dict):
        raise InputError(f"{path}: a recipe is a flat mapping of keys to values")
    known = {f.name for section in SECTIONS for f in fields(section)}
    unknown = sorted(set(values) - known)
    if unknown:
        raise InputError(f"{path}: unknown recipe key(s) {', '.join(unknown)}")
    return values


def parse_train_args(
    argv: list[str] | None = None,
) -> tuple[ModelArguments, AdapterArguments, DataArguments, LRVTrainingArguments]:
    """`--recipe NAME|PATH [--output-dir D] [--key value ...]` -> the four config sections.

    Without `--output-dir` (or `output_dir` in the recipe) the run goes to `runs/<recipe name>`.
    """
    pre = argparse.ArgumentParser(add_help=False)
    pre.add_argument("--recipe", default=None)
    known, overrides = pre.parse_known_args(argv)
    parser = HfArgumentParser(SECTIONS)
    values = load_recipe(known.recipe) if known.recipe else {}
    if known.recipe:
        values.setdefault("recipe", known.recipe)
        values.setdefault("output_dir", str(Path("runs") / Path(known.recipe).with_suffix("").as_posix()))
    parser.set_defaults(**values)
    try:
        return tuple(parser.parse_args_into_dataclasses(args=overrides))
    except ValueError as err:
        raise InputError(f"{known.recipe or 'command line'}: {err}") from None
