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
    max_image_pixels: int | None = None,
) -> dict:
    """Build one config/split of LRV-Instruction into `output_dir/<config_name>/<split>-*.parquet` and the card.

    Returns the build report (rows, images, duplicates, skipped rows by reason, shard files). `num_proc` processes
    write the Parquet (default: up to 4 when the instruction files exceed 8 MB, else 1). Images over
    `max_image_pixels` (default: PIL's limit) are bad images, like corrupt ones.

    The build happens in `output_dir/.build-<config>-<split>/` and replaces the config's folder only once complete:
    a killed build leaves the previous one in place, and the next build clears what the kill left.
    """
    if not config_name or "/" in config_name or config_name.startswith("."):
        raise InputError(f"`config_name` {config_name!r}: use a plain name such as 'instructions'", "config_name")
    if not instruction_files:
        raise InputError("`instruction_files`: give at least one release file", "instruction_files")
    output_dir = Path(output_dir)
    work = output_dir / f".build-{config_name}-{split}"
    target = output_dir / config_name
    _restore(work / "previous", target)
    reports = _read_reports(output_dir)  # a corrupt report stops the build now, not after the work
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
        max_image_pixels=max_image_pixels,
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
        names = _swap_in(sorted((work / "prepared").glob(f"*-{split}*.parquet")), target, split, work)
    except datasets.exceptions.DatasetGenerationError as err:
        cause = err.__cause__ or err.__context__
        if isinstance(cause, InputError):
            raise cause from None
        raise
    finally:
        _restore(work / "previous", target)
        shutil.rmtree(work, ignore_errors=True)

    report = asdict(builder.report)
    report.update(config=config_name, split=split, shards=names, on_bad_rows=on_bad_rows)
    report["num_bytes"] = sum((output_dir / n).stat().st_size for n in names)
    reports[f"{config_name}/{split}"] = report
    report_path = output_dir / REPORT_FILE
    report_path.with_name(REPORT_FILE + ".tmp").write_text(json.dumps(reports, indent=2) + "\n")
    report_path.with_name(REPORT_FILE + ".tmp").replace(report_path)
    write_card(output_dir)
    return report


def _swap_in(shards: list[Path], target: Path, split: str, work: Path) -> list[str]:
    """Replace the config folder `target` by one holding its other splits' files and this split's new `shards`.

    Returns the new shards' paths relative to the output folder.
    """
    staged = work / "staged"
    staged.mkdir()
    if target.is_dir():
        for kept in target.iterdir():
            if kept.is_file() and not kept.name.startswith(f"{split}-"):
                _link_or_copy(kept, staged / kept.name)  # hard links: no copy of the other splits
    names = []
    for i, shard in enumerate(shards):
        name = f"{split}-{i:05d}-of-{len(shards):05d}.parquet"
        shard.replace(staged / name)
        names.append(f"{target.name}/{name}")
    if target.is_dir():
        os.rename(target, work / "previous")  # a kill between these two renames is undone by `_restore`
    os.rename(staged, target)
    return names


def _restore(previous: Path, target: Path):
    """Put back the previous build of a config when a kill came between moving it aside and moving the new one in."""
    if previous.is_dir() and not target.exists():
        os.rename(previous, target)


def _link_or_copy(src: Path, dst: Path):
    try:
        os.link(src, dst)
    except OSError:  # a file system without hard links
        shutil.copy2(src, dst)


def _read_reports(output_dir: Path) -> dict:
    path = output_dir / REPORT_FILE
    if not path.is_file():
        return {}
    fix = "delete it (the next build writes a new one, listing only the configs built after that)"
    try:
        reports = json.loads(path.read_text(encoding="utf-8"))
    except (ValueError, UnicodeDecodeError) as err:
        raise InputError(f"{path}: not a build report of lrv-hf ({err}); {fix}") from None
    if not isinstance(reports, dict) or not all(isinstance(r, dict) for r in reports.values()):
        raise InputError(f"{path}: not a build report of lrv-hf (expected an object of reports); {fix}")
    return reports


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
