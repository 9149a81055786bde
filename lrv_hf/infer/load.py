"""Loading a model for inference: the base (+ a checked LoRA adapter as `"lrv"`) in eval mode, and its processor.

The adapter checks (safetensors only, trained on this base) run before any base weight loads.
"""

import os

from ..adapters import ModelRef, check_base, fetch_adapter
from ..errors import InputError


ADAPTER_NAME = "lrv"


def load_model(
    model: str, adapter: str | None = None, dtype: str = "auto", device: str | None = None, token: str | None = None
):
    """The base model (+ the checked adapter as `"lrv"`) in eval mode and its processor, left-padding.

    Args:
        model (`str`): base as `PATH`, `REPO_ID` or `REPO_ID@REVISION`.
        adapter (`str`, *optional*): LoRA adapter, same forms; refused unless safetensors and trained on `model`.
        dtype (`str`, *optional*, defaults to `"auto"`): `auto` keeps the checkpoint's dtype.
        device (`str`, *optional*): where to put the model; CPU when None.
        token (`str`, *optional*): Hub token; `HF_TOKEN` from the environment when None.

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
        raise InputError(f"model {base_ref}: cannot be loaded ({str(err).splitlines()[0]})", "model") from None
    if not getattr(processor, "chat_template", None):
        raise InputError(f"model {base_ref}: the processor has no chat template", "model")
    processor.tokenizer.padding_side = "left"  # generation continues from the last position of every row
    if device:
        loaded = loaded.to(device)
    if adapter_dir is not None:
        from peft import PeftModel

        loaded = PeftModel.from_pretrained(loaded, adapter_dir, adapter_name=ADAPTER_NAME)
    return loaded.eval(), processor
