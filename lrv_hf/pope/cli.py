"""`lrv-hf pope build|score`: write POPE probe sets from object annotations, and score a model's answers to them.

lrv-hf pope build --objects objects.json --output probes.jsonl
lrv-hf infer ... --data probes.jsonl --output predictions.jsonl
lrv-hf pope score --probes probes.jsonl --predictions predictions.jsonl --output-dir runs/pope

POPE's own files and the Hub's copy score the same way:
lrv-hf infer ... --data coco_pope_random.json --images val2014 --output predictions.jsonl
lrv-hf pope score --probes coco_pope_random.json coco_pope_popular.json coco_pope_adversarial.json ...
lrv-hf pope score --probes lmms-lab/POPE --predictions predictions.jsonl --output-dir runs/pope
"""

import argparse


def add_parser(subparsers):
    parser = subparsers.add_parser("pope", help="POPE object-hallucination probes: build a probe set, score answers")
    commands = parser.add_subparsers(dest="pope_command", required=True, metavar="SUBCOMMAND")

    build = commands.add_parser("build", help="write balanced yes/no probes from a Visual Genome-style objects.json")
    build.add_argument("--objects", required=True, help="objects.json (Visual Genome shape, or the synthetic set's)")
    build.add_argument("--output", required=True, help="probe JSONL to write")
    build.add_argument(
        "--strategies",
        default="random,popular,adversarial",
        help="comma-separated subset of random,popular,adversarial",
    )
    build.add_argument("--num-per-image", type=int, default=3, help="positives per image, with as many negatives")
    build.add_argument(
        "--num-images",
        type=int,
        default=None,
        # adversarial scoring costs ~35 ms an image on Visual Genome (108k images): all of them take about an hour
        help="probe a seeded sample of this many images, as POPE did with 500 (default: all)",
    )
    build.add_argument("--seed", type=int, default=0)
    build.set_defaults(run=run_build)

    score = commands.add_parser("score", help="score answers (JSONL from `lrv-hf infer`) against a probe file")
    score.add_argument(
        "--probes",
        required=True,
        nargs="+",
        help="probe JSONL of `lrv-hf pope build`, POPE's coco_pope_{random,popular,adversarial}.json, or "
        "lmms-lab/POPE (a Parquet file, a folder of them, or the Hub id)",
    )
    score.add_argument(
        "--predictions", required=True, nargs="+", help="JSONL rows {question_id?, image_id, question, answer}"
    )
    score.add_argument("--output-dir", required=True, help="gets summary.json and scores.jsonl")
    score.add_argument(
        "--unknown-as",
        default="yes",
        choices=("yes", "wrong", "exclude"),
        help="answers with neither yes nor a negation: 'yes' as POPE reads them (default), 'wrong', or 'exclude'",
    )
    score.add_argument(
        "--push-to-hub",
        metavar="REPO",
        help="also upload summary, scores and report to this Hub "
        "dataset repo, one folder per run (token from HF_TOKEN)",
    )
    score.set_defaults(run=run_score)


def run_build(args: argparse.Namespace) -> int:
    from dataclasses import fields

    from ..errors import InputError
    from .probes import ProbeConfig, build_probe_file

    try:
        config = ProbeConfig(
            strategies=tuple(s.strip() for s in args.strategies.split(",") if s.strip()),
            num_per_image=args.num_per_image,
            seed=args.seed,
            num_images=args.num_images,
        )
    except ValueError as err:
        raise InputError(str(err), tuple(f.name for f in fields(ProbeConfig))) from None
    made = build_probe_file(args.objects, args.output, config)
    print(
        f"wrote {made.probes} probes ({', '.join(made.strategies)}) on {made.images} of {made.total_images} images "
        f"to {made.path}"
    )
    return 0


def run_score(args: argparse.Namespace) -> int:
    from .scoring import score_files

    if args.push_to_hub:  # before anything is spent
        from ..results import hub_token

        hub_token(args.push_to_hub)
    result = score_files(args.probes, args.predictions, args.output_dir, unknown_as=args.unknown_as)
    print(f"{'model':<24} {'split':<12} {'acc':>6} {'prec':>6} {'rec':>6} {'f1':>6} {'yes':>6} {'n':>6} {'unk':>5}")
    for model, strategies in result.summary["models"].items():
        for strategy, m in strategies.items():
            print(
                f"{model[-24:]:<24} {strategy:<12} {m['accuracy']:6.3f} {m['precision']:6.3f} {m['recall']:6.3f} "
                f"{m['f1']:6.3f} {m['yes_ratio']:6.3f} {m['n']:6d} {m['unknown']:5d}"
            )
    print(f"wrote {result.path}")
    if args.push_to_hub:
        from ..results import push_run

        print(f"pushed to {push_run(args.output_dir, args.push_to_hub)}")
    return 0
