"""Time the tiny base's pre-training and the two adapters' LoRA tuning, and probe the adapters on held-out images.

    python benchmarks/bench_tiny_base.py --output /tmp/bench-tiny --threads 2 [--rebuild-base] [--seeds 0,1,2] \
        [-- --max_steps 1500]

Without `--rebuild-base` the adapters train from the shipped base; arguments after `--` go to the recipe. Each seed
(the recipe's `seed`: LoRA init and batch order) trains its own adapter, so the spread between runs shows.
"""

import argparse
import time
from pathlib import Path

import torch

from lrv_hf.data.synth import write_synthetic_release
from lrv_hf.testing import tiny_adapters, tiny_base


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--output", required=True)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--num-images", type=int, default=200)
    parser.add_argument("--rebuild-base", action="store_true", help="pre-train a base first and tune from it")
    parser.add_argument("--adapters", default=",".join(tiny_adapters.ADAPTERS))
    parser.add_argument("--seeds", default="0", help="comma-separated training seeds, one adapter each")
    parser.add_argument("overrides", nargs="*", help="recipe overrides, e.g. --max_steps 400 (after `--`)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    output = Path(args.output)
    overrides = list(args.overrides)
    if args.rebuild_base:
        start = time.perf_counter()
        figures = tiny_base.build_tiny_base(output / "base")
        print(f"base: {time.perf_counter() - start:.0f} s wall {figures}")
        overrides += ["--model_name_or_path", str(output / "base")]
    release = output / "release"
    if not (release / "objects.json").is_file():
        write_synthetic_release(release, num_images=args.num_images, seed=0)
    datasets = tiny_adapters.build_adapter_datasets(release, output / "data")
    probes = tiny_adapters.held_out_probes(release, seed=0)
    print(f"probes: {len(probes['pope'])} POPE, {len(probes['attribute'])} colour, on held-out images")
    for name in args.adapters.split(","):
        for seed in args.seeds.split(","):
            start = time.perf_counter()
            run = tiny_adapters.train_adapter(
                datasets[name], output / f"{name}-seed{seed}", "--save_strategy", "no", "--seed", seed, *overrides
            )
            seconds = time.perf_counter() - start
            scores = tiny_adapters.probe(run, release, probes)
            pope, colour = scores["pope"], scores["attribute"]
            print(
                f"{name} seed {seed} {' '.join(overrides)}: train {seconds:.0f} s | POPE accuracy {pope['accuracy']:.3f} "
                f"F1 {pope['f1']:.3f} yes-ratio {pope['yes_ratio']:.3f} | colour accuracy {colour['accuracy']:.3f} "
                f"yes-ratio {colour['yes_ratio']:.3f} wrong-colour answered no {scores['attribute_negative_accuracy']:.3f}",
                flush=True,
            )


if __name__ == "__main__":
    main()
