"""`QuickstartConfig`: every setting of the quickstart, declared once (the command line's flags are made from it).

The judge settings live here and nowhere else in the quickstart; `QuickstartConfig.judge` builds its one judge.
"""

import os
from dataclasses import dataclass, field
from pathlib import Path


@dataclass
class QuickstartConfig:
    """The quickstart's settings; the GAVIE judge is used for real when `base_url` or the key is set, else dry run."""

    output_dir: str = field(default="runs/quickstart", metadata={"help": "where every step writes (and is reused)"})
    num_images: int = field(
        default=200, metadata={"help": "synthetic images (a fifth are held out; the recipe expects 200)"}
    )
    max_steps: int | None = field(default=None, metadata={"help": "training steps (default: the recipe's)"})
    max_new_tokens: int = field(default=24, metadata={"help": "answer length at inference"})
    seed: int = field(default=0, metadata={"help": "seed of the synthetic data, the probes and training"})
    judge_model: str = field(default="gpt-4o-mini", metadata={"help": "GAVIE judge model"})
    base_url: str | None = field(default=None, metadata={"help": "OpenAI-compatible endpoint, e.g. a local vLLM"})
    api_key_env: str = field(default="OPENAI_API_KEY", metadata={"help": "environment variable holding the key"})

    def __post_init__(self):
        if self.num_images < 5:
            raise ValueError(f"`num_images` must be at least 5 (a fifth are held out), got {self.num_images}")
        if self.max_steps is not None and self.max_steps < 1:
            raise ValueError(f"`max_steps` must be at least 1, got {self.max_steps}")
        if self.max_new_tokens < 1:
            raise ValueError(f"`max_new_tokens` must be at least 1, got {self.max_new_tokens}")

    @property
    def judge_is_set(self) -> bool:
        return bool(self.base_url or os.environ.get(self.api_key_env))

    def judge(self, cache_path: str | Path):
        """The quickstart's one judge (the key stays in its environment variable until a call needs it)."""
        from ..judge import Judge

        return Judge(
            model=self.judge_model, base_url=self.base_url, api_key_env=self.api_key_env, cache_path=cache_path
        )
