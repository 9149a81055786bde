"""POPE scoring wall time at full size: 9000 answers (500 COCO images x 6 probes x 3 splits), synthetic.

    .venv/bin/python benchmarks/bench_pope.py              # about a minute (medians of 3)
    .venv/bin/python benchmarks/bench_pope.py --repeats 5

The probes are written both as POPE's own `coco_pope_{random,popular,adversarial}.json` and as the Hub's
`lmms-lab/POPE` Parquet (each of the 9000 rows embeds its image, as there); the answers as predictions JSONL with the
question ids `lrv-hf infer` writes. `score_files` reads, joins, scores and writes summary.json and scores.jsonl.
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


SPLITS = ("random", "popular", "adversarial")
OBJECTS = [f"object {k}" for k in range(80)]  # COCO's 80 categories
ANSWERS = ["Yes", "No", "Yes, there is a {}.", "No, there is no {} in the image.", "There is a {}.", "I am not sure."]


def workload(root: Path, models: int, seed: int = 0) -> tuple[list[Path], Path, Path]:
    import pyarrow as pa
    import pyarrow.parquet as pq
    from PIL import Image

    rng = random.Random(seed)
    buffer = io.BytesIO()
    Image.new("RGB", (64, 64), "gray").save(buffer, format="JPEG")
    files, records, answers = [], [], []
    for split in SPLITS:
        rows = []
        for image in range(500):
            name = f"COCO_val2014_{image:012d}"
            present = rng.sample(OBJECTS, 6)
            for k, obj in enumerate(present):
                rows.append({"question_id": len(rows), "image": f"{name}.jpg", "text": f"Is there a {obj} in the "
                             "image?", "label": "yes" if k < 3 else "no"})  # fmt: skip
        path = root / f"coco_pope_{split}.json"
        path.write_text("".join(json.dumps(r) + "\n" for r in rows))
        files.append(path)
        for r in rows:
            records.append({"id": str(len(records)), "question_id": str(r["question_id"] + 1), "question": r["text"],
                            "answer": r["label"], "image_source": r["image"][:-4],
                            "image": {"bytes": buffer.getvalue(), "path": None}, "category": split})  # fmt: skip
            for m in range(models):
                answers.append({"question_id": f"{path.stem}/{r['question_id']}", "image_id": r["image"][:-4],
                                "question": r["text"], "model": f"model-{m}",
                                "answer": rng.choice(ANSWERS).format("thing")})  # fmt: skip
    hub = root / "POPE" / "data"
    hub.mkdir(parents=True)
    pq.write_table(pa.Table.from_pylist(records), hub / "test-00000-of-00001.parquet")
    predictions = root / "predictions.jsonl"
    predictions.write_text("".join(json.dumps(a) + "\n" for a in answers))
    return files, hub, predictions


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    from lrv_hf.pope import score_files

    print("| answers | models | probes from | read + join + score + write | fresh process, imports included |")
    print("|---|---|---|---|---|")
    for models in (1, 2):
        with tempfile.TemporaryDirectory() as tmp:
            files, hub, predictions = workload(Path(tmp), models)
            for label, probes in (("POPE's 3 files", [str(f) for f in files]), ("lmms-lab/POPE Parquet", str(hub))):
                library, fresh = [], []
                for r in range(args.repeats):
                    start = time.perf_counter()
                    result = score_files(probes, [predictions], Path(tmp) / f"out{r}")
                    library.append(time.perf_counter() - start)
                    call = (
                        f"from lrv_hf.pope import score_files; "
                        f"score_files({probes!r}, [{str(predictions)!r}], {str(Path(tmp) / f'p{r}')!r})"
                    )
                    start = time.perf_counter()
                    subprocess.run([sys.executable, "-c", call], check=True, capture_output=True)
                    fresh.append(time.perf_counter() - start)
                assert sum(m["n"] for s in result.summary["models"].values() for m in s.values()) == 9000 * models
                medians = [f"{statistics.median(times):.2f} s" for times in (library, fresh)]
                print(f"| {9000 * models} | {models} | {label} | " + " | ".join(medians) + " |")


if __name__ == "__main__":
    main()
