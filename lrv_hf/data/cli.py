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


def run_synth(args: argparse.Namespace) -> int:
    from .synth import write_synthetic_release

    counts = write_synthetic_release(args.output_dir, num_images=args.num_images, seed=args.seed)
    print(
        f"wrote {counts['images']} images, {counts['instructions']} instructions, {counts['more']} more, "
        f"{counts['evaluation']} evaluation questions to {args.output_dir}"
    )
    return 0
