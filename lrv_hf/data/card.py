"""The dataset card of a built LRV-Instruction folder, through `huggingface_hub.DatasetCard` and `datasets`' own
config and info metadata, so that `load_dataset` and the Hub viewer read the same configs, features and splits.
"""

import json
from pathlib import Path

import pyarrow.parquet as pq
from datasets import DatasetInfo, SplitDict, SplitInfo
from datasets.info import DatasetInfosDict
from datasets.utils.metadata import MetadataConfigs
from huggingface_hub import DatasetCard, DatasetCardData

from ..citation import CITATION
from .builder import LRVInstruction
from .features import FEATURES


REPORT_FILE = "build_report.json"

TEMPLATE = """---
{{ card_data }}
---

# LRV-Instruction

LRV-Instruction ([Liu et al., ICLR 2024](https://arxiv.org/abs/2306.14565)) is a visual instruction-tuning set built
against hallucination: besides positive instructions over many tasks it holds **negative** instructions that ask about
nonexistent elements or existing elements with wrong attributes, so that a model learns to say what is not there.
This repository republishes the [original release](https://github.com/FuxiaoLiu/LRV-Instruction) as Parquet, built
with lrv-hf (`lrv-hf data build`).

## Load it

```python
from datasets import load_dataset

ds = load_dataset("{{ repo_id }}", "{{ first_config }}", split="{{ first_split }}")
```

Each row is **one image** with its instructions as lists, so each image is stored once (LRV has about nine
instructions per image). One row per instruction, or the chat view that processors and TRL expect:

```python
from lrv_hf.data import chat_view, instruction_view

per_instruction = instruction_view(ds)   # image, image_id, question, answer, task, polarity, source, regions
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
{% for r in reports %}| `{{ r.config }}` | `{{ r.split }}` | {{ "{:,}".format(r.images) }} | {{ "{:,}".format(r.rows) }} | {{ "{:,}".format(r.duplicates) }} | {{ r.skipped }} | {{ r.files | join(", ") }} |
{% endfor %}
Rows are skipped only when the build was run with `--on-bad-rows skip`; the reasons are counted above and in
`{{ report_file }}`.

## Licence

The annotations are released by the LRV-Instruction authors under the BSD 3-Clause licence. The images come from
[Visual Genome](https://homes.cs.washington.edu/~ranjay/visualgenome/) and are licensed under
[CC BY 4.0](https://creativecommons.org/licenses/by/4.0/); chart images come from the sources named by the LRV
release. Cite Visual Genome (Krishna et al., 2017) when you use the images.

## Citation

```bibtex
{{ citation }}```
"""


def _splits(config_dir: Path, splits: list[str]) -> SplitDict:
    out = SplitDict()
    for split in splits:
        metadata = [pq.ParquetFile(f).metadata for f in sorted(config_dir.glob(f"{split}-*.parquet"))]
        out.add(
            SplitInfo(
                name=split,
                num_bytes=sum(m.row_group(i).total_byte_size for m in metadata for i in range(m.num_row_groups)),
                num_examples=sum(m.num_rows for m in metadata),
            )
        )
    return out


def dataset_card(output_dir: str | Path, repo_id: str = "<org>/lrv-instruction") -> DatasetCard:
    """The card of the built folder `output_dir`, from what is on disk: one config per folder of Parquet shards."""
    output_dir = Path(output_dir)
    report_path = output_dir / REPORT_FILE
    reports = json.loads(report_path.read_text()) if report_path.is_file() else {}
    configs: dict[str, list[str]] = {}
    for config_dir in sorted(p for p in output_dir.iterdir() if p.is_dir() and not p.name.startswith(".")):
        splits = sorted({f.name.split("-")[0] for f in config_dir.glob("*.parquet")})
        if splits:
            configs[config_dir.name] = splits
    card_data = DatasetCardData(
        license="bsd-3-clause",
        language=["en"],
        pretty_name="LRV-Instruction",
        task_categories=["visual-question-answering", "image-text-to-text"],
        tags=["hallucination", "visual-instruction-tuning", "lrv-instruction", "visual-genome"],
    )
    MetadataConfigs(
        {
            name: {
                "data_files": [{"split": split, "path": f"{name}/{split}-*.parquet"} for split in splits],
                **({"default": True} if name == LRVInstruction.DEFAULT_CONFIG_NAME else {}),
            }
            for name, splits in configs.items()
        }
    ).to_dataset_card_data(card_data)
    DatasetInfosDict(
        {
            name: DatasetInfo(features=FEATURES, splits=_splits(output_dir / name, splits))
            for name, splits in configs.items()
        }
    ).to_dataset_card_data(card_data)
    rows = []
    for _, report in sorted(reports.items()):
        skipped = ", ".join(f"{n} {reason}" for reason, n in sorted(report["skipped"].items())) or "none"
        rows.append({**report, "skipped": skipped})
    first = next(iter(configs), LRVInstruction.DEFAULT_CONFIG_NAME)
    return DatasetCard.from_template(
        card_data,
        template_str=TEMPLATE,
        repo_id=repo_id,
        first_config=first,
        first_split=configs.get(first, ["train"])[0],
        reports=rows,
        report_file=REPORT_FILE,
        citation=CITATION,
    )


def write_card(output_dir: str | Path, repo_id: str = "<org>/lrv-instruction") -> Path:
    """`dataset_card(output_dir, repo_id)` saved as `output_dir/README.md`."""
    path = Path(output_dir, "README.md")
    dataset_card(output_dir, repo_id).save(path)
    return path
