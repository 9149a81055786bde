"""MME scoring wall time at full size: 2374 answers (1187 images in MME's 14 categories), synthetic, one model or two.

    .venv/bin/python benchmarks/bench_mme.py              # about a minute (medians of 3)
    .venv/bin/python benchmarks/bench_mme.py --repeats 5

The benchmark is written as the Hub's `lmms-lab/MME` Parquet (two shards, a small PNG per image) and the answers as
predictions JSONL; `score_mme` reads, joins, scores and writes summary.json, scores.jsonl, report.md and the plot.
"""

import argparse
import io
import json
import random
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path


# MME's images per category (2374 questions, two per image)
IMAGES = {"existence": 30, "count": 30, "position": 30, "color": 30, "posters": 147, "celebrity": 170, "scene": 200,
          "landmark": 200, "artwork": 200, "OCR": 20, "commonsense_reasoning": 70, "numerical_calculation": 20,
          "text_translation": 20, "code_reasoning": 20}  # fmt: skip
ANSWERS = ["Yes", "No", "yes, it is.", "No, there is not.", "I am not sure.", "There is a cat."]


def workload(root: Path, models: int, seed: int = 0) -> tuple[Path, Path]:
    import pyarrow as pa
    import pyarrow.parquet as pq
    from PIL import Image

    rng = random.Random(seed)
    buffer = io.BytesIO()
    Image.new("RGB", (32, 32), "gray").save(buffer, format="PNG")
    rows = []
    for category, count in IMAGES.items():
        for i in range(count):
            qid = f"{category}/{i:012d}.jpg"
            for answer in ("Yes", "No"):
                rows.append({"question_id": qid, "image": {"bytes": buffer.getvalue(), "path": qid.split("/")[1]},
                             "question": f"Is this {category} item {i} a {answer.lower()}? Please answer yes or no.",
                             "answer": answer, "category": category})  # fmt: skip
    data = root / "MME" / "data"
    data.mkdir(parents=True)
    half = len(rows) // 2
    pq.write_table(pa.Table.from_pylist(rows[:half]), data / "test-00000-of-00002.parquet")
    pq.write_table(pa.Table.from_pylist(rows[half:]), data / "test-00001-of-00002.parquet")
    predictions = root / "predictions.jsonl"
    with open(predictions, "w") as handle:
        for m in range(models):
            for row in rows:
                handle.write(json.dumps({"question_id": row["question_id"], "image_id": row["question_id"],
                                         "question": row["question"], "answer": rng.choice(ANSWERS),
                                         "model": f"model-{m}"}) + "\n")  # fmt: skip
    return data.parent, predictions


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    from lrv_hf.mme import score_mme

    print(
        "| answers | models | read + join + score | + summary, scores, report, plot | fresh process, imports included |"
    )
    print("|---|---|---|---|---|")
    for models in (1, 2):
        with tempfile.TemporaryDirectory() as tmp:
            data, predictions = workload(Path(tmp), models)
            bare, library, cli = [], [], []
            for r in range(args.repeats):
                start = time.perf_counter()
                score_mme(data, predictions)
                bare.append(time.perf_counter() - start)
                start = time.perf_counter()
                result = score_mme(data, predictions, Path(tmp) / f"out{r}")
                library.append(time.perf_counter() - start)
                start = time.perf_counter()
                # a fresh process: what a user waits for, imports (pyarrow, matplotlib) included
                out = str(Path(tmp) / f"p{r}")
                call = f"from lrv_hf.mme import score_mme; score_mme({str(data)!r}, {str(predictions)!r}, {out!r})"
                subprocess.run([sys.executable, "-c", call], check=True, capture_output=True)
                cli.append(time.perf_counter() - start)
            assert sum(len(m["categories"]) for m in result.summary["models"].values()) == 14 * models
            medians = [f"{statistics.median(times):.2f} s" for times in (bare, library, cli)]
            print(f"| {2374 * models} | {models} | " + " | ".join(medians) + " |")


if __name__ == "__main__":
    main()
