"""Judge prices (USD per million tokens) and the token estimate behind `--dry-run`.

The table is a default, dated below; providers change prices, so users override it (`prices=` / `--prices FILE`).
"""

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
