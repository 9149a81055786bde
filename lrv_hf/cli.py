"""`lrv-hf`: the console entry point; it turns argv into one library call per command and prints what came back.

Each capability defines its sub-command in a light `<capability>/cli.py` (`add_parser` + `run`) that imports heavy
libraries (torch, transformers) only when it runs, so `lrv-hf --help` stays instant. Library errors name parameters
(`` `images` ``); `flag_message` turns them into this command's flags.
"""

import argparse
import gc
import logging
import sys

from .errors import InputError


def build_parser() -> argparse.ArgumentParser:
    from . import adapters_cli, compare_cli
    from .data import cli as data_cli
    from .demo import cli as demo_cli
    from .gavie import cli as gavie_cli
    from .generate import cli as generate_cli
    from .gqa import cli as gqa_cli
    from .infer import cli as infer_cli
    from .mme import cli as mme_cli
    from .pope import cli as pope_cli
    from .quickstart import cli as quickstart_cli
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
    mme_cli.add_parser(subparsers)
    compare_cli.add_parser(subparsers)
    infer_cli.add_parser(subparsers)
    adapters_cli.add_parser(subparsers)
    demo_cli.add_parser(subparsers)
    quickstart_cli.add_parser(subparsers)
    return parser


def command_parser(parser: argparse.ArgumentParser, args: argparse.Namespace) -> argparse.ArgumentParser:
    """The (sub-)sub-parser that parsed `args`, whose flags an error message should name."""
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction) and getattr(args, action.dest, None) in action.choices:
            return command_parser(action.choices[getattr(args, action.dest)], args)
    return parser


def flag_message(err: InputError, parser: argparse.ArgumentParser) -> str:
    """The error's message with each library parameter it names (`` `images` ``) written as the flag (`--images`)."""
    message = str(err)
    flags = {a.dest: max(a.option_strings, key=len) for a in parser._actions if a.option_strings}
    parameters = (err.parameter,) if isinstance(err.parameter, str) else err.parameter or ()
    for name in parameters:
        if name in flags:
            message = message.replace(f"`{name}`", flags[name])
    return message


def run_command(args: argparse.Namespace, parser: argparse.ArgumentParser, prog: str) -> int:
    """Run a parsed command: a user error is one line and exit 2; Ctrl-C is one line saying what was kept, exit 130."""
    try:
        return args.run(args) or 0
    except InputError as err:
        print(f"{prog}: error: {flag_message(err, command_parser(parser, args))}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        pass
    # out of the handler the interrupted frames are gone; collecting them now makes a progress bar they held draw its
    # last line before ours, not after it at exit
    gc.collect()
    kept = args.interrupted(args) if hasattr(args, "interrupted") else "finished work is kept"
    print(f"{prog}: interrupted; {kept}; rerun the same command to resume", file=sys.stderr)
    return 130


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO, format="%(levelname)s %(name)s: %(message)s"
    )
    return run_command(args, parser, f"lrv-hf {args.command}")


if __name__ == "__main__":
    sys.exit(main())
