"""The judge flags every judge-backed command takes (`lrv-hf gavie`, `lrv-hf generate`), and the `Judge` they build.

One definition, so the two commands cannot drift apart in names, defaults or the price-table format.
"""

import argparse
import json
from pathlib import Path


def add_judge_arguments(
    parser: argparse.ArgumentParser,
    model_help: str,
    max_tokens: int = 1024,
    max_tokens_help: str = "completion limit per call",
):
    """Add `--judge-model`, endpoint, key, cache, concurrency, retry, price, dry-run and Batch API flags."""
    parser.add_argument("--judge-model", required=True, help=model_help)
    parser.add_argument("--base-url", default=None, help="an OpenAI-compatible endpoint (default: OpenAI)")
    parser.add_argument("--api-key-env", default="OPENAI_API_KEY", help="environment variable holding the key")
    parser.add_argument("--cache", default=None, help="SQLite reply cache (default: OUTPUT_DIR/judge_cache.sqlite)")
    parser.add_argument("--concurrency", type=int, default=16, help="calls in flight")
    parser.add_argument("--timeout", type=float, default=60.0, help="seconds per call")
    parser.add_argument("--max-retries", type=int, default=6, help="retries per call (429, 5xx, timeouts)")
    parser.add_argument("--max-tokens", type=int, default=max_tokens, help=max_tokens_help)
    parser.add_argument("--azure-api-version", default=None, help="talk to Azure OpenAI with this api-version")
    parser.add_argument("--prices", default=None, help='JSON file {model: {"input": usd_per_1M, "output": ...}}')
    parser.add_argument(
        "--dry-run", action="store_true", help="print the calls, tokens and cost a run would spend; send nothing"
    )
    parser.add_argument("--batch", action="store_true", help="use the OpenAI Batch API (half price, up to 24 h)")
    parser.add_argument("--poll-interval", type=float, default=30.0, help="seconds between Batch API polls")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")


def load_prices(path: str | None) -> dict | None:
    """A user price table `{model: {"input": usd_per_1M, "output": usd_per_1M}}`, checked entry by entry."""
    from ..errors import InputError

    if path is None:
        return None
    try:
        prices = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as err:
        raise InputError(f"--prices {path}: cannot read the price table ({err})") from None
    for model, price in prices.items() if isinstance(prices, dict) else [(None, None)]:
        if not isinstance(price, dict) or not all(isinstance(price.get(k), (int, float)) for k in ("input", "output")):
            raise InputError(f'--prices {path}: entry {model!r} must be {{"input": usd_per_1M, "output": usd_per_1M}}')
    return prices


def judge_from_args(args: argparse.Namespace, cache_path: str | Path | None, **overrides):
    """The `Judge` the flags describe (the key stays in its environment variable until a call needs it)."""
    from .client import Judge

    settings = {
        "model": args.judge_model,
        "base_url": args.base_url,
        "api_key_env": args.api_key_env,
        "cache_path": cache_path,
        "concurrency": args.concurrency,
        "timeout": args.timeout,
        "max_retries": args.max_retries,
        "max_tokens": args.max_tokens,
        "prices": load_prices(args.prices),
        "azure_api_version": args.azure_api_version,
    }
    return Judge(**{**settings, **overrides})
