"""`lrv-hf demo`: the Space's page on this machine, over a local or Hub base and LRV adapters.

lrv-hf demo --base runs/quickstart/base --adapter runs/quickstart/lrv --image IMG.jpg --instruction "Is there a kite?"
GRADIO_SERVER_NAME=0.0.0.0 GRADIO_SERVER_PORT=7860 lrv-hf demo --base ORG/BASE@REV --adapter ORG/LRV@REV
"""

import argparse


def add_parser(subparsers):
    parser = subparsers.add_parser("demo", help="serve the base-vs-LRV-adapter page (the Space) locally")
    parser.add_argument("--base", required=True, help="base model: PATH, REPO_ID or REPO_ID@REVISION")
    parser.add_argument(
        "--adapter",
        required=True,
        action="append",
        help="an adapter the page may use (repeat for several; the first is the default): PATH or REPO_ID[@REV]",
    )
    parser.add_argument("--max-new-tokens", type=int, default=128)
    parser.add_argument(
        "--max-image-pixels", type=int, default=None, help="larger uploads are refused (default: 4096 x 4096)"
    )
    parser.add_argument("--examples-dir", help="where the example images are drawn (default: a temp folder)")
    parser.add_argument("--image", help="the image the page opens on (default: none)")
    parser.add_argument("--instruction", help="the instruction the page opens on (default: none)")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from ..infer import GenerationSettings
    from .app import launch_demo

    limit = {} if args.max_image_pixels is None else {"max_image_pixels": args.max_image_pixels}
    settings = GenerationSettings(max_new_tokens=args.max_new_tokens)
    opening = {"image": args.image, "instruction": args.instruction}
    launch_demo(args.base, args.adapter, settings, args.examples_dir, opening=opening, **limit)
    return 0
