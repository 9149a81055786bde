"""`lrv-hf adapters check-vllm PATH`: whether vLLM's LoRA support will serve an adapter `lrv-hf train` wrote.

One line per problem and exit 1 when it will not; the `vllm serve` line to use when it will.
"""

import argparse


def add_parser(subparsers):
    parser = subparsers.add_parser("adapters", help="check LoRA adapters (e.g. for serving with vLLM)")
    commands = parser.add_subparsers(dest="adapters_command", required=True, metavar="COMMAND")
    check = commands.add_parser("check-vllm", help="check adapter_config.json against what vLLM's LoRA loads")
    check.add_argument("path", help="adapter folder (holding adapter_config.json)")
    check.set_defaults(run=run_check_vllm)


def run_check_vllm(args: argparse.Namespace) -> int:
    from pathlib import Path

    from .adapters import adapter_base, check_vllm

    problems, max_rank = check_vllm(args.path)
    for problem in problems:
        print(f"{args.path}: {problem}")
    if problems:
        return 1
    flag = f" --max-lora-rank {max_rank}" if max_rank else ""
    base = adapter_base(Path(args.path)) or "BASE"
    print(f"{args.path}: vLLM can serve it: vllm serve {base} --enable-lora{flag} --lora-modules lrv={args.path}")
    return 0
