"""`lrv-hf infer` and `python -m lrv_hf.infer`: parse the flags, call `run_inference`, print what was written.

lrv-hf infer --endpoint http://localhost:8000/v1 --model lrv --data release/evaluation_set.json \
    --images release/images --output runs/lrv-vllm.jsonl
lrv-hf infer --model runs/quickstart/base --adapter runs/quickstart/lrv --both \
    --data release/evaluation_set.json --images release/images --output runs/predictions.jsonl
accelerate launch -m lrv_hf.infer --model ... --data built/ --config evaluation --output runs/predictions.jsonl
"""

import argparse
import logging
import sys

from .endpoint import EndpointConfig
from .generate import GenerationSettings


def add_arguments(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    parser.add_argument(
        "--model",
        required=True,
        help="base model: PATH, REPO_ID or REPO_ID@REVISION; with --endpoint, the served name",
    )
    parser.add_argument("--adapter", help="LoRA adapter (safetensors): PATH, REPO_ID or REPO_ID@REVISION")
    parser.add_argument("--both", action="store_true", help="with --adapter, also write the base's answers")
    parser.add_argument("--data", required=True, help="built dataset folder, or a release/JSONL file with --images")
    parser.add_argument("--images", help="images folder of a release file (<image_id>.jpg)")
    parser.add_argument("--config", help="config of a built dataset folder (needed when it has several)")
    parser.add_argument("--split", help="split of that config (needed when it has several)")
    parser.add_argument("--output", required=True, help="predictions JSONL to write (resumed when it exists)")
    parser.add_argument("--batch-size", type=int, default=GenerationSettings.batch_size)
    parser.add_argument("--max-new-tokens", type=int, default=GenerationSettings.max_new_tokens)
    parser.add_argument("--num-beams", type=int, default=GenerationSettings.num_beams)
    parser.add_argument("--dtype", default="auto", choices=("auto", "float32", "float16", "bfloat16"))
    parser.add_argument("--limit", type=int, help="answer only the first N questions")
    endpoint = parser.add_argument_group("a model behind an OpenAI-compatible endpoint (vLLM, TGI, OpenAI, ...)")
    endpoint.add_argument("--endpoint", help="base URL, e.g. http://localhost:8000/v1; --model is the served name")
    endpoint.add_argument("--api-key-env", help="environment variable holding the endpoint's key (default: none)")
    endpoint.add_argument("--system-prompt", help="a system message before every question")
    endpoint.add_argument("--temperature", type=float, default=0.0, help="0 (the default) is greedy")
    endpoint.add_argument("--max-image-bytes", type=int, default=EndpointConfig.max_image_bytes)
    endpoint.add_argument("--concurrency", type=int, default=EndpointConfig.concurrency, help="requests in flight")
    endpoint.add_argument("--cache", help="SQLite reply cache (default: OUTPUT.cache.sqlite)")
    endpoint.add_argument(
        "--dry-run", action="store_true", help="check inputs and endpoint, print the estimate, ask nothing"
    )
    parser.set_defaults(run=run, interrupted=interrupted)
    return parser


def add_parser(subparsers):
    add_arguments(
        subparsers.add_parser("infer", help="batched answers of a model (+ LoRA adapter) -> predictions JSONL")
    )


def interrupted(args: argparse.Namespace) -> str:
    return f"the answers written so far are kept in {args.output}"


def run_endpoint(args: argparse.Namespace) -> int:
    from ..errors import InputError
    from .endpoint import run_endpoint_inference

    if args.adapter or args.both:
        raise InputError(
            "with --endpoint, serve the adapter as a LoRA module (vllm serve BASE --enable-lora --lora-modules "
            "lrv=ADAPTER) and pass its name as --model; --adapter/--both are for local models"
        )
    config = EndpointConfig(
        endpoint=args.endpoint,
        model=args.model,
        api_key_env=args.api_key_env,
        system_prompt=args.system_prompt,
        temperature=args.temperature,
        max_tokens=args.max_new_tokens,
        max_image_bytes=args.max_image_bytes,
        concurrency=args.concurrency,
        cache_path=args.cache,
    )
    result = run_endpoint_inference(
        config, args.data, args.output, images=args.images, split=args.split, data_config=args.config,
        limit=args.limit, dry_run=args.dry_run,
    )  # fmt: skip
    if args.dry_run:
        estimate = result.estimate
        cost = "unknown (no price for this model)" if estimate.cost_usd is None else f"~${estimate.cost_usd:.4f}"
        print(
            f"dry run: {result.skipped} of {result.rows} questions already answered; {estimate.calls} requests to "
            f"send ({estimate.cached} cached), ~{estimate.prompt_tokens:,} prompt + ~{estimate.completion_tokens:,} "
            f"completion tokens, cost {cost}; nothing was sent"
        )
        return 0
    usage = result.usage
    cost = "" if usage.cost_usd is None else f", ${usage.cost_usd:.4f}"
    print(
        f"wrote {result.written} rows ({result.skipped} already there) to {result.output}: {usage.paid_calls} "
        f"requests paid, {usage.cached} from the cache, {usage.prompt_tokens:,}+{usage.completion_tokens:,} tokens"
        f"{cost}; settings in {result.meta}"
    )
    return 0


def run(args: argparse.Namespace) -> int:
    if args.endpoint:
        return run_endpoint(args)
    from accelerate import PartialState

    from .run import run_inference

    settings = GenerationSettings(
        max_new_tokens=args.max_new_tokens, batch_size=args.batch_size, num_beams=args.num_beams
    )
    result = run_inference(
        args.model,
        args.data,
        args.output,
        adapter=args.adapter,
        images=args.images,
        config=args.config,
        split=args.split,
        both=args.both,
        settings=settings,
        dtype=args.dtype,
        limit=args.limit,
    )
    if PartialState().is_main_process:
        print(
            f"wrote {result.written} rows ({result.skipped} already there) to {result.output}; "
            f"settings in {result.meta}"
        )
    return 0


def main(argv: list[str] | None = None) -> int:
    """`python -m lrv_hf.infer` / `accelerate launch -m lrv_hf.infer`: the same flags as `lrv-hf infer`."""
    from ..cli import run_command

    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    parser = add_arguments(argparse.ArgumentParser(prog="lrv_hf.infer", description=__doc__.splitlines()[0]))
    return run_command(parser.parse_args(argv), parser, "lrv_hf.infer")


if __name__ == "__main__":
    sys.exit(main())
