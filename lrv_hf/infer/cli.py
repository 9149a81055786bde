"""`lrv-hf infer` and `python -m lrv_hf.infer`: parse the flags, call `run_inference`, print what was written.

lrv-hf infer --model runs/quickstart/base --adapter runs/quickstart/lrv --both \
    --data release/evaluation_set.json --images release/images --output runs/predictions.jsonl
accelerate launch -m lrv_hf.infer --model ... --data built/ --config evaluation --output runs/predictions.jsonl
"""

import argparse
import logging
import sys

from .generate import GenerationSettings


def add_arguments(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    parser.add_argument("--model", required=True, help="base model: PATH, REPO_ID or REPO_ID@REVISION")
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
    parser.set_defaults(run=run, interrupted=interrupted)
    return parser


def add_parser(subparsers):
    add_arguments(
        subparsers.add_parser("infer", help="batched answers of a model (+ LoRA adapter) -> predictions JSONL")
    )


def interrupted(args: argparse.Namespace) -> str:
    return f"the answers written so far are kept in {args.output}"


def run(args: argparse.Namespace) -> int:
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
