"""The quickstart's steps and its entry point `run_quickstart`: synth -> build -> train -> infer -> POPE + GAVIE -> report.

Each step reuses what an earlier run left in the output folder, so an interrupted or repeated run redoes nothing
finished and pays for no judge call twice.
"""

import json
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from .config import QuickstartConfig


REAL_EVAL_QUESTIONS = 1000  # LRV's evaluation set: 1000 questions on 120 Visual Genome images
REAL_REGIONS_PER_IMAGE = 50  # a Visual Genome image has ~50 dense captions (the released GAVIE example has 50)


@dataclass
class QuickstartResult:
    """Where the run left its report, and the figures in it."""

    report: Path
    losses: list[tuple[int, float]]
    pope: dict
    gavie: dict
    seconds: float


def _silent(step: str, message: str) -> None:
    pass


# -- 1. data -----------------------------------------------------------------------------------------------------------
def build_data(output_dir: Path, num_images: int = 48, seed: int = 0, say: Callable = _silent) -> dict:
    """Synthesise the release and build it (instructions/train, evaluation/test); skipped when already built."""
    from ..data import build_dataset, write_synthetic_release

    release, built = output_dir / "release", output_dir / "dataset"
    stamp = built / "build_report.json"
    if stamp.is_file() and {"instructions/train", "evaluation/test"} <= set(json.loads(stamp.read_text())):
        say("data", f"reusing {built}")
    else:
        counts = write_synthetic_release(release, num_images=num_images, seed=seed)
        say("data", f"synthetic release: {counts['images']} images, {counts['instructions']} instructions")
        common = {"images_dir": release / "images", "regions_file": release / "vg_annotation.json"}
        build_dataset([release / "filter_cap.json"], output_dir=built, **common)
        build_dataset(
            [release / "evaluation_set.json"], output_dir=built, config_name="evaluation", split="test", **common
        )
    reports = json.loads(stamp.read_text())
    train, test = reports["instructions/train"], reports["evaluation/test"]
    say(
        "data",
        f"load_dataset({str(built)!r}, 'instructions'): {train['images']} images, {train['rows']} instructions; "
        f"'evaluation': {test['rows']} questions on {test['images']} held-out images",
    )
    return {"release": release, "dataset": built, "train": train, "test": test}


# -- 2. training -------------------------------------------------------------------------------------------------------
def train_adapter(output_dir: Path, dataset: Path, max_steps: int | None, seed: int, say: Callable = _silent) -> Path:
    """`tiny/lora-cpu` on the built instructions; a finished adapter is reused, a cut run resumes from its checkpoint."""
    from ..train import recipe_args, train

    run = output_dir / "train"
    if (run / "adapter_model.safetensors").is_file() and (run / "base" / "model.safetensors").is_file():
        say("train", f"reusing the adapter in {run}")
        return run
    say("train", "tiny/lora-cpu on the synthetic instructions (LoRA on a 2-layer LLaVA built from configs)")
    overrides = {"output_dir": run, "dataset_name": dataset, "seed": seed}
    if max_steps:  # a short run still logs a loss curve and ends on a checkpoint (where trainer_state.json lives)
        overrides.update(max_steps=max_steps, logging_steps=max(1, max_steps // 8), save_steps=max_steps)
    train(*recipe_args("tiny/lora-cpu", **overrides))
    return run


def loss_history(run: Path) -> list[tuple[int, float]]:
    """(step, loss) pairs from the last checkpoint's trainer_state.json."""
    states = sorted(run.glob("checkpoint-*/trainer_state.json"), key=lambda p: int(p.parent.name.split("-")[1]))
    if not states:
        return []
    history = json.loads(states[-1].read_text())["log_history"]
    return [(entry["step"], float(entry["loss"])) for entry in history if "loss" in entry]


# -- 3. inference ------------------------------------------------------------------------------------------------------
def infer(run: Path, output: Path, max_new_tokens: int, **data):
    """Base and adapter answers from one loaded base; resumes a partial file."""
    from ..infer import GenerationSettings, run_inference

    settings = GenerationSettings(max_new_tokens=max_new_tokens)
    run_inference(str(run / "base"), output=str(output), adapter=str(run), both=True, settings=settings, **data)


def model_labels(run: Path) -> dict[str, str]:
    return {str(run / "base"): "base", str(run): "LRV adapter"}


# -- 4. scoring --------------------------------------------------------------------------------------------------------
def pope(output_dir: Path, data: dict, run: Path, max_new_tokens: int, seed: int, say: Callable = _silent) -> dict:
    """POPE on the held-out images: probes from their objects, answered by base and adapter, scored."""
    from ..pope import ProbeConfig, build_probes, read_objects, score_files, write_probes

    folder = output_dir / "pope"
    probes = folder / "probes.jsonl"
    if not probes.is_file():
        held_out = {row["image_id"] for row in json.loads((data["release"] / "evaluation_set.json").read_text())}
        objects = {k: v for k, v in read_objects(data["release"] / "objects.json").items() if k in held_out}
        write_probes(build_probes(objects, ProbeConfig(seed=seed)), probes)
    say("pope", f"yes/no object probes on the held-out images -> {probes}")
    answers = folder / "predictions.jsonl"
    infer(run, answers, max_new_tokens, data=str(probes), images=str(data["release"] / "images"))
    return score_files(probes, [answers], folder).summary


def gavie(config: QuickstartConfig, data: dict, predictions: Path, output_dir: Path, say: Callable = _silent) -> dict:
    """GAVIE through the quickstart's one judge: scored for real when a judge is set, else a priced dry run."""
    from ..gavie import evaluate_predictions

    folder = output_dir / "gavie"
    regions = data["release"] / "vg_annotation.json"
    judge = config.judge(folder / "judge_cache.sqlite")
    if config.judge_is_set:
        say("gavie", f"scoring with {config.judge_model} ({config.base_url or 'OpenAI'}); replies are cached")
        result = evaluate_predictions(predictions, regions, judge, folder, progress=False)
        return {"summary": result.summary, "dry_run": False}
    say("gavie", f"no judge set (${config.api_key_env} or `base_url`): dry run, nothing is sent")
    result = evaluate_predictions(predictions, regions, judge, folder, dry_run=True)
    # the report also prices LRV's full evaluation set, which this run's predictions cannot show
    return {"summary": None, "here": result.estimate, "full": full_set_estimate(predictions, judge), "dry_run": True}


def full_set_estimate(predictions: Path, judge):
    """Judge calls, tokens and cost of LRV's full evaluation set (1000 questions x base and adapter)."""
    from ..gavie import estimate
    from ..predictions import Prediction, read_predictions

    sample_answer = max((p.answer for p in read_predictions(predictions)), key=len)[:200]
    regions = {"vg": [{"caption": "a man wearing a white shirt", "bbox": [204, 439, 51, 52]}] * REAL_REGIONS_PER_IMAGE}
    rows = [
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
    return estimate(rows, regions, judge)


# -- the whole loop ----------------------------------------------------------------------------------------------------
def run_quickstart(config: QuickstartConfig | None = None, say: Callable[[str, str], None] = _silent):
    """Run the whole LRV loop on a synthetic release, offline, on CPU; every step reuses finished work.

    Args:
        config (`QuickstartConfig`, *optional*): the settings; defaults when None.
        say (`Callable[[str, str], None]`, *optional*): told `(step, message)` as the run goes; silent by default.

    Returns:
        `QuickstartResult`: the report's path and its figures.
    """
    from .report import write_report

    config = config or QuickstartConfig()
    logging.getLogger("httpx2").setLevel(logging.WARNING)
    start = time.perf_counter()
    output_dir = Path(config.output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    data = build_data(output_dir, num_images=config.num_images, seed=config.seed, say=say)
    run_dir = train_adapter(output_dir, data["dataset"], config.max_steps, config.seed, say=say)
    losses = loss_history(run_dir)
    if losses:
        say("train", f"loss {losses[0][1]:.2f} at step {losses[0][0]} -> {losses[-1][1]:.2f} at step {losses[-1][0]}")
    predictions = output_dir / "predictions.jsonl"
    say("infer", "answering the held-out evaluation questions with the base and the adapter")
    infer(run_dir, predictions, config.max_new_tokens, data=str(data["dataset"]), config="evaluation", split="test")
    pope_summary = pope(output_dir, data, run_dir, config.max_new_tokens, config.seed, say=say)
    gavie_result = gavie(config, data, predictions, output_dir, say=say)
    seconds = time.perf_counter() - start
    report = write_report(output_dir, config, data, run_dir, losses, pope_summary, gavie_result, seconds)
    return QuickstartResult(report, losses, pope_summary, gavie_result, seconds)
