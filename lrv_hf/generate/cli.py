"""`lrv-hf generate`: LRV-style instructions from dense captions, with the released prompts, through one judge client.

lrv-hf generate --regions vg_annotation.json --images images/ --judge-model gpt-4o --output-dir runs/generated \
    --kinds positive,negative-nonexistent,negative-existent [--dry-run] [--batch]
lrv-hf data build --instructions runs/generated/instructions.json --images images/ --output-dir lrv-generated/
"""

import argparse
import logging
import sys
from pathlib import Path

from ..judge.cli import add_judge_arguments
from .prompt import DEFAULT_KINDS, KINDS


def add_parser(subparsers):
    parser = subparsers.add_parser(
        "generate", help="generate LRV instructions (positive and negative) from dense captions with an LLM"
    )
    parser.add_argument(
        "--regions", required=True, help="vg_annotation.json or Visual Genome region_descriptions.json"
    )
    parser.add_argument("--images", required=True, help="folder of <image_id>.jpg; images without a file are skipped")
    parser.add_argument("--kinds", default=",".join(DEFAULT_KINDS), help=f"comma-separated, any of {','.join(KINDS)}")
    parser.add_argument("--output-dir", required=True, help="gets instructions.json, summary.json, dropped.jsonl")
    parser.add_argument("--max-images", type=int, default=None, help="only the first N images that have a file")
    parser.add_argument(
        "--temperature", type=float, default=None, help="default: the server's, as the released script used"
    )
    add_judge_arguments(
        parser,
        model_help="the generating model (GPT-4 in the paper)",
        max_tokens=2048,
        max_tokens_help="reply limit; a reply cut there loses its last item",
    )
    parser.set_defaults(run=run)


def _usd(value: float | None) -> str:
    return "unknown (no price for this model; pass --prices)" if value is None else f"${value:,.2f}"


def run(args: argparse.Namespace) -> int:
    from ..errors import InputError
    from ..judge.cli import judge_from_args
    from .generation import CACHE_FILE, GenerationConfig, generate_files

    if not args.verbose:
        # httpx2 (under the openai SDK) logs every request at INFO: on a run of thousands of calls that buries the summary
        logging.getLogger("httpx2").setLevel(logging.WARNING)
    try:
        config = GenerationConfig(
            kinds=args.kinds, max_images=args.max_images, batch=args.batch, poll_interval=args.poll_interval
        )
    except ValueError as err:
        raise InputError(f"invalid option: {err}") from None
    cache = Path(args.cache) if args.cache else Path(args.output_dir) / CACHE_FILE
    if args.dry_run and not cache.exists():
        cache = None  # nothing is cached yet, and a dry run leaves no files behind
    judge = judge_from_args(args, cache, temperature=args.temperature)
    result = generate_files(
        args.regions, args.images, judge, args.output_dir, config, dry_run=args.dry_run, progress=not args.no_progress
    )
    selection, plan = result.selection, result.plan
    skipped = f"{selection.missing_image:,} without an image file, {selection.without_regions:,} without regions"
    if args.dry_run:
        print(
            f"{len(selection.regions):,} images ({skipped}) x {len(config.kinds)} kinds = {plan['requests']:,} requests"
            f", {plan['cached']:,} cached -> {plan['calls']:,} calls to {judge.model}, ~{plan['prompt_tokens']:,} "
            f"prompt + ~{plan['completion_tokens']:,} completion tokens"
        )
        print(
            f"estimated cost {_usd(plan['cost_usd'])} (Batch API {_usd(plan['batch_cost_usd'])}; at most "
            f"{_usd(plan['max_cost_usd'])} if every reply used --max-tokens {args.max_tokens})"
        )
        return 0
    generation, output = result.generation, result.output
    s = generation.summary
    print(
        f"kept {s['rows_kept']:,} rows ({', '.join(f'{k} {n:,}' for k, n in s['rows_by_kind'].items())}) on "
        f"{len(selection.regions):,} images ({skipped}) -> {output}"
    )
    reasons = ", ".join(f"{reason} {n:,}" for reason, n in s["dropped_by_reason"].items())
    print(
        f"dropped {s['rows_dropped']:,} rows{f' ({reasons})' if reasons else ''}; "
        f"{s['replies_without_instructions']:,} replies held no instruction (see dropped.jsonl)"
    )
    print(
        f"{s['calls']:,} calls ({s['cached']:,} more from the cache), {s['prompt_tokens']:,} prompt + "
        f"{s['completion_tokens']:,} completion tokens, {_usd(s['cost_usd'])} this run "
        f"({_usd(s['total_cost_usd'])} with cached replies)"
    )
    if s["failed"]:
        print(
            f"{s['failed']:,} calls failed (first: {s['errors'][0]}); rerun the same command to retry only those",
            file=sys.stderr,
        )
        return 1
    return 0
