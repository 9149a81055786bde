"""GAVIE judge throughput, cache and packing, against the loopback chat server with 200 ms per call.

    .venv/bin/python benchmarks/bench_gavie.py            # ~4 minutes (the sequential baseline is 1000 x 0.2 s)
    .venv/bin/python benchmarks/bench_gavie.py --items 200  # a quick look

1000 items is the size of the released evaluation set (1000 questions on 120 images); each image gets 50 dense
captions, the density of the released GAVIE example. Figures are printed as the Markdown table of BENCHMARKS.md.
"""

import argparse
import json
import os
import random
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from lrv_hf.data import load_regions, read_instructions, write_synthetic_release
from lrv_hf.gavie import score
from lrv_hf.gavie.score import Prediction
from lrv_hf.judge import Judge
from lrv_hf.testing.chat_server import ChatServerProcess
from lrv_hf.testing.judge_replies import gavie_reply


def workload(root: Path, items: int, models: int, num_images: int = 120, regions_per_image: int = 50, seed: int = 0):
    """`items` answers: `items / models` questions on `num_images` synthetic images, each answered by `models`."""
    rng = random.Random(seed)
    write_synthetic_release(root, num_images=num_images, seed=seed)
    regions = load_regions(root / "vg_annotation.json")
    pool = [region for boxes in regions.values() for region in boxes]
    for boxes in regions.values():  # pad to VG's density with jittered boxes of other images' captions
        while len(boxes) < regions_per_image:
            region = rng.choice(pool)
            boxes.append({"caption": region["caption"], "bbox": [v + rng.randint(-3, 3) for v in region["bbox"]]})
    texts = [row.answer for row in read_instructions(root / "filter_cap.json") if row.answer]
    image_ids = sorted(regions)
    predictions = []
    for question in range(items // models):
        image_id = image_ids[question % len(image_ids)]
        for model in range(models):
            answer = " ".join(rng.sample(texts, 3))  # ~40 words, the length of a typical LVLM answer
            predictions.append(Prediction(len(predictions), image_id, f"Question {question}: what is shown?",
                                          answer, f"model{model}"))  # fmt: skip
    return predictions, regions


def timed(server: ChatServerProcess, **kwargs):
    before = server.request_count
    start = time.perf_counter()
    run = score(progress=False, **kwargs)
    seconds = time.perf_counter() - start
    return run, seconds, server.request_count - before


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--items", type=int, default=1000)
    parser.add_argument("--latency", type=float, default=0.2)
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--output", default="runs/bench_gavie.json")
    args = parser.parse_args(argv)

    figures = {"items": args.items, "latency_s": args.latency, "concurrency": args.concurrency}
    with tempfile.TemporaryDirectory() as tmp, ChatServerProcess(reply=gavie_reply, latency=args.latency) as server:
        tmp = Path(tmp)
        predictions, regions = workload(tmp / "release", args.items, models=1)

        def judge(name: str, concurrency: int) -> Judge:
            return Judge("gpt-4o", base_url=server.url, api_key_env=None, cache_path=tmp / f"{name}.sqlite",
                         concurrency=concurrency)  # fmt: skip

        run, seconds, calls = timed(server, predictions=predictions, regions=regions, judge=judge("seq", 1))
        figures["sequential_s"] = seconds
        assert calls == args.items and run.summary()["n_scored"] == args.items

        ours = judge("ours", args.concurrency)
        cpu = time.process_time()
        run, seconds, calls = timed(server, predictions=predictions, regions=regions, judge=ours)
        # CPU of this process (the client; the server runs in its own process, as a real endpoint does)
        cpu_ms = 1000 * (time.process_time() - cpu) / calls
        ideal = args.items * args.latency / args.concurrency
        figures.update(concurrent_s=seconds, ideal_s=ideal, vs_ideal=seconds / ideal, calls=calls, cpu_ms_per_call=cpu_ms,
                       coverage=run.summary()["coverage"], load_average=os.getloadavg()[0])  # fmt: skip

        run, seconds, calls = timed(server, predictions=predictions, regions=regions, judge=judge("ours", 32))
        figures.update(cached_rerun_s=seconds, cached_rerun_requests=calls)

        # the same rerun as a user types it: a new process, reading the files, writing every output
        (tmp / "preds.jsonl").write_text("".join(json.dumps({"image_id": p.image_id, "question": p.question,
                                                            "answer": p.answer}) + "\n" for p in predictions))  # fmt: skip
        (tmp / "regions.json").write_text(json.dumps(regions))
        before = server.request_count
        start = time.perf_counter()
        subprocess.run([str(Path(sys.executable).parent / "lrv-hf"), "gavie", "--predictions", str(tmp / "preds.jsonl"),
                        "--regions", str(tmp / "regions.json"), "--judge-model", "gpt-4o", "--base-url", server.url,
                        "--cache", str(tmp / "ours.sqlite"), "--output-dir", str(tmp / "out"), "--no-progress"],
                       check=True, capture_output=True)  # fmt: skip
        figures.update(
            cli_cached_rerun_s=time.perf_counter() - start, cli_cached_rerun_requests=server.request_count - before
        )

        # packing: the same number of answers, from 5 models on items/5 questions, judged 1 or 5 per prompt
        predictions, regions = workload(tmp / "release5", args.items, models=5)
        for k in (1, 5):
            run, seconds, calls = timed(server, predictions=predictions, regions=regions,
                                        judge=judge(f"k{k}", args.concurrency), answers_per_prompt=k)  # fmt: skip
            prompt_tokens = sum(r["prompt_tokens"] for r in _usage(run))
            scored = run.summary()["n_scored"]
            figures[f"k{k}"] = {"calls": calls, "scored": scored, "prompt_tokens": prompt_tokens,
                                "prompt_tokens_per_answer": prompt_tokens / scored,
                                "completion_tokens_per_answer": sum(r["completion_tokens"] for r in _usage(run))
                                / scored, "seconds": seconds}  # fmt: skip
        figures["k5_over_k1"] = figures["k5"]["prompt_tokens_per_answer"] / figures["k1"]["prompt_tokens_per_answer"]

    Path(args.output).parent.mkdir(parents=True, exist_ok=True)
    Path(args.output).write_text(json.dumps(figures, indent=2) + "\n")
    print(table(figures))
    return figures


def _usage(run) -> list[dict]:
    """Token usage of the calls a run paid for (what the provider bills)."""
    return [{"prompt_tokens": r.prompt_tokens, "completion_tokens": r.completion_tokens} for r in run.results
            if not r.cached and r.text is not None]  # fmt: skip


def table(f: dict) -> str:
    n, c = f["items"], f["concurrency"]
    rows = [
        "| measurement | result | goal |",
        "|---|---|---|",
        f"| sequential, 1 call at a time ({n} calls) | {f['sequential_s']:.1f} s | (baseline) |",
        f"| ours, concurrency {c} ({f['calls']} calls) | {f['concurrent_s']:.2f} s = {f['vs_ideal']:.2f}x the ideal "
        f"{f['ideal_s']:.2f} s; {f['sequential_s'] / f['concurrent_s']:.0f}x faster than sequential; "
        f"{f['cpu_ms_per_call']:.1f} ms CPU per call (load average {f['load_average']:.1f}) | <= 1.25x ideal |",
        f"| cached rerun, in process (`score`) | {f['cached_rerun_s']:.2f} s, {f['cached_rerun_requests']} requests "
        "| < 2 s, 0 requests |",
        f"| cached rerun, `lrv-hf gavie` in a new process (imports, outputs, plot) | {f['cli_cached_rerun_s']:.2f} s, "
        f"{f['cli_cached_rerun_requests']} requests | < 2 s, 0 requests |",
        f"| prompt tokens per scored answer, K=1 | {f['k1']['prompt_tokens_per_answer']:.0f} "
        f"({f['k1']['calls']} calls) | |",
        f"| prompt tokens per scored answer, K=5 | {f['k5']['prompt_tokens_per_answer']:.0f} "
        f"({f['k5']['calls']} calls) = {f['k5_over_k1']:.2f}x K=1 | <= 0.33x K=1 |",
        f"| completion tokens per scored answer, K=1 / K=5 | {f['k1']['completion_tokens_per_answer']:.0f} / "
        f"{f['k5']['completion_tokens_per_answer']:.0f} | |",
    ]
    return "\n".join(rows)


if __name__ == "__main__":
    main()
