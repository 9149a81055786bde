"""Model and processor loading for training: the V100 preflight, the base model, and LoRA or projector-only adapters.

Both adapters are PEFT adapters, so one save/load path serves them: LoRA on the language model's attention, or
no LoRA at all with the projector in `modules_to_save` (PEFT's dummy target), which saves only the projector.
"""

import re
from pathlib import Path

import torch
from accelerate.logging import get_logger
from peft import LoraConfig, PeftModel, get_peft_model
from peft.utils.constants import DUMMY_TARGET_MODULES
from transformers import AutoModelForImageTextToText, AutoProcessor, PreTrainedModel, ProcessorMixin

from ..errors import InputError
from .config import TINY_MODEL, AdapterArguments, ModelArguments, TrainingArguments


logger = get_logger(__name__)


def preflight(model_args: ModelArguments, training_args: TrainingArguments, capability: tuple | None = None) -> None:
    """Refuse settings the GPU cannot run before any weight is loaded; fall back where a fallback is exact.

    Args:
        capability (`tuple`, *optional*):
            CUDA compute capability to check against; defaults to the current device's (none on CPU).
    """
    training_args.device  # noqa: B018 -- sets up the process group, which the rank-aware logger needs
    if capability is None and torch.cuda.is_available() and not training_args.use_cpu:
        capability = torch.cuda.get_device_capability()
    if capability is None:
        if training_args.fp16 or training_args.bf16:
            raise InputError("fp16/bf16 mixed precision needs a CUDA GPU; on CPU set `fp16: false` and `bf16: false`")
        return
    name = f"this GPU (compute capability {capability[0]}.{capability[1]})"
    if capability < (8, 0):
        if training_args.bf16 or model_args.dtype == "bfloat16":
            raise InputError(
                f"bf16 needs compute capability 8.0 or newer and {name} has none (V100 is 7.0): "
                "set `bf16: false`, `fp16: true` and `dtype: float16`"
            )
        if model_args.attn_implementation == "flash_attention_2":
            logger.warning("FlashAttention 2 needs compute capability 8.0; %s falls back to sdpa", name)
            model_args.attn_implementation = "sdpa"


def load_processor(name_or_path: str, model_args: ModelArguments) -> ProcessorMixin:
    processor = AutoProcessor.from_pretrained(
        name_or_path, revision=model_args.model_revision, trust_remote_code=model_args.trust_remote_code
    )
    if model_args.chat_template:
        processor.chat_template = model_args.chat_template
    if not getattr(processor, "chat_template", None):
        raise InputError(f"{name_or_path}: the processor has no chat template; set `chat_template` in the recipe")
    return processor


def load_base_model(name_or_path: str, model_args: ModelArguments) -> PreTrainedModel:
    """The frozen base in `dtype` (4-bit NF4 with `load_in_4bit`), with the attention implementation asked for."""
    kwargs = {}
    if model_args.load_in_4bit:
        from transformers import BitsAndBytesConfig

        kwargs["quantization_config"] = BitsAndBytesConfig(
            load_in_4bit=True,
            bnb_4bit_quant_type="nf4",
            bnb_4bit_use_double_quant=True,
            # V100 has no bf16: the 4-bit matmuls compute in fp16
            bnb_4bit_compute_dtype=torch.float16 if model_args.dtype != "bfloat16" else torch.bfloat16,
        )
    model = AutoModelForImageTextToText.from_pretrained(
        name_or_path,
        revision=model_args.model_revision,
        dtype=model_args.dtype,
        attn_implementation=model_args.attn_implementation,
        trust_remote_code=model_args.trust_remote_code,
        **kwargs,
    )
    if model_args.load_in_4bit:
        from peft import prepare_model_for_kbit_training

        model = prepare_model_for_kbit_training(model, use_gradient_checkpointing=False)
    return model


def adapter_config(adapter_args: AdapterArguments) -> LoraConfig:
    """The PEFT config: LoRA scoped to `lora_scope`, or only `trainable_modules` (the projector) trained in full."""
    if adapter_args.adapter == "projector":
        return LoraConfig(target_modules=DUMMY_TARGET_MODULES, modules_to_save=list(adapter_args.trainable_modules))
    names = "|".join(re.escape(name) for name in adapter_args.lora_target_modules)
    return LoraConfig(
        r=adapter_args.lora_r,
        lora_alpha=adapter_args.lora_alpha,
        lora_dropout=adapter_args.lora_dropout,
        # a regex, so the vision tower's own q_proj/v_proj stay frozen
        target_modules=rf".*\b{re.escape(adapter_args.lora_scope)}\b.*\.({names})$",
        modules_to_save=list(adapter_args.trainable_modules) or None,
        task_type="CAUSAL_LM",
    )


def apply_adapter(model: PreTrainedModel, adapter_args: AdapterArguments) -> PeftModel:
    """Freeze the base, attach the adapter, and keep every trainable weight in fp32.

    fp32 trainable weights are what lets fp16 autocast + GradScaler work: an fp16 weight's gradient cannot be
    unscaled ("Attempting to unscale FP16 gradients"), and fp16 Adam states underflow.
    """
    model = get_peft_model(model, adapter_config(adapter_args))
    for param in model.parameters():
        if param.requires_grad and param.dtype != torch.float32:
            param.data = param.data.float()
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    if trainable == 0:
        raise InputError(
            f"the `{adapter_args.adapter}` adapter found nothing to train in this model; check the recipe"
        )
    return model


def base_path(model_args: ModelArguments, training_args: TrainingArguments) -> str:
    """Where the base loads from; `tiny-llava` is the shipped tiny base that sees, copied to `<output_dir>/base`.

    Saved beside the run so that the adapter's `base_model_name_or_path` resolves there for inference and the demo.
    """
    if model_args.model_name_or_path != TINY_MODEL:
        return model_args.model_name_or_path
    from ..testing.tiny_base import copy_tiny_base

    base = Path(training_args.output_dir, "base").resolve()
    with training_args.main_process_first(desc="tiny base"):
        if not (base / "config.json").is_file():
            copy_tiny_base(base)
    return str(base)


def load_processor_for(model_args: ModelArguments, training_args: TrainingArguments) -> ProcessorMixin:
    """Preflight, then the processor: what sizing the data needs, before any weight loads."""
    preflight(model_args, training_args)
    return load_processor(base_path(model_args, training_args), model_args)


def load_adapter_model(
    model_args: ModelArguments, adapter_args: AdapterArguments, training_args: TrainingArguments
) -> PeftModel:
    """The frozen base with its adapter attached."""
    return apply_adapter(load_base_model(base_path(model_args, training_args), model_args), adapter_args)
