"""Benchmark: batched, left-padded generation (`lrv_hf.infer`) vs one question at a time, on the tiny LLaVA.

    python benchmarks/bench_infer.py --num-questions 64 --batch-sizes 4 8 16 --max-new-tokens 32 --repeats 3

Answers questions of the synthetic release (`filter_cap.json`) greedily, one by one and then in batches of each size, checks
that every batched answer equals the one-by-one answer, and prints a Markdown table for BENCHMARKS.md.
"""

import argparse
import platform
import tempfile
import time
from pathlib import Path

import torch

from lrv_hf.data import write_synthetic_release
from lrv_hf.infer import GenerationSettings, generate_answers, load_model, read_items
from lrv_hf.testing.tiny import save_tiny_base


def answer_all(model, processor, items, load_image, batch_size: int, max_new_tokens: int) -> tuple[list[str], float]:
    settings = GenerationSettings(max_new_tokens=max_new_tokens, batch_size=batch_size)
    answers, start = [], time.perf_counter()
    for k in range(0, len(items), batch_size):
        batch = items[k : k + batch_size]
        images = [load_image(item.image_key) for item in batch]
        answers += generate_answers(model, processor, images, [item.question for item in batch], settings)
    return answers, time.perf_counter() - start


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--num-questions", type=int, default=64)
    parser.add_argument("--batch-sizes", type=int, nargs="+", default=[4, 8, 16])
    parser.add_argument("--max-new-tokens", type=int, default=32)
    parser.add_argument("--repeats", type=int, default=3, help="best of this many runs per batch size")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's choice)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)

    with tempfile.TemporaryDirectory() as tmp:
        release, base = Path(tmp, "release"), Path(tmp, "base")
        write_synthetic_release(release, num_images=max(8, args.num_questions), seed=0)
        save_tiny_base(base)
        items, load_image = read_items(str(release / "filter_cap.json"), str(release / "images"))
        items = items[: args.num_questions]
        for item in items:
            load_image(item.image_key)  # decode outside the timings
        model, processor = load_model(str(base))
        answer_all(model, processor, items[:4], load_image, 4, 4)  # warm-up

        rows, reference = [], None
        for batch_size in [1, *args.batch_sizes]:
            runs = [
                answer_all(model, processor, items, load_image, batch_size, args.max_new_tokens)
                for _ in range(args.repeats)
            ]
            answers = runs[0][0]
            reference = answers if reference is None else reference
            seconds = min(seconds for _, seconds in runs)
            rows.append((batch_size, seconds, all(a == reference for a, _ in runs)))

    print(
        f"{len(items)} questions, greedy, max_new_tokens={args.max_new_tokens}, tiny LLaVA (2-layer Llama + 2-layer "
        f"CLIP), CPU, {torch.get_num_threads()} threads, torch {torch.__version__}, {platform.processor() or 'cpu'}\n"
    )
    print("| batch size | seconds | questions/s | speed-up vs one by one | answers identical to one by one |")
    print("|---|---|---|---|---|")
    one_by_one = rows[0][1]
    for batch_size, seconds, same in rows:
        print(
            f"| {batch_size} | {seconds:.2f} | {len(items) / seconds:.1f} | {one_by_one / seconds:.2f}x | "
            f"{'yes' if same else 'NO'} |"
        )


if __name__ == "__main__":
    main()
