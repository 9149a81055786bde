"""One client for any OpenAI-compatible chat endpoint, shared by GAVIE scoring and data generation.

Construct a `Judge` and pass it in; nothing here builds a client at import time.
"""

from .cache import JudgeCache, cache_key
from .client import Judge, JudgeError, JudgeEstimate, JudgeRequest, JudgeResult
from .prices import DEFAULT_PRICES, estimate_tokens, price_for


__all__ = [
    "DEFAULT_PRICES",
    "Judge",
    "JudgeCache",
    "JudgeError",
    "JudgeEstimate",
    "JudgeRequest",
    "JudgeResult",
    "cache_key",
    "estimate_tokens",
    "price_for",
]
