"""The quickstart's report: base vs LRV adapter on POPE and GAVIE, plots, the GAVIE price of a dry run, and the same
loop with real names.
"""

import shlex
from pathlib import Path

from .steps import REAL_EVAL_QUESTIONS, REAL_REGIONS_PER_IMAGE, model_labels


def gavie_command(config, predictions: Path, regions: Path) -> str:
    """The `lrv-hf gavie` line that scores these predictions with the configured judge."""
    argv = ["gavie", "--predictions", str(predictions), "--regions", str(regions), "--judge-model", config.judge_model]
    argv += ["--output-dir", str(predictions.parent / "gavie"), "--api-key-env", config.api_key_env]
    argv += ["--base-url", config.base_url] if config.base_url else []
    return "lrv-hf " + shlex.join(argv)


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


def write_report(output_dir: Path, config, data, run, losses, pope_summary, gavie_result, seconds) -> Path:
    """report.md (+ loss.png, scores.png): base vs adapter, GAVIE (or its price), and the same loop for real."""
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
        command = gavie_command(config, output_dir / "predictions.jsonl", data["release"] / "vg_annotation.json")
        lines += [
            "## GAVIE (dry run: no judge was set)",
            "",
            f"Scoring this run's {here.requests} answers with `{config.judge_model}` takes {here.calls} judge calls, "
            f"about {here.prompt_tokens:,} prompt + {here.completion_tokens:,} completion tokens: {cost(here)}.",
        ]
        if full is not None:
            lines.append(
                f"LRV's full evaluation set ({REAL_EVAL_QUESTIONS} questions, base + adapter, ~{REAL_REGIONS_PER_IMAGE} "
                f"captions per image): {full.calls:,} calls, ~{full.prompt_tokens:,} prompt tokens, {cost(full)} "
                f"(half that with `--batch`)."
            )
        lines += ["", "Set a judge and run:", "", "```bash", f"export {config.api_key_env}=...", command, "```", ""]
    else:
        lines += ["## GAVIE", "", f"Scored by `{config.judge_model}`; details in `{gavie_dir}/report.md`.", ""]
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
