"""The quickstart's report: base, positive-only and LRV adapters side by side on POPE, colour probes and GAVIE, the
paired comparison, plots, the real judge's price, the demo's command and the same loop with real names.
"""

import shlex
from pathlib import Path

from ..compare import markdown
from .steps import MODELS, REAL_EVAL_QUESTIONS, REAL_REGIONS_PER_IMAGE


TITLES = {"base": "base", "positive-only": "positive-only", "lrv": "LRV"}


def gavie_command(config, predictions: Path, regions: Path, output_dir: Path) -> str:
    """The `lrv-hf gavie` line that scores these predictions with the configured judge."""
    argv = ["gavie", "--predictions", str(predictions), "--regions", str(regions), "--judge-model", config.judge_model]
    argv += ["--output-dir", str(output_dir), "--api-key-env", config.api_key_env]
    argv += ["--base-url", config.base_url] if config.base_url else []
    return "lrv-hf " + shlex.join(argv)


def side_by_side(pope_summary: dict, gavie_summary: dict | None) -> dict[str, dict]:
    """{model: figures}: POPE's metrics on the object probes, the colour probes' accuracy on wrong colours, GAVIE."""
    figures = {}
    for model in MODELS:
        strategies = pope_summary["models"].get(model, {})
        objects, colours = strategies.get("random", {}), strategies.get("attribute", {})
        negatives = colours.get("tn", 0) + colours.get("fp", 0)
        figures[model] = {
            **{key: objects.get(key) for key in ("accuracy", "precision", "recall", "f1", "yes_ratio", "unknown")},
            "attribute_accuracy": colours.get("accuracy"),
            "attribute_negative_accuracy": colours["tn"] / negatives if negatives else None,
            **{
                f"gavie_{k}": (gavie_summary or {}).get("by_model", {}).get(model, {}).get(k)
                for k in ("accuracy", "relevancy")
            },
        }
    return figures


def _fmt(value, digits: int = 3) -> str:
    return "-" if value is None else f"{value:.{digits}f}" if isinstance(value, float) else str(value)


def plots(output_dir: Path, losses: dict, figures: dict) -> dict:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    paths = {}
    if any(losses.values()):
        fig, ax = plt.subplots(figsize=(5, 3))
        for name, history in losses.items():
            ax.plot([s for s, _ in history], [v for _, v in history], marker="o", label=TITLES[name])
        ax.set_xlabel("step")
        ax.set_ylabel("training loss")
        ax.set_title("tiny/lora-cpu")
        ax.legend()
        fig.tight_layout()
        paths["loss"] = output_dir / "loss.png"
        fig.savefig(paths["loss"], dpi=110)
        plt.close(fig)
    metrics = [
        ("POPE accuracy", "accuracy", 1),
        ("POPE F1", "f1", 1),
        ("POPE yes-ratio", "yes_ratio", 1),
        ("wrong colour\nanswered no", "attribute_negative_accuracy", 1),
        ("GAVIE accuracy / 10", "gavie_accuracy", 10),
        ("GAVIE relevancy / 10", "gavie_relevancy", 10),
    ]
    rows = [row for row in metrics if any(figures[m][row[1]] is not None for m in MODELS)]
    fig, ax = plt.subplots(figsize=(8, 3.4))
    width = 0.8 / len(MODELS)
    for i, model in enumerate(MODELS):
        values = [(figures[model][key] or 0.0) / scale for _, key, scale in rows]
        ax.bar([j + i * width for j in range(len(rows))], values, width, label=TITLES[model])
    ax.axhline(0.5, color="grey", linewidth=0.8, linestyle=":")
    ax.set_xticks([j + width for j in range(len(rows))], [r[0] for r in rows], fontsize=8)
    ax.set_ylim(0, 1)
    ax.legend(fontsize=8)
    ax.set_title("held-out images: base vs positive-only vs LRV adapter", fontsize=9)
    fig.tight_layout()
    paths["scores"] = output_dir / "scores.png"
    fig.savefig(paths["scores"], dpi=110)
    plt.close(fig)
    return paths


def write_report(
    output_dir: Path, config, data, runs, losses, pope_summary, gavie_result, comparison, opening, seconds
) -> Path:
    """report.md (+ loss.png, scores.png, compare/): the three models side by side, paired, priced, and for real."""
    figures = side_by_side(pope_summary, gavie_result["summary"])
    plot_paths = plots(output_dir, losses, figures)
    offline = gavie_result["offline"]
    judge_name = "offline stand-in judge" if offline else config.judge_model
    n_objects = pope_summary["models"]["lrv"]["random"]["n"]
    n_colours = pope_summary["models"]["lrv"].get("attribute", {}).get("n", 0)
    lines = [
        "# lrv-hf quickstart report",
        "",
        "> **A miniature, not a benchmark.** The base is a 1 MB LLaVA pre-trained on synthetic scenes of coloured "
        "shapes (`lrv_hf.testing.tiny_base`), tuned here twice with LoRA: on the LRV file without its negative rows "
        "(*positive-only*, how LLaVA-style data looks) and on all of it (*LRV*). The figures are whatever this run "
        "measured on held-out images; they show what LRV's evaluation measures, not what a 7B model scores.",
        "",
        f"Run in {seconds:.0f} s. Data: positive-only {data['train']['positive-only']['rows']} and LRV "
        f"{data['train']['lrv']['rows']} instructions on {data['train']['lrv']['images']} synthetic images; "
        f"{data['test']['rows']} GAVIE questions, {n_objects} object probes and {n_colours} colour probes on "
        f"{data['test']['images']} held-out images.",
        "",
        "## Base vs positive-only vs LRV",
        "",
        "| metric | " + " | ".join(TITLES[m] for m in MODELS) + " |",
        "|---|" + "---|" * len(MODELS),
    ]
    rows = [
        ("POPE accuracy", "accuracy", 3),
        ("POPE precision", "precision", 3),
        ("POPE recall", "recall", 3),
        ("POPE F1", "f1", 3),
        ("POPE yes-ratio (0.5 is unbiased)", "yes_ratio", 3),
        ("POPE answers with neither yes nor no (read as yes, as POPE does)", "unknown", 3),
        ("colour probes: accuracy", "attribute_accuracy", 3),
        ("colour probes: wrong colour of a drawn object answered no (attribute negatives)",
         "attribute_negative_accuracy", 3),
        (f"GAVIE accuracy (0-10, {judge_name})", "gavie_accuracy", 2),
        (f"GAVIE relevancy (0-10, {judge_name})", "gavie_relevancy", 2),
    ]  # fmt: skip
    for title, key, digits in rows:
        lines.append(f"| {title} | " + " | ".join(_fmt(figures[m][key], digits) for m in MODELS) + " |")
    lines += [
        "",
        "## Paired comparison",
        "",
        "Each model against positive-only on the same probes and questions (`pope/random`: object probes, "
        "`pope/attribute`: colour probes; `GAVIE accuracy` / `GAVIE relevancy`: judge scores).",
        "",
        markdown(comparison, "compare/comparison.png").rstrip(),
        "",
    ]

    def cost(estimate) -> str:
        return "unknown (no price for this model)" if estimate.cost_usd is None else f"${estimate.cost_usd:.4f}"

    gavie_dir = output_dir / "gavie"
    if offline:
        here, full = gavie_result["here"], gavie_result["full"]
        predictions, regions = output_dir / "answers" / "predictions.jsonl", data["release"] / "vg_annotation.json"
        command = gavie_command(config, predictions, regions, output_dir / f"gavie-{config.judge_model}")
        lines += [
            "## GAVIE (offline stand-in judge: no judge was set)",
            "",
            "No key or base URL was set, so GAVIE was scored by an **offline stand-in judge** "
            "(`lrv_hf.quickstart.offline_judge`, served on 127.0.0.1): it checks the colours and shapes each answer "
            "asserts or denies against the image's dense captions. It is deterministic and only meaningful on this "
            "synthetic data; it is not GPT-4 and its scores do not compare with the paper's.",
            "",
            f"Scoring this run's {here.requests} answers with `{config.judge_model}` takes {here.calls} judge calls, "
            f"about {here.prompt_tokens:,} prompt + {here.completion_tokens:,} completion tokens: {cost(here)} (dry run, "
            "nothing was sent).",
            f"LRV's full evaluation set ({REAL_EVAL_QUESTIONS} questions, base + two adapters, ~{REAL_REGIONS_PER_IMAGE} "
            f"captions per image): {full.calls:,} calls, ~{full.prompt_tokens:,} prompt tokens, {cost(full)} "
            f"(half that with `--batch`).",
            "",
            "Set a judge and run:",
            "",
            "```bash",
            f"export {config.api_key_env}=...",
            command,
            "```",
            "",
        ]
    else:
        lines += ["## GAVIE", "", f"Scored by `{config.judge_model}`; details in `{gavie_dir}/report.md`.", ""]
    found = (
        f"On held-out image {opening['image'].stem}, asked *{opening['question']}*, the positive-only adapter says "
        "yes and the LRV adapter says no (found in this run's probe answers)."
        if opening["separates"]
        else f"No held-out probe separated the two adapters in this run; the demo opens on image "
        f"{opening['image'].stem} with a question about an object that is absent (*{opening['question']}*)."
    )
    lines += ["## Try it", "", found, "", "```bash", opening["command"], "```", ""]
    if plot_paths:
        lines += ["## Plots", ""] + [f"![{name}]({path.name})" for name, path in plot_paths.items()] + [""]
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
        f"Files: base `{runs['base']}`, adapters `{runs['positive-only']}` and `{runs['lrv']}`, answers "
        f"`{output_dir / 'answers'}`, POPE `{output_dir / 'pope'}`, GAVIE `{gavie_dir}`, comparison "
        f"`{output_dir / 'compare'}`.",
    ]
    path = output_dir / "report.md"
    path.write_text("\n".join(lines) + "\n")
    return path
