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
    parser.add_argument("--legacy-prompt", action="store_true", help="the released prompt byte for byte")
    parser.add_argument("--judge-samples", type=int, default=1, help="draws per prompt (median + judge noise)")
    parser.add_argument("--max-reasks", type=int, default=2, help="re-asks of an unreadable reply")
    add_judge_arguments(parser, model_help="judge model (Azure: the deployment name)")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    import logging
    import sys
    from pathlib import Path

    from ..data import load_regions
    from ..judge.cli import judge_from_args
    from .report import format_table, write_outputs
    from .score import estimate, read_predictions, score

    if not args.verbose:  # one line per HTTP call would bury the progress bar
        logging.getLogger("httpx2").setLevel(logging.WARNING)
    predictions = read_predictions(args.predictions)
    regions = load_regions(args.regions, image_ids={p.image_id for p in predictions})
    out = Path(args.output_dir)
    judge = judge_from_args(args, args.cache or out / "judge_cache.sqlite")
    common = {
        "answers_per_prompt": args.answers_per_prompt,
        "legacy_prompt": args.legacy_prompt,
        "judge_samples": args.judge_samples,
        "regions_name": args.regions,
    }
    if args.dry_run:
        guess = estimate(predictions, regions, judge, **common)
        cost = "unknown (no price for this model; pass --prices)"
        if guess.cost_usd is not None:
            cost = f"${guess.cost_usd:.4f} (Batch API ${guess.batch_cost_usd:.4f}; at most ${guess.max_cost_usd:.4f})"
        print(
            f"dry run: {len(predictions)} answers -> {guess.requests} judge requests, {guess.cached} already cached, "
            f"{guess.calls} to pay for\n"
            f"estimated tokens: {guess.prompt_tokens} prompt + {guess.completion_tokens} completion\n"
            f"estimated cost with {args.judge_model}: {cost}\n"
            "nothing was sent; unreadable replies may add re-asks"
        )
        return 0
    guess = estimate(predictions, regions, judge, **common)
    if guess.calls:
        cost = "" if guess.cost_usd is None else f", ~${guess.cost_usd:.2f} estimated"
        print(f"judge: {guess.calls} calls to pay for{cost} ({guess.cached} cached)", file=sys.stderr)
    result = score(
        predictions,
        regions,
        judge,
        max_reasks=args.max_reasks,
        batch=args.batch,
        poll_interval=args.poll_interval,
        progress=not args.no_progress,
        **common,
    )
    summary = result.summary()
    paths = write_outputs(out, result.rows, summary)
    print(format_table(summary))
    print(f"wrote {', '.join(str(p) for p in paths.values())}")
    return 0
