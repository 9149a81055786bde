"""Answering questions about images: the generation settings, the batched `generate` call, and the answerers.

An answerer turns `(label, images, questions)` into answers for the model named `label`. `TransformersAnswerer` runs
an in-process model (base and adapter from one loaded base); another answerer, e.g. one that asks an
OpenAI-compatible endpoint, only has to offer the same `answer` method to be written by `run_inference`.
"""

import contextlib
from dataclasses import dataclass, field
from typing import Protocol

from ..errors import InputError


@dataclass
class GenerationSettings:
    """How answers are generated; recorded in `<output>.meta.json` and checked again on resume."""

    max_new_tokens: int = field(default=128, metadata={"help": "most tokens generated per answer"})
    batch_size: int = field(default=8, metadata={"help": "questions per `generate` call (left-padded)"})
    do_sample: bool = field(default=False, metadata={"help": "greedy by default, so reruns give the same answers"})
    num_beams: int = field(default=1, metadata={"help": "beam search width"})

    def __post_init__(self):
        for name in ("max_new_tokens", "batch_size", "num_beams"):
            if getattr(self, name) < 1:
                raise InputError(f"`{name}` must be at least 1, got {getattr(self, name)}", name)

    def generate_kwargs(self) -> dict:
        return {"max_new_tokens": self.max_new_tokens, "do_sample": self.do_sample, "num_beams": self.num_beams}


def render_prompts(processor, questions: list[str]) -> list[str]:
    """Each question as a one-turn conversation with the image, through the processor's chat template."""
    from ..data.views import to_messages

    return [processor.apply_chat_template(to_messages([q]), add_generation_prompt=True) for q in questions]


def generate_answers(
    model, processor, images: list, questions: list[str], settings: GenerationSettings, **generate_kwargs
) -> list[str]:
    """Answers to `questions` about `images` in one left-padded `generate` call (extra kwargs go to `generate`)."""
    import torch

    inputs = processor(
        images=[image.convert("RGB") for image in images],
        text=render_prompts(processor, questions),
        padding=True,
        return_tensors="pt",
    ).to(model.device)
    if "pixel_values" in inputs:
        inputs["pixel_values"] = inputs["pixel_values"].to(model.dtype)
    with torch.inference_mode():
        output = model.generate(
            **inputs, **settings.generate_kwargs(), pad_token_id=processor.tokenizer.pad_token_id, **generate_kwargs
        )
    new_tokens = output[:, inputs["input_ids"].shape[1] :]
    return [text.strip() for text in processor.batch_decode(new_tokens, skip_special_tokens=True)]


class Answerer(Protocol):
    """What `run_inference` asks for answers: one batch of questions, for the model named `label`."""

    def answer(self, label: str, images: list, questions: list[str]) -> list[str]: ...


@dataclass
class TransformersAnswerer:
    """An in-process model; with an adapter, any label but `adapter` is answered by the base (LoRA switched off)."""

    model: object
    processor: object
    settings: GenerationSettings
    adapter: str | None = None

    def answer(self, label: str, images: list, questions: list[str]) -> list[str]:
        use_base = self.adapter is not None and label != self.adapter
        # the base's answers from the same weights: LoRA switched off, nothing reloaded
        context = self.model.disable_adapter() if use_base else contextlib.nullcontext()
        with context:
            return generate_answers(self.model, self.processor, images, questions, self.settings)
