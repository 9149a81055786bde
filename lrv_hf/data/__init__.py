"""LRV-Instruction data: release readers, the `datasets` builder, Hub export, views and the synthetic release."""

from .features import FEATURES, INSTRUCTION_FEATURES
from .release import BadRows, Instruction, image_path, load_regions, read_instructions, read_regions
from .synth import write_synthetic_release
from .views import chat_view, instruction_view, to_messages


__all__ = [
    "FEATURES",
    "INSTRUCTION_FEATURES",
    "BadRows",
    "Instruction",
    "chat_view",
    "image_path",
    "instruction_view",
    "load_regions",
    "read_instructions",
    "read_regions",
    "to_messages",
    "write_synthetic_release",
]
