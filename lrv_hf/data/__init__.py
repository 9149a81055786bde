"""LRV-Instruction data: release readers, the `datasets` builder, Hub export, views and the synthetic release.

Names load lazily so that `lrv-hf` commands that never touch a dataset do not pay for importing `datasets`.
"""

import importlib


_EXPORTS = {
    "FEATURES": "features",
    "INSTRUCTION_FEATURES": "features",
    "BadRows": "release",
    "Instruction": "release",
    "build_dataset": "export",
    "chat_view": "views",
    "image_path": "release",
    "instruction_view": "views",
    "load_regions": "release",
    "push_to_hub": "export",
    "read_instructions": "release",
    "read_regions": "release",
    "to_messages": "views",
    "write_synthetic_release": "synth",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    if name not in _EXPORTS:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f".{_EXPORTS[name]}", __name__), name)
