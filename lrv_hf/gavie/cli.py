"""`lrv-hf gavie`: score a predictions file with GAVIE against any OpenAI-compatible judge endpoint.

lrv-hf gavie --predictions preds.jsonl --regions vg_annotation.json --judge-model gpt-4o --output-dir runs/gavie
"""

import argparse
import json


def add_parser(subparsers):
    parser = subparsers.add_parser(
        "gavie",
        help="score predictions with GAVIE (accuracy, relevancy) through an OpenAI-compatible judge",
        description="Score a predictions JSONL ({image_id, question, answer, model?}) with GAVIE. Replies are cached "
        "(interrupt and rerun freely); --dry-run prints the calls, tokens and cost first and spends nothing.",
    )
    parser.add_argument("--predictions", required=True, help="JSONL rows {image_id, question, answer, model?}")
    parser.add_argument("--regions", required=True, help="dense captions: LRV vg_annotation.json or VG regions")
    parser.add_argument("--judge-model", required=True, help="judge model (Azure: the deployment name)")
    parser.add_argument("--output-dir", required=True, help="summary.json, scores.jsonl, report.md, report.png")
    parser.add_argument("--base-url", default=None, help="OpenAI-compatible endpoint (default: OpenAI)")
    parser.add_argument("--api-key-env", default="OPENAI_API_KEY", help="environment variable holding the key")
    parser.add_argument("--cache", default=None, help="SQLite reply cache (default: OUTPUT_DIR/judge_cache.sqlite)")
    parser.add_argument("--concurrency", type=int, default=16, help="judge calls in flight")
    parser.add_argument("--answers-per-prompt", type=int, default=1, help="K answers to one instruction per prompt")
    parser.add_argument("--legacy-prompt", action="store_true", help="the released prompt byte for byte")
    parser.add_argument("--judge-samples", type=int, default=1, help="draws per prompt (median + judge noise)")
    parser.add_argument("--max-reasks", type=int, default=2, help="re-asks of an unreadable reply")
    parser.add_argument("--batch", action="store_true", help="OpenAI Batch API: half price, results within 24h")
    parser.add_argument("--poll-interval", type=float, default=30.0, help="seconds between Batch API polls")
    parser.add_argument("--timeout", type=float, default=60.0, help="seconds per judge call")
    parser.add_argument("--max-retries", type=int, default=6, help="retries per call (429, 5xx, timeouts)")
    parser.add_argument("--max-tokens", type=int, default=1024, help="judge completion limit")
    parser.add_argument("--azure-api-version", default=None, help="talk to Azure OpenAI with this api-version")
    parser.add_argument("--prices", default=None, help='JSON file {model: {"input": usd_per_1M, "output": ...}}')
    parser.add_argument("--dry-run", action="store_true", help="print calls, tokens and cost; call nothing")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    parser.set_defaults(run=run)


def _prices(path: str | None) -> dict | None:
    from ..errors import InputError

    if path is None:
        return None
    try:
        prices = json.loads(open(path, encoding="utf-8").read())
    except (OSError, json.JSONDecodeError) as err:
        raise InputError(f"{path}: cannot read the price table ({err})") from None
    for model, price in prices.items() if isinstance(prices, dict) else [(None, None)]:
        if not isinstance(price, dict) or not all(isinstance(price.get(k), (int, float)) for k in ("input", "output")):
            raise InputError(f'{path}: entry {model!r} must be {{"input": usd_per_1M, "output": usd_per_1M}}')
    return prices


def run(args: argparse.Namespace) -> int:
    import logging
    import sys
    from pathlib import Path

    from ..data import load_regions
    from ..judge import Judge
    from .report import format_table, write_outputs
    from .score import estimate, read_predictions, score

    if not args.verbose:  # one line per HTTP call would bury the progress bar
        logging.getLogger("httpx").setLevel(logging.WARNING)
    predictions = read_predictions(args.predictions)
    regions = load_regions(args.regions, image_ids={p.image_id for p in predictions})
    out = Path(args.output_dir)
    judge = Judge(
        model=args.judge_model,
        base_url=args.base_url,
        api_key_env=args.api_key_env,
        cache_path=args.cache or out / "judge_cache.sqlite",
        concurrency=args.concurrency,
        max_retries=args.max_retries,
        timeout=args.timeout,
        max_tokens=args.max_tokens,
        prices=_prices(args.prices),
        azure_api_version=args.azure_api_version,
    )
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
