"""GAVIE scoring: predictions + dense captions -> packed judge prompts -> parsed, re-asked, aggregated scores.

An answer the judge could not score (the call failed, or no reply could be read after the re-asks) is *unscored*:
it is counted in the coverage and never enters a mean as 0 or -1.
"""

import logging
import statistics
from collections import Counter, defaultdict
from dataclasses import dataclass
from pathlib import Path

from ..errors import InputError
from ..judge import Judge, JudgeRequest, JudgeResult
from ..predictions import Prediction, read_predictions
from .parse import CRITERIA, parse_reply
from .prompt import build_messages


logger = logging.getLogger(__name__)

REASK_STRIDE = 1000  # re-ask r of draw s uses sample s + r * REASK_STRIDE: its own cache entry, clear of the draws
CI_RESAMPLES = 2000


def pack(predictions: list[Prediction], answers_per_prompt: int = 1) -> list[list[int]]:
    """Group answers to the same image and instruction (from different models) into prompts of up to K answers."""
    if answers_per_prompt < 1:
        raise InputError(f"`answers_per_prompt` must be >= 1, got {answers_per_prompt}", "answers_per_prompt")
    groups: dict[tuple, list[int]] = defaultdict(list)
    for index, prediction in enumerate(predictions):
        groups[prediction.join_key].append(index)
    return [
        members[start : start + answers_per_prompt]
        for members in groups.values()
        for start in range(0, len(members), answers_per_prompt)
    ]


def _check_regions(predictions: list[Prediction], regions: dict[str, list[dict]], regions_name: str):
    for p in predictions:
        p.require("image_id", "question", purpose="GAVIE judges an answer against its image's dense captions")
    missing = sorted({p.image_id for p in predictions if not regions.get(p.image_id)})
    if missing:
        first = next(p for p in predictions if p.image_id == missing[0])
        raise InputError(
            f"{regions_name}: no regions for image_id {missing[0]!r} (predictions row {first.row}"
            f"{f' and {len(missing) - 1} more images' if len(missing) > 1 else ''}); pass the dense captions "
            "file that covers the evaluation images"
        )


def build_requests(
    predictions: list[Prediction],
    regions: dict[str, list[dict]],
    packs: list[list[int]],
    legacy_prompt: bool = False,
    sample: int = 0,
) -> list[JudgeRequest]:
    """One judge request per pack for one draw."""
    requests = []
    for number, members in enumerate(packs):
        first = predictions[members[0]]
        messages = build_messages(
            regions[first.image_id], first.question, [predictions[i].answer for i in members], legacy_prompt
        )
        requests.append(JudgeRequest(messages, sample=sample, metadata={"pack": number}))
    return requests


@dataclass
class GavieRun:
    """What `score` produced: per-row records (the lines of scores.jsonl) and every judge result it used."""

    rows: list[dict]
    results: list[JudgeResult]
    judge: Judge
    settings: dict

    def summary(self) -> dict:
        return summarise(self.rows, self.results, self.judge, self.settings)


def score(
    predictions: list[Prediction],
    regions: dict[str, list[dict]],
    judge: Judge,
    answers_per_prompt: int = 1,
    legacy_prompt: bool = False,
    judge_samples: int = 1,
    max_reasks: int = 2,
    batch: bool = False,
    poll_interval: float = 30.0,
    progress: bool = True,
    regions_name: str = "regions",
) -> GavieRun:
    """Score every prediction with GAVIE through `judge`.

    Args:
        predictions (`list[Prediction]`): The answers to judge (see `read_predictions`).
        regions (`dict`): `{image_id: [{"caption", "bbox"}]}` from `lrv_hf.data.load_regions`.
        judge (`Judge`): The client to ask; built by the caller.
        answers_per_prompt (`int`, *optional*, defaults to `1`): K answers to the same image and instruction (from
            K models) judged in one prompt, as in the paper.
        legacy_prompt (`bool`, *optional*, defaults to `False`): The released prompt byte for byte (Height = width).
        judge_samples (`int`, *optional*, defaults to `1`): Draws per prompt; each row gets the per-item median, and
            the summary reports the run-to-run spread.
        max_reasks (`int`, *optional*, defaults to `2`): Re-asks of a prompt whose reply could not be read.
        batch (`bool`, *optional*, defaults to `False`): Go through the OpenAI Batch API (half price, slow).
    """
    if judge_samples < 1:
        raise InputError(f"`judge_samples` must be >= 1, got {judge_samples}", "judge_samples")
    if max_reasks < 0:
        raise InputError(f"`max_reasks` must be >= 0, got {max_reasks}", "max_reasks")
    _check_regions(predictions, regions, regions_name)
    packs = pack(predictions, answers_per_prompt)
    requests = [r for s in range(judge_samples) for r in build_requests(predictions, regions, packs, legacy_prompt, s)]
    # (pack, draw) -> per slot: (parsed reply, slot, result) of the first reply that scored that slot
    outcome: dict[tuple[int, int], list[tuple | None]] = {}
    failures: dict[tuple[int, int], str] = {}
    unread: dict[tuple[int, int], str] = {}  # the last reply that could not be read, shown to the user
    used: list[JudgeResult] = []
    for attempt in range(max_reasks + 1):
        if not requests:
            break
        if batch:
            results = judge.run_batch(requests, poll_interval=poll_interval, progress=progress)
        else:
            results = judge.run(requests, progress=progress)
        used.extend(results)
        reask = []
        for result in results:
            number = result.request.metadata["pack"]
            draw = result.request.sample % REASK_STRIDE
            slots = outcome.setdefault((number, draw), [None] * len(packs[number]))
            if result.text is None:
                failures[(number, draw)] = f"judge call failed: {result.error}"
            else:
                parsed = parse_reply(result.text, len(slots))
                for slot in range(len(slots)):
                    if slots[slot] is None and parsed.complete(slot):
                        slots[slot] = (parsed, slot, result)
                if not all(slots):
                    failures[(number, draw)] = "judge reply could not be read"
                    unread[(number, draw)] = result.text
            if not all(slots) and attempt < max_reasks:
                sample = draw + (attempt + 1) * REASK_STRIDE
                reask.append(JudgeRequest(result.request.messages, sample=sample, metadata=result.request.metadata))
        requests = reask
    rows = [None] * len(predictions)
    for number, members in enumerate(packs):
        for slot, index in enumerate(members):
            draws = [outcome[(number, draw)][slot] for draw in range(judge_samples)]
            reason = next((failures.get((number, d)) for d in range(judge_samples) if draws[d] is None), None)
            rows[index] = _row(predictions[index], draws, slot, len(members), reason)
            if not rows[index]["scored"]:
                rows[index]["raw_reply"] = next((unread.get((number, d)) for d in range(judge_samples)), None)
    settings = {
        "answers_per_prompt": answers_per_prompt,
        "legacy_prompt": legacy_prompt,
        "judge_samples": judge_samples,
        "max_reasks": max_reasks,
        "batch": batch,
        "prompts": len(packs),
    }
    return GavieRun(rows, used, judge, settings)


def _row(prediction: Prediction, draws: list[tuple | None], slot: int, pack_size: int, reason: str | None) -> dict:
    scored = [d for d in draws if d is not None]
    row = {
        "row": prediction.row,
        "image_id": prediction.image_id,
        "question": prediction.question,
        "answer": prediction.answer,
        "model": prediction.model,
        "task": prediction.task,
        "polarity": prediction.polarity,
        "scored": bool(scored),
        "unscored_reason": None if scored else reason,
        "answer_slot": slot + 1,
        "answers_in_prompt": pack_size,
    }
    first = scored[0] if scored else None
    for criterion in CRITERIA:
        values = [parsed.scores[criterion][s] for parsed, s, _ in scored]
        row[criterion] = statistics.median(values) if values else None
        row[f"{criterion}_reason"] = first[0].reasons[criterion][first[1]] if first else None
    # the reply the reasons come from, so a reader can check the parse against the raw text
    row["raw_reply"] = first[2].text if first else None
    row["cache_key"] = first[2].cache_key if first else None
    if len(draws) > 1:
        row["samples"] = [
            None if d is None else {c: d[0].scores[c][d[1]] for c in CRITERIA} | {"cache_key": d[2].cache_key}
            for d in draws
        ]
    return row


def nothing_scored(rows: list[dict]) -> str | None:
    """Why a run scored no answer at all (the reasons and the judge's own words), or `None` when it scored any."""
    if not rows or any(r["scored"] for r in rows):
        return None
    reasons = Counter(r["unscored_reason"] or "unknown" for r in rows)
    worst, _ = reasons.most_common(1)[0]
    said = next((r["raw_reply"] for r in rows if r["raw_reply"]), None)
    said = f"; the judge replied: {' '.join(said.split())[:300]!r}" if said else ""
    counts = ", ".join(f"{n} {reason.split(':')[0]}" for reason, n in reasons.most_common())
    plural = "s" if len(rows) != 1 else ""
    return f"the judge scored none of the {len(rows)} answer{plural} ({counts}): {worst}{said}"


# -- aggregation ---------------------------------------------------------------------------------------------------
def describe(values: list[float], seed: int = 0) -> dict:
    """Mean, sample standard deviation and a 95% percentile-bootstrap confidence interval of the mean."""
    import numpy as np

    if not values:
        return {"mean": None, "std": None, "ci95": None, "n": 0}
    data = np.asarray(values, dtype=float)
    rng = np.random.default_rng(seed)
    means = data[rng.integers(0, len(data), size=(CI_RESAMPLES, len(data)))].mean(axis=1)
    low, high = np.percentile(means, [2.5, 97.5])
    return {
        "mean": float(data.mean()),
        "std": float(data.std(ddof=1)) if len(data) > 1 else 0.0,
        "ci95": [float(low), float(high)],
        "n": len(data),
    }


def _group(rows: list[dict]) -> dict:
    scored = [r for r in rows if r["scored"]]
    out = {"n": len(rows), "n_scored": len(scored), "coverage": len(scored) / len(rows) if rows else None}
    for criterion in CRITERIA:
        stats = describe([r[criterion] for r in scored])
        out[criterion] = stats["mean"]
        out[f"{criterion}_std"] = stats["std"]
        out[f"{criterion}_ci95"] = stats["ci95"]
    return out


def _breakdown(rows: list[dict], field: str) -> dict | None:
    if all(r[field] is None for r in rows):
        return None
    groups = defaultdict(list)
    for row in rows:
        groups[row[field] if row[field] is not None else "(none)"].append(row)
    return {name: _group(members) for name, members in sorted(groups.items())}


def judge_noise(rows: list[dict]) -> dict | None:
    """Run-to-run spread of the judge: the mean of each draw over the items every draw scored, and per-item spread."""
    sampled = [r for r in rows if r.get("samples") and all(s is not None for s in r["samples"])]
    if not sampled:
        return None
    draws = len(sampled[0]["samples"])
    noise = {"items": len(sampled), "draws": draws}
    for criterion in CRITERIA:
        run_means = [statistics.fmean(r["samples"][d][criterion] for r in sampled) for d in range(draws)]
        item_std = statistics.fmean(statistics.pstdev([s[criterion] for s in r["samples"]]) for r in sampled)
        changed = sum(len({s[criterion] for s in r["samples"]}) > 1 for r in sampled)
        noise[criterion] = {
            "run_means": run_means,
            "run_spread": max(run_means) - min(run_means),
            "item_std": item_std,
            "items_changed": changed,
        }
    return noise


def judge_usage(results: list[JudgeResult], judge: Judge) -> dict:
    """The judge's identity and what the run spent (`Judge.usage`, the one home of token and cost accounting)."""
    return {"model": judge.model, "base_url": judge.base_url, **judge.usage(results).to_dict()}


def summarise(rows: list[dict], results: list[JudgeResult], judge: Judge, settings: dict) -> dict:
    """The content of summary.json: overall figures, breakdowns, coverage, judge usage and judge noise."""
    summary = _group(rows)
    summary["unscored"] = dict(Counter(r["unscored_reason"].split(":")[0] for r in rows if not r["scored"]))
    for field, name in (("task", "by_task"), ("polarity", "by_polarity"), ("model", "by_model")):
        breakdown = _breakdown(rows, field)
        if breakdown is not None:
            summary[name] = breakdown
    if len(summary.get("by_model", {})) > 1 and "by_task" in summary:  # the comparison the plot shows
        summary["by_model_and_task"] = {
            model: _breakdown([r for r in rows if r["model"] == model], "task") for model in summary["by_model"]
        }
    summary["judge"] = judge_usage(results, judge)
    summary["settings"] = settings
    noise = judge_noise(rows)
    if noise is not None:
        summary["judge_noise"] = noise
    return summary


def estimate(
    predictions: list[Prediction],
    regions: dict[str, list[dict]],
    judge: Judge,
    answers_per_prompt: int = 1,
    legacy_prompt: bool = False,
    judge_samples: int = 1,
    regions_name: str = "regions",
):
    """The judge's `JudgeEstimate` for scoring `predictions` (first asks only; re-asks cannot be known up front)."""
    _check_regions(predictions, regions, regions_name)
    packs = pack(predictions, answers_per_prompt)
    requests = [r for s in range(judge_samples) for r in build_requests(predictions, regions, packs, legacy_prompt, s)]
    # a GAVIE reply is a score and a one-sentence reason per answer and criterion: ~70 tokens per answer
    answers = sum(len(p) for p in packs) * judge_samples
    per_call = 20 + 70 * answers / max(1, len(requests))
    return judge.estimate(requests, completion_tokens=round(per_call))


@dataclass
class GavieResult:
    """What `evaluate_predictions` did: the estimate it made first, and unless a dry run the summary and files."""

    estimate: object
    predictions: int
    summary: dict | None = None
    paths: dict[str, Path] | None = None
    problem: str | None = None  # why a run scored nothing at all (a failed run, whatever the HTTP status said)

    @property
    def dry_run(self) -> bool:
        return self.summary is None


def evaluate_predictions(
    predictions: str | Path,
    regions: str | Path,
    judge: Judge,
    output_dir: str | Path,
    answers_per_prompt: int = 1,
    legacy_prompt: bool = False,
    judge_samples: int = 1,
    max_reasks: int = 2,
    batch: bool = False,
    poll_interval: float = 30.0,
    progress: bool = True,
    dry_run: bool = False,
) -> GavieResult:
    """GAVIE over a predictions JSONL file: read it and the dense captions, estimate, and unless `dry_run` score
    through `judge` and write summary.json, scores.jsonl and the report into `output_dir`.

    Args:
        predictions (`str` or `Path`): predictions JSONL (`lrv_hf.predictions`).
        regions (`str` or `Path`): dense captions, LRV's `vg_annotation.json` or Visual Genome's regions.
        judge (`Judge`): the client to ask, built by the caller (its cache makes a rerun free).
        dry_run (`bool`, *optional*, defaults to `False`): only estimate calls, tokens and cost; send nothing.
    """
    from ..data import load_regions
    from ..results import run_identity
    from .report import write_outputs

    rows = read_predictions(predictions)
    for p in rows:
        p.require("image_id", "question", purpose="GAVIE judges an answer against its image's dense captions")
    captions = load_regions(regions, image_ids={p.image_id for p in rows})
    common = {
        "answers_per_prompt": answers_per_prompt,
        "legacy_prompt": legacy_prompt,
        "judge_samples": judge_samples,
        "regions_name": str(regions),
    }
    guess = estimate(rows, captions, judge, **common)
    if dry_run:
        return GavieResult(guess, len(rows))
    if guess.calls:
        cost = "" if guess.cost_usd is None else f", ~${guess.cost_usd:.2f} estimated"
        logger.info("judge: %d calls to pay for%s (%d cached)", guess.calls, cost, guess.cached)
    run = score(
        rows,
        captions,
        judge,
        max_reasks=max_reasks,
        batch=batch,
        poll_interval=poll_interval,
        progress=progress,
        **common,
    )
    summary = run.summary()
    summary["identity"] = run_identity("gavie", [predictions], regions, judge)
    paths = write_outputs(output_dir, run.rows, summary)
    return GavieResult(guess, len(rows), summary, paths, nothing_scored(run.rows))
