"""`lrv-hf gavie`: score a predictions file with GAVIE against any OpenAI-compatible judge endpoint.

lrv-hf gavie --predictions preds.jsonl --regions vg_annotation.json --judge-model gpt-4o --output-dir runs/gavie
"""

import argparse

from ..judge.cli import add_judge_arguments


def add_parser(subparsers):
    parser = subparsers.add_parser(
        "gavie",
        help="score predictions with GAVIE (accuracy, relevancy) through an OpenAI-compatible judge",
        description="Score a predictions JSONL ({image_id, question, answer, model?}) with GAVIE. Replies are cached "
        "(interrupt and rerun freely); --dry-run prints the calls, tokens and cost first and spends nothing.",
    )
    parser.add_argument("--predictions", required=True, help="JSONL rows {image_id, question, answer, model?}")
    parser.add_argument("--regions", required=True, help="dense captions: LRV vg_annotation.json or VG regions")
    parser.add_argument("--output-dir", required=True, help="summary.json, scores.jsonl, report.md, report.png")
    parser.add_argument("--answers-per-prompt", type=int, default=1, help="K answers to one instruction per prompt")
    parser.add_argument(
        "--legacy-prompt",
        action="store_true",
        help="the release's prompts/GAVIE.txt byte for byte, Height printed from the width as there (not the text of "
        "the release's Evaluation/evaluate.py, which differs in wording and format and writes one prompt per image)",
    )
    parser.add_argument("--judge-samples", type=int, default=1, help="draws per prompt (median + judge noise)")
    parser.add_argument("--max-reasks", type=int, default=2, help="re-asks of an unreadable reply")
    add_judge_arguments(parser, model_help="judge model (Azure: the deployment name)")
    parser.add_argument(
        "--push-to-hub",
        metavar="REPO",
        help="also upload summary, scores and report to this Hub "
        "dataset repo, one folder per run (token from HF_TOKEN)",
    )
    parser.set_defaults(run=run, interrupted=interrupted)


def interrupted(args: argparse.Namespace) -> str:
    return f"the judge replies so far are cached in {args.cache or f'{args.output_dir}/judge_cache.sqlite'}"


def run(args: argparse.Namespace) -> int:
    import logging
    import sys
    from pathlib import Path

    from ..judge.cli import judge_from_args
    from .report import format_table
    from .score import evaluate_predictions

    if not args.verbose:  # one line per HTTP call would bury the progress bar
        logging.getLogger("httpx2").setLevel(logging.WARNING)
    if args.push_to_hub:  # before anything is spent
        from ..results import hub_token

        hub_token(args.push_to_hub)
    judge = judge_from_args(args, args.cache or Path(args.output_dir) / "judge_cache.sqlite")
    result = evaluate_predictions(
        args.predictions,
        args.regions,
        judge,
        args.output_dir,
        answers_per_prompt=args.answers_per_prompt,
        legacy_prompt=args.legacy_prompt,
        judge_samples=args.judge_samples,
        max_reasks=args.max_reasks,
        batch=args.batch,
        poll_interval=args.poll_interval,
        progress=not args.no_progress,
        dry_run=args.dry_run,
    )
    guess = result.estimate
    if result.dry_run:
        cost = "unknown (no price for this model; pass --prices)"
        if guess.cost_usd is not None:
            cost = f"${guess.cost_usd:.4f} (Batch API ${guess.batch_cost_usd:.4f}; at most ${guess.max_cost_usd:.4f})"
        print(
            f"dry run: {result.predictions} answers -> {guess.requests} judge requests, {guess.cached} already cached, "
            f"{guess.calls} to pay for\n"
            f"estimated tokens: {guess.prompt_tokens} prompt + {guess.completion_tokens} completion\n"
            f"estimated cost with {args.judge_model}: {cost}\n"
            "nothing was sent; unreadable replies may add re-asks"
        )
        return 0
    print(format_table(result.summary))
    print(f"wrote {', '.join(str(p) for p in result.paths.values())}")
    if args.push_to_hub:
        from ..results import push_run

        print(f"pushed to {push_run(args.output_dir, args.push_to_hub)}")
    if result.problem:  # a run without a single score is a failed run, whatever the HTTP status said
        print(f"lrv-hf gavie: error: {result.problem}", file=sys.stderr)
        return 1
    return 0
