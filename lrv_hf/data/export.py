"""Build release files into a Hub-layout dataset folder (Parquet shards + dataset card) and push it to the Hub.

`datasets.load_dataset(<folder>, <config>, split=<split>)` loads the result, locally or from the Hub repo it was
pushed to; several configs can be built into the same folder one after another.
"""

import json
import logging
import os
import shutil
from dataclasses import asdict
from pathlib import Path

import datasets

from ..errors import InputError
from .builder import LRVInstruction
from .card import REPORT_FILE, write_card


logger = logging.getLogger(__name__)

KNOWN_CONFIGS = tuple(config.name for config in LRVInstruction.BUILDER_CONFIGS)
PARALLEL_ABOVE_BYTES = 8_000_000


def build_dataset(
    instruction_files: list[str | Path],
    images_dir: str | Path,
    output_dir: str | Path,
    regions_file: str | Path | None = None,
    config_name: str = "instructions",
    split: str = "train",
    on_bad_rows: str = "error",
    max_shard_size: str | int = "500MB",
    writer_batch_size: int | None = None,
    num_proc: int | None = None,
) -> dict:
    """Build one config/split of LRV-Instruction into `output_dir/<config_name>/<split>-*.parquet` and the card.

    Returns the build report (rows, images, duplicates, skipped rows by reason, shard files). `num_proc` processes
    write the Parquet (default: up to 4 when the instruction files exceed 8 MB, else 1).
    """
    if not config_name or "/" in config_name or config_name.startswith("."):
        raise InputError(f"--config-name {config_name!r}: use a plain name such as 'instructions'")
    if not instruction_files:
        raise InputError("--instructions: give at least one release file")
    output_dir = Path(output_dir)
    work = output_dir / f".build-{config_name}-{split}"
    shutil.rmtree(work, ignore_errors=True)
    overrides = {} if config_name in KNOWN_CONFIGS else {"name": config_name}
    builder = LRVInstruction(
        config_name=config_name if config_name in KNOWN_CONFIGS else "instructions",
        cache_dir=str(work / "cache"),
        instruction_files=tuple(str(f) for f in instruction_files),
        images_dir=str(images_dir),
        regions_file=str(regions_file) if regions_file else None,
        split=split,
        on_bad_rows=on_bad_rows,
        writer_batch_size=writer_batch_size,  # images per row group; shards are cut between row groups
        **overrides,
    )
    if num_proc is None:  # worth a second process only when there is real work; each costs a second to start
        size = sum(Path(f).stat().st_size for f in instruction_files if Path(f).is_file())
        num_proc = min(os.cpu_count() or 1, 4) if size > PARALLEL_ABOVE_BYTES else 1
    try:
        builder.download_and_prepare(
            str(work / "prepared"),
            file_format="parquet",
            max_shard_size=max_shard_size,
            download_mode="force_redownload",
            num_proc=num_proc if num_proc > 1 else None,
        )
    except datasets.exceptions.DatasetGenerationError as err:
        cause = err.__cause__ or err.__context__
        if isinstance(cause, InputError):
            raise cause from None
        raise
    finally:
        shutil.rmtree(work / "cache", ignore_errors=True)

    shards = sorted((work / "prepared").glob(f"*-{split}*.parquet"))
    target = output_dir / config_name
    target.mkdir(parents=True, exist_ok=True)
    for old in target.glob(f"{split}-*.parquet"):
        old.unlink()
    names = []
    for i, shard in enumerate(shards):
        name = f"{split}-{i:05d}-of-{len(shards):05d}.parquet"
        shard.replace(target / name)
        names.append(f"{config_name}/{name}")
    shutil.rmtree(work, ignore_errors=True)

    report = asdict(builder.report)
    report.update(config=config_name, split=split, shards=names, on_bad_rows=on_bad_rows)
    report["num_bytes"] = sum((output_dir / n).stat().st_size for n in names)
    reports = _read_reports(output_dir)
    reports[f"{config_name}/{split}"] = report
    (output_dir / REPORT_FILE).write_text(json.dumps(reports, indent=2) + "\n")
    write_card(output_dir)
    return report


def _read_reports(output_dir: Path) -> dict:
    path = output_dir / REPORT_FILE
    return json.loads(path.read_text()) if path.is_file() else {}


def push_to_hub(output_dir: str | Path, repo_id: str, private: bool = False, token: str | None = None) -> str:
    """Upload the built folder (card, report, Parquet shards) as a dataset repo; the token comes from the environment.

    Returns the commit URL. The card's load snippet names `repo_id`.
    """
    from huggingface_hub import HfApi

    output_dir = Path(output_dir)
    write_card(output_dir, repo_id=repo_id)
    api = HfApi(token=token)
    api.create_repo(repo_id, repo_type="dataset", private=private, exist_ok=True)
    commit = api.upload_folder(
        repo_id=repo_id,
        repo_type="dataset",
        folder_path=str(output_dir),
        allow_patterns=["README.md", REPORT_FILE, "*/*.parquet"],
        commit_message="Upload LRV-Instruction built with lrv-hf",
    )
    return str(commit)
