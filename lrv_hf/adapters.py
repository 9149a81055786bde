"""Fetching and checking LoRA adapters (a local folder, or a Hub repo at a pinned revision) before any weight loads.

Inference and the demo share these checks: safetensors only (a pickled `adapter_model.bin` can run code when
loaded, so it is refused), and an adapter trained on another base is refused instead of producing nonsense.
"""

import json
import logging
import os
from dataclasses import dataclass
from pathlib import Path

from .errors import InputError


logger = logging.getLogger(__name__)

ADAPTER_CONFIG = "adapter_config.json"
ADAPTER_WEIGHTS = "adapter_model.safetensors"
PICKLE_SUFFIXES = (".bin", ".pt", ".pth", ".pkl", ".pickle", ".ckpt")


@dataclass(frozen=True)
class ModelRef:
    """A model or adapter named as `PATH`, `REPO_ID` or `REPO_ID@REVISION` (a local folder wins over a repo id)."""

    name: str
    revision: str | None = None

    @classmethod
    def parse(cls, spec: str) -> "ModelRef":
        spec = spec.strip()
        if not spec:
            raise InputError("empty model or adapter name")
        if os.path.isdir(spec) or "@" not in spec:
            return cls(spec)
        name, _, revision = spec.rpartition("@")
        if not name or not revision:
            raise InputError(f"{spec!r}: expected REPO_ID@REVISION")
        return cls(name, revision)

    @property
    def is_local(self) -> bool:
        return self.revision is None and os.path.isdir(self.name)

    def __str__(self) -> str:
        return self.name if self.revision is None else f"{self.name}@{self.revision}"


def fetch_adapter(ref: ModelRef | str, token: str | None = None) -> Path:
    """A local folder holding `adapter_config.json` and `adapter_model.safetensors` for `ref`, checked.

    A Hub adapter is fetched with `huggingface_hub.snapshot_download` at `ref.revision` (only the config and the
    safetensors weights are downloaded; honours `HF_HUB_OFFLINE` and the local cache).

    Raises:
        `InputError`: the adapter cannot be fetched, has no config, or ships pickle weights only.
    """
    ref = ModelRef.parse(ref) if isinstance(ref, str) else ref
    if ref.is_local:
        folder = Path(ref.name)
    else:
        if ref.revision is None:
            logger.warning("adapter %s has no pinned revision; using `main` (pin one with %s@<commit>)", ref, ref)
        from huggingface_hub import snapshot_download

        try:
            folder = Path(
                snapshot_download(
                    ref.name,
                    revision=ref.revision,
                    allow_patterns=[ADAPTER_CONFIG, ADAPTER_WEIGHTS],
                    token=token or os.environ.get("HF_TOKEN"),
                )
            )
        except Exception as err:  # offline, missing repo or revision, network: all reported the same way
            reason = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
            raise InputError(
                f"adapter {ref}: cannot be fetched from the Hub ({type(err).__name__}: {reason})"
            ) from None
    check_adapter_files(folder, str(ref))
    return folder


def check_adapter_files(folder: Path, label: str) -> None:
    """Refuse a folder without `adapter_config.json` or whose weights are not `adapter_model.safetensors`."""
    if not folder.is_dir():
        raise InputError(f"adapter {label}: no such folder")
    if not (folder / ADAPTER_WEIGHTS).is_file():
        pickles = sorted(p.name for p in folder.iterdir() if p.suffix.lower() in PICKLE_SUFFIXES)
        found = f"it holds pickle weights ({', '.join(pickles)})" if pickles else f"it has no {ADAPTER_WEIGHTS}"
        raise InputError(
            f"adapter {label}: {found}; only safetensors adapters are loaded (a pickle can run code when loaded): "
            f"convert it with `PeftModel.save_pretrained(..., safe_serialization=True)`"
        )
    if not (folder / ADAPTER_CONFIG).is_file():
        raise InputError(f"adapter {label}: no {ADAPTER_CONFIG}")


def adapter_base(folder: Path) -> str | None:
    """The `base_model_name_or_path` an adapter was trained on, as its config records it."""
    try:
        config = json.loads((folder / ADAPTER_CONFIG).read_text())
    except (OSError, json.JSONDecodeError) as err:
        raise InputError(f"{folder / ADAPTER_CONFIG}: unreadable ({err})") from None
    return config.get("base_model_name_or_path") if isinstance(config, dict) else None


def _local_dir(name: str, relative_to: Path) -> str | None:
    for candidate in (relative_to / name, Path(name)):
        if candidate.is_dir():
            return os.path.realpath(candidate)
    return None


def same_base(recorded: str | None, base: str, adapter_dir: Path) -> bool:
    """Whether an adapter's recorded base names the loaded `base`: the same repo id, or the same folder on disk."""
    if not recorded:
        return False
    if recorded.rstrip("/") == base.rstrip("/"):
        return True
    recorded_dir, base_dir = _local_dir(recorded, adapter_dir), _local_dir(base, Path.cwd())
    return recorded_dir is not None and recorded_dir == base_dir


def check_base(folder: Path, base: str, label: str) -> None:
    """Refuse an adapter trained on another base than `base` (the name the base was loaded by)."""
    recorded = adapter_base(folder)
    if not same_base(recorded, base, folder):
        raise InputError(
            f"adapter {label}: trained on base {recorded!r}, but the loaded base is {base!r}; "
            "load the base it was trained on (or fix `base_model_name_or_path` in its adapter_config.json)"
        )


# -- serving with vLLM ------------------------------------------------------------------------------------------------
# what vLLM's LoRA (`vllm serve BASE --enable-lora --lora-modules lrv=ADAPTER`) loads, per its `PEFTHelper` checks and
# multimodal LoRA support: LoRA on the language model's linear layers, no DoRA, no bias, no `modules_to_save`, rank at
# most `--max-lora-rank` (16 unless raised; 256 is the largest of the usual choices 8..256)
VLLM_LORA_MODULES = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")
VLLM_DEFAULT_MAX_RANK = 16
VLLM_MAX_RANK = 256
VISION_MODULES = ("vision_tower", "vision_model", "multi_modal_projector", "visual", "language_projection", "qformer")


def vllm_problems(config: dict) -> list[str]:
    """Why vLLM's LoRA support would refuse an adapter with this `adapter_config.json` (empty when it loads)."""
    problems = []
    if config.get("peft_type", "LORA") != "LORA":
        problems.append(f"peft_type {config.get('peft_type')!r}: vLLM serves LoRA adapters only")
    rank = config.get("r")
    if not isinstance(rank, int) or rank < 1:
        problems.append(f"r {rank!r}: not a LoRA rank")
    elif rank > VLLM_MAX_RANK:
        problems.append(f"r {rank}: over {VLLM_MAX_RANK}, the largest `--max-lora-rank` vLLM offers")
    if config.get("use_dora"):
        problems.append("use_dora: vLLM does not serve DoRA adapters")
    if config.get("bias", "none") != "none":
        problems.append(f"bias {config.get('bias')!r}: vLLM serves LoRA without trained biases (bias: none)")
    if config.get("modules_to_save"):
        problems.append(
            f"modules_to_save {config['modules_to_save']}: fully trained modules (an lm_head, a projector) are not "
            "loaded by vLLM's LoRA"
        )
    targets = config.get("target_modules") or []
    if isinstance(targets, str):  # a regex over module paths
        if any(name in targets for name in VISION_MODULES):
            problems.append(f"target_modules {targets!r}: LoRA on the vision tower or projector is not served")
    else:
        others = [name for name in targets if name.rsplit(".", 1)[-1] not in VLLM_LORA_MODULES]
        if others:
            problems.append(
                f"target_modules {others}: vLLM applies LoRA to the language model's linear layers only "
                f"({', '.join(VLLM_LORA_MODULES)})"
            )
    return problems


def check_vllm(path: str | Path) -> tuple[list[str], int | None]:
    """`(problems, max_lora_rank)` for serving the adapter folder `path` with vLLM; `max_lora_rank` is the
    `--max-lora-rank` it needs (None when vLLM's default will do)."""
    config_file = Path(path) / ADAPTER_CONFIG
    try:
        config = json.loads(config_file.read_text())
    except (OSError, json.JSONDecodeError) as err:
        raise InputError(f"{config_file}: unreadable ({err})", "path") from None
    if not isinstance(config, dict):
        raise InputError(f"{config_file}: expected a JSON object", "path")
    problems, rank = vllm_problems(config), config.get("r")
    if not problems and rank > VLLM_DEFAULT_MAX_RANK:
        return problems, next(r for r in (32, 64, 128, 256) if r >= rank)
    return problems, None
