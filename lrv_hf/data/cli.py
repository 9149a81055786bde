"""`lrv-hf data synth|build`: write the synthetic release, and build release files into a Hub-layout dataset."""

import argparse


def add_parser(subparsers):
    parser = subparsers.add_parser("data", help="synthesise a release or build one into a Hub-layout dataset")
    commands = parser.add_subparsers(dest="data_command", required=True, metavar="SUBCOMMAND")

    synth = commands.add_parser("synth", help="write a small deterministic synthetic release in the release formats")
    synth.add_argument("--output-dir", required=True)
    synth.add_argument("--num-images", type=int, default=48)
    synth.add_argument("--seed", type=int, default=0)
    synth.set_defaults(run=run_synth)
    add_build_parser(commands)


def run_synth(args: argparse.Namespace) -> int:
    from .synth import write_synthetic_release

    counts = write_synthetic_release(args.output_dir, num_images=args.num_images, seed=args.seed)
    print(
        f"wrote {counts['images']} images, {counts['instructions']} instructions, {counts['more']} more, "
        f"{counts['evaluation']} evaluation questions to {args.output_dir}"
    )
    return 0


def add_build_parser(commands):
    build = commands.add_parser("build", help="build release files + images into a Hub-layout Parquet dataset folder")
    # dests are `build_dataset`'s parameter names, so its errors (`images_dir`) come out as these flags (--images)
    build.add_argument(
        "--instructions", dest="instruction_files", nargs="+", required=True, metavar="F", help="release JSON file(s)"
    )
    build.add_argument("--images", dest="images_dir", required=True, metavar="D", help="folder of <image_id>.jpg")
    build.add_argument("--output-dir", required=True, metavar="OUT")
    build.add_argument(
        "--regions",
        dest="regions_file",
        metavar="F",
        help="vg_annotation.json or Visual Genome region_descriptions.json",
    )
    build.add_argument("--config-name", default="instructions", metavar="NAME")
    build.add_argument(
        "--split", default=None, metavar="NAME", help="default: test for the evaluation config, else train"
    )
    build.add_argument("--on-bad-rows", choices=("error", "skip"), default="error")
    build.add_argument("--max-shard-size", default="500MB")
    build.add_argument("--num-proc", type=int, default=None, help="processes writing Parquet (default: by size)")
    build.add_argument(
        "--max-image-pixels",
        type=int,
        default=None,
        metavar="N",
        help="larger images are bad images, like corrupt ones (default: PIL's decompression-bomb limit)",
    )
    build.add_argument(
        "--push-to-hub", metavar="REPO_ID", help="upload the folder as a dataset repo (token: HF_TOKEN)"
    )
    build.set_defaults(run=run_build)


def run_build(args: argparse.Namespace) -> int:
    from .builder import LRVInstruction
    from .export import build_dataset, push_to_hub

    split = args.split or LRVInstruction.default_split(args.config_name)
    report = build_dataset(
        args.instruction_files,
        args.images_dir,
        args.output_dir,
        regions_file=args.regions_file,
        config_name=args.config_name,
        split=split,
        on_bad_rows=args.on_bad_rows,
        max_shard_size=args.max_shard_size,
        num_proc=args.num_proc,
        max_image_pixels=args.max_image_pixels,
    )
    print(
        f"built {args.config_name}/{split}: {report['images']:,} images, {report['rows']:,} instructions, "
        f"{len(report['shards'])} shard(s), {report['num_bytes'] / 1e6:.1f} MB -> {args.output_dir}"
    )
    if report["duplicates"]:
        print(f"dropped {report['duplicates']:,} duplicate rows (first: {'; '.join(report['duplicate_examples'])})")
    for reason, count in sorted(report["skipped"].items()):
        print(f"skipped {count:,} ({reason}); e.g. {report['skipped_examples'][reason][0]}")
    if report["images_without_regions"] and args.regions_file:
        print(f"note: {report['images_without_regions']:,} images have no regions in {args.regions_file}")
    if args.push_to_hub:
        print(f"pushed: {push_to_hub(args.output_dir, args.push_to_hub)}")
    return 0
