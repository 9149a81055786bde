"""The adapter's model card (through `huggingface_hub.ModelCard`, with GAVIE / POPE as `model-index` results) and its
upload to the Hub. The Hub token comes from the environment (`HF_TOKEN` or the cached login) only.
"""

import json
from pathlib import Path

from accelerate.logging import get_logger
from huggingface_hub import EvalResult, ModelCard, ModelCardData

from ..citation import CITATION
from ..errors import InputError


logger = get_logger(__name__)

# what an adapter repo needs: the adapter, the processor files, the card; never checkpoints, the pickled
# training_args.bin, the tiny base or the synthetic data a tiny run leaves beside it
UPLOAD_PATTERNS = ["adapter_model.safetensors", "adapter_config.json", "README.md", "*.json", "*.jinja", "*.model"]
IGNORE_PATTERNS = ["checkpoint-*", "checkpoint-*/*", "base/*", "synthetic/*", "trainer_state.json", "*.bin"]

TEMPLATE = """---
{{ card_data }}
---

# LRV-Instruction adapter for {{ base_model }}

Robust visual instruction tuning against hallucination ([LRV-Instruction](https://arxiv.org/abs/2306.14565), Liu et
al., ICLR 2024): this {{ adapter }} adapter was trained with lrv-hf on positive and negative (nonexistent / existent
element manipulation) instructions.

## Training

| setting | value |
|---|---|
{% for name, value in rows %}| {{ name }} | `{{ value }}` |
{% endfor %}
{% if gavie %}
## GAVIE

| accuracy (0-10) | relevancy (0-10) | questions |
|---|---|---|
| {{ "%.2f" | format(gavie.accuracy) }} | {{ "%.2f" | format(gavie.relevancy) }} | {{ gavie.n }} |
{% endif %}
{% if pope %}
## POPE

| probes | accuracy | F1 |
|---|---|---|
{% for strategy, figures in pope.items() %}| {{ strategy }} | {{ "%.4f" | format(figures.accuracy) }} | {{ "%.4f" | format(figures.f1) }} |
{% endfor %}
{% endif %}
## Usage

```python
from peft import PeftModel
from transformers import AutoModelForImageTextToText, AutoProcessor

base = AutoModelForImageTextToText.from_pretrained("{{ base_model }}", revision="{{ base_revision }}")
model = PeftModel.from_pretrained(base, "<this repo>")
processor = AutoProcessor.from_pretrained("<this repo>")
```

## Citation

```bibtex
{{ citation }}```
"""


def _read_summary(path: str | Path, parameter: str) -> dict:
    try:
        return json.loads(Path(path).read_text())
    except (OSError, json.JSONDecodeError) as err:
        raise InputError(f"`{parameter}` {path}: cannot read it ({err})") from None


def read_gavie(path: str | Path | None) -> dict | None:
    """The figures of a GAVIE `summary.json` (accuracy, relevancy, n), or None without a path."""
    if not path:
        return None
    summary = _read_summary(path, "gavie_summary")
    missing = [key for key in ("accuracy", "relevancy", "n") if key not in summary]
    if missing:
        raise InputError(f"`gavie_summary` {path}: no {', '.join(missing)} (is it an `lrv-hf gavie` summary.json?)")
    return {key: summary[key] for key in ("accuracy", "relevancy", "n")}


def read_pope(path: str | Path | None) -> dict | None:
    """{probe strategy: {accuracy, f1}} of a POPE `summary.json` scoring one model, or None without a path."""
    if not path:
        return None
    models = _read_summary(path, "pope_summary").get("models") or {}
    if len(models) != 1:
        raise InputError(f"`pope_summary` {path}: scores {len(models)} models; the card needs the one of this adapter")
    strategies = next(iter(models.values()))
    return {name: {"accuracy": m["accuracy"], "f1": m["f1"]} for name, m in sorted(strategies.items())}


def _is_hub_id(name: str | None) -> bool:
    # the Hub links a card to a base model or dataset by repo id; a local folder is none
    return bool(name) and not Path(name).exists() and name.count("/") == 1


def model_card(
    base_model: str,
    base_revision: str,
    recipe: str | None,
    settings: dict,
    data: dict,
    dataset_id: str | None = None,
    gavie: dict | None = None,
    pope: dict | None = None,
) -> ModelCard:
    """The card of an LRV adapter: Hub metadata (base model, datasets, `model-index` results) and the run's table.

    Args:
        settings (`dict`): adapter and trainer settings worth recording (name -> value).
        data (`dict`): dataset name, config, split, view and the number of conversations trained on and left out.
        dataset_id (`str`, *optional*): the training dataset; listed in `datasets` when it is a Hub repo id.
        gavie (`dict`, *optional*): `accuracy`, `relevancy`, `n` of a GAVIE run on this adapter.
        pope (`dict`, *optional*): `{strategy: {"accuracy", "f1"}}` of a POPE run on this adapter.
    """
    adapter = settings.get("adapter", "lora")
    name = f"LRV-Instruction {adapter} adapter for {base_model}"
    results = []
    for metric in ("accuracy", "relevancy"):
        if gavie:
            results.append(
                EvalResult(
                    task_type="image-text-to-text", dataset_type="lrv-instruction-gavie",
                    dataset_name="LRV-Instruction GAVIE evaluation set", metric_type=f"gavie-{metric}",
                    metric_name=f"GAVIE {metric} (0-10)", metric_value=gavie[metric],
                )
            )  # fmt: skip
    for strategy, figures in (pope or {}).items():
        for metric in ("accuracy", "f1"):
            results.append(
                EvalResult(
                    task_type="image-text-to-text", dataset_type="pope", dataset_name="POPE",
                    dataset_config=strategy, metric_type=metric, metric_name=f"POPE {strategy} {metric}",
                    metric_value=figures[metric],
                )
            )  # fmt: skip
    card_data = ModelCardData(
        base_model=base_model if _is_hub_id(base_model) else None,
        library_name="peft",
        pipeline_tag="image-text-to-text",
        tags=["lrv-instruction", "hallucination", "lrv-hf", adapter],
        datasets=[dataset_id] if _is_hub_id(dataset_id) else None,
        model_name=name,
        eval_results=results or None,
    )
    rows = [("base model", f"{base_model} (revision {base_revision})"), ("recipe", recipe or "custom")]
    rows += list(settings.items()) + [(f"data: {key}", value) for key, value in data.items()]
    return ModelCard.from_template(
        card_data,
        template_str=TEMPLATE,
        base_model=base_model,
        base_revision=base_revision,
        adapter=adapter,
        rows=rows,
        gavie=gavie,
        pope=pope,
        citation=CITATION,
    )


def write_model_card(output_dir: str | Path, *args, **kwargs) -> Path:
    """`model_card(*args, **kwargs)` saved as `output_dir/README.md`."""
    path = Path(output_dir, "README.md")
    model_card(*args, **kwargs).save(path)
    return path


def push_adapter(output_dir: str | Path, repo_id: str, private: bool = False) -> str:
    """Upload adapter, processor files and card from `output_dir` to the model repo `repo_id`; returns its URL."""
    from huggingface_hub import HfApi

    api = HfApi()  # token: HF_TOKEN or the cached login, never an argument that could end up in a log
    api.create_repo(repo_id, repo_type="model", private=private, exist_ok=True)
    api.upload_folder(
        repo_id=repo_id,
        folder_path=str(output_dir),
        allow_patterns=UPLOAD_PATTERNS,
        ignore_patterns=IGNORE_PATTERNS,
        commit_message="Upload LRV-Instruction adapter",
    )
    url = f"https://huggingface.co/{repo_id}"
    logger.info("pushed the adapter to %s", url)
    return url
