"""Fine-tuning VLMs on LRV-Instruction: recipes, the answer-only collator, LoRA / projector-only adapters, the run.

Names load lazily so that `lrv-hf --help` (which imports `lrv_hf.train.cli`) does not pull in torch.
"""

import importlib


_EXPORTS = {
    "AdapterArguments": "config",
    "AnswerOnlyCollator": "collator",
    "DataArguments": "config",
    "LRVTrainer": "trainer",
    "LRVTrainingArguments": "config",
    "TrainResult": "trainer",
    "ModelArguments": "config",
    "list_recipes": "recipes",
    "load_adapter_model": "model",
    "load_processor_for": "model",
    "main": "trainer",
    "parse_train_args": "config",
    "recipe_args": "config",
    "train": "trainer",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    if name not in _EXPORTS:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f".{_EXPORTS[name]}", __name__), name)
