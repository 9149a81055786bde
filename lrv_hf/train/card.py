"""The adapter's model card (base model and revision, recipe, data, GAVIE figures) and its upload to the Hub.

The Hub token comes from the environment (`HF_TOKEN` or the cached login) only; it never enters a file or a log.
"""

import json
import logging
from pathlib import Path

import yaml

from .. import CITATION as _CITATION
from ..errors import InputError


logger = logging.getLogger(__name__)

# what an adapter repo needs: the adapter, the processor files, the card; never checkpoints, the pickled
# training_args.bin, the tiny base or the synthetic data a tiny run leaves beside it
UPLOAD_PATTERNS = ["adapter_model.safetensors", "adapter_config.json", "README.md", "*.json", "*.jinja", "*.model"]
IGNORE_PATTERNS = ["checkpoint-*", "checkpoint-*/*", "base/*", "synthetic/*", "trainer_state.json", "*.bin"]


def read_gavie(path: str | Path | None) -> dict | None:
    """The figures of a GAVIE `summary.json` (accuracy, relevancy, n), or None without a path."""
    if not path:
        return None
    try:
        summary = json.loads(Path(path).read_text())
        return {key: summary[key] for key in ("accuracy", "relevancy", "n") if key in summary}
    except (OSError, json.JSONDecodeError) as err:
        raise InputError(f"{path}: cannot read the GAVIE summary ({err})") from None


def model_card(
    base_model: str,
    base_revision: str,
    recipe: str | None,
    settings: dict,
    data: dict,
    gavie: dict | None = None,
) -> str:
    """Markdown with a Hub YAML header for an LRV adapter.

    Args:
        settings (`dict`): adapter and trainer settings worth recording (name -> value).
        data (`dict`): dataset name, config, split, view and the number of conversations trained on and dropped.
        gavie (`dict`, *optional*): `accuracy`, `relevancy`, `n` of a GAVIE run on this adapter.
    """
    header = {
        "base_model": base_model,  # the Hub links an adapter to its base by this id (dropped below for local paths)
        "library_name": "peft",
        "pipeline_tag": "image-text-to-text",
        "tags": ["lrv-instruction", "hallucination", "lrv-hf", settings.get("adapter", "lora")],
    }
    if Path(base_model).exists():
        del header["base_model"]
    if data.get("dataset") and not Path(str(data["dataset"])).exists():
        header["datasets"] = [data["dataset"]]
    rows = [("base model", f"`{base_model}` (revision `{base_revision}`)"), ("recipe", f"`{recipe or 'custom'}`")]
    rows += [(name, f"`{value}`") for name, value in settings.items()]
    rows += [(f"data: {name}", f"`{value}`") for name, value in data.items()]
    lines = [
        "---",
        yaml.safe_dump(header, sort_keys=False).strip(),
        "---",
        "",
        f"# LRV-Instruction adapter for {base_model}",
        "",
        "Robust visual instruction tuning against hallucination ([LRV-Instruction](https://arxiv.org/abs/2306.14565), "
        f"Liu et al., ICLR 2024): this {settings.get('adapter', 'lora')} adapter was trained with lrv-hf on positive "
        "and negative (nonexistent / existent element manipulation) instructions.",
        "",
        "## Training",
        "",
        "| setting | value |",
        "|---|---|",
        *[f"| {name} | {value} |" for name, value in rows],
        "",
    ]
    if gavie:
        lines += [
            "## GAVIE",
            "",
            "| accuracy (0-10) | relevancy (0-10) | questions |",
            "|---|---|---|",
            f"| {gavie.get('accuracy', float('nan')):.2f} | {gavie.get('relevancy', float('nan')):.2f} | "
            f"{gavie.get('n', '')} |",
            "",
        ]
    lines += [
        "## Usage",
        "",
        "```python",
        "from peft import PeftModel",
        "from transformers import AutoModelForImageTextToText, AutoProcessor",
        "",
        f'base = AutoModelForImageTextToText.from_pretrained("{base_model}", revision="{base_revision}")',
        'model = PeftModel.from_pretrained(base, "<this repo>")',
        'processor = AutoProcessor.from_pretrained("<this repo>")',
        "```",
        "",
        "## Citation",
        "",
        "```bibtex",
        _CITATION.strip(),
        "```",
        "",
    ]
    return "\n".join(lines)


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
