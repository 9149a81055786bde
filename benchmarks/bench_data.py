"""Benchmark: building LRV-Instruction at full size into Parquet, ours vs the naive `datasets` way, in one run.

    python benchmarks/bench_data.py --images 35000 --rows 320000 --scales 1.0 0.1

Writes a synthetic release of LRV's size (small images), then in separate processes (so peak RSS is each one's own):
reads every image byte once (the floor), builds with `lrv_hf.data.export.build_dataset`, and builds the naive way a
user would write (json.load, Dataset.from_list, cast_column("image", Image()), a map that attaches regions,
the image bytes embedded as `push_to_hub` does, to_parquet). Prints a Markdown table for BENCHMARKS.md.
"""

import argparse
import io
import json
import os
import random
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from PIL import Image, ImageDraw


def write_release(root: Path, num_images: int, num_rows: int, seed: int = 0, image_kb: int = 0, side: int = 96):
    rng = random.Random(seed)
    images = root / "images"
    images.mkdir(parents=True)
    ids = [str(1_000_000 + i) for i in range(num_images)]
    regions = {}
    for image_id in ids:
        image = Image.new("RGB", (side, side), tuple(rng.randrange(256) for _ in range(3)))
        draw = ImageDraw.Draw(image)
        boxes = []
        for _ in range(6):
            x, y = rng.randrange(side - 16), rng.randrange(side - 16)
            draw.ellipse([x, y, x + 15, y + 15], fill=tuple(rng.randrange(256) for _ in range(3)))
            boxes.append({"caption": f"a round thing number {rng.randrange(1000)}", "bbox": [x, y, 15, 15]})
        buffer = io.BytesIO()
        image.save(buffer, format="JPEG", quality=85)
        # Visual Genome JPEGs are ~100-200 KB: padding after the end-of-image marker (decoders ignore it) gives the
        # byte volume of real images without the minutes of encoding them
        padding = os.urandom(max(0, image_kb * 1024 - buffer.tell()))
        (images / f"{image_id}.jpg").write_bytes(buffer.getvalue() + padding)
        regions[image_id] = boxes * 4  # VG has ~50 regions per image
    tasks = ["Image Captioning", "Object Detection", "Activity Recognition", "negative"]
    rows = [
        {
            "image_id": rng.choice(ids),
            "question": f"Can you describe object {i} and what it is doing in this picture?",
            "answer": f"Object {i} is a round thing near the middle of the picture, resting.",
            "task": rng.choice(tasks),
        }
        for i in range(num_rows)
    ]
    half = num_rows // 2
    (root / "filter_cap.json").write_text(json.dumps({"annotations": rows[:half]}))
    (root / "filter_cap1.json").write_text(json.dumps(rows[half:]))
    (root / "vg_annotation.json").write_text(json.dumps(regions))


def drop_page_cache() -> bool:
    """Empty the OS page cache (root only) so that every mode reads the images from disk, as a first build does."""
    os.sync()
    try:
        Path("/proc/sys/vm/drop_caches").write_text("1\n")
        return True
    except OSError:
        return False


def run_child(mode: str, root: Path, out: Path, cold: bool = False) -> dict:
    """Run one mode in a fresh interpreter; returns its wall time and peak RSS (from wait4, the child's own)."""
    if cold and not drop_page_cache():
        raise SystemExit("--cold needs root (writes /proc/sys/vm/drop_caches)")
    start = time.perf_counter()
    proc = subprocess.Popen([sys.executable, __file__, "--child", mode, str(root), str(out)])
    _, status, usage = os.wait4(proc.pid, 0)
    elapsed = time.perf_counter() - start
    if status != 0:
        raise SystemExit(f"{mode} failed with status {status}")
    size = sum(p.stat().st_size for p in out.rglob("*.parquet")) if out.exists() else 0
    cpu = usage.ru_utime + usage.ru_stime  # steadier than wall time on a shared machine
    return {"seconds": elapsed, "cpu": cpu, "peak_rss_mb": usage.ru_maxrss / 1024, "parquet_mb": size / 1e6}


def child(mode: str, root: Path, out: Path):
    files = [root / "filter_cap.json", root / "filter_cap1.json"]
    if mode == "write":
        num_images, num_rows, image_kb, side = map(int, str(out).split(","))
        write_release(root, num_images, num_rows, image_kb=image_kb, side=side)
    elif mode == "read-bytes":
        total = sum(len(p.read_bytes()) for p in (root / "images").iterdir())
        print(f"read {total} image bytes", file=sys.stderr)
    elif mode == "ours":
        from lrv_hf.data.export import build_dataset

        build_dataset(files, root / "images", out, regions_file=root / "vg_annotation.json")
    elif mode == "naive":
        import datasets

        datasets.disable_progress_bars()
        rows = json.load(open(files[0]))["annotations"] + json.load(open(files[1]))
        regions = json.load(open(root / "vg_annotation.json"))
        for row in rows:
            row["image"] = str(root / "images" / f"{row['image_id']}.jpg")
        ds = datasets.Dataset.from_list(rows)
        ds = ds.cast_column("image", datasets.Image())
        ds = ds.map(lambda r: {"regions": regions[r["image_id"]]})
        # embed the image bytes the way `push_to_hub` does, so the output is as self-contained as ours
        from datasets.table import embed_table_storage

        ds = ds.with_format("arrow").map(embed_table_storage, batched=True).with_format(None)
        out.mkdir(parents=True)
        ds.to_parquet(str(out / "train.parquet"))


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=35_000)
    parser.add_argument("--rows", type=int, default=320_000)
    parser.add_argument("--scales", type=float, nargs="+", default=[1.0, 0.1])
    parser.add_argument("--image-kb", type=int, default=0, help="pad each image to this size (VG: ~150)")
    parser.add_argument(
        "--image-side",
        type=int,
        default=96,
        help="images are N x N pixels (decoding cost grows with pixels; VG: ~500)",
    )
    parser.add_argument("--cold", action="store_true", help="empty the page cache before each mode (root)")
    parser.add_argument("--skip-naive-above", type=float, default=2.0, help="run the naive way only up to this scale")
    parser.add_argument("--child", nargs=3, metavar=("MODE", "ROOT", "OUT"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        mode, root, out = args.child
        return child(mode, Path(root), Path(out))

    lines = [
        "| scale | images | rows | raw MB (images + JSON) | mode | wall s | CPU s | rows/s (wall) | peak RSS MB | Parquet MB "
        "| size / raw |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for scale in args.scales:
        num_images, num_rows = int(args.images * scale), int(args.rows * scale)
        with tempfile.TemporaryDirectory(prefix="bench-data-") as tmp:
            root = Path(tmp) / "release"
            # written by a child: a parent that held the rows would pass its RSS on to every forked child
            subprocess.run(
                [
                    sys.executable,
                    __file__,
                    "--child",
                    "write",
                    str(root),
                    f"{num_images},{num_rows},{args.image_kb},{args.image_side}",
                ],
                check=True,
            )
            raw = sum(p.stat().st_size for p in root.rglob("*") if p.is_file()) / 1e6
            modes = ["read-bytes", "ours"] + (["naive"] if scale <= args.skip_naive_above else [])
            results = {}
            for mode in modes:
                results[mode] = run_child(mode, root, Path(tmp) / f"out-{mode}", cold=args.cold)
                shutil.rmtree(Path(tmp) / f"out-{mode}", ignore_errors=True)
                r = results[mode]
                ratio = f"{r['parquet_mb'] / raw:.2f}x" if r["parquet_mb"] else "-"
                lines.append(
                    f"| {scale} | {num_images:,} | {num_rows:,} | {raw:.0f} | {mode} | {r['seconds']:.1f} | {r['cpu']:.1f} | "
                    f"{num_rows / r['seconds']:,.0f} | {r['peak_rss_mb']:.0f} | {r['parquet_mb']:.0f} | {ratio} |"
                )
                print(lines[-1], flush=True)
            ours = results["ours"]
            if "naive" in results:
                naive = results["naive"]
                lines.append(
                    f"| {scale} | | | | ours vs naive | {naive['seconds'] / ours['seconds']:.1f}x faster | "
                    f"{naive['cpu'] / ours['cpu']:.1f}x less CPU | | {naive['peak_rss_mb'] / ours['peak_rss_mb']:.1f}x "
                    f"less | {naive['parquet_mb'] / ours['parquet_mb']:.1f}x smaller | |"
                )
            floor = results["read-bytes"]
            lines.append(
                f"| {scale} | | | | ours vs reading the image bytes once | {ours['seconds'] / floor['seconds']:.1f}x | "
                f"{ours['cpu'] / floor['cpu']:.1f}x | | | | |"
            )
    print("\n".join(lines))


if __name__ == "__main__":
    main()
