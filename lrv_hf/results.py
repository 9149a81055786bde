"""Results that travel: what a scored run was (model, data, judge, package version), written into every scorer's
summary.json so `lrv-hf compare` can refuse incomparable runs, and the upload of a run to a Hub dataset repo.
"""

import hashlib
import json
import os
import re
import time
from pathlib import Path

from .errors import InputError


# the keys of an inference sidecar's settings that say which model answered which questions, not how it generated
ANSWERER_KEYS = {"model", "adapter", "dtype", "data", "images", "config", "split", "endpoint", "max_image_bytes"}
# what a run folder sends to the Hub: its summary, per-item scores and report, never a cache
RUN_FILES = ["summary.json", "scores.jsonl", "report.md", "report.png"]


def fingerprint_path(path: str | Path | list) -> str | None:
    """sha256 of a data file's bytes, or of a folder's relative file names and bytes (sorted); None when it is not
    on disk (a Hub id: its revision identifies it). Several paths (POPE's three probe files) give one digest of all."""
    if isinstance(path, (list, tuple)):
        if len(path) == 1:
            return fingerprint_path(path[0])
        parts = [fingerprint_path(p) for p in path]
        return None if None in parts else hashlib.sha256("\0".join(parts).encode()).hexdigest()
    path = Path(path)
    files = [path] if path.is_file() else sorted(p for p in path.rglob("*") if p.is_file()) if path.is_dir() else []
    if not files:
        return None
    digest = hashlib.sha256()
    for file in files:
        if file != path:  # a folder's layout is part of its data; a single file's name is not
            digest.update(str(file.relative_to(path)).encode() + b"\0")
        with open(file, "rb") as handle:
            while chunk := handle.read(1 << 20):
                digest.update(chunk)
    return digest.hexdigest()


def model_identity(predictions: str | Path) -> dict[str, dict]:
    """`{label: identity}` of the models in a predictions file, read from its `.meta.json` sidecar (written by
    `lrv-hf infer`): repo + revision (+ adapter) of a local model, or the endpoint and the served model name."""
    from .adapters import ModelRef
    from .infer.output import meta_path

    sidecar = meta_path(predictions)
    if not sidecar.is_file():
        return {}
    try:
        meta = json.loads(sidecar.read_text(encoding="utf-8"))
    except json.JSONDecodeError as err:
        raise InputError(f"{sidecar}: invalid JSON ({err.msg})") from None
    if not isinstance(meta, dict):
        raise InputError(f"{sidecar}: expected a JSON object")
    # `lrv-hf infer` records what changes an answer under `settings` (older sidecars kept it at the top level)
    settings = meta.get("settings") if isinstance(meta.get("settings"), dict) else meta
    questions = {name: settings.get(name) for name in ("data", "config", "split")}
    generation = settings.get("generation")
    if generation is None:  # local inference records its generation settings flat beside the model's
        generation = {k: v for k, v in settings.items() if k not in ANSWERER_KEYS}
    if settings.get("endpoint"):
        return {settings["model"]: {"endpoint": settings["endpoint"], "model": settings["model"],
                                    "questions": questions, "generation": generation}}  # fmt: skip
    base = ModelRef.parse(settings["model"])
    identities = {}
    for label in meta.get("models") or [settings["model"]]:
        identity = {"model": base.name, "revision": base.revision, "questions": questions, "generation": generation}
        if label == settings.get("adapter"):
            adapter = ModelRef.parse(label)
            identity.update(adapter=adapter.name, adapter_revision=adapter.revision)
        identities[label] = identity
    return identities


def run_identity(
    scorer: str, predictions: list[str | Path], data: str | Path, judge=None, fingerprint: str | None = None
) -> dict:
    """The `identity` block of a summary.json: the scorer, models (from the predictions' sidecars), the scored data
    (path and fingerprint), the judge (model and endpoint, or None) and the lrv-hf version."""
    from . import __version__

    models = {}
    for path in predictions:
        models.update(model_identity(path))
    return {
        "scorer": scorer,
        "models": models,
        "data": {
            "path": " ".join(map(str, data)) if isinstance(data, (list, tuple)) else str(data),
            "fingerprint": fingerprint or fingerprint_path(data),
        },
        "judge": None if judge is None else {"model": judge.model, "base_url": judge.base_url},
        "lrv_hf_version": __version__,
    }


def write_run(output_dir: str | Path, summary: dict, rows: list[dict]) -> dict[str, Path]:
    """Write a scorer's `summary.json` and `scores.jsonl` (one JSON row per scored item) into `output_dir`: the
    folder `lrv-hf compare` and `push_run` read. Returns their paths; the scorer adds its report beside them."""
    out = Path(output_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths = {"summary": out / "summary.json", "scores": out / "scores.jsonl"}
    paths["summary"].write_text(json.dumps(summary, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    with paths["scores"].open("w", encoding="utf-8") as handle:
        for row in rows:
            handle.write(json.dumps(row, ensure_ascii=False) + "\n")
    return paths


def run_name(summary: dict) -> str:
    """The run's folder in the Hub repo: `<scorer>/<models>-<data fingerprint>-<UTC time>`."""
    identity = summary.get("identity") or {}
    models = "+".join(sorted(identity.get("models") or summary.get("models") or ["model"]))
    slug = re.sub(r"[^A-Za-z0-9._-]+", "_", models)[:80].strip("_") or "model"
    data = ((identity.get("data") or {}).get("fingerprint") or "nodata")[:8]
    scorer = identity.get("scorer") or summary.get("scorer", "run")
    return f"{scorer}/{slug}-{data}-{time.strftime('%Y%m%dT%H%M%SZ', time.gmtime())}"


def hub_token(repo_id: str) -> str:
    """The write token for `push_to_hub`, from `HF_TOKEN` only; checked before a scorer spends anything."""
    token = os.environ.get("HF_TOKEN")
    if not token:
        raise InputError(
            f"`push_to_hub` {repo_id}: pushing needs a write token in the environment variable HF_TOKEN", "push_to_hub"
        )
    return token


def push_run(output_dir: str | Path, repo_id: str, private: bool | None = None) -> str:
    """Upload a scorer's output folder (summary, per-item scores, report) into one folder of the Hub dataset repo
    `repo_id`, creating the repo when needed; the token comes from `HF_TOKEN` only. Returns the folder's URL."""
    from huggingface_hub import HfApi

    output_dir = Path(output_dir)
    token = hub_token(repo_id)
    summary = json.loads((output_dir / "summary.json").read_text(encoding="utf-8"))
    name = run_name(summary)
    api = HfApi(token=token)
    api.create_repo(repo_id, repo_type="dataset", private=private, exist_ok=True)
    api.upload_folder(
        repo_id=repo_id,
        repo_type="dataset",
        folder_path=output_dir,
        path_in_repo=name,
        allow_patterns=RUN_FILES,
        commit_message=f"lrv-hf: add run {name}",
    )
    return f"https://huggingface.co/datasets/{repo_id}/tree/main/{name}"
