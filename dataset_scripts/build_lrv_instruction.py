"""Build every config of a downloaded LRV-Instruction release into one Hub-layout folder, and optionally push it.

    python dataset_scripts/build_lrv_instruction.py --release-dir LRV/ --images LRV/images --regions LRV/vg_annotation.json \
        --output-dir lrv-instruction/ [--push-to-hub ORG/lrv-instruction]

A config is built when its files are present in the release folder (names as released, see
`lrv_hf.data.builder.LRVInstruction.BUILDER_CONFIGS`); chart images may live in their own folder (`--chart-images`).
"""

import argparse
import dataclasses
import sys
from pathlib import Path

from lrv_hf.data.builder import LRVInstruction
from lrv_hf.data.export import build_dataset, push_to_hub
from lrv_hf.errors import InputError


def main(args: argparse.Namespace) -> int:
    release = Path(args.release_dir)
    for config in LRVInstruction.BUILDER_CONFIGS:
        try:
            files = dataclasses.replace(config, release_dir=str(release)).resolve_files()
        except InputError:
            print(f"{config.name}: no {' / '.join(config.patterns)} in {release}, skipped")
            continue
        images = args.chart_images if config.name == "chart" and args.chart_images else args.images
        report = build_dataset(
            files,
            images,
            args.output_dir,
            regions_file=args.regions,
            config_name=config.name,
            split=config.split,
            on_bad_rows=args.on_bad_rows,
        )
        print(f"{config.name}/{config.split}: {report['images']:,} images, {report['rows']:,} instructions")
    if args.push_to_hub:
        print(push_to_hub(args.output_dir, args.push_to_hub))
    return 0


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--release-dir", required=True)
    parser.add_argument("--images", required=True)
    parser.add_argument("--chart-images")
    parser.add_argument("--regions")
    parser.add_argument("--output-dir", required=True)
    parser.add_argument("--on-bad-rows", choices=("error", "skip"), default="error")
    parser.add_argument("--push-to-hub", metavar="REPO_ID")
    return parser.parse_args(argv)


if __name__ == "__main__":
    try:
        sys.exit(main(parse_args()))
    except InputError as err:
        sys.exit(f"error: {err}")
