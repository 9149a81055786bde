"""Judge token and cost accounting: the price table, the offline token estimate and the usage of a finished run.

The table is a default, dated below; providers change prices, so users override it (`prices=` / `--prices FILE`).
"""

from dataclasses import asdict, dataclass

from ..errors import InputError


# USD per 1M tokens, standard (non-batch) tier, as listed on openai.com/api/pricing in 2025. The Batch API is half.
DEFAULT_PRICES: dict[str, dict[str, float]] = {
    "gpt-4o": {"input": 2.50, "output": 10.00},
    "gpt-4o-mini": {"input": 0.15, "output": 0.60},
    "gpt-4.1": {"input": 2.00, "output": 8.00},
    "gpt-4.1-mini": {"input": 0.40, "output": 1.60},
    "gpt-4.1-nano": {"input": 0.10, "output": 0.40},
    "gpt-4-turbo": {"input": 10.00, "output": 30.00},
    "gpt-4": {"input": 30.00, "output": 60.00},
    "gpt-3.5-turbo": {"input": 0.50, "output": 1.50},
}
BATCH_DISCOUNT = 0.5


def check_prices(prices: dict) -> None:
    """Raise `InputError` (a `ValueError`) naming the first entry of `prices` that is not `{"input": usd_per_1M, "output": ...}`."""
    if not isinstance(prices, dict):
        raise InputError(
            f'`prices` must map model names to {{"input": usd_per_1M, "output": usd_per_1M}}, got {prices!r}'
        )
    for model, price in prices.items():
        if not isinstance(price, dict) or not all(
            isinstance(price.get(k), (int, float)) and price[k] >= 0 for k in ("input", "output")
        ):
            raise InputError(f'`prices` entry {model!r} must be {{"input": usd_per_1M, "output": usd_per_1M}}')


def price_for(model: str, prices: dict[str, dict[str, float]]) -> dict[str, float] | None:
    """The price of `model`: an exact entry, else the longest entry it starts with (`gpt-4o-2024-08-06` -> `gpt-4o`)."""
    if model in prices:
        return prices[model]
    matches = [name for name in prices if model.startswith(name)]
    return prices[max(matches, key=len)] if matches else None


def cost_usd(price: dict[str, float] | None, prompt_tokens: float, completion_tokens: float) -> float | None:
    if price is None:
        return None
    return (prompt_tokens * price["input"] + completion_tokens * price["output"]) / 1e6


def estimate_tokens(messages: list[dict]) -> int:
    """Prompt tokens of a chat request, estimated offline (~4 characters per token, +4 per message of framing).

    Close to OpenAI's tokenizers on English prose (within ~10%); the real count comes back in `usage` and is what
    the run reports afterwards.
    """
    total = 3
    for message in messages:
        content = message.get("content") or ""
        if isinstance(content, list):
            content = " ".join(part.get("text", "") for part in content if isinstance(part, dict))
        total += 4 + (len(content) + 3) // 4
    return total


def results_cost(results: list, price: dict[str, float] | None, include_cached: bool = False) -> float | None:
    """USD for the tokens of answered `results` (only calls paid in this run unless `include_cached`)."""
    if price is None:
        return None
    total = 0.0
    for result in results:
        if result.text is None or (result.cached and not include_cached):
            continue
        factor = BATCH_DISCOUNT if result.via_batch else 1.0
        total += factor * cost_usd(price, result.prompt_tokens, result.completion_tokens)
    return total


@dataclass
class JudgeEstimate:
    """What a run would cost before it runs: calls to pay for (cache hits excluded) and estimated tokens."""

    requests: int
    cached: int
    calls: int
    prompt_tokens: int
    completion_tokens: int
    cost_usd: float | None
    batch_cost_usd: float | None
    max_cost_usd: float | None  # every call using all of `max_tokens`

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass
class JudgeUsage:
    """What a finished run spent: calls paid now, answered from the cache or failed, their tokens and cost.

    `prompt_tokens`, `completion_tokens` and `cost_usd` count the calls paid in this run; the `total_*` fields also
    count the replies that came from the cache (what the run would have cost from scratch).
    """

    requests: int
    cached: int
    paid_calls: int
    failed_calls: int
    prompt_tokens: int
    completion_tokens: int
    cost_usd: float | None
    total_prompt_tokens: int
    total_completion_tokens: int
    total_cost_usd: float | None

    @classmethod
    def of(cls, results: list, price: dict[str, float] | None) -> "JudgeUsage":
        answered = [r for r in results if r.text is not None]
        paid = [r for r in answered if not r.cached]
        return cls(
            requests=len(results),
            cached=len(answered) - len(paid),
            paid_calls=len(paid),
            failed_calls=len(results) - len(answered),
            prompt_tokens=sum(r.prompt_tokens for r in paid),
            completion_tokens=sum(r.completion_tokens for r in paid),
            cost_usd=results_cost(results, price),
            total_prompt_tokens=sum(r.prompt_tokens for r in answered),
            total_completion_tokens=sum(r.completion_tokens for r in answered),
            total_cost_usd=results_cost(results, price, include_cached=True),
        )

    def to_dict(self) -> dict:
        return asdict(self)
