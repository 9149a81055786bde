"""Benchmark: the share of a CPU training step spent loading and collating data, ours vs a naive collator.

    python benchmarks/bench_train.py --num-images 48 --batch-size 8 --steps 30

Trains the tiny LLaVA with the `tiny/lora-cpu` LoRA on the synthetic release, timing separately the data side (the wait for
the next batch: Arrow rows -> PIL images -> batch with labels) and the model side (forward, backward, optimizer step), for:
- ours: one multi-turn conversation per image, one batched processor call per step, answer spans from the rendered
  template and the tokenizer's offsets (`AnswerOnlyCollator`);
- naive: the same conversations, masked the way many training scripts do it: per sample and per assistant turn, the
  processor is run on the prompt prefix (image included) to learn where the answer starts, so each image is
  re-processed once per turn and once more for the full sample.
Both must produce identical labels on the first batch. Prints a Markdown table for BENCHMARKS.md.
"""

import argparse
import platform
import statistics
import tempfile
import time
from pathlib import Path

import torch
from datasets import load_dataset
from torch.utils.data import DataLoader

from lrv_hf.data.export import build_dataset
from lrv_hf.data.synth import write_synthetic_release
from lrv_hf.data.views import chat_view
from lrv_hf.testing.tiny import build_tiny_llava
from lrv_hf.train.collator import IGNORE_INDEX, AnswerOnlyCollator
from lrv_hf.train.config import AdapterArguments
from lrv_hf.train.model import apply_adapter
from lrv_hf.train.recipes import recipe_path


class NaiveCollator:
    """Per sample: the full text through the processor, then once per assistant turn the prompt prefix, to mask."""

    def __init__(self, processor):
        self.processor = processor

    def __call__(self, features: list[dict]) -> dict:
        processor, rows = self.processor, []
        for f in features:
            messages, images = f["messages"], f["images"]
            text = processor.apply_chat_template(messages, tokenize=False)
            ids = processor(text=text, images=images, return_tensors="pt", add_special_tokens=False)
            labels = ids["input_ids"][0].clone()
            labels[:] = IGNORE_INDEX
            for k, message in enumerate(messages):
                if message["role"] != "assistant":
                    continue
                prompt = processor.apply_chat_template(messages[:k], tokenize=False, add_generation_prompt=True)
                turn = processor.apply_chat_template(messages[: k + 1], tokenize=False)
                start = processor(text=prompt, images=images, add_special_tokens=False)["input_ids"][0]
                end = processor(text=turn, images=images, add_special_tokens=False)["input_ids"][0]
                labels[len(start) : len(end)] = ids["input_ids"][0][len(start) : len(end)]
            rows.append((ids, labels))
        width = max(len(labels) for _, labels in rows)
        pad = processor.tokenizer.pad_token_id
        batch = {
            "input_ids": torch.full((len(rows), width), pad),
            "attention_mask": torch.zeros((len(rows), width), dtype=torch.long),
            "labels": torch.full((len(rows), width), IGNORE_INDEX),
        }
        for i, (ids, labels) in enumerate(rows):
            n = len(labels)
            batch["input_ids"][i, :n], batch["attention_mask"][i, :n], batch["labels"][i, :n] = (
                ids["input_ids"][0], 1, labels,
            )  # fmt: skip
        batch["pixel_values"] = torch.cat([ids["pixel_values"] for ids, _ in rows])
        return batch


def timed_training(model, dataset, collator, batch_size: int, steps: int, workers: int = 0, seed: int = 0) -> dict:
    """Run `steps` optimizer steps; per-step seconds on the data side (fetch + collate) and on the model side."""
    torch.manual_seed(seed)
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-3)
    loader = DataLoader(
        dataset,
        batch_size=batch_size,
        shuffle=True,
        collate_fn=collator,
        drop_last=True,
        num_workers=workers,
        persistent_workers=workers > 0,
    )
    data_s, model_s = [], []
    tokens = done = 0
    model.train()
    while done < steps:
        iterator = iter(loader)
        while done < steps:
            start = time.perf_counter()
            try:
                batch = next(iterator)
            except StopIteration:
                break
            middle = time.perf_counter()
            loss = model(**batch).loss
            loss.backward()
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)
            end = time.perf_counter()
            data_s.append(middle - start)
            model_s.append(end - middle)
            tokens += int(batch["attention_mask"].sum())
            done += 1
    return {"data_s": data_s, "model_s": model_s, "tokens": tokens}


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--num-images", type=int, default=48)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--num-workers", type=int, nargs="+", default=[0], help="DataLoader workers to compare")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's choice)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)

    import yaml

    recipe = yaml.safe_load(recipe_path("tiny/lora-cpu").read_text())
    adapter_args = AdapterArguments(**{k: v for k, v in recipe.items() if k in AdapterArguments.__dataclass_fields__})
    with tempfile.TemporaryDirectory() as tmp:
        write_synthetic_release(Path(tmp, "release"), num_images=args.num_images, seed=0)
        release = Path(tmp, "release")
        build_dataset(
            [release / "filter_cap.json", release / "filter_cap_more.json"], release / "images", Path(tmp, "ds")
        )
        conversations = chat_view(load_dataset(str(Path(tmp, "ds")), "instructions", split="train"), multi_turn=True)

        _, processor = build_tiny_llava()
        ours, naive = AnswerOnlyCollator(processor, max_length=1024), NaiveCollator(processor)
        sample = [conversations[i] for i in range(args.batch_size)]
        assert torch.equal(ours(sample)["labels"], naive(sample)["labels"]), "the two collators disagree on labels"

        results = {}
        for workers in args.num_workers:
            for name, collator in (("naive", naive), ("ours", ours)):
                model = apply_adapter(build_tiny_llava(seed=0)[0], adapter_args)
                timed_training(model, conversations, collator, args.batch_size, 2)  # warm-up
                run = timed_training(model, conversations, collator, args.batch_size, args.steps, workers)
                results[name, workers] = run

    turns = sum(len(m) for m in conversations["messages"]) // 2
    print(
        f"{len(conversations)} multi-turn conversations ({turns} instructions) of the synthetic release, tiny LLaVA "
        f"(2-layer Llama + 2-layer CLIP, 32 px, 16 image tokens) + `tiny/lora-cpu` LoRA, batch {args.batch_size}, "
        f"{args.steps} optimizer steps, torch {torch.__version__}, {platform.processor() or 'cpu'}, "
        f"{torch.get_num_threads()} threads\n"
    )
    print("| collator | DataLoader workers | data s/step (median) | model s/step (median) | data share | tokens/s |")
    print("|---|---|---|---|---|---|")
    for (name, workers), r in results.items():
        # medians: other jobs on a shared machine stall single steps, which would swamp a mean
        data, model = statistics.median(r["data_s"]), statistics.median(r["model_s"])
        print(
            f"| {name} | {workers} | {data:.4f} | {model:.4f} | {100 * data / (data + model):.1f}% | "
            f"{r['tokens'] / (sum(r['data_s']) + sum(r['model_s'])):.0f} |"
        )


if __name__ == "__main__":
    main()
