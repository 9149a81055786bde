"""`JudgeConfig`: the single declaration of a judge's settings (endpoint, key variable, cache, limits, prices).

`Judge(config)` runs with it; `lrv_hf.judge.cli` derives the judge flags of every command from its fields.
"""

from dataclasses import dataclass, field
from pathlib import Path

from ..errors import InputError
from .accounting import DEFAULT_PRICES, check_prices


@dataclass
class JudgeConfig:
    """Settings of a `Judge`. Every field has a default except `model`; invalid values raise naming the field."""

    model: str = field(metadata={"help": "The judge model (on Azure OpenAI: the deployment name)."})
    base_url: str | None = field(
        default=None,
        metadata={"help": "An OpenAI-compatible endpoint (vLLM, TGI, `transformers serve`, Ollama, ...); "
                  "`None` is OpenAI's API. On Azure: the resource endpoint."},
    )  # fmt: skip
    api_key_env: str | None = field(
        default="OPENAI_API_KEY",
        metadata={"help": "Environment variable holding the key, read when a call is made and never stored. Against "
                  "a custom `base_url` an unset variable means no key (local servers need none)."},
    )  # fmt: skip
    cache_path: str | Path | None = field(
        default=None, metadata={"help": "SQLite reply cache; `None` keeps replies in memory for this process."}
    )
    concurrency: int = field(default=16, metadata={"help": "Calls in flight at once."})
    timeout: float = field(default=60.0, metadata={"help": "Seconds per try of one call."})
    max_retries: int = field(
        default=6,
        metadata={"help": "Retries per call on 429 (honouring `Retry-After`), 5xx, timeouts, dropped connections and "
                  "malformed replies."},
    )  # fmt: skip
    temperature: float | None = field(
        default=0.0, metadata={"help": "Sampling temperature; `None` leaves it to the server."}
    )
    max_tokens: int | None = field(default=1024, metadata={"help": "Completion limit per call; `None` sends none."})
    prices: dict[str, dict[str, float]] | None = field(
        default=None,
        metadata={"help": 'USD per 1M tokens, `{model: {"input": ..., "output": ...}}`, merged over the defaults.'},
    )
    azure_api_version: str | None = field(
        default=None, metadata={"help": "Talk to Azure OpenAI with this `api-version` (`base_url` is the resource)."}
    )
    extra_body: dict | None = field(
        default=None, metadata={"help": "More request fields (e.g. `{'seed': 0}`); part of the cache key."}
    )

    def __post_init__(self):
        # InputError is a ValueError the CLI prints as one line
        if not self.model:
            raise InputError("`model` is empty; pass the judge model name (e.g. gpt-4o)")
        if self.concurrency < 1:
            raise InputError(f"`concurrency` must be >= 1, got {self.concurrency}")
        if self.max_retries < 0:
            raise InputError(f"`max_retries` must be >= 0, got {self.max_retries}")
        if self.timeout <= 0:
            raise InputError(f"`timeout` must be > 0 seconds, got {self.timeout}")
        if self.max_tokens is not None and self.max_tokens < 1:
            raise InputError(f"`max_tokens` must be >= 1 or None, got {self.max_tokens}")
        if self.azure_api_version and not self.base_url:
            raise InputError(
                "Azure OpenAI (`azure_api_version`) needs `base_url` (https://<resource>.openai.azure.com)"
            )
        if self.prices is not None:
            check_prices(self.prices)

    @property
    def price_table(self) -> dict[str, dict[str, float]]:
        return {**DEFAULT_PRICES, **(self.prices or {})}
