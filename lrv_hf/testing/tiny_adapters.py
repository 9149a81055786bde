"""The two adapters LRV compares, trained from the tiny base on a synthetic release, and probed on held-out images.

*positive-only* learns from `filter_cap.json` without its negative rows (how LLaVA-style data looks), *lrv* from all
of it; POPE probes and colour probes ("Is the ball red?" when it is blue) on the held-out fifth show what each learnt.
"""

import json
from pathlib import Path

from ..data import synth


ADAPTERS = ("positive-only", "lrv")
POSITIVE_ONLY_FILE = "filter_cap_positive.json"


def write_positive_only(release: str | Path) -> Path:
    """`filter_cap.json` without its negative rows, in the same format, beside it; returns its path."""
    release = Path(release)
    rows = json.loads((release / "filter_cap.json").read_text())["annotations"]
    path = release / POSITIVE_ONLY_FILE
    path.write_text(json.dumps({"annotations": [row for row in rows if row.get("task") != "negative"]}, indent=1))
    return path


def build_adapter_datasets(release: str | Path, output_dir: str | Path) -> dict[str, Path]:
    """Built dataset folders (`instructions` config) for both adapters: `{"positive-only": DIR, "lrv": DIR}`."""
    from ..data.export import build_dataset

    release, output_dir = Path(release), Path(output_dir)
    sources = {"positive-only": write_positive_only(release), "lrv": release / "filter_cap.json"}
    folders = {}
    for name, source in sources.items():
        folders[name] = output_dir / name
        if not (folders[name] / "build_report.json").is_file():
            build_dataset([source], images_dir=release / "images", output_dir=folders[name])
    return folders


def train_adapter(dataset: str | Path, output_dir: str | Path, *overrides: str) -> Path:
    """Train one adapter with the `tiny/lora-cpu` recipe through the normal training entry point."""
    from ..train import main

    main(["--recipe", "tiny/lora-cpu", "--output-dir", str(output_dir), "--dataset_name", str(dataset), *overrides])
    return Path(output_dir)


def held_out_probes(release: str | Path, seed: int = 0) -> dict[str, list[dict]]:
    """POPE probes and colour probes on the held-out images (those of `evaluation_set.json`), never trained on."""
    from ..pope.probes import ProbeConfig, build_probes, read_objects

    release = Path(release)
    held_out = {row["image_id"] for row in json.loads((release / "evaluation_set.json").read_text())}
    objects = {k: v for k, v in read_objects(release / "objects.json").items() if k in held_out}
    colors = {k: v for k, v in synth.read_object_colors(release / "objects.json").items() if k in held_out}
    return {
        # the five shapes leave no room for POPE's sampling strategies to differ; one is enough
        "pope": build_probes(objects, ProbeConfig(strategies=("random",), seed=seed)),
        "attribute": synth.attribute_probes(colors, seed=seed),
    }


def probe(run: str | Path, release: str | Path, probes: dict[str, list[dict]], batch_size: int = 32) -> dict:
    """Answer the probes with the adapter in `run` (its base in `run/base`) and score them.

    Returns:
        `dict`: `pope` (POPE's metrics), `attribute` (POPE's metrics on the colour probes) and
        `attribute_negative_accuracy` (share of wrong-colour probes answered "no").
    """
    from PIL import Image

    from ..infer import GenerationSettings, generate_answers, load_model
    from ..pope.scoring import compute_metrics, pope_label

    run, images = Path(run), Path(release) / "images"
    base = json.loads((run / "adapter_config.json").read_text())["base_model_name_or_path"]
    model, processor = load_model(base, str(run))
    # the label is read from the first words ("Yes, ..." / "No, ..."); a few tokens settle it
    settings = GenerationSettings(max_new_tokens=6, batch_size=batch_size)
    scores = {}
    for name, rows in probes.items():
        answers = []
        for start in range(0, len(rows), batch_size):
            chunk = rows[start : start + batch_size]
            loaded = [Image.open(images / f"{row['image_id']}.jpg") for row in chunk]
            answers += generate_answers(model, processor, loaded, [row["question"] for row in chunk], settings)
        scores[name] = compute_metrics(answers, [row["label"] for row in rows])
        if name == "attribute":
            negatives = [pope_label(a) == "no" for a, row in zip(answers, rows) if row["label"] == "no"]
            scores["attribute_negative_accuracy"] = sum(negatives) / max(1, len(negatives))
    return scores
