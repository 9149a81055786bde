"""One client for any OpenAI-compatible chat endpoint, shared by GAVIE scoring, data generation and the GQA judge.

Construct a `Judge` from a `JudgeConfig` and pass it in; nothing here builds a client at import time.
"""

from .accounting import DEFAULT_PRICES, JudgeEstimate, JudgeUsage, estimate_tokens, price_for
from .cache import JudgeCache, cache_key
from .client import Judge, JudgeRequest, JudgeResult
from .config import JudgeConfig
from .transport import JudgeError


__all__ = [
    "DEFAULT_PRICES",
    "Judge",
    "JudgeCache",
    "JudgeConfig",
    "JudgeError",
    "JudgeEstimate",
    "JudgeRequest",
    "JudgeResult",
    "JudgeUsage",
    "cache_key",
    "estimate_tokens",
    "price_for",
]
