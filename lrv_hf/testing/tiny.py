"""A tiny LLaVA (2-layer Llama + 2-layer CLIP tower) with its own tokenizer and processor, built without a download.

Tests, the quickstart, the `tiny/lora-cpu` recipe and the demo use it: it trains on CPU in seconds, and
`save_tiny_base` writes it in the layout `AutoModelForImageTextToText` / `AutoProcessor.from_pretrained` load offline.
"""

import random
from pathlib import Path

import torch
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
from transformers import (
    CLIPImageProcessorPil,
    CLIPVisionConfig,
    LlamaConfig,
    LlavaConfig,
    LlavaForConditionalGeneration,
    LlavaProcessor,
    PreTrainedTokenizerFast,
)

from ..data import synth


IMAGE_SIZE = 32
PATCH_SIZE = 8  # 32 px / 8 px = 16 image tokens per image (the CLS token is dropped, as LLaVA-1.5 does)
NUM_IMAGE_TOKENS = (IMAGE_SIZE // PATCH_SIZE) ** 2
SPECIAL_TOKENS = ["<unk>", "<s>", "</s>", "<pad>", "<image>"]
VOCAB_SIZE = 512

# LLaVA-1.5's conversation format ("USER: <image>\n... ASSISTANT: ...</s>") with the BOS written by the template, so
# `apply_chat_template(tokenize=True)` and `processor(text=rendered)` give the same ids (the tokenizer adds none).
CHAT_TEMPLATE = (
    "{{ bos_token }}"
    "{%- for message in messages -%}"
    "{%- if message['content'] is string -%}{%- set parts = [{'type': 'text', 'text': message['content']}] -%}"
    "{%- else -%}{%- set parts = message['content'] -%}{%- endif -%}"
    "{%- if message['role'] == 'system' -%}"
    "{%- for part in parts if part['type'] == 'text' -%}{{ part['text'] }}{%- endfor -%}{{ ' ' }}"
    "{%- else -%}"
    "{{ message['role'].upper() }}:"
    "{%- for part in parts -%}"
    "{%- if part['type'] == 'image' -%}{{ ' <image>\n' }}"
    "{%- elif part['type'] == 'text' -%}"
    "{%- if loop.first -%}{{ ' ' }}{%- endif -%}{{ part['text'] }}"
    "{%- endif -%}"
    "{%- endfor -%}"
    "{%- if message['role'] == 'assistant' -%}{{ eos_token }}{%- else -%}{{ ' ' }}{%- endif -%}"
    "{%- endif -%}"
    "{%- endfor -%}"
    "{%- if add_generation_prompt -%}ASSISTANT:{%- endif -%}"
)


def _corpus(num_scenes: int = 300, seed: int = 0) -> list[str]:
    """Text of the synthetic release (questions, answers, captions) plus the template words, for the BPE merges."""
    rng = random.Random(seed)
    lines = ["USER: ASSISTANT: system"]
    for _ in range(num_scenes):
        scene = synth.make_scene(rng)
        if len(scene["objects"]) < 2:
            continue
        for row in synth.positive_instructions(scene, rng) + synth.negative_instructions(scene, rng):
            lines += [row["question"], row["answer"]]
        lines += [region["caption"] for region in synth.regions_of(scene)]
    return lines


def build_tiny_tokenizer() -> PreTrainedTokenizerFast:
    """Byte-level BPE trained on the synthetic release's words: any text encodes, common words are one token."""
    tokenizer = Tokenizer(models.BPE(unk_token=None))
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=VOCAB_SIZE,
        special_tokens=SPECIAL_TOKENS,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tokenizer.train_from_iterator(_corpus(), trainer=trainer)
    return PreTrainedTokenizerFast(
        tokenizer_object=tokenizer,
        unk_token="<unk>",
        bos_token="<s>",
        eos_token="</s>",
        pad_token="<pad>",
        extra_special_tokens={"image_token": "<image>"},
        padding_side="right",
        model_max_length=1024,
    )


def build_tiny_processor() -> LlavaProcessor:
    """The tiny tokenizer and a 32 px CLIP image processor in a `LlavaProcessor` with the chat template."""
    image_processor = CLIPImageProcessorPil(
        size={"shortest_edge": IMAGE_SIZE}, crop_size={"height": IMAGE_SIZE, "width": IMAGE_SIZE}
    )
    return LlavaProcessor(
        image_processor=image_processor,
        tokenizer=build_tiny_tokenizer(),
        patch_size=PATCH_SIZE,
        vision_feature_select_strategy="default",
        num_additional_image_tokens=1,  # CLIP's CLS token
        chat_template=CHAT_TEMPLATE,
    )


def tiny_llava_config(
    tokenizer: PreTrainedTokenizerFast | None = None, vision_hidden_size: int = 32, vision_intermediate_size: int = 64
) -> LlavaConfig:
    """The tiny LLaVA's config; token ids come from `tokenizer` (the tiny tokenizer when None).

    The tiny base that sees (`tiny_base`) widens the tower to 64 / 256; tests of mechanics keep the 32-wide one.
    """
    tokenizer = tokenizer or build_tiny_tokenizer()
    vision_config = CLIPVisionConfig(
        hidden_size=vision_hidden_size,
        intermediate_size=vision_intermediate_size,
        num_hidden_layers=2,
        num_attention_heads=2,
        image_size=IMAGE_SIZE,
        patch_size=PATCH_SIZE,
        projection_dim=vision_hidden_size,
    )
    text_config = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=1024,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
    )
    return LlavaConfig(
        vision_config=vision_config,
        text_config=text_config,
        image_token_index=tokenizer.convert_tokens_to_ids("<image>"),
        image_seq_length=NUM_IMAGE_TOKENS,
        vision_feature_layer=-1,  # with 2 layers, the last one (LLaVA-1.5 takes -2 of 24)
    )


def build_tiny_llava(seed: int = 0) -> tuple[LlavaForConditionalGeneration, LlavaProcessor]:
    """A randomly initialised tiny LLaVA and its processor; the same `seed` gives the same weights.

    Returns:
        `tuple[LlavaForConditionalGeneration, LlavaProcessor]`: the model (fp32, train mode off) and the processor.
    """
    processor = build_tiny_processor()
    config = tiny_llava_config(processor.tokenizer)
    torch.manual_seed(seed)
    model = LlavaForConditionalGeneration(config).eval()
    model.generation_config.bos_token_id = processor.tokenizer.bos_token_id
    model.generation_config.eos_token_id = processor.tokenizer.eos_token_id
    model.generation_config.pad_token_id = processor.tokenizer.pad_token_id
    return model, processor


def save_tiny_base(path: str | Path, seed: int = 0) -> Path:
    """Write the tiny LLaVA (safetensors) and its processor to `path`; `from_pretrained(path)` loads both offline."""
    path = Path(path)
    model, processor = build_tiny_llava(seed)
    model.save_pretrained(path)
    processor.save_pretrained(path)
    return path
