"""`lrv-hf quickstart`: the flags are `QuickstartConfig`'s fields; the run is `run_quickstart`.

lrv-hf quickstart [--output-dir runs/quickstart] [--base-url URL | with OPENAI_API_KEY set]
"""

import argparse
import typing
from dataclasses import MISSING, fields

from .config import QuickstartConfig


JUDGE_FIELDS = ("judge_model", "base_url", "api_key_env")


def add_parser(subparsers):
    parser = subparsers.add_parser("quickstart", help="run the whole loop end to end on a small synthetic release")
    judge = parser.add_argument_group("GAVIE judge (scored for real when a key or a base URL is set, else a dry run)")
    for f in fields(QuickstartConfig):
        kind = next(t for t in typing.get_args(f.type) or (f.type,) if t is not type(None))
        default = None if f.default is MISSING else f.default
        (judge if f.name in JUDGE_FIELDS else parser).add_argument(
            "--" + f.name.replace("_", "-"), type=kind, default=default, help=f.metadata["help"]
        )
    parser.set_defaults(run=run, interrupted=interrupted)


def interrupted(args: argparse.Namespace) -> str:
    return (
        f"the finished steps (data, adapter checkpoints, answers written so far, judge replies) are kept in "
        f"{args.output_dir}"
    )


def say(step: str, message: str) -> None:
    print(f"[{step}] {message}", flush=True)


def run(args: argparse.Namespace) -> int:
    from ..errors import InputError
    from .steps import run_quickstart

    try:
        config = QuickstartConfig(**{f.name: getattr(args, f.name) for f in fields(QuickstartConfig)})
    except ValueError as err:
        raise InputError(str(err), tuple(f.name for f in fields(QuickstartConfig))) from None
    result = run_quickstart(config, say=say)
    print(f"\nreport: {result.report}")
    where = "an image where it and positive-only disagree" if result.demo["separates"] else "an absent object"
    print(f"demo (the LRV adapter on {where}):")
    print(f"  {result.demo['command']}")
    print(f"next: open {result.report}; for the real thing, see its 'Do it for real' section (a change of names).")
    return 0
