"""The quickstart's steps and its entry point `run_quickstart`: synth -> build -> train positive-only and LRV adapters
from one base -> answer -> POPE, colour probes, GAVIE -> paired comparison -> the demo's opening image -> report.

Each step reuses what an earlier run left in the output folder, so an interrupted or repeated run redoes nothing
finished and pays for no judge call twice.
"""

import json
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path

from .config import QuickstartConfig


REAL_EVAL_QUESTIONS = 1000  # LRV's evaluation set: 1000 questions on 120 Visual Genome images
REAL_REGIONS_PER_IMAGE = 50  # a Visual Genome image has ~50 dense captions (the released GAVIE example has 50)
ADAPTERS = ("positive-only", "lrv")  # trained on filter_cap.json without its negative rows, and on all of it
MODELS = ("base", *ADAPTERS)
PROBE_TOKENS = 6  # POPE reads the first words ("Yes, ..." / "No, ..."); a few tokens settle them
BATCH_SIZE = 32


@dataclass
class QuickstartResult:
    """Where the run left its report, and the figures in it."""

    report: Path
    losses: dict[str, list[tuple[int, float]]]
    pope: dict
    gavie: dict
    comparison: dict
    demo: dict
    seconds: float


def _silent(step: str, message: str) -> None:
    pass


# -- 1. data -----------------------------------------------------------------------------------------------------------
def build_data(output_dir: Path, num_images: int = 200, seed: int = 0, say: Callable = _silent) -> dict:
    """Synthesise the release, build each adapter's instructions and the held-out evaluation questions; a built
    folder is reused."""
    from ..data import build_dataset, write_synthetic_release
    from ..testing.tiny_adapters import build_adapter_datasets

    release, built = output_dir / "release", output_dir / "data"
    evaluation = built / "evaluation"
    if (evaluation / "build_report.json").is_file():
        say("data", f"reusing {built}")
    else:
        counts = write_synthetic_release(release, num_images=num_images, seed=seed)
        say("data", f"synthetic release: {counts['images']} images, {counts['instructions']} instructions")
    folders = build_adapter_datasets(release, built)  # skips the folders already built
    if not (evaluation / "build_report.json").is_file():
        build_dataset(
            [release / "evaluation_set.json"],
            images_dir=release / "images",
            regions_file=release / "vg_annotation.json",
            output_dir=evaluation,
            config_name="evaluation",
            split="test",
        )
    reports = {name: json.loads((folder / "build_report.json").read_text()) for name, folder in folders.items()}
    train = {name: report["instructions/train"] for name, report in reports.items()}
    test = json.loads((evaluation / "build_report.json").read_text())["evaluation/test"]
    say(
        "data",
        f"positive-only: {train['positive-only']['rows']} instructions, lrv: {train['lrv']['rows']} (the same plus "
        f"negatives) on {train['lrv']['images']} images; {test['rows']} questions on {test['images']} held-out images",
    )
    return {"release": release, "datasets": folders, "evaluation": evaluation, "train": train, "test": test}


# -- 2. training -------------------------------------------------------------------------------------------------------
def train_adapters(output_dir: Path, data: dict, max_steps: int | None, seed: int, say: Callable = _silent) -> dict:
    """Both adapters with `tiny/lora-cpu` from one copy of the tiny base (`OUT/base`), so one loaded base serves both
    in inference and the demo; a finished adapter is reused, a cut run resumes from its checkpoint."""
    from ..testing.tiny_base import copy_tiny_base
    from ..train import recipe_args, train

    base = output_dir / "base"
    if not (base / "model.safetensors").is_file():
        copy_tiny_base(base)
    runs = {}
    for name in ADAPTERS:
        run = runs[name] = output_dir / name
        if (run / "adapter_model.safetensors").is_file():
            say("train", f"reusing the {name} adapter in {run}")
            continue
        say("train", f"tiny/lora-cpu for {name} on {data['train'][name]['rows']} instructions (LoRA, tiny base)")
        overrides = {
            "output_dir": run,
            "dataset_name": data["datasets"][name],
            "model_name_or_path": str(base.resolve()),
            "seed": seed,
            "disable_tqdm": True,
        }
        if max_steps:  # a short run still logs a loss curve and ends on a checkpoint (where trainer_state.json lives)
            overrides.update(max_steps=max_steps, logging_steps=max(1, max_steps // 8), save_steps=max_steps)
        started = time.perf_counter()
        result = train(*recipe_args("tiny/lora-cpu", **overrides))
        say("train", f"{name}: {result.global_step} steps in {time.perf_counter() - started:.0f} s")
    return {"base": base, **runs}


def loss_history(run: Path) -> list[tuple[int, float]]:
    """(step, loss) pairs from the last checkpoint's trainer_state.json."""
    states = sorted(run.glob("checkpoint-*/trainer_state.json"), key=lambda p: int(p.parent.name.split("-")[1]))
    if not states:
        return []
    history = json.loads(states[-1].read_text())["log_history"]
    return [(entry["step"], float(entry["loss"])) for entry in history if "loss" in entry]


# -- 3. inference ------------------------------------------------------------------------------------------------------
def answer_all(runs: dict, folder: Path, max_new_tokens: int, **data) -> Path:
    """Base, positive-only and LRV answers (one loaded base per adapter; each file resumes), merged into
    `folder/predictions.jsonl` with the models named `base`, `positive-only` and `lrv`."""
    from ..infer import GenerationSettings, run_inference
    from ..predictions import read_predictions, write_predictions

    settings = GenerationSettings(max_new_tokens=max_new_tokens, batch_size=BATCH_SIZE)
    names = {str(runs["base"]): "base", **{str(runs[name]): name for name in ADAPTERS}}
    merged = []
    for k, name in enumerate(ADAPTERS):
        part = folder / f"answers-{name}.jsonl"
        run_inference(
            str(runs["base"]), output=str(part), adapter=str(runs[name]), both=k == 0, settings=settings, **data
        )
        merged += [replace(p, model=names[p.model]) for p in read_predictions(part)]
    path = folder / "predictions.jsonl"
    write_predictions(merged, path)
    return path


# -- 4. scoring --------------------------------------------------------------------------------------------------------
def probes(output_dir: Path, data: dict, seed: int) -> Path:
    """POPE probes and colour probes ("Is the ball red?" when it is blue) on the held-out images, in one file; the
    colour probes form the strategy `attribute`."""
    from ..pope import write_probes
    from ..testing.tiny_adapters import held_out_probes

    path = output_dir / "pope" / "probes.jsonl"
    if not path.is_file():
        made = held_out_probes(data["release"], seed=seed)
        write_probes(made["pope"] + [{**row, "strategy": "attribute"} for row in made["attribute"]], path)
    return path


def pope(output_dir: Path, data: dict, runs: dict, seed: int, say: Callable = _silent) -> dict:
    """POPE on the held-out images, answered by the base and both adapters, scored."""
    from ..pope import score_files

    probe_file = probes(output_dir, data, seed)
    say("pope", f"yes/no object and colour probes on the held-out images -> {probe_file}")
    answers = answer_all(
        runs, probe_file.parent, PROBE_TOKENS, data=str(probe_file), images=str(data["release"] / "images")
    )
    return score_files(probe_file, [answers], probe_file.parent).summary


def gavie(config: QuickstartConfig, data: dict, predictions: Path, output_dir: Path, say: Callable = _silent) -> dict:
    """GAVIE with the configured judge, or, when none is set, with the offline stand-in (and the real judge's price)."""
    from ..gavie import evaluate_predictions
    from ..judge import Judge
    from ..testing.chat_server import ChatServer
    from . import offline_judge

    folder = output_dir / "gavie"
    regions = data["release"] / "vg_annotation.json"
    judge = config.judge(folder / "judge_cache.sqlite")
    if config.judge_is_set:
        say("gavie", f"scoring with {config.judge_model} ({config.base_url or 'OpenAI'}); replies are cached")
        result = evaluate_predictions(predictions, regions, judge, folder, progress=False)
        return {"summary": result.summary, "offline": False}
    priced = evaluate_predictions(predictions, regions, judge, folder, dry_run=True)
    say(
        "gavie",
        f"no judge set (${config.api_key_env} or `base_url`): scored by the offline stand-in judge; "
        f"{config.judge_model} would take {priced.estimate.calls} calls",
    )
    with ChatServer(reply=offline_judge.reply) as server:
        offline = Judge(
            model=offline_judge.MODEL, base_url=server.url, api_key_env="LRV_OFFLINE_JUDGE_KEY",
            cache_path=folder / "judge_cache.sqlite",
        )  # fmt: skip
        result = evaluate_predictions(predictions, regions, offline, folder, progress=False)
    # the report also prices LRV's full evaluation set, which this run's predictions cannot show
    return {
        "summary": result.summary,
        "offline": True,
        "here": priced.estimate,
        "full": full_set_estimate(predictions, judge),
    }


def full_set_estimate(predictions: Path, judge):
    """Judge calls, tokens and cost of LRV's full evaluation set (1000 questions x the three models)."""
    from ..gavie import estimate
    from ..predictions import Prediction, read_predictions

    sample_answer = max((p.answer for p in read_predictions(predictions)), key=len)[:200]
    regions = {"vg": [{"caption": "a man wearing a white shirt", "bbox": [204, 439, 51, 52]}] * REAL_REGIONS_PER_IMAGE}
    rows = [
        Prediction(
            row=len(MODELS) * i + k,
            image_id="vg",
            question=f"Is there a red store sign on the building behind the man in picture {i}?",
            answer=f"{sample_answer} ({model})",
            model=model,
        )
        for i in range(REAL_EVAL_QUESTIONS)
        for k, model in enumerate(MODELS)
    ]
    return estimate(rows, regions, judge)


# -- 5. paired comparison ----------------------------------------------------------------------------------------------
def compare(output_dir: Path, seed: int) -> dict:
    """Every model against positive-only on the same items: McNemar on the probes, a paired bootstrap on GAVIE."""
    from ..compare import compare_models, write_comparison

    merged = {"scorer": "POPE probes + GAVIE", "baseline": "positive-only", "models": {}}
    for folder in ("pope", "gavie"):
        comparison = compare_models(output_dir / folder, baseline="positive-only", seed=seed)
        merged["alpha"] = comparison["alpha"]
        for model, metrics in comparison["models"].items():
            prefix = "GAVIE " if folder == "gavie" else ""
            merged["models"].setdefault(model, {}).update({prefix + k: v for k, v in metrics.items()})
    merged["models"] = {m: merged["models"][m] for m in ("lrv", "base")}  # the question LRV answers comes first
    write_comparison(merged, output_dir / "compare")
    return merged


# -- 6. the demo's opening -----------------------------------------------------------------------------------------
def demo_opening(output_dir: Path, data: dict) -> dict:
    """A held-out probe about an absent object where positive-only says yes and LRV says no (found in the scored
    answers); when none separates them, the first probe about an absent object, and `separates` is False."""
    rows = [json.loads(line) for line in (output_dir / "pope" / "scores.jsonl").read_text().splitlines()]
    said = {(r["model"], r["image_id"], r["question"]): r["predicted"] for r in rows}
    absent = [r for r in rows if r["model"] == "lrv" and r["label"] == "no" and r["strategy"] != "attribute"]
    chosen = next(
        (
            r
            for r in absent
            if r["predicted"] == "no" and said.get(("positive-only", r["image_id"], r["question"])) == "yes"
        ),
        None,
    )
    opening = chosen or absent[0]
    image = data["release"] / "images" / f"{opening['image_id']}.jpg"
    return {"image": image, "question": opening["question"], "separates": chosen is not None}


def demo_command(runs: dict, opening: dict) -> str:
    import shlex

    argv = [
        "demo",
        "--base",
        str(runs["base"]),
        "--adapter",
        str(runs["lrv"]),
        "--adapter",
        str(runs["positive-only"]),
    ]
    argv += ["--image", str(opening["image"]), "--instruction", opening["question"]]
    return "lrv-hf " + shlex.join(argv)


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
    runs = train_adapters(output_dir, data, config.max_steps, config.seed, say=say)
    losses = {name: loss_history(runs[name]) for name in ADAPTERS}
    for name, history in losses.items():
        if history:
            say("train", f"{name}: loss {history[0][1]:.2f} at step {history[0][0]} -> {history[-1][1]:.2f} at step "
                f"{history[-1][0]}")  # fmt: skip
    say("infer", "answering the held-out evaluation questions with the base and both adapters")
    predictions = answer_all(
        runs, output_dir / "answers", config.max_new_tokens, data=str(data["evaluation"]), config="evaluation",
        split="test",
    )  # fmt: skip
    pope_summary = pope(output_dir, data, runs, config.seed, say=say)
    gavie_result = gavie(config, data, predictions, output_dir, say=say)
    comparison = compare(output_dir, config.seed)
    opening = demo_opening(output_dir, data)
    opening["command"] = demo_command(runs, opening)
    seconds = time.perf_counter() - start
    report = write_report(
        output_dir, config, data, runs, losses, pope_summary, gavie_result, comparison, opening, seconds
    )
    return QuickstartResult(report, losses, pope_summary, gavie_result, comparison, opening, seconds)
