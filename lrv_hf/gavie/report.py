"""GAVIE outputs: summary.json, scores.jsonl, and a short Markdown report with a per-task plot.

The report is for a person: the headline with its confidence interval, the coverage, the breakdowns and one figure.
"""

from pathlib import Path


def _fmt(value, digits: int = 2) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def _ci(stats: dict, criterion: str) -> str:
    ci = stats.get(f"{criterion}_ci95")
    mean = _fmt(stats.get(criterion))
    return mean if ci is None else f"{mean} [{ci[0]:.2f}, {ci[1]:.2f}]"


def table_lines(summary: dict) -> list[str]:
    """Rows of `name | n scored / n | accuracy [CI] | relevancy [CI]` for the overall figure and each breakdown."""
    lines = [("all", summary)]
    for name, label in (("by_task", "task"), ("by_polarity", "polarity"), ("by_model", "model")):
        for key, stats in (summary.get(name) or {}).items():
            lines.append((f"{label}={key}", stats))
    return [
        f"{name:<28} {stats['n_scored']:>6}/{stats['n']:<6} {_ci(stats, 'accuracy'):>22} {_ci(stats, 'relevancy'):>22}"
        for name, stats in lines
    ]


def format_table(summary: dict) -> str:
    """The final summary table the CLI prints."""
    head = f"{'':<28} {'scored/n':>13} {'accuracy [95% CI]':>22} {'relevancy [95% CI]':>22}"
    judge = summary["judge"]
    cost = "unknown price" if judge["cost_usd"] is None else f"${judge['cost_usd']:.4f}"
    foot = (
        f"judge {judge['model']}: {judge['requests']} requests, {judge['cached']} from cache, "
        f"{judge['paid_calls']} paid ({judge['prompt_tokens']} prompt + {judge['completion_tokens']} completion "
        f"tokens, {cost}), {judge['failed_calls']} failed"
    )
    noise = summary.get("judge_noise")
    if noise:
        foot += (
            f"\njudge noise over {noise['draws']} draws: accuracy run spread {noise['accuracy']['run_spread']:.2f}, "
            f"relevancy run spread {noise['relevancy']['run_spread']:.2f}"
        )
    return "\n".join([head, *table_lines(summary), foot])


def plot(summary: dict, path: Path) -> Path | None:
    """Bars of accuracy and relevancy with 95% CIs, per task (else per polarity, per model, or overall)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    if summary.get("by_model_and_task"):
        return _plot_models(summary, path, plt)
    groups = summary.get("by_task") or summary.get("by_polarity") or summary.get("by_model") or {"all": summary}
    names = [name for name, stats in groups.items() if stats["n_scored"]]
    if not names:
        return None
    fig, ax = plt.subplots(figsize=(max(4.0, 1.2 * len(names) + 2), 3.6))
    width = 0.38
    for offset, criterion, color in ((-width / 2, "accuracy", "#3b75af"), (width / 2, "relevancy", "#ef8636")):
        means = [groups[n][criterion] for n in names]
        cis = [groups[n][f"{criterion}_ci95"] for n in names]
        errors = [[m - c[0] for m, c in zip(means, cis)], [c[1] - m for m, c in zip(means, cis)]]
        xs = [i + offset for i in range(len(names))]
        ax.bar(xs, means, width, yerr=errors, capsize=3, label=criterion, color=color)
    ax.set_xticks(range(len(names)))
    ax.set_xticklabels([f"{n}\n(n={groups[n]['n_scored']})" for n in names], fontsize=8)
    ax.set_ylim(0, 10)
    ax.set_ylabel("GAVIE score (0-10)")
    ax.set_title(f"GAVIE, judge {summary['judge']['model']}: {summary['n_scored']}/{summary['n']} scored", fontsize=9)
    ax.legend(fontsize=8, loc="lower right")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def _bars(ax, groups: list[dict | None], offset: float, width: float, criterion: str, **style):
    """One bar per group (skipping groups with nothing scored) with its 95% CI as the error bar."""
    for i, stats in enumerate(groups):
        if not stats or not stats["n_scored"]:
            continue
        low, high = stats[f"{criterion}_ci95"]
        mean = stats[criterion]
        ax.bar(i + offset, mean, width, yerr=[[mean - low], [high - mean]], capsize=3, **style)
        style.pop("label", None)  # one legend entry per series


def _plot_models(summary: dict, path: Path, plt) -> Path:
    """Several models: per task, one bar per model, accuracy and relevancy side by side."""
    table = summary["by_model_and_task"]
    models = list(table)
    tasks = sorted({task for per_task in table.values() for task in (per_task or {})})
    fig, axes = plt.subplots(1, 2, figsize=(max(6.0, 1.4 * len(tasks) * 2 + 2), 3.8), sharey=True)
    width = 0.8 / len(models)
    colors = plt.get_cmap("tab10").colors
    for ax, criterion in zip(axes, ("accuracy", "relevancy")):
        for m, model in enumerate(models):
            groups = [(table[model] or {}).get(task) for task in tasks]
            offset = (m - (len(models) - 1) / 2) * width
            _bars(ax, groups, offset, width, criterion, label=model, color=colors[m % len(colors)])
        ax.set_xticks(range(len(tasks)))
        ax.set_xticklabels(tasks, fontsize=8, rotation=20 if len(tasks) > 4 else 0)
        ax.set_ylim(0, 10)
        ax.set_title(criterion, fontsize=9)
    axes[0].set_ylabel("GAVIE score (0-10), 95% CI")
    axes[1].legend(fontsize=8, loc="lower right")
    fig.suptitle(f"GAVIE per task and model, judge {summary['judge']['model']}: "
                 f"{summary['n_scored']}/{summary['n']} scored", fontsize=9)  # fmt: skip
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def markdown(summary: dict, figure: str | None) -> str:
    settings = summary["settings"]
    coverage = summary["coverage"] or 0.0
    lines = [
        "# GAVIE report",
        "",
        f"**Accuracy {_ci(summary, 'accuracy')}** and **relevancy {_ci(summary, 'relevancy')}** (0-10, mean "
        f"[95% bootstrap CI]) over {summary['n_scored']} of {summary['n']} answers "
        f"({100 * coverage:.1f}% coverage), judged by `{summary['judge']['model']}`.",
        "",
    ]
    if summary["unscored"]:
        lines += [
            "Unscored answers (left out of every mean, never counted as 0): "
            + ", ".join(f"{n} {reason}" for reason, n in summary["unscored"].items())
            + ".",
            "",
        ]
    if figure:
        lines += [f"![GAVIE per group]({figure})", ""]
    lines += ["| group | scored / n | accuracy [95% CI] | relevancy [95% CI] |", "|---|---|---|---|"]
    lines.append(f"| all | {summary['n_scored']} / {summary['n']} | {_ci(summary, 'accuracy')} | "
                 f"{_ci(summary, 'relevancy')} |")  # fmt: skip
    for name, label in (("by_task", "task"), ("by_polarity", "polarity"), ("by_model", "model")):
        for key, stats in (summary.get(name) or {}).items():
            lines.append(
                f"| {label} `{key}` | {stats['n_scored']} / {stats['n']} | {_ci(stats, 'accuracy')} | "
                f"{_ci(stats, 'relevancy')} |"
            )
    noise = summary.get("judge_noise")
    if noise:
        lines += [
            "",
            f"Judge noise: {noise['draws']} draws per prompt; the draw means differ by up to "
            f"{noise['accuracy']['run_spread']:.2f} (accuracy) and {noise['relevancy']['run_spread']:.2f} "
            f"(relevancy); a difference between two models smaller than that is judge noise.",
        ]
    judge = summary["judge"]
    cost = "unknown" if judge["cost_usd"] is None else f"${judge['cost_usd']:.4f}"
    lines += [
        "",
        f"Settings: {settings['answers_per_prompt']} answers per prompt, "
        f"{'legacy (released, Height = width)' if settings['legacy_prompt'] else 'corrected'} prompt, "
        f"{settings['judge_samples']} draw(s), up to {settings['max_reasks']} re-asks. Judge: {judge['requests']} "
        f"requests, {judge['cached']} from cache, {judge['paid_calls']} paid, cost this run {cost}.",
        "",
    ]
    return "\n".join(lines)


def write_outputs(output_dir: str | Path, rows: list[dict], summary: dict) -> dict[str, Path]:
    """Write summary.json, scores.jsonl, report.md and report.png into `output_dir`."""
    from ..results import write_run

    out = Path(output_dir)
    paths = write_run(out, summary, rows)
    figure = plot(summary, out / "report.png")
    if figure is not None:
        paths["plot"] = figure
    paths["report"] = out / "report.md"
    paths["report"].write_text(markdown(summary, figure.name if figure else None), encoding="utf-8")
    return paths
