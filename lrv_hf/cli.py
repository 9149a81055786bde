"""`lrv-hf`: the console entry point.

Each capability defines its own sub-command in a light module (`add_parser` + `run`) that imports heavy libraries
(torch, transformers) only when it runs, so `lrv-hf --help` stays instant.
"""

import argparse
import logging
import sys

from .errors import InputError


def build_parser() -> argparse.ArgumentParser:
    from . import infer, quickstart
    from .data import cli as data_cli
    from .demo import cli as demo_cli
    from .gavie import cli as gavie_cli
    from .generate import cli as generate_cli
    from .gqa import cli as gqa_cli
    from .pope import cli as pope_cli
    from .train import cli as train_cli

    parser = argparse.ArgumentParser(prog="lrv-hf", description=__doc__.splitlines()[0])
    parser.add_argument("-v", "--verbose", action="store_true", help="log at DEBUG level")
    subparsers = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    data_cli.add_parser(subparsers)
    train_cli.add_parser(subparsers)
    gavie_cli.add_parser(subparsers)
    gqa_cli.add_parser(subparsers)
    generate_cli.add_parser(subparsers)
    pope_cli.add_parser(subparsers)
    infer.add_parser(subparsers)
    demo_cli.add_parser(subparsers)
    quickstart.add_parser(subparsers)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO, format="%(levelname)s %(name)s: %(message)s"
    )
    try:
        return args.run(args) or 0
    except InputError as err:
        print(f"lrv-hf {args.command}: error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"lrv-hf {args.command}: interrupted; rerun the same command to resume", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
