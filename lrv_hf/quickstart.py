"""`lrv-hf quickstart`: the whole LRV loop end to end on the embedded synthetic release, offline, on CPU.

synth -> build -> load (and, as the other capabilities land, train -> infer -> score); a rerun reuses what is built.
"""

import argparse
import json
from pathlib import Path


def add_parser(subparsers):
    parser = subparsers.add_parser("quickstart", help="run the whole loop end to end on a small synthetic release")
    parser.add_argument("--output-dir", default="runs/quickstart")
    parser.add_argument("--num-images", type=int, default=48)
    parser.add_argument("--seed", type=int, default=0)
    parser.set_defaults(run=run)


def build_data(output_dir: Path, num_images: int = 48, seed: int = 0) -> Path:
    """Synthesise the release and build it (instructions/train, evaluation/test); skipped when already built."""
    from .data import write_synthetic_release
    from .data.export import build_dataset

    release, built = output_dir / "release", output_dir / "dataset"
    stamp = built / "build_report.json"
    if stamp.is_file() and {"instructions/train", "evaluation/test"} <= set(json.loads(stamp.read_text())):
        print(f"[data] reusing {built}")
        return built
    counts = write_synthetic_release(release, num_images=num_images, seed=seed)
    print(f"[data] synthetic release: {counts['images']} images, {counts['instructions']} instructions -> {release}")
    common = {"images_dir": release / "images", "regions_file": release / "vg_annotation.json"}
    build_dataset([release / "filter_cap.json"], output_dir=built, **common)
    build_dataset(
        [release / "evaluation_set.json"], output_dir=built, config_name="evaluation", split="test", **common
    )
    return built


def show_data(built: Path):
    import datasets

    from .data import instruction_view

    train = datasets.load_dataset(str(built), "instructions", split="train")
    evaluation = datasets.load_dataset(str(built), "evaluation", split="test")
    rows = instruction_view(train)
    negatives = sum(p == "negative" for p in rows["polarity"])
    print(
        f"[data] load_dataset({str(built)!r}, 'instructions'): {len(train)} images, {len(rows)} instructions "
        f"({negatives} negative); 'evaluation': {sum(len(q) for q in evaluation['question'])} questions "
        f"on {len(evaluation)} held-out images"
    )
    for row in rows.select(range(0, len(rows), max(1, len(rows) // 3))):
        print(f"  [{row['polarity']:8}] {row['image_id']} Q: {row['question']}\n             A: {row['answer']}")


def run(args: argparse.Namespace) -> int:
    output_dir = Path(args.output_dir)
    built = build_data(output_dir, num_images=args.num_images, seed=args.seed)
    show_data(built)
    return 0
