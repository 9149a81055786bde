"""`lrv-hf gqa-judge`: judge K models' GQA answers against the correct answers with the release's GQA prompt.

lrv-hf gqa-judge --references testdev_balanced_questions.json --predictions base.jsonl lrv.jsonl --judge-model gpt-4o
    --output-dir runs/gqa
"""

import argparse

from ..judge.cli import add_judge_arguments


def add_parser(subparsers):
    parser = subparsers.add_parser(
        "gqa-judge",
        help="judge GQA answers of one or more models against the correct answers (LRV's GQA prompt)",
        description="Judge the answers in each predictions JSONL ({question_id?, image_id?, question, answer, model?};"
        " the model defaults to the file name) against GQA's correct answers, all models' answers to one question "
        "in one prompt. Replies are cached (interrupt and rerun freely); --dry-run prints the calls, tokens and cost "
        "first and spends nothing.",
    )
    parser.add_argument(
        "--references",
        required=True,
        help="GQA questions with answers: GQA's questions JSON ({qid: {question, answer, ...}}) or JSONL rows "
        "{question_id, question, answer}",
    )
    parser.add_argument("--predictions", required=True, nargs="+", help="one predictions JSONL per model")
    parser.add_argument("--output-dir", required=True, help="summary.json, scores.jsonl, report.md")
    parser.add_argument(
        "--answers-per-prompt", type=int, default=None, help="K answers to one question per prompt (default: all)"
    )
    parser.add_argument("--max-reasks", type=int, default=2, help="re-asks of a reply whose verdicts are unreadable")
    add_judge_arguments(parser, model_help="judge model (Azure: the deployment name)", max_tokens=256)
    parser.add_argument(
        "--push-to-hub",
        metavar="REPO",
        help="also upload summary, scores and report to this Hub "
        "dataset repo, one folder per run (token from HF_TOKEN)",
    )
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    import logging
    import sys
    from pathlib import Path

    from ..judge.cli import judge_from_args
    from .report import format_table, write_outputs
    from .score import estimate_gqa, read_predictions, read_references, score_gqa

    if not args.verbose:  # one line per HTTP call would bury the progress bar
        logging.getLogger("httpx2").setLevel(logging.WARNING)
    if args.push_to_hub:  # before anything is spent
        from ..results import hub_token

        hub_token(args.push_to_hub)
    predictions = [answer for path in args.predictions for answer in read_predictions(path)]
    models = {answer.model for answer in predictions}  # files may be shards of one model: join() finds clashes
    references = read_references(args.references)
    out = Path(args.output_dir)
    judge = judge_from_args(args, args.cache or out / "judge_cache.sqlite")
    common = {"answers_per_prompt": args.answers_per_prompt, "references_name": args.references}
    guess = estimate_gqa(references, predictions, judge, **common)
    if args.dry_run:
        cost = "unknown (no price for this model; pass --prices)"
        if guess.cost_usd is not None:
            cost = f"${guess.cost_usd:.4f} (Batch API ${guess.batch_cost_usd:.4f}; at most ${guess.max_cost_usd:.4f})"
        print(
            f"dry run: {len(predictions)} answers from {len(models)} models -> {guess.requests} judge requests, "
            f"{guess.cached} already cached, {guess.calls} to pay for\n"
            f"estimated tokens: {guess.prompt_tokens} prompt + {guess.completion_tokens} completion\n"
            f"estimated cost with {args.judge_model}: {cost}\n"
            "nothing was sent; unreadable replies may add re-asks"
        )
        return 0
    if guess.calls:
        cost = "" if guess.cost_usd is None else f", ~${guess.cost_usd:.2f} estimated"
        print(f"judge: {guess.calls} calls to pay for{cost} ({guess.cached} cached)", file=sys.stderr)
    result = score_gqa(
        references,
        predictions,
        judge,
        max_reasks=args.max_reasks,
        batch=args.batch,
        poll_interval=args.poll_interval,
        progress=not args.no_progress,
        **common,
    )
    from ..results import run_identity

    summary = result.summary()
    summary["identity"] = run_identity("gqa-judge", args.predictions, args.references, judge)
    paths = write_outputs(out, result.rows, summary)
    print(format_table(summary))
    print(f"wrote {', '.join(str(p) for p in paths.values())}")
    problem = result.nothing_scored()
    if problem:  # a run without a single verdict is a failed run, whatever the HTTP status said
        print(f"lrv-hf gqa-judge: error: {problem}", file=sys.stderr)
        return 1
    if args.push_to_hub:
        from ..results import push_run

        print(f"pushed to {push_run(out, args.push_to_hub)}")
    return 0
