"""Benchmark (GPU): the `llava-1.5-7b/lora-v100` recipe on a random-initialised full-size LLaVA-1.5-7B, capped at 32 GiB.

    python benchmarks/bench_train_gpu.py --batch-size 8 --length 1024 --steps 20

No weights are needed: the model is built from LLaVA-1.5-7B's config (CLIP ViT-L/336 + Vicuna-7B, vocabulary 32064)
in fp16, the recipe's LoRA is attached (fp32 adapter weights), and 20 optimizer steps run under fp16 autocast with a
GradScaler and non-reentrant activation checkpointing, as the Trainer runs them. The process is capped at 32 GiB with
`torch.cuda.set_per_process_memory_fraction` and FlashAttention is switched off in sdpa, so memory behaves like a
32 GB V100's (which has no FlashAttention). Prints peak memory, tokens/s and the largest batch that fits, as Markdown
for BENCHMARKS.md. Tokens/s are those of the GPU it runs on, not of a V100. `--tiny` runs the same code on CPU with
the tiny LLaVA, to check the script without a GPU.
"""

import argparse
import json
import os
import time

import torch
import yaml

from lrv_hf.train.config import AdapterArguments
from lrv_hf.train.model import apply_adapter
from lrv_hf.train.recipes import recipe_path


GIB = 1024**3
IMAGE_TOKENS = 576  # LLaVA-1.5: (336 / 14)^2


def llava_7b(device: str):
    from transformers import LlamaConfig, LlavaConfig, LlavaForConditionalGeneration

    # llava-hf/llava-1.5-7b-hf: LlavaConfig's defaults are its vision tower; the text side is Vicuna-7B
    config = LlavaConfig(
        text_config=LlamaConfig(vocab_size=32064, max_position_embeddings=4096, pad_token_id=32001),
        image_token_index=32000,
        image_seq_length=IMAGE_TOKENS,
    )
    config.text_config._attn_implementation = config.vision_config._attn_implementation = "sdpa"
    with torch.device(device):
        model = LlavaForConditionalGeneration._from_config(config, dtype=torch.float16, attn_implementation="sdpa")
    return model, config.vision_config.image_size, IMAGE_TOKENS, config.text_config.vocab_size


def tiny(device: str):
    from lrv_hf.testing.tiny import IMAGE_SIZE, NUM_IMAGE_TOKENS, build_tiny_llava

    model, processor = build_tiny_llava()
    return model.to(device), IMAGE_SIZE, NUM_IMAGE_TOKENS, len(processor.tokenizer)


def synthetic_batch(model, batch_size: int, length: int, image_size: int, image_tokens: int, vocab: int, device):
    """BOS, the image tokens, then text; the last third of the text is the answer (labelled)."""
    image_token = model.config.image_token_index
    text = length - 1 - image_tokens
    input_ids = torch.randint(5, min(vocab, 32000), (batch_size, length), device=device)
    input_ids[input_ids == image_token] = 5
    input_ids[:, 0] = 1
    input_ids[:, 1 : 1 + image_tokens] = image_token
    labels = torch.full_like(input_ids, -100)
    labels[:, length - text // 3 :] = input_ids[:, length - text // 3 :]
    pixel_values = torch.randn(batch_size, 3, image_size, image_size, device=device, dtype=torch.float16)
    return {"input_ids": input_ids, "attention_mask": torch.ones_like(input_ids), "pixel_values": pixel_values,
            "labels": labels}  # fmt: skip


def train_steps(model, batch, steps: int, device: str) -> dict:
    """`steps` optimizer steps as the Trainer runs them in fp16; seconds per step after one warm-up step."""
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=2e-4)
    scaler = torch.amp.GradScaler(device, enabled=device == "cuda")
    times = []
    for _ in range(steps + 1):
        if device == "cuda":
            torch.cuda.synchronize()
        start = time.perf_counter()
        with torch.autocast(device, dtype=torch.float16, enabled=device == "cuda"):
            loss = model(**batch).loss
        scaler.scale(loss).backward()
        scaler.unscale_(optimizer)
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        scaler.step(optimizer)
        scaler.update()
        optimizer.zero_grad(set_to_none=True)
        if device == "cuda":
            torch.cuda.synchronize()
        times.append(time.perf_counter() - start)
    return {"loss": loss.item(), "s_per_step": sum(times[1:]) / steps}


def fits(model, shape: tuple, steps: int, device: str) -> dict | None:
    """Peak memory and speed of `steps` steps at (batch, length), or None when it runs out of memory."""
    if device == "cuda":
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats()
    try:
        result = train_steps(model, synthetic_batch(model, *shape, device=device), steps, device)
    except torch.OutOfMemoryError:
        model.zero_grad(set_to_none=True)  # gradients of the failed step would hold memory into the next try
        return None
    batch_size, length = shape[:2]
    result.update(batch=batch_size, length=length, tokens_per_s=batch_size * length / result["s_per_step"])
    if device == "cuda":
        result["peak_gib"] = torch.cuda.max_memory_allocated() / GIB
        result["reserved_gib"] = torch.cuda.max_memory_reserved() / GIB
    return result


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--recipe", default="llava-1.5-7b/lora-v100")
    parser.add_argument("--batch-size", type=int, default=8, help="the recipe's per-device batch")
    parser.add_argument("--length", type=int, nargs="+", default=[1024, 2048], help="padded lengths, image included")
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--search", type=int, nargs="+", default=[8, 10, 12, 16, 20, 24], help="batches to try")
    parser.add_argument("--cap-gib", type=float, default=32.0)
    parser.add_argument("--output", default=None, help="also write the results as JSON here")
    parser.add_argument("--tiny", action="store_true", help="CPU smoke run with the tiny LLaVA")
    args = parser.parse_args()

    device = "cpu" if args.tiny else "cuda"
    if device == "cuda":
        total = torch.cuda.get_device_properties(0).total_memory
        torch.cuda.set_per_process_memory_fraction(min(1.0, args.cap_gib * GIB / total))
        torch.backends.cuda.enable_flash_sdp(False)  # V100 has none; sdpa takes the memory-efficient kernel
    recipe = yaml.safe_load(recipe_path(args.recipe).read_text())
    adapter_args = AdapterArguments(**{k: v for k, v in recipe.items() if k in AdapterArguments.__dataclass_fields__})

    start = time.perf_counter()
    model, image_size, image_tokens, vocab = (tiny if args.tiny else llava_7b)(device)
    model = apply_adapter(model, adapter_args)
    model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
    model.config.use_cache = False
    model.train()
    built_s = time.perf_counter() - start
    extra = (image_size, image_tokens, vocab)

    runs = [fits(model, (args.batch_size, length, *extra), args.steps, device) for length in args.length]
    largest = {}
    for length in args.length:
        for batch_size in sorted(args.search):
            if fits(model, (batch_size, length, *extra), 2, device) is None:
                break
            largest[length] = batch_size

    name = torch.cuda.get_device_name(0) if device == "cuda" else "CPU (tiny LLaVA smoke run)"
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    print(
        f"`{args.recipe}` LoRA ({trainable / 1e6:.1f} M trainable) on a random-initialised LLaVA-1.5-7B in fp16, "
        f"{name} capped at {args.cap_gib:g} GiB, FlashAttention off, activation checkpointing on, {args.steps} steps "
        f"after 1 warm-up, model built in {built_s:.0f} s\n"
    )
    print("| batch x length | peak allocated GiB | peak reserved GiB | s/step | tokens/s | largest batch that fits |")
    print("|---|---|---|---|---|---|")
    for length, run in zip(args.length, runs):
        fit = largest.get(length, "< " + str(min(args.search)))
        if run is None:
            print(f"| {args.batch_size} x {length} | out of memory | | | | {fit} |")
            continue
        print(
            f"| {args.batch_size} x {length} | {run.get('peak_gib', float('nan')):.1f} | "
            f"{run.get('reserved_gib', float('nan')):.1f} | {run['s_per_step']:.2f} | {run['tokens_per_s']:.0f} | {fit} |"
        )
    if args.output:
        os.makedirs(os.path.dirname(os.path.abspath(args.output)), exist_ok=True)
        with open(args.output, "w") as f:
            json.dump({"device": name, "runs": runs, "largest_batch": largest, "built_s": built_s}, f, indent=2)


if __name__ == "__main__":
    main()
