"""LRV-Instruction generation from dense captions with the released prompt protocol, through `lrv_hf.judge`.

Positive instructions over ten tasks and misleading (negative) ones about nonexistent elements, existing elements
with wrong attributes and, as an option, wrong knowledge; replies become release-format rows that `lrv-hf data build`
reads unchanged.
"""

from .generation import (
    GenerateResult,
    Generation,
    GenerationConfig,
    ImageSelection,
    build_requests,
    collect,
    estimate,
    generate,
    generate_files,
    select_images,
    write_generation,
)
from .parse import Item, canonical_task, parse_reply, validate
from .prompt import DEFAULT_KINDS, KINDS, TASKS, box_line, build_messages, build_prompt


__all__ = [
    "DEFAULT_KINDS",
    "KINDS",
    "TASKS",
    "GenerateResult",
    "Generation",
    "GenerationConfig",
    "ImageSelection",
    "Item",
    "box_line",
    "build_messages",
    "build_prompt",
    "build_requests",
    "canonical_task",
    "collect",
    "estimate",
    "generate",
    "generate_files",
    "parse_reply",
    "select_images",
    "validate",
    "write_generation",
]
