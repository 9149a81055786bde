"""Endpoint inference throughput, cached rerun and request size, against the loopback chat server with 200 ms per call.

    .venv/bin/python benchmarks/bench_endpoint.py                 # ~15 s
    .venv/bin/python benchmarks/bench_endpoint.py --questions 200  # a quick look

1000 POPE-style questions ("Is there a <object> in the image?") on 500 random 64x64 JPEGs, asked through
`run_endpoint_inference` with 32 requests in flight. Goals (issue 13): within 1.3x of the ideal 1000 x 0.2 s / 32,
and a cached rerun under 2 s sending nothing. Figures are printed as the Markdown table of BENCHMARKS.md.
"""

import argparse
import json
import random
import statistics
import tempfile
import time
from pathlib import Path

from lrv_hf.infer import EndpointConfig, run_endpoint_inference
from lrv_hf.testing.chat_server import ChatServerProcess


OBJECTS = ["dog", "cat", "car", "kite", "bench", "person", "umbrella", "clock", "bottle", "chair"]


def workload(root: Path, questions: int, seed: int = 0) -> tuple[Path, Path]:
    """`questions` POPE-style questions, two per random-noise 64x64 JPEG (noise: JPEG cannot squeeze it away)."""
    from PIL import Image

    rng = random.Random(seed)
    images = root / "images"
    images.mkdir(parents=True)
    rows = []
    for i in range((questions + 1) // 2):
        Image.frombytes("RGB", (64, 64), rng.randbytes(64 * 64 * 3)).save(images / f"{i}.jpg", quality=90)
        for obj in rng.sample(OBJECTS, 2):
            rows.append({"image_id": str(i), "question": f"Is there a {obj} in the image?"})
    data = root / "pope_questions.json"
    data.write_text(json.dumps(rows[:questions]))
    return data, images


def yes_reply(body: dict) -> str:
    return "Yes."


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--questions", type=int, default=1000)
    parser.add_argument("--latency", type=float, default=0.2)
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--block-size", type=int, default=EndpointConfig.block_size)
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp, ChatServerProcess(yes_reply, args.latency) as server:
        root = Path(tmp)
        data, images = workload(root, args.questions)
        config = EndpointConfig(
            server.url,
            "bench",
            concurrency=args.concurrency,
            cache_path=str(root / "c.sqlite"),
            block_size=args.block_size,
        )

        # the SDK is imported when the first request is made (a cached rerun never loads it): once per process,
        # timed on its own so the first run measures asking, not importing
        start = time.perf_counter()
        import openai  # noqa: F401

        import_s = time.perf_counter() - start
        start, cpu = time.perf_counter(), time.process_time()
        first = run_endpoint_inference(config, str(data), str(root / "first.jsonl"), images=str(images))
        first_s, cpu_ms = time.perf_counter() - start, (time.process_time() - cpu) * 1000 / args.questions
        sent = server.request_count
        sizes = server.body_sizes()

        start = time.perf_counter()
        rerun = run_endpoint_inference(config, str(data), str(root / "rerun.jsonl"), images=str(images))
        rerun_s = time.perf_counter() - start
        assert rerun.usage.cached == args.questions

        start = time.perf_counter()
        run_endpoint_inference(config, str(data), str(root / "first.jsonl"), images=str(images))
        resume_s = time.perf_counter() - start
        asked_again = server.request_count - sent

    ideal = max(args.questions * args.latency / args.concurrency, 1e-9)
    print("| questions | concurrency | ideal | first run | ratio to ideal | requests | cached rerun (new output) "
          "| requests | rerun of a finished output | process CPU per question |")  # fmt: skip
    print("|---|---|---|---|---|---|---|---|---|---|")
    print(f"| {args.questions} | {args.concurrency} | {ideal:.2f} s | {first_s:.2f} s | {first_s / ideal:.2f}x "
          f"| {sent} | {rerun_s:.2f} s | {asked_again} | {resume_s:.2f} s "
          f"| {cpu_ms:.1f} ms |")  # fmt: skip
    print(f"\nimporting the openai SDK (once per process, before the first run): {import_s:.2f} s")
    print(f"request body per question: mean {statistics.mean(sizes):,.0f} B, min {min(sizes):,} B, "
          f"max {max(sizes):,} B (64x64 JPEG sent as its bytes, base64)")  # fmt: skip
    assert first.written == args.questions and sent == args.questions


if __name__ == "__main__":
    main()
