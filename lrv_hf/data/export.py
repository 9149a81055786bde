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
import pyarrow.parquet as pq
import yaml

from ..errors import InputError
from .builder import _CITATION, LRVInstruction
from .features import FEATURES


logger = logging.getLogger(__name__)

REPORT_FILE = "build_report.json"
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


def write_card(output_dir: str | Path, repo_id: str = "<org>/lrv-instruction") -> Path:
    """Write README.md: YAML header (`configs:` block, features, licence) and the card body, from what is on disk."""
    output_dir = Path(output_dir)
    reports = _read_reports(output_dir)
    configs: dict[str, list[str]] = {}
    for config_dir in sorted(p for p in output_dir.iterdir() if p.is_dir() and not p.name.startswith(".")):
        splits = sorted({f.name.split("-")[0] for f in config_dir.glob("*.parquet")})
        if splits:
            configs[config_dir.name] = splits
    info_features = FEATURES._to_yaml_list()
    header = {
        "license": "bsd-3-clause",
        "language": ["en"],
        "pretty_name": "LRV-Instruction",
        "task_categories": ["visual-question-answering", "image-text-to-text"],
        "tags": ["hallucination", "visual-instruction-tuning", "lrv-instruction", "visual-genome"],
        "configs": [
            {
                "config_name": name,
                "data_files": [{"split": split, "path": f"{name}/{split}-*.parquet"} for split in splits],
                **({"default": True} if name == "instructions" else {}),
            }
            for name, splits in configs.items()
        ],
        "dataset_info": [
            {
                "config_name": name,
                "features": info_features,
                "splits": [_split_info(output_dir / name, split) for split in splits],
            }
            for name, splits in configs.items()
        ],
    }
    rows = []
    for _, report in sorted(reports.items()):
        skipped = ", ".join(f"{n} {reason}" for reason, n in sorted(report["skipped"].items())) or "none"
        rows.append(
            f"| `{report['config']}` | `{report['split']}` | {report['images']:,} | {report['rows']:,} | "
            f"{report['duplicates']:,} | {skipped} | {', '.join(report['files'])} |"
        )
    first = next(iter(configs), "instructions")
    first_split = configs.get(first, ["train"])[0]
    body = f"""
# LRV-Instruction

LRV-Instruction ([Liu et al., ICLR 2024](https://arxiv.org/abs/2306.14565)) is a visual instruction-tuning set built
against hallucination: besides positive instructions over many tasks it holds **negative** instructions that ask about
nonexistent elements or existing elements with wrong attributes, so that a model learns to say what is not there.
This repository republishes the [original release](https://github.com/FuxiaoLiu/LRV-Instruction) as Parquet, built
with lrv-hf (`lrv-hf data build`).

## Load it

```python
from datasets import load_dataset

ds = load_dataset("{repo_id}", "{first}", split="{first_split}")
```

Each row is **one image** with its instructions as lists, so each image is stored once (LRV has about nine
instructions per image). One row per instruction, or the chat view that processors and TRL expect:

```python
from lrv_hf.data import chat_view, instruction_view

per_instruction = instruction_view(ds)   # image, image_id, question, answer, task, polarity, source, ...
chat = chat_view(ds)                     # messages (user turn with the image + assistant answer), images
```

## Fields

- `image`: the image (PIL when loaded); `image_id`: the Visual Genome id (chart data: the file name).
- `question`, `answer`, `task`, `source`: one entry per instruction; `answer` is null in the evaluation set, `task` is
  the task name as the generator wrote it (negative instances carry `negative`), `source` the release file.
- `reference_answer`: the July-2023 evaluation set's `answer_gt`, a reference answer to compare a model's answer
  with, in a column of its own so that it is never taken for a model answer or trained on; null elsewhere.
- `polarity`: `negative` when the release marks the instruction negative, `positive` for other tasks, null when
  the file carries no task (the evaluation set mixes both without marking them).
- `regions`: the image's dense captions with boxes `[x, y, width, height]` in pixels (the input of GAVIE).

## Configs and build report

| config | split | images | instructions | duplicates dropped | rows skipped | release files |
|---|---|---|---|---|---|---|
{chr(10).join(rows)}

Rows are skipped only when the build was run with `--on-bad-rows skip`; the reasons are counted above and in
`{REPORT_FILE}`.

## Licence

The annotations are released by the LRV-Instruction authors under the BSD 3-Clause licence. The images come from
[Visual Genome](https://homes.cs.washington.edu/~ranjay/visualgenome/) and are licensed under
[CC BY 4.0](https://creativecommons.org/licenses/by/4.0/); chart images come from the sources named by the LRV
release. Cite Visual Genome (Krishna et al., 2017) when you use the images.

## Citation

```bibtex
{_CITATION.strip()}
```
"""
    card = "---\n" + yaml.dump(header, Dumper=_NoAliases, sort_keys=False, width=1000) + "---\n" + body
    path = output_dir / "README.md"
    path.write_text(card)
    return path


def _split_info(config_dir: Path, split: str) -> dict:
    metadata = [pq.ParquetFile(f).metadata for f in sorted(config_dir.glob(f"{split}-*.parquet"))]
    return {
        "name": split,
        "num_bytes": sum(m.row_group(i).total_byte_size for m in metadata for i in range(m.num_row_groups)),
        "num_examples": sum(m.num_rows for m in metadata),
    }


class _NoAliases(yaml.SafeDumper):
    # the Hub's card parser is happier without &id001 anchors for the repeated features block
    def ignore_aliases(self, data):
        return True


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
