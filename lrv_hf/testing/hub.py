"""Tiny base + LoRA adapters on disk, and a local Hub cache holding them under fake repo ids and revisions.

The cache has the layout `huggingface_hub` writes (`models--org--name/snapshots/<commit>/...`, `refs/main`), so
with `HF_HUB_OFFLINE=1` and `HF_HUB_CACHE` pointing at it, `snapshot_download(repo_id, revision=commit)` and
`from_pretrained(repo_id, revision=commit)` resolve them exactly as they would resolve a real download.
"""

import hashlib
import shutil
from pathlib import Path


def save_base(path: Path) -> Path:
    """The tiny LLaVA base (seed 0) saved in `path`."""
    from .tiny import save_tiny_base

    return save_tiny_base(path, seed=0)


def save_adapter(base_dir: Path, output_dir: Path, base_name: str, seed: int = 1, pickle: bool = False) -> Path:
    """A LoRA on `q_proj`/`v_proj` with B perturbed (so its answers differ from the base's), recording `base_name`."""
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForImageTextToText

    model = AutoModelForImageTextToText.from_pretrained(base_dir)
    peft_model = get_peft_model(model, LoraConfig(r=8, target_modules=["q_proj", "v_proj"]))
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, param in peft_model.named_parameters():
            if "lora_B" in name:  # B starts at zero, which would make the adapter a no-op
                param.copy_(torch.randn(param.shape, generator=generator) * 0.5)
    peft_model.peft_config["default"].base_model_name_or_path = base_name
    peft_model.save_pretrained(output_dir, safe_serialization=True)
    if pickle:  # what the original release shipped: a torch.save'd state dict
        weights = Path(output_dir, "adapter_model.safetensors")
        from safetensors.torch import load_file

        torch.save(load_file(weights), Path(output_dir, "adapter_model.bin"))
        weights.unlink()
    return Path(output_dir)


def fake_commit(repo_id: str) -> str:
    """A stable 40-hex commit id for `repo_id`."""
    return hashlib.sha1(repo_id.encode()).hexdigest()


def publish(cache_dir: Path, repo_id: str, folder: Path) -> str:
    """Put `folder` in the cache as `repo_id` at a fake commit (also `main`); returns the commit."""
    commit = fake_commit(repo_id)
    repo = Path(cache_dir, "models--" + repo_id.replace("/", "--"))
    shutil.copytree(folder, repo / "snapshots" / commit, dirs_exist_ok=True)
    (repo / "refs").mkdir(parents=True, exist_ok=True)
    (repo / "refs" / "main").write_text(commit)
    return commit
