"""Paired comparison of two scored runs of the same benchmark (GAVIE, POPE, MME, GQA judge) on the items both scored.

Right/wrong outcomes (POPE, MME, GQA judge) get an exact McNemar test on the discordant pairs; GAVIE's 0-10 scores a
paired bootstrap CI of the mean difference, set against the judge's own run-to-run spread (`--judge-samples`).
"""

import json
import math
from dataclasses import dataclass
from pathlib import Path

from .errors import InputError


ALPHA = 0.05
RESAMPLES = 2000
SCORERS = ("gavie", "pope", "mme", "gqa-judge")


@dataclass
class Run:
    """One scorer's output folder: its `summary.json` and the rows of its `scores.jsonl`."""

    path: Path
    scorer: str
    summary: dict
    rows: list[dict]

    @property
    def models(self) -> list[str]:
        return sorted({str(row.get("model") or "model") for row in self.rows})


def _scorer(summary: dict, path: Path) -> str:
    if summary.get("scorer") in SCORERS:
        return summary["scorer"]
    # runs written before the scorers named themselves
    if "judge" in summary and "settings" in summary and "accuracy" in summary:
        return "gavie"
    if "unknown_as" in summary and "models" in summary:
        return "pope"
    raise InputError(f"{path / 'summary.json'}: not the summary of a GAVIE, POPE, MME or GQA judge run")


def load_run(path: str | Path) -> Run:
    """Read a scorer's output folder (`summary.json` + `scores.jsonl`)."""
    path = Path(path)
    for name in ("summary.json", "scores.jsonl"):
        if not (path / name).is_file():
            raise InputError(
                f"{path}: no {name}; give the output folder of `lrv-hf gavie|pope score|mme score|gqa-judge`"
            )
    try:
        summary = json.loads((path / "summary.json").read_text(encoding="utf-8"))
    except json.JSONDecodeError as err:
        raise InputError(f"{path / 'summary.json'}: invalid JSON ({err.msg})") from None
    rows = []
    with open(path / "scores.jsonl", encoding="utf-8") as handle:
        for number, line in enumerate(handle, start=1):
            if line.strip():
                try:
                    rows.append(json.loads(line))
                except json.JSONDecodeError as err:
                    raise InputError(f"{path / 'scores.jsonl'}: line {number}: invalid JSON ({err.msg})") from None
    return Run(path, _scorer(summary, path), summary, rows)


# -- per-item outcomes ---------------------------------------------------------------------------------------------
def outcomes(run: Run, model: str) -> dict[str, dict]:
    """`{metric: {item key: (value, reference)}}` for one model: value is right/wrong (`bool`) or a 0-10 score.

    Items a run could not score (GAVIE unscored, GQA unscored, POPE unknowns under `exclude`) are absent: a pair
    needs both values.
    """
    metrics: dict[str, dict] = {}

    def put(metric, key, value, reference=None):
        table = metrics.setdefault(metric, {})
        if key in table:
            raise InputError(f"{run.path / 'scores.jsonl'}: model {model!r} scores {key!r} twice")
        table[key] = (value, reference)

    unknown_as = run.summary.get("unknown_as", "yes")
    for row in run.rows:
        if str(row.get("model") or "model") != model:
            continue
        if run.scorer == "mme":
            put("mme", (row["question_id"], row["question"]), bool(row["correct"]), row["reference"])
        elif run.scorer == "pope":
            if row.get("unknown") and unknown_as == "exclude":
                continue
            right = row["predicted"] == row["label"] and not (row.get("unknown") and unknown_as == "wrong")
            item = row.get("question_id") or (row["image_id"], row["question"])
            put(f"pope/{row.get('strategy') or 'all'}", json.dumps(item), right, row["label"])
        elif run.scorer == "gqa-judge":
            if row.get("verdict") in ("correct", "incorrect"):
                put("gqa-judge", str(row["question_id"]), row["verdict"] == "correct", row.get("reference"))
        elif row.get("scored"):
            for criterion in ("accuracy", "relevancy"):
                put(criterion, (str(row["image_id"]), row["question"]), float(row[criterion]))
    return metrics


# -- statistics ----------------------------------------------------------------------------------------------------
def mcnemar(a_only: int, b_only: int) -> float:
    """Exact two-sided McNemar p-value: the discordant pairs against Binomial(a_only + b_only, 1/2)."""
    n = a_only + b_only
    if n == 0:
        return 1.0
    tail = sum(math.comb(n, k) for k in range(min(a_only, b_only) + 1))
    return min(1.0, 2 * tail / 2**n)  # exact integers; the one division rounds once


def paired_bootstrap(differences: list[float], seed: int = 0, resamples: int = RESAMPLES) -> list[float]:
    """95% percentile-bootstrap interval of the mean paired difference (items resampled with their pair)."""
    import numpy as np

    data = np.asarray(differences, dtype=float)
    rng = np.random.default_rng(seed)
    # in chunks: 2000 resamples of GQA's 12.5k questions at once would be a 200 MB index array
    chunk = max(1, 2_000_000 // len(data))
    means = np.concatenate([
        data[rng.integers(0, len(data), size=(min(chunk, resamples - start), len(data)))].mean(axis=1)
        for start in range(0, resamples, chunk)
    ])  # fmt: skip
    low, high = np.percentile(means, [2.5, 97.5])
    return [float(low), float(high)]


def _p(p: float) -> str:
    return f"p = {p:.2g}"


def compare_metric(a: dict, b: dict, names: tuple[str, str], judge_spread: float | None = None, seed: int = 0):
    """The paired section of one metric: both runs' values on the items both scored, the difference (B - A) with a
    bootstrap 95% CI, McNemar for right/wrong outcomes, and a one-line verdict."""
    shared = sorted(set(a) & set(b), key=repr)
    if not shared:
        raise InputError("the two runs share no scored item: were they made on the same data?")
    for key in shared:
        if a[key][1] != b[key][1]:
            raise InputError(f"the runs disagree on the reference of {key!r}: they were scored on different data")
    binary = isinstance(a[shared[0]][0], bool)
    values_a = [float(a[k][0]) for k in shared]
    values_b = [float(b[k][0]) for k in shared]
    diffs = [vb - va for va, vb in zip(values_a, values_b)]
    section = {
        "kind": "accuracy" if binary else "score",
        "paired_items": len(shared),
        "only_in_a": len(set(a) - set(b)),
        "only_in_b": len(set(b) - set(a)),
        "a": sum(values_a) / len(shared),
        "b": sum(values_b) / len(shared),
        "difference": sum(diffs) / len(shared),
        "ci95": paired_bootstrap(diffs, seed=seed),
    }
    better = names[1] if section["difference"] > 0 else names[0]
    if binary:
        a_only = sum(va > vb for va, vb in zip(values_a, values_b))
        b_only = sum(vb > va for va, vb in zip(values_a, values_b))
        section.update(a_only_right=a_only, b_only_right=b_only, p_value=mcnemar(a_only, b_only))
        significant = section["p_value"] < ALPHA
        section["verdict"] = f"{better} better, {_p(section['p_value'])}" if significant else (
            f"no detectable difference ({_p(section['p_value'])})")  # fmt: skip
        return section
    low, high = section["ci95"]
    section["judge_spread"] = judge_spread
    section["within_judge_spread"] = None if judge_spread is None else abs(section["difference"]) <= judge_spread
    if low > 0 or high < 0:
        section["verdict"] = f"{better} better, 95% CI [{low:+.2f}, {high:+.2f}]"
        if section["within_judge_spread"]:
            section["verdict"] += f", but within the judge's run-to-run spread ({judge_spread:.2f})"
        elif judge_spread is None:
            section["verdict"] += " (judge spread unknown: score with --judge-samples 3 to see it)"
    else:
        section["verdict"] = f"no detectable difference (95% CI [{low:+.2f}, {high:+.2f}])"
    return section


def _judge_spread(summaries: list[dict], criterion: str) -> float | None:
    spreads = [s["judge_noise"][criterion]["run_spread"] for s in summaries if s.get("judge_noise")]
    return max(spreads) if spreads else None


def _section(run_a: Run, model_a: str, run_b: Run, model_b: str, names: tuple[str, str], seed: int) -> dict:
    a, b = outcomes(run_a, model_a), outcomes(run_b, model_b)
    metrics = {}
    for metric in sorted(set(a) | set(b)):
        if metric not in a or metric not in b:
            raise InputError(f"metric {metric!r} is scored in only one run: were they made on the same data?")
        spread = _judge_spread([run_a.summary, run_b.summary], metric) if run_a.scorer == "gavie" else None
        metrics[metric] = compare_metric(a[metric], b[metric], names, spread, seed)
    return metrics


def _pick(run: Run, model: str | None, name: str) -> str:
    models = run.models
    if model is None:
        if len(models) != 1:
            raise InputError(f"{run.path} holds models {', '.join(models)}; choose one with `{name}`")
        return models[0]
    if model not in models:
        raise InputError(f"{run.path} has no model {model!r} (`{name}`); it holds {', '.join(models)}")
    return model


def _check_same_data(run_a: Run, run_b: Run):
    if run_a.scorer != run_b.scorer:
        raise InputError(f"{run_a.path} is a {run_a.scorer} run but {run_b.path} a {run_b.scorer} run")
    identities = [r.summary.get("identity") or {} for r in (run_a, run_b)]
    prints = [
        (i.get("data") or {}).get("fingerprint") or (r.summary.get("data") or {}).get("fingerprint")
        for i, r in zip(identities, (run_a, run_b))
    ]
    if None not in prints and prints[0] != prints[1]:
        raise InputError(
            f"{run_a.path} and {run_b.path} scored different data (fingerprints {prints[0]} and {prints[1]})"
        )
    if run_a.scorer in ("gavie", "gqa-judge"):
        judges = [
            (i.get("judge") or {}).get("model") or r.summary.get("judge", {}).get("model")
            for i, r in zip(identities, (run_a, run_b))
        ]
        if judges[0] != judges[1]:  # scores from two judges are not on one scale
            raise InputError(f"{run_a.path} was judged by {judges[0]} but {run_b.path} by {judges[1]}")


def compare_runs(run_a, run_b, model_a: str | None = None, model_b: str | None = None, seed: int = 0) -> dict:
    """Compare run B against run A (two output folders of the same scorer) on the items both scored.

    Args:
        run_a, run_b (`str`, `Path` or `Run`): the two output folders.
        model_a, model_b (`str`, *optional*): which model of a multi-model run; required when a run holds several.
        seed (`int`, *optional*, defaults to `0`): the bootstrap's seed (same seed, same interval).
    """
    run_a = run_a if isinstance(run_a, Run) else load_run(run_a)
    run_b = run_b if isinstance(run_b, Run) else load_run(run_b)
    _check_same_data(run_a, run_b)
    model_a, model_b = _pick(run_a, model_a, "model_a"), _pick(run_b, model_b, "model_b")
    names = (model_a, model_b) if model_a != model_b else (run_a.path.name, run_b.path.name)
    return {
        "scorer": run_a.scorer,
        "a": {"run": str(run_a.path), "model": model_a, "name": names[0]},
        "b": {"run": str(run_b.path), "model": model_b, "name": names[1]},
        "alpha": ALPHA,
        "metrics": _section(run_a, model_a, run_b, model_b, names, seed),
    }


def compare_models(run, baseline: str | None = None, seed: int = 0) -> dict:
    """The same section inside one multi-model run: every model against `baseline` (defaults to the first model).

    Returns:
        `dict`: `{"baseline", "alpha", "models": {model: {metric: section}}}`.
    """
    run = run if isinstance(run, Run) else load_run(run)
    models = run.models
    baseline = _pick(run, baseline, "baseline") if baseline is not None else models[0]
    return {
        "scorer": run.scorer,
        "baseline": baseline,
        "alpha": ALPHA,
        "models": {m: _section(run, baseline, run, m, (baseline, m), seed) for m in models if m != baseline},
    }


# -- outputs -------------------------------------------------------------------------------------------------------
def _value(section: dict, key: str) -> str:
    value = section[key]
    return f"{100 * value:.2f}%" if section["kind"] == "accuracy" else f"{value:.2f}"


def _rows(pairs: list[tuple[str, str, str, dict]]) -> list[str]:
    lines = ["| A | B | metric | A | B | B - A [95% CI] | pairs | A only right / B only right | verdict |",
             "|---|---|---|---|---|---|---|---|---|"]  # fmt: skip
    for name_a, name_b, metric, s in pairs:
        scale = 100 if s["kind"] == "accuracy" else 1
        low, high = (scale * v for v in s["ci95"])
        discordant = f"{s['a_only_right']} / {s['b_only_right']}" if s["kind"] == "accuracy" else "—"
        lines.append(f"| {name_a} | {name_b} | {metric} | {_value(s, 'a')} | {_value(s, 'b')} | "
                     f"{scale * s['difference']:+.2f} [{low:+.2f}, {high:+.2f}] | {s['paired_items']} | "
                     f"{discordant} | {s['verdict']} |")  # fmt: skip
    return lines


def comparison_pairs(comparison: dict) -> list[tuple[str, str, str, dict]]:
    """(name A, name B, metric, section) for every row of a `compare_runs` or `compare_models` result."""
    if "models" in comparison:
        base = comparison["baseline"]
        return [(base, m, metric, s) for m, metrics in comparison["models"].items() for metric, s in metrics.items()]
    a, b = comparison["a"]["name"], comparison["b"]["name"]
    return [(a, b, metric, s) for metric, s in comparison["metrics"].items()]


def markdown(comparison: dict, figure: str | None = None) -> str:
    """The paired section as Markdown (a table and the verdicts); the scorers' reports embed it as is."""
    lines = [f"Paired comparison ({comparison['scorer']}) on the items both sides scored; accuracies get an exact "
             f"McNemar test on the discordant pairs, scores a paired bootstrap 95% CI; alpha = {comparison['alpha']}.",
             ""] + _rows(comparison_pairs(comparison))  # fmt: skip
    spreads = [s.get("judge_spread") for *_, s in comparison_pairs(comparison) if s["kind"] == "score"]
    if spreads and all(v is None for v in spreads):
        lines += ["", "The judge's own run-to-run spread is unknown; score both runs with `--judge-samples 3` to see "
                  "how much of a difference the judge alone could make."]  # fmt: skip
    if figure:
        lines += ["", f"![paired differences]({figure})"]
    return "\n".join(lines) + "\n"


def plot(comparison: dict, path: Path) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    pairs = comparison_pairs(comparison)
    labels, centres, errors = [], [], [[], []]
    for name_a, name_b, metric, s in pairs:
        scale = 100 if s["kind"] == "accuracy" else 1
        labels.append(f"{metric}: {name_b} - {name_a}" + (" (pts)" if scale == 100 else ""))
        centres.append(scale * s["difference"])
        errors[0].append(scale * (s["difference"] - s["ci95"][0]))
        errors[1].append(scale * (s["ci95"][1] - s["difference"]))
    fig, ax = plt.subplots(figsize=(7, 0.5 * len(pairs) + 1.2))
    ax.errorbar(centres, range(len(pairs)), xerr=errors, fmt="o", capsize=4)
    ax.axvline(0, color="grey", linewidth=1)
    ax.set_yticks(range(len(pairs)), labels, fontsize=8)
    ax.set_xlabel("difference with its paired 95% CI")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def write_comparison(comparison: dict, output_dir: str | Path) -> dict[str, Path]:
    """Write comparison.json, comparison.md and comparison.png into `output_dir`."""
    out = Path(output_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths = {"comparison": out / "comparison.json", "report": out / "comparison.md"}
    paths["comparison"].write_text(json.dumps(comparison, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    paths["plot"] = plot(comparison, out / "comparison.png")
    paths["report"].write_text("# Paired comparison\n\n" + markdown(comparison, paths["plot"].name), encoding="utf-8")
    return paths
