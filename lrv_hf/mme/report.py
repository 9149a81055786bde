"""MME outputs: summary.json, scores.jsonl (one row per scored answer), report.md with a per-category table and plot.

The plot is a bar chart of each category's score (acc + acc+, max 200), one bar per model.
"""

from pathlib import Path

from .data import COGNITION, PERCEPTION


def _fmt(value) -> str:
    return "—" if value is None else f"{value:.2f}"


def _ordered(categories) -> list[str]:
    known = [c for c in PERCEPTION + COGNITION if c in categories]
    return known + sorted(set(categories) - set(known))


def markdown(summary: dict, figure: str | None) -> str:
    lines = ["# MME", ""]
    data = summary["data"]
    lines.append(f"{data['questions']} questions on {data['images']} images from `{data['source']}`, scored as MME's "
                 "`eval_tool/calculation.py`: score = acc + acc+ (x100) per category; perception sums 10 categories "
                 "(max 2000), cognition 4 (max 800).")  # fmt: skip
    if summary["unmatched_predictions"]:
        lines += [
            "",
            f"{summary['unmatched_predictions']} prediction rows matched no MME question and were not scored.",
        ]
    models = summary["models"]
    lines += ["", "| model | perception | cognition | other answers | missing images |", "|---|---|---|---|---|"]
    for model, figures in models.items():
        lines.append(f"| {model} | {_fmt(figures['perception'])} ({figures['perception_categories']}/10) | "
                     f"{_fmt(figures['cognition'])} ({figures['cognition_categories']}/4) | "
                     f"{figures['other_answers']} | {figures['missing_images']} |")  # fmt: skip
    incomplete = [m for m, f in models.items() if not f["complete"]]
    if incomplete:
        lines += ["", f"**Incomplete:** {', '.join(incomplete)} left images unanswered (one or both questions); "
                  "those images are not scored, so the totals are not comparable with published MME scores."]  # fmt: skip
    categories = _ordered({c for f in models.values() for c in f["categories"]})
    for model, figures in models.items():
        lines += ["", f"## {model}", "", "| category | acc | acc+ | score | images | missing | other |",
                  "|---|---|---|---|---|---|---|"]  # fmt: skip
        for category in categories:
            c = figures["categories"].get(category)
            if c is None:
                lines.append(f"| {category} | — | — | — | 0 | — | — |")
                continue
            lines.append(f"| {category} | {_fmt(c['acc'])} | {_fmt(c['acc_plus'])} | {_fmt(c['score'])} | "
                         f"{c['images']} | {len(c['missing_images'])} | {c['other_answers']} |")  # fmt: skip
    if figure:
        lines += ["", f"![MME score per category]({figure})"]
    if "comparison" in summary:
        from ..compare import markdown as comparison_markdown

        lines += ["", "## Paired comparison", "", comparison_markdown(summary["comparison"]).rstrip()]
    return "\n".join(lines) + "\n"


def plot(summary: dict, path: Path) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    models = summary["models"]
    categories = _ordered({c for f in models.values() for c in f["categories"]})
    width = 0.8 / max(len(models), 1)
    fig, ax = plt.subplots(figsize=(max(6, min(12, 0.75 * len(categories))), 4))
    for k, (model, figures) in enumerate(models.items()):
        values = [(figures["categories"].get(c) or {}).get("score") or 0.0 for c in categories]
        ax.bar([i + k * width for i in range(len(categories))], values, width, label=model)
    ax.set_xticks([i + width * (len(models) - 1) / 2 for i in range(len(categories))], categories, rotation=45,
                  ha="right", fontsize=8)  # fmt: skip
    ax.set_ylim(0, 200)
    ax.set_ylabel("acc + acc+ (max 200)")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def write_outputs(output_dir: str | Path, summary: dict, rows: list[dict]) -> dict[str, Path]:
    """Write summary.json, scores.jsonl, report.md and report.png into `output_dir`."""
    from ..results import write_run

    paths = write_run(output_dir, summary, rows)
    paths["plot"] = plot(summary, Path(output_dir) / "report.png")
    paths["report"] = Path(output_dir) / "report.md"
    paths["report"].write_text(markdown(summary, paths["plot"].name), encoding="utf-8")
    return paths
