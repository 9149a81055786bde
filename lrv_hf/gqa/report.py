"""GQA judge outputs: summary.json, scores.jsonl (one line per question and model) and a short Markdown report.

The report is for a person: accuracy per model with its 95% interval and coverage, and what the judge cost.
"""

from pathlib import Path


def _accuracy(stats: dict) -> str:
    if stats["accuracy"] is None:
        return "-"
    low, high = stats["accuracy_ci95"]
    return f"{100 * stats['accuracy']:.1f} [{100 * low:.1f}, {100 * high:.1f}]"


def table_lines(summary: dict) -> list[str]:
    """`model | correct / scored | accuracy % [95% CI] | coverage` per model."""
    head = f"{'model':<28} {'correct/scored':>15} {'accuracy % [95% CI]':>22} {'coverage':>9}"
    rows = []
    for model, s in summary["by_model"].items():
        counts = f"{s['correct']}/{s['n_scored']}"
        rows.append(f"{model:<28} {counts:>15} {_accuracy(s):>22} {100 * s['coverage']:>8.1f}%")
    return [head, *rows]


def format_table(summary: dict) -> str:
    """The table the CLI prints, with the judge's usage under it."""
    judge = summary["judge"]
    cost = "unknown price" if judge["cost_usd"] is None else f"${judge['cost_usd']:.4f}"
    foot = (
        f"judge {judge['model']}: {judge['requests']} requests, {judge['cached']} from cache, {judge['paid_calls']} "
        f"paid ({judge['prompt_tokens']} prompt + {judge['completion_tokens']} completion tokens, {cost}), "
        f"{judge['failed_calls']} failed"
    )
    return "\n".join([*table_lines(summary), foot])


def markdown(summary: dict) -> str:
    """report.md: the per-model table, what was left unscored and why, and the judge's usage."""
    lines = [
        "# GQA judge",
        "",
        "Each answer was judged against GQA's correct answer with the LRV release's GQA prompt "
        f"({summary['settings']['prompts']} prompts). Accuracy is over the answers the judge gave a verdict; the "
        "interval is Wilson's 95% interval; unscored answers are counted in the coverage, never as wrong.",
        "",
        "| model | correct / scored | accuracy % [95% CI] | coverage | unscored | not answered |",
        "|---|---|---|---|---|---|",
    ]
    for model, s in summary["by_model"].items():
        lines.append(
            f"| `{model}` | {s['correct']} / {s['n_scored']} | {_accuracy(s)} | {100 * s['coverage']:.1f}% | "
            f"{s['unscored']} | {s['missing']} of {summary['n_references']} |"
        )
    if summary["unscored"]:
        lines += ["", "Unscored: " + ", ".join(f"{n} {reason}" for reason, n in summary["unscored"].items()) + "."]
    judge = summary["judge"]
    cost = "unknown" if judge["cost_usd"] is None else f"${judge['cost_usd']:.4f}"
    lines += [
        "",
        f"Judge `{judge['model']}`: {judge['requests']} requests, {judge['cached']} from cache, {judge['paid_calls']} "
        f"paid, cost this run {cost}.",
        "",
    ]
    return "\n".join(lines)


def write_outputs(output_dir: str | Path, rows: list[dict], summary: dict) -> dict[str, Path]:
    """Write summary.json, scores.jsonl and report.md into `output_dir`."""
    from ..results import write_run

    paths = write_run(output_dir, summary, rows)
    paths["report"] = Path(output_dir) / "report.md"
    paths["report"].write_text(markdown(summary), encoding="utf-8")
    return paths
