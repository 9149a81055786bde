"""`lrv-hf train` and `python -m lrv_hf.train`: parse the recipe flags and run; torch loads only when a run starts.

`lrv-hf train --recipe NAME|PATH [--output-dir D] [--any_recipe_key value ...]`, `lrv-hf train --list-recipes`.
"""

import argparse
import logging
import sys

from ..errors import InputError


class _OverridesParser(argparse.ArgumentParser):
    """Keeps the flags it does not know (recipe keys) in `overrides` instead of failing on them.

    argparse hands a sub-command's unknown flags back to the top parser, which rejects them; recipe keys are many
    and checked later against the config dataclasses, so they are collected here.
    """

    def parse_known_args(self, args=None, namespace=None):
        namespace, extras = super().parse_known_args(args, namespace)
        namespace.overrides = list(getattr(namespace, "overrides", None) or []) + extras
        return namespace, []


def add_arguments(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    parser.add_argument("--recipe", help="packaged recipe name (see --list-recipes) or a YAML file")
    parser.add_argument("--output-dir", "--output_dir", dest="output_dir", help="run folder (default runs/<recipe>)")
    parser.add_argument("--list-recipes", action="store_true", help="list the packaged recipes and exit")
    parser.set_defaults(run=run, overrides=[])
    return parser


def add_parser(subparsers) -> argparse.ArgumentParser:
    parser = subparsers.add_parser(
        "train",
        help="fine-tune a VLM on LRV-Instruction from a recipe",
        description="Fine-tune a VLM on LRV-Instruction from a recipe (defaults < recipe YAML < flags).",
        epilog="Any recipe key is a flag too, e.g. --learning_rate 1e-4 --lora_r 16 --max_steps 100.",
    )
    parser.__class__ = _OverridesParser
    return add_arguments(parser)


def run(args: argparse.Namespace) -> int:
    from .recipes import list_recipes, recipe_path

    if args.list_recipes:
        print("\n".join(list_recipes()))
        return 0
    if not args.recipe:
        raise InputError("--recipe: give a recipe name (see --list-recipes) or a YAML file")
    recipe_path(args.recipe)  # a mistyped name fails here, before torch loads
    from .trainer import main as train_main

    argv = ["--recipe", args.recipe] + (["--output_dir", args.output_dir] if args.output_dir else []) + args.overrides
    train_main(argv)
    return 0


def main(argv: list[str] | None = None) -> int:
    """`python -m lrv_hf.train`: the `lrv-hf train` flags without the `lrv-hf` front."""
    parser = add_arguments(
        _OverridesParser(
            prog="python -m lrv_hf.train",
            description="Fine-tune a VLM on LRV-Instruction from a recipe (defaults < recipe YAML < flags).",
            epilog="Any recipe key is a flag too, e.g. --learning_rate 1e-4 --lora_r 16 --max_steps 100.",
        )
    )
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    try:
        return run(args)
    except InputError as err:
        print(f"lrv_hf.train: error: {err}", file=sys.stderr)
        return 2
