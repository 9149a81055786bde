"""Training configuration: model, adapter and data sections plus `TrainingArguments`, layered from recipes.

Layering is dataclass defaults < recipe YAML < command-line flags, parsed once (TRL's `TrlParser` way); a key the
dataclasses do not know, or a value of the wrong type, is an error naming the key and the file.
"""

import enum
import sys
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path

import yaml
from transformers import HfArgumentParser, TrainingArguments

from ..errors import InputError
from .recipes import recipe_arg, recipe_path


ADAPTERS = ("lora", "projector")
DTYPES = ("auto", "float32", "float16", "bfloat16")
OVERLONG = ("drop", "truncate")
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
        metadata={"help": "Longest sample in tokens, image tokens included; see `overlong` for longer ones."},
    )
    overlong: str = field(
        default="drop",
        metadata={
            "help": f"One of {OVERLONG}: samples longer than `max_length` are dropped before training, or their "
            "answers are cut at `max_length` (a sample whose image or first question does not fit is still dropped); "
            "either way they are counted and reported before the first step."
        },
    )
    max_samples: int | None = field(default=None, metadata={"help": "Train on the first N conversations only."})
    synthetic_images: int = field(default=48, metadata={"help": "Images in the synthetic release (no dataset)."})

    def __post_init__(self):
        if self.max_length < 16:
            raise ValueError(f"`max_length` must be at least 16, got {self.max_length}")
        if self.max_samples is not None and self.max_samples < 1:
            raise ValueError(f"`max_samples` must be positive, got {self.max_samples}")
        if self.overlong not in OVERLONG:
            raise ValueError(f"`overlong` must be one of {OVERLONG}, got {self.overlong!r}")


@dataclass
class LRVTrainingArguments(TrainingArguments):
    """`TrainingArguments` with the defaults a frozen-base VLM fine-tune needs, plus what the model card records."""

    recipe: str | None = field(default=None, metadata={"help": "Recipe the run came from (set by `--recipe`)."})
    gavie_summary: str | None = field(
        default=None, metadata={"help": "GAVIE `summary.json` whose figures go into the model card."}
    )
    pope_summary: str | None = field(
        default=None, metadata={"help": "POPE `summary.json` (`lrv-hf pope score`) whose figures go into the card."}
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

    def __post_init__(self):
        # a zero or negative rate "trains" for hours without learning; the upstream class accepts it
        if not self.learning_rate > 0:
            raise ValueError(f"`learning_rate` must be positive, got {self.learning_rate}")
        super().__post_init__()


SECTIONS = (ModelArguments, AdapterArguments, DataArguments, LRVTrainingArguments)


def _accepts(annotation, value) -> bool:
    """Whether a YAML value fits a field's type (argparse converts flags, but never the defaults a recipe sets)."""
    origin, args = typing.get_origin(annotation), typing.get_args(annotation)
    if origin in (typing.Union, types.UnionType):
        # upstream types a choice as `SchedulerType | str`: the string must still name a member
        choices = [arg for arg in args if isinstance(arg, type) and issubclass(arg, enum.Enum)]
        if choices and isinstance(value, str):
            return any(_accepts(choice, value) for choice in choices)
        return any(_accepts(arg, value) for arg in args)
    if origin is typing.Literal:
        return value in args
    if origin is list:
        return (
            isinstance(value, list) and all(_accepts(args[0], v) for v in value) if args else isinstance(value, list)
        )
    if origin is dict or annotation is dict:
        return isinstance(value, dict)
    if annotation is type(None):
        return value is None
    if annotation is bool:
        return isinstance(value, bool)
    if annotation is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if annotation is float:
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if annotation is str:
        return isinstance(value, str)
    if isinstance(annotation, type) and issubclass(annotation, enum.Enum):
        return value in {member.value for member in annotation}
    return True  # composite upstream types (parallelism config): checked by their own class


def _field_types() -> dict:
    return {name: hint for section in SECTIONS for name, hint in typing.get_type_hints(section).items()}


def load_recipe(name_or_path: str) -> dict:
    """The recipe's flat key -> value mapping, each key known and each value of its field's type.

    Raises `InputError` naming the file and the key: a recipe that parses here cannot fail later for its values'
    types, only for what `__post_init__` checks.
    """
    path = recipe_path(name_or_path)
    try:
        values = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as err:
        raise InputError(f"{path}: not valid YAML ({str(err).splitlines()[0]})") from None
    if not isinstance(values, dict):
        raise InputError(f"{path}: a recipe is a flat mapping of keys to values")
    hints = _field_types()
    unknown = sorted(set(values) - set(hints))
    if unknown:
        raise InputError(f"{path}: unknown recipe key(s) {', '.join(unknown)}")
    for key, value in values.items():
        # YAML 1.1 reads `1e-4` (no dot) as a string; a float field takes it as the number it clearly is
        if isinstance(value, str) and _accepts(hints[key], 1.5) and not _accepts(hints[key], value):
            try:
                values[key] = value = float(value)
            except ValueError:
                pass
        if not _accepts(hints[key], value):
            expected = str(hints[key]).replace("<class '", "").replace("'>", "").replace("typing.", "")
            raise InputError(f"{path}: `{key}` must be {expected}, got {value!r}")
    return values


class RecipeParser(HfArgumentParser):
    """The four sections' flags plus `--recipe`; errors are `InputError`s instead of argparse's exit."""

    def __init__(self, prog: str | None = None):
        super().__init__(
            SECTIONS,
            prog=prog,
            description="Fine-tune a VLM on LRV-Instruction from a recipe (defaults < recipe YAML < flags).",
            epilog="Any recipe key is a flag too, e.g. --learning_rate 1e-4 --lora_r 16 --max_steps 100.",
        )

    def error(self, message: str):
        raise InputError(message)


def parse_train_args(
    argv: list[str] | None = None, prog: str | None = None
) -> tuple[ModelArguments, AdapterArguments, DataArguments, LRVTrainingArguments]:
    """`--recipe NAME|PATH [--output_dir D] [--key value ...]` -> the four config sections, in one parse.

    The recipe's values become the parser's defaults, so flags override them; without `output_dir` in either, the
    run goes to `runs/<recipe name>`.
    """
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = RecipeParser(prog)
    recipe = recipe_arg(argv)
    if recipe:
        values = load_recipe(recipe)
        values.setdefault("output_dir", str(Path("runs") / Path(recipe).with_suffix("").as_posix()))
        parser.set_defaults(**values)
    try:
        *sections, remaining = parser.parse_args_into_dataclasses(args=argv, return_remaining_strings=True)
    except ValueError as err:
        raise InputError(f"{recipe or 'command line'}: {err}") from None
    if remaining:
        raise InputError(f"unknown recipe key(s) {' '.join(a for a in remaining if a.startswith('--'))}")
    return tuple(sections)


def recipe_args(
    recipe: str, **overrides
) -> tuple[ModelArguments, AdapterArguments, DataArguments, LRVTrainingArguments]:
    """The four config sections of a recipe with `overrides` on top (keys as in the recipe YAML), for library callers:
    `train(*recipe_args("tiny/lora-cpu", output_dir="runs/x", max_steps=10))`. Unknown keys are an error."""
    values = load_recipe(recipe)
    values.setdefault("output_dir", str(Path("runs") / Path(recipe).with_suffix("").as_posix()))
    values.update({key: str(value) if isinstance(value, Path) else value for key, value in overrides.items()})
    try:
        return tuple(RecipeParser().parse_dict(values, allow_extra_keys=False))
    except ValueError as err:
        raise InputError(f"recipe {recipe}: {err}", "recipe") from None
