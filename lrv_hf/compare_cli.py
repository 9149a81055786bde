"""`lrv-hf compare`: is run B's difference from run A real? Paired CI / exact McNemar on the items both scored.

lrv-hf compare runs/mme-base runs/mme-lrv --output-dir runs/compare
lrv-hf compare runs/pope-both --baseline base --output-dir runs/compare     (one run holding several models)
"""

import argparse


def add_parser(subparsers):
    parser = subparsers.add_parser(
        "compare", help="paired comparison of two scored runs (GAVIE, POPE, MME, GQA judge)"
    )
    parser.add_argument(
        "runs", nargs="+", metavar="RUN", help="RUN_A RUN_B (two output folders) or one multi-model RUN"
    )
    parser.add_argument("--output-dir", required=True, help="gets comparison.json, comparison.md, comparison.png")
    parser.add_argument("--model-a", default=None, help="the model of RUN_A when it holds several")
    parser.add_argument("--model-b", default=None, help="the model of RUN_B when it holds several")
    parser.add_argument("--baseline", default=None, help="one RUN: the model the others are compared with")
    parser.add_argument("--seed", type=int, default=0, help="bootstrap seed")
    parser.set_defaults(run=run_compare)


def run_compare(args: argparse.Namespace) -> int:
    from .compare import compare_models, compare_runs, comparison_pairs, write_comparison
    from .errors import InputError

    if len(args.runs) > 2:
        raise InputError(f"give one or two runs, got {len(args.runs)}")
    try:
        if len(args.runs) == 2:
            comparison = compare_runs(*args.runs, model_a=args.model_a, model_b=args.model_b, seed=args.seed)
        else:
            comparison = compare_models(args.runs[0], baseline=args.baseline, seed=args.seed)
    except InputError as err:  # library errors name parameters; users typed flags
        message = str(err)
        for name, flag in (("`model_a`", "--model-a"), ("`model_b`", "--model-b"), ("`baseline`", "--baseline")):
            message = message.replace(name, flag)
        raise InputError(message) from None
    paths = write_comparison(comparison, args.output_dir)
    for name_a, name_b, metric, section in comparison_pairs(comparison):
        print(f"{metric}: {name_b} vs {name_a}: {section['verdict']}")
    print(f"wrote {paths['report']}")
    return 0
