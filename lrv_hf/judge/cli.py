"""The judge flags every judge-backed command takes (`lrv-hf gavie`, `lrv-hf generate`), and the `Judge` they build.

Defaults and help come from `JudgeConfig`'s fields, so the commands and the library cannot drift apart.
"""

import argparse
import json
from dataclasses import MISSING, fields
from pathlib import Path


# flag -> JudgeConfig field, for the settings a user types as they are
FLAGS = {
    "--judge-model": "model",
    "--base-url": "base_url",
    "--api-key-env": "api_key_env",
    "--concurrency": "concurrency",
    "--timeout": "timeout",
    "--max-retries": "max_retries",
    "--max-tokens": "max_tokens",
    "--azure-api-version": "azure_api_version",
}


def add_judge_arguments(
    parser: argparse.ArgumentParser,
    model_help: str,
    max_tokens: int = 1024,
    max_tokens_help: str = "completion limit per call",
):
    """Add `--judge-model`, endpoint, key, cache, concurrency, retry, price, dry-run and Batch API flags."""
    from .config import JudgeConfig

    config_fields = {f.name: f for f in fields(JudgeConfig)}
    for flag, name in FLAGS.items():
        spec = config_fields[name]
        options = {"help": spec.metadata["help"], "dest": flag[2:].replace("-", "_")}
        if spec.default is MISSING:
            options["required"] = True
        else:
            options["default"] = spec.default
        if name in ("concurrency", "max_retries", "max_tokens"):
            options["type"] = int
        elif name == "timeout":
            options["type"] = float
        if name == "model":
            options["help"] = model_help
        elif name == "max_tokens":
            options.update(default=max_tokens, help=max_tokens_help)
        parser.add_argument(flag, **options)
    parser.add_argument("--cache", default=None, help="SQLite reply cache (default: OUTPUT_DIR/judge_cache.sqlite)")
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
    from .accounting import check_prices

    if path is None:
        return None
    try:
        prices = json.loads(Path(path).read_text(encoding="utf-8"))
        check_prices(prices)
    except (OSError, json.JSONDecodeError) as err:
        raise InputError(f"--prices {path}: cannot read the price table ({err})") from None
    except InputError as err:
        raise InputError(f"--prices {path}: {str(err).replace('`prices` ', '')}") from None
    return prices


def judge_from_args(args: argparse.Namespace, cache_path: str | Path | None, **overrides):
    """The `Judge` the flags describe (the key stays in its environment variable until a call needs it)."""
    from ..errors import InputError
    from .client import Judge
    from .config import JudgeConfig

    settings = {name: getattr(args, flag[2:].replace("-", "_")) for flag, name in FLAGS.items()}
    settings.update(cache_path=cache_path, prices=load_prices(args.prices), **overrides)
    try:
        return Judge(JudgeConfig(**settings))
    except InputError as err:  # name the flag the user typed, not the field
        message = str(err)
        for flag, name in FLAGS.items():
            message = message.replace(f"`{name}`", flag)
        raise InputError(message) from None
