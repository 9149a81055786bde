"""`lrv-hf train` and `python -m lrv_hf.train`: hand the flags to the recipe parser and print what the run made.

`lrv-hf train --recipe NAME|PATH [--output-dir D] [--any_recipe_key value ...]`, `lrv-hf train --list-recipes`.
"""

import argparse
import logging
import sys

from ..errors import InputError


def add_parser(subparsers) -> argparse.ArgumentParser:
    # no option prefix: every token, `--help` included, reaches the recipe parser, which is the one that knows them
    parser = subparsers.add_parser(
        "train",
        help="fine-tune a VLM on LRV-Instruction from a recipe (`lrv-hf train --help` lists every key)",
        add_help=False,
        prefix_chars="\0",
    )
    parser.add_argument("argv", nargs=argparse.REMAINDER)
    parser.set_defaults(run=run)
    return parser


def train_from_argv(argv: list[str], prog: str) -> int:
    """`--list-recipes`, or parse the recipe and flags once and train."""
    from .recipes import list_recipes, recipe_arg, recipe_path

    if "--list-recipes" in argv:
        print("\n".join(list_recipes()))
        return 0
    recipe = recipe_arg(argv)
    if recipe is None and not {"-h", "--help"} & set(argv):
        raise InputError("--recipe: give a recipe name (see --list-recipes) or a YAML file")
    if recipe is not None:
        recipe_path(recipe)  # a mistyped name fails here, before torch loads
    from .trainer import main as train_main

    result = train_main(argv, prog=prog)
    if result.trainer.is_world_process_zero():
        print(
            f"adapter: {result.adapter_path} (step {result.global_step}, {result.conversations} conversations, "
            f"{result.dropped} dropped and {result.truncated} cut as longer than max_length)"
        )
    return 0


def run(args: argparse.Namespace) -> int:
    return train_from_argv(args.argv, prog="lrv-hf train")


def main(argv: list[str] | None = None) -> int:
    """`python -m lrv_hf.train`: the `lrv-hf train` flags without the `lrv-hf` front."""
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    try:
        return train_from_argv(list(sys.argv[1:] if argv is None else argv), prog="python -m lrv_hf.train")
    except InputError as err:
        print(f"lrv_hf.train: error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(
            "lrv_hf.train: interrupted; the checkpoints saved so far are kept in the output folder; "
            "rerun the same command to resume from the newest complete one",
            file=sys.stderr,
        )
        return 130
