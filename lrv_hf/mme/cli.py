"""`lrv-hf mme score`: score a model's answers on MME as the authors' calculation.py does.

lrv-hf infer ... --data lmms-lab/MME --output predictions.jsonl
lrv-hf mme score --data lmms-lab/MME --predictions predictions.jsonl --output-dir runs/mme
"""

import argparse


def add_parser(subparsers):
    parser = subparsers.add_parser("mme", help="MME benchmark: score yes/no answers per category")
    commands = parser.add_subparsers(dest="mme_command", required=True, metavar="SUBCOMMAND")
    score = commands.add_parser("score", help="score answers (JSONL from `lrv-hf infer`) on MME")
    score.add_argument("--data", required=True,
                       help="lmms-lab/MME Parquet file or folder, the release folder, or a Hub dataset id")  # fmt: skip
    score.add_argument("--predictions", required=True, help="JSONL rows {question_id?, image_id, question, answer}")
    score.add_argument("--output-dir", required=True, help="gets summary.json, scores.jsonl, report.md")
    score.add_argument(
        "--push-to-hub",
        metavar="REPO",
        help="also upload summary, scores and report to this Hub "
        "dataset repo, one folder per run (token from HF_TOKEN)",
    )
    score.set_defaults(run=run_score)


def run_score(args: argparse.Namespace) -> int:
    from ..errors import InputError
    from .scoring import score_mme

    if args.push_to_hub:  # before anything is spent
        from ..results import hub_token

        hub_token(args.push_to_hub)
    try:
        result = score_mme(args.data, args.predictions, args.output_dir)
    except InputError as err:  # library errors name parameters; users typed flags
        message = str(err)
        for name, flag in (("`data`", "--data"), ("`predictions`", "--predictions")):
            message = message.replace(name, flag)
        raise InputError(message) from None
    print(f"{'model':<24} {'perception':>11} {'cognition':>10} {'other':>6} {'missing':>8}")
    for model, f in result.summary["models"].items():
        perception = "-" if f["perception"] is None else f"{f['perception']:.2f}"
        cognition = "-" if f["cognition"] is None else f"{f['cognition']:.2f}"
        print(f"{model[-24:]:<24} {perception:>11} {cognition:>10} {f['other_answers']:>6} {f['missing_images']:>8}")
    if result.summary["unmatched_predictions"]:
        print(f"{result.summary['unmatched_predictions']} predictions matched no MME question (not scored)")
    print(f"wrote {result.files['report']}")
    if args.push_to_hub:
        from ..results import push_run

        print(f"pushed to {push_run(args.output_dir, args.push_to_hub)}")
    return 0
