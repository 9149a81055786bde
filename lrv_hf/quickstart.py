"""`lrv-hf quickstart`: the whole LRV loop end to end on the embedded synthetic release, offline, on CPU.

synth -> build -> train `tiny/lora-cpu` -> infer (base and adapter, one loaded base) -> POPE and GAVIE -> report.md
with plots. Each step reuses what an earlier run left in the output folder, so a rerun is quick.
"""

import argparse
import json
import os
import shlex
import time
from pathlib import Path


REAL_EVAL_QUESTIONS = 1000  # LRV's evaluation set: 1000 questions on 120 Visual Genome images
REAL_REGIONS_PER_IMAGE = 50  # a Visual Genome image has ~50 dense captions (the released GAVIE example has 50)


def add_parser(subparsers):
    parser = subparsers.add_parser("quickstart", help="run the whole loop end to end on a small synthetic release")
    parser.add_argument("--output-dir", default="runs/quickstart")
    parser.add_argument("--num-images", type=int, default=48, help="synthetic images (a fifth are held out)")
    parser.add_argument("--max-steps", type=int, default=None, help="training steps (default: the recipe's)")
    parser.add_argument("--max-new-tokens", type=int, default=24, help="answer length at inference")
    parser.add_argument("--seed", type=int, default=0)
    judge = parser.add_argument_group("GAVIE judge (scored for real when a key or a base URL is set, else a dry run)")
    judge.add_argument("--judge-model", default="gpt-4o-mini")
    judge.add_argument("--base-url", default=None, help="OpenAI-compatible endpoint, e.g. a local vLLM")
    judge.add_argument("--api-key-env", default="OPENAI_API_KEY", help="environment variable holding the key")
    parser.set_defaults(run=run)


def _step(name: str, message: str):
    print(f"[{name}] {message}", flush=True)


def _cli(argv: list[str]):
    """Run one `lrv-hf` command in-process; a user error ends the quickstart with the command's one-line message."""
    from .cli import main
    from .errors import InputError

    if main(argv) != 0:
        raise InputError(f"step failed: lrv-hf {shlex.join(argv)}")


# -- 1. data -----------------------------------------------------------------------------------------------------------
def build_data(output_dir: Path, num_images: int = 48, seed: int = 0) -> dict:
    """Synthesise the release and build it (instructions/train, evaluation/test); skipped when already built."""
    from .data import write_synthetic_release
    from .data.export import build_dataset

    release, built = output_dir / "release", output_dir / "dataset"
    stamp = built / "build_report.json"
    if stamp.is_file() and {"instructions/train", "evaluation/test"} <= set(json.loads(stamp.read_text())):
        _step("data", f"reusing {built}")
    else:
        counts = write_synthetic_release(release, num_images=num_images, seed=seed)
        _step("data", f"synthetic release: {counts['images']} images, {counts['instructions']} instructions")
        common = {"images_dir": release / "images", "regions_file": release / "vg_annotation.json"}
        build_dataset([release / "filter_cap.json"], output_dir=built, **common)
        build_dataset(
            [release / "evaluation_set.json"], output_dir=built, config_name="evaluation", split="test", **common
        )
    reports = json.loads(stamp.read_text())
    train, test = reports["instructions/train"], reports["evaluation/test"]
    _step(
        "data",
        f"load_dataset({str(built)!r}, 'instructions'): {train['images']} images, {train['rows']} instructions; "
        f"'evaluation': {test['rows']} questions on {test['images']} held-out images",
    )
    return {"release": release, "dataset": built, "train": train, "test": test}


# -- 2. training -------------------------------------------------------------------------------------------------------
def train_adapter(output_dir: Path, dataset: Path, max_steps: int | None, seed: int) -> Path:
    run = output_dir / "train"
    if (run / "adapter_model.safetensors").is_file() and (run / "base" / "model.safetensors").is_file():
        _step("train", f"reusing the adapter in {run}")
        return run
    _step("train", "tiny/lora-cpu on the synthetic instructions (LoRA on a 2-layer LLaVA built from configs)")
    argv = ["train", "--recipe", "tiny/lora-cpu", "--output-dir", str(run), "--dataset_name", str(dataset)]
    argv += ["--seed", str(seed)]
    if max_steps:  # a short run still logs a loss curve and ends on a checkpoint (where trainer_state.json lives)
        argv += ["--max_steps", str(max_steps), "--logging_steps", str(max(1, max_steps // 8))]
        argv += ["--save_steps", str(max_steps)]
    _cli(argv)
    return run


def loss_history(run: Path) -> list[tuple[int, float]]:
    """(step, loss) pairs from the last checkpoint's trainer_state.json."""
    states = sorted(run.glob("checkpoint-*/trainer_state.json"), key=lambda p: int(p.parent.name.split("-")[1]))
    if not states:
        return []
    history = json.loads(states[-1].read_text())["log_history"]
    return [(entry["step"], float(entry["loss"])) for entry in history if "loss" in entry]


# -- 3. inference ------------------------------------------------------------------------------------------------------
def infer(run: Path, data: list[str], output: Path, max_new_tokens: int):
    """Base and adapter answers from one loaded base; resumes a partial file."""
    argv = ["infer", "--model", str(run / "base"), "--adapter", str(run), "--both", *data]
    _cli(argv + ["--output", str(output), "--max-new-tokens", str(max_new_tokens)])


def model_labels(run: Path) -> dict[str, str]:
    return {str(run / "base"): "base", str(run): "LRV adapter"}


# -- 4. scoring --------------------------------------------------------------------------------------------------------
def pope(output_dir: Path, data: dict, run: Path, max_new_tokens: int, seed: int) -> dict:
    """POPE on the held-out images: probes from their objects, answered by base and adapter, scored."""
    from .pope.probes import ProbeConfig, build_probes, read_objects, write_probes

    folder = output_dir / "pope"
    probes = folder / "probes.jsonl"
    if not probes.is_file():
        held_out = {row["image_id"] for row in json.loads((data["release"] / "evaluation_set.json").read_text())}
        objects = {k: v for k, v in read_objects(data["release"] / "objects.json").items() if k in held_out}
        write_probes(build_probes(objects, ProbeConfig(seed=seed)), probes)
    _step("pope", f"yes/no object probes on the held-out images -> {probes}")
    answers = folder / "predictions.jsonl"
    infer(run, ["--data", str(probes), "--images", str(data["release"] / "images")], answers, max_new_tokens)
    _cli(["pope", "score", "--probes", str(probes), "--predictions", str(answers), "--output-dir", str(folder)])
    return json.loads((folder / "summary.json").read_text())


def judge_is_set(args: argparse.Namespace) -> bool:
    return bool(args.base_url or os.environ.get(args.api_key_env))


def gavie_command(args: argparse.Namespace, predictions: Path, regions: Path, output: Path, dry_run: bool) -> list:
    argv = ["gavie", "--predictions", str(predictions), "--regions", str(regions), "--judge-model", args.judge_model]
    argv += ["--output-dir", str(output), "--api-key-env", args.api_key_env]
    argv += ["--base-url", args.base_url] if args.base_url else []
    return argv + (["--dry-run"] if dry_run else [])


def gavie_estimates(args: argparse.Namespace, predictions: Path, regions_file: Path, output: Path) -> dict:
    """Judge calls, tokens and cost for this run's predictions and for LRV's full evaluation set (1000 questions)."""
    from .data import load_regions
    from .gavie.score import Prediction, estimate, read_predictions
    from .judge import Judge

    judge = Judge(
        model=args.judge_model,
        base_url=args.base_url,
        api_key_env=args.api_key_env,
        cache_path=output / "judge_cache.sqlite",
    )
    rows = read_predictions(predictions)
    regions = load_regions(regions_file, image_ids={p.image_id for p in rows})
    here = estimate(rows, regions, judge)
    # the real set: 1000 questions x the same two models, ~50 Visual Genome captions per image
    sample_answer = max((p.answer for p in rows), key=len)[:200]
    fake_regions = {
        "vg": [{"caption": "a man wearing a white shirt", "bbox": [204, 439, 51, 52]}] * REAL_REGIONS_PER_IMAGE
    }
    full = (
        [
            Prediction(
                row=2 * i + k,
                image_id="vg",
                question=f"Is there a red store sign on the building behind the man in picture {i}?",
                answer=f"{sample_answer} ({model})",
                model=model,
            )
            for i in range(REAL_EVAL_QUESTIONS)
            for k, model in enumerate(("base", "LRV adapter"))
        ]
        if rows
        else []
    )
    real = estimate(full, fake_regions, judge) if full else None
    return {"here": here, "full": real}


def gavie(args: argparse.Namespace, data: dict, predictions: Path, output_dir: Path) -> dict:
    folder = output_dir / "gavie"
    regions = data["release"] / "vg_annotation.json"
    if judge_is_set(args):
        _step("gavie", f"scoring with {args.judge_model} ({args.base_url or 'OpenAI'}); replies are cached")
        _cli(gavie_command(args, predictions, regions, folder, dry_run=False))
        return {"summary": json.loads((folder / "summary.json").read_text()), "dry_run": False}
    _step("gavie", f"no judge set (${args.api_key_env} or --base-url): dry run, nothing is sent")
    _cli(gavie_command(args, predictions, regions, folder, dry_run=True))
    # the report also prices LRV's full evaluation set, which the command above cannot know
    return {"summary": None, **gavie_estimates(args, predictions, regions, folder), "dry_run": True}


# -- 5. report ---------------------------------------------------------------------------------------------------------
def _pope_by_model(summary: dict, labels: dict[str, str]) -> dict[str, dict]:
    """{label: POPE metrics averaged over the sampling strategies} from pope/summary.json."""
    out = {}
    for model, strategies in summary["models"].items():
        keys = ("accuracy", "precision", "recall", "f1", "yes_ratio")
        figures = {k: _mean([s.get(k) for s in strategies.values()]) for k in keys}
        figures["unknown"] = sum(s.get("unknown", 0) for s in strategies.values())
        out[labels.get(model, model)] = figures
    return out


def _mean(values: list) -> float | None:
    values = [v for v in values if v is not None]
    return sum(values) / len(values) if values else None


def _gavie_by_model(summary: dict | None, labels: dict[str, str]) -> dict[str, dict]:
    if not summary:
        return {}
    return {labels.get(m, m): figures for m, figures in summary.get("by_model", {}).items()}


def _fmt(value, digits: int = 3) -> str:
    return "-" if value is None else f"{value:.{digits}f}" if isinstance(value, float) else str(value)


def plots(output_dir: Path, losses: list[tuple[int, float]], pope_figures: dict, gavie_figures: dict) -> dict:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    paths = {}
    if losses:
        fig, ax = plt.subplots(figsize=(5, 3))
        ax.plot([s for s, _ in losses], [v for _, v in losses], marker="o")
        ax.set_xlabel("step")
        ax.set_ylabel("training loss")
        ax.set_title("tiny/lora-cpu")
        fig.tight_layout()
        paths["loss"] = output_dir / "loss.png"
        fig.savefig(paths["loss"], dpi=110)
        plt.close(fig)
    metrics = [
        ("POPE accuracy", "pope", "accuracy"),
        ("POPE F1", "pope", "f1"),
        ("POPE yes-ratio", "pope", "yes_ratio"),
    ]
    metrics += [("GAVIE accuracy / 10", "gavie", "accuracy"), ("GAVIE relevancy / 10", "gavie", "relevancy")]
    sources = {"pope": pope_figures, "gavie": gavie_figures}
    models = sorted({m for figures in sources.values() for m in figures}, key=lambda m: m != "base")
    rows = [
        (name, src, key)
        for name, src, key in metrics
        if any(sources[src].get(m, {}).get(key) is not None for m in models)
    ]
    if models and rows:
        fig, ax = plt.subplots(figsize=(7, 3.2))
        width = 0.8 / len(models)
        for i, model in enumerate(models):
            values = []
            for _, src, key in rows:
                value = sources[src].get(model, {}).get(key)
                values.append((value or 0.0) / (10 if src == "gavie" else 1))
            ax.bar([j + i * width for j in range(len(rows))], values, width, label=model)
        ax.set_xticks([j + width * (len(models) - 1) / 2 for j in range(len(rows))], [r[0] for r in rows], fontsize=8)
        ax.set_ylim(0, 1)
        ax.legend()
        ax.set_title("base vs LRV adapter (tiny random model: the pipeline, not quality)", fontsize=9)
        fig.tight_layout()
        paths["scores"] = output_dir / "scores.png"
        fig.savefig(paths["scores"], dpi=110)
        plt.close(fig)
    return paths


def write_report(output_dir: Path, args, data, run, losses, pope_summary, gavie_result, seconds) -> Path:
    labels = model_labels(run)
    pope_figures = _pope_by_model(pope_summary, labels)
    gavie_figures = _gavie_by_model(gavie_result["summary"], labels)
    figures = plots(output_dir, losses, pope_figures, gavie_figures)
    models = ["base", "LRV adapter"]
    lines = [
        "# lrv-hf quickstart report",
        "",
        "> **A tiny random model's scores show the pipeline, not quality.** The base here is a 2-layer LLaVA built "
        "from configs and trained for a few dozen steps on a synthetic release; the numbers prove every part ran "
        "end to end, offline, on CPU. See *Do it for real* below.",
        "",
        f"Run in {seconds:.0f} s. Data: {data['train']['rows']} instructions on {data['train']['images']} synthetic "
        f"images (train), {data['test']['rows']} held-out questions on {data['test']['images']} images (evaluation).",
        "",
        "## Base vs LRV adapter",
        "",
        "| metric | " + " | ".join(models) + " |",
        "|---|" + "---|" * len(models),
    ]
    for name, key in [
        ("accuracy", "accuracy"),
        ("precision", "precision"),
        ("recall", "recall"),
        ("F1", "f1"),
        ("yes-ratio", "yes_ratio"),
    ]:
        lines.append(
            f"| POPE {name} (mean of the 3 samplings) | "
            + " | ".join(_fmt(pope_figures.get(m, {}).get(key)) for m in models)
            + " |"
        )
    lines.append(
        "| POPE answers with neither yes nor no (read as yes, as POPE does) | "
        + " | ".join(_fmt(pope_figures.get(m, {}).get("unknown")) for m in models)
        + " |"
    )
    if gavie_figures:
        for key in ("accuracy", "relevancy", "coverage"):
            lines.append(
                f"| GAVIE {key} | " + " | ".join(_fmt(gavie_figures.get(m, {}).get(key), 2) for m in models) + " |"
            )
    lines.append("")

    def cost(estimate) -> str:
        return "unknown (no price for this model)" if estimate.cost_usd is None else f"${estimate.cost_usd:.4f}"

    gavie_dir = output_dir / "gavie"
    if gavie_result["dry_run"]:
        here, full = gavie_result["here"], gavie_result["full"]
        command = "lrv-hf " + shlex.join(
            gavie_command(
                args, output_dir / "predictions.jsonl", data["release"] / "vg_annotation.json", gavie_dir, False
            )
        )
        lines += [
            "## GAVIE (dry run: no judge was set)",
            "",
            f"Scoring this run's {here.requests} answers with `{args.judge_model}` takes {here.calls} judge calls, "
            f"about {here.prompt_tokens:,} prompt + {here.completion_tokens:,} completion tokens: {cost(here)}.",
        ]
        if full is not None:
            lines.append(
                f"LRV's full evaluation set ({REAL_EVAL_QUESTIONS} questions, base + adapter, ~{REAL_REGIONS_PER_IMAGE} "
                f"captions per image): {full.calls:,} calls, ~{full.prompt_tokens:,} prompt tokens, {cost(full)} "
                f"(half that with `--batch`)."
            )
        lines += ["", "Set a judge and run:", "", "```bash", f"export {args.api_key_env}=...", command, "```", ""]
    else:
        lines += ["## GAVIE", "", f"Scored by `{args.judge_model}`; details in `{gavie_dir}/report.md`.", ""]
    if figures:
        lines += ["## Plots", ""] + [f"![{name}]({path.name})" for name, path in figures.items()] + [""]
    lines += [
        "## Do it for real",
        "",
        "The same loop with a real base model and the real data is a change of names:",
        "",
        "```bash",
        "lrv-hf data build --instructions filter_cap.json --images vg/images --regions vg_annotation.json "
        "--output-dir lrv-instruction/",
        "accelerate launch --config_file lrv_hf/recipes/accelerate/single-gpu-fp16.yaml -m lrv_hf.train "
        "--recipe llava-1.5-7b/lora-v100 --dataset_name lrv-instruction/",
        "lrv-hf infer --model llava-hf/llava-1.5-7b-hf --adapter runs/llava-1.5-7b/lora-v100 --both "
        "--data evaluation_set.json --images vg/images --output predictions.jsonl",
        "lrv-hf gavie --predictions predictions.jsonl --regions vg_annotation.json --judge-model gpt-4o "
        "--output-dir runs/gavie --dry-run   # then without --dry-run",
        "```",
        "",
        f"Files: predictions `{output_dir / 'predictions.jsonl'}`, POPE `{output_dir / 'pope'}`, GAVIE `{gavie_dir}`, "
        f"adapter `{run}`.",
    ]
    path = output_dir / "report.md"
    path.write_text("\n".join(lines) + "\n")
    return path


def run(args: argparse.Namespace) -> int:
    import logging

    logging.getLogger("httpx2").setLevel(logging.WARNING)
    start = time.perf_counter()
    output_dir = Path(args.output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    data = build_data(output_dir, num_images=args.num_images, seed=args.seed)
    run_dir = train_adapter(output_dir, data["dataset"], args.max_steps, args.seed)
    losses = loss_history(run_dir)
    if losses:
        _step(
            "train", f"loss {losses[0][1]:.2f} at step {losses[0][0]} -> {losses[-1][1]:.2f} at step {losses[-1][0]}"
        )
    predictions = output_dir / "predictions.jsonl"
    _step("infer", "answering the held-out evaluation questions with the base and the adapter")
    infer(
        run_dir,
        ["--data", str(data["dataset"]), "--config", "evaluation", "--split", "test"],
        predictions,
        args.max_new_tokens,
    )
    pope_summary = pope(output_dir, data, run_dir, args.max_new_tokens, args.seed)
    gavie_result = gavie(args, data, predictions, output_dir)
    report = write_report(
        output_dir, args, data, run_dir, losses, pope_summary, gavie_result, time.perf_counter() - start
    )
    print(f"\nreport: {report}")
    print(f"next: open {report}; for the real thing, see its 'Do it for real' section (a change of names).")
    return 0
