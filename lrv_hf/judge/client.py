"""`Judge`: one client for any OpenAI-compatible chat endpoint (OpenAI, Azure OpenAI, vLLM, `transformers serve`).

Bounded concurrency over the `openai` SDK, a persistent SQLite cache, token and cost accounting, an offline cost
estimate and the OpenAI Batch API. It knows nothing about what it is asked.
"""

import asyncio
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

from .accounting import BATCH_DISCOUNT, JudgeEstimate, JudgeUsage, cost_usd, estimate_tokens, price_for, results_cost
from .cache import CachedReply, JudgeCache, cache_key
from .config import JudgeConfig
from .transport import JudgeError, complete, endpoint, open_client, read_key


@dataclass
class JudgeRequest:
    """One chat request to the judge.

    Args:
        messages (`list[dict]`): OpenAI-style chat messages.
        sample (`int`, *optional*, defaults to `0`):
            Which independent draw this is. Part of the cache key, so draws 0..N-1 of one prompt are N paid calls
            that each stay cached (judge-variance estimates, re-asks).
        metadata (`dict`, *optional*): The caller's bookkeeping; never sent and never part of the key.
    """

    messages: list[dict]
    sample: int = 0
    metadata: dict = field(default_factory=dict)


@dataclass
class JudgeResult:
    """The judge's reply to one request: `text` when it answered, else `error` (never both)."""

    request: JudgeRequest
    text: str | None
    error: str | None
    cached: bool
    prompt_tokens: int
    completion_tokens: int
    cache_key: str
    via_batch: bool = False  # answered through the Batch API (billed at half price)

    @classmethod
    def of(cls, request: JudgeRequest, key: str, reply, cached: bool, error: str | None) -> "JudgeResult":
        """The result for `request` from its cached or fresh `reply` (None when it failed with `error`)."""
        return cls(
            request=request,
            text=reply.text if reply else None,
            error=None if reply else error,
            cached=cached,
            prompt_tokens=reply.prompt_tokens if reply else 0,
            completion_tokens=reply.completion_tokens if reply else 0,
            cache_key=key,
            via_batch=bool(reply and reply.via_batch),
        )


class Judge:
    """A chat-completions client built for scoring and generation runs of thousands of calls.

    Args:
        config (`JudgeConfig` or `str`):
            The settings, or the judge model name with the other `JudgeConfig` fields as keywords
            (`Judge("gpt-4o", base_url=...)` and `Judge(model="gpt-4o", ...)` are `Judge(JudgeConfig("gpt-4o", ...))`).
    """

    def __init__(self, config: JudgeConfig | str | None = None, /, **settings):
        if config is None:
            config = JudgeConfig(**settings)
        elif not isinstance(config, JudgeConfig):
            config = JudgeConfig(config, **settings)
        elif settings:
            raise TypeError(f"Judge(config) takes no more settings; got {sorted(settings)}")
        self.config = config
        self.cache = JudgeCache(config.cache_path)

    @classmethod
    def from_config(cls, config: JudgeConfig) -> "Judge":
        return cls(config)

    @property
    def model(self) -> str:
        return self.config.model

    @property
    def base_url(self) -> str:
        return endpoint(self.config)

    @property
    def max_tokens(self) -> int | None:
        return self.config.max_tokens

    @property
    def prices(self) -> dict[str, dict[str, float]]:
        """The default price table with `config.prices` over it."""
        return self.config.price_table

    def __repr__(self) -> str:  # never shows the key: it is read per run and never stored
        return f"Judge(model={self.model!r}, base_url={self.base_url!r}, api_key_env={self.config.api_key_env!r})"

    # -- request building --------------------------------------------------------------------------------------------
    def body(self, request: JudgeRequest) -> dict:
        """The JSON body sent for `request`."""
        body = {"model": self.model, "messages": request.messages}
        if self.config.temperature is not None:
            body["temperature"] = self.config.temperature
        if self.config.max_tokens is not None:
            body["max_tokens"] = self.config.max_tokens
        body.update(self.config.extra_body or {})
        return body

    def key(self, request: JudgeRequest) -> str:
        """The cache key: judge model + sampling parameters + exact messages + sample index (never the API key)."""
        return cache_key({"body": self.body(request), "sample": request.sample})

    def unique(self, requests: list[JudgeRequest]) -> tuple[list[str], dict[str, JudgeRequest]]:
        """Each request's key, and one request per distinct key: identical requests are paid for once."""
        keys = [self.key(r) for r in requests]
        unique: dict[str, JudgeRequest] = {}
        for key, request in zip(keys, requests):
            unique.setdefault(key, request)
        return keys, unique

    # -- accounting ------------------------------------------------------------------------------------------------
    def cost(self, results: list[JudgeResult], include_cached: bool = False) -> float | None:
        """USD for the tokens in `results` (only calls paid in this run unless `include_cached`)."""
        return results_cost(results, price_for(self.model, self.prices), include_cached)

    def usage(self, results: list[JudgeResult]) -> JudgeUsage:
        """Calls paid, cached and failed in `results`, with their tokens and cost."""
        return JudgeUsage.of(results, price_for(self.model, self.prices))

    def estimate(self, requests: list[JudgeRequest], completion_tokens: int | None = None) -> JudgeEstimate:
        """Calls to pay for (cache hits and duplicates excluded), estimated tokens and cost; spends nothing.

        Args:
            completion_tokens (`int`, *optional*): Expected reply length per call. Defaults to the mean of this
                model's cached replies, else a quarter of `max_tokens`.
        """
        keys, unique = self.unique(requests)
        cached = self.cache.get_many(list(unique))
        todo = [request for key, request in unique.items() if key not in cached]
        if completion_tokens is None:
            completion_tokens = self.cache.mean_completion_tokens(self.model) or (self.max_tokens or 1024) / 4
        prompt = sum(estimate_tokens(r.messages) for r in todo)
        completion = round(completion_tokens * len(todo))
        price = price_for(self.model, self.prices)
        cost = cost_usd(price, prompt, completion)
        return JudgeEstimate(
            requests=len(requests),
            cached=sum(1 for key in keys if key in cached),
            calls=len(todo),
            prompt_tokens=prompt,
            completion_tokens=completion,
            cost_usd=cost,
            batch_cost_usd=None if cost is None else cost * BATCH_DISCOUNT,
            max_cost_usd=cost_usd(price, prompt, (self.max_tokens or 4096) * len(todo)),
        )

    # -- the run ---------------------------------------------------------------------------------------------------
    def run(self, requests: list[JudgeRequest], progress: bool = True) -> list[JudgeResult]:
        """Answer `requests` (same order), from the cache where possible; a sync wrapper over `arun`."""
        try:
            asyncio.get_running_loop()
        except RuntimeError:
            return asyncio.run(self.arun(requests, progress=progress))
        # called from inside an event loop (a notebook): run ours in a worker thread
        with ThreadPoolExecutor(1) as pool:
            return pool.submit(asyncio.run, self.arun(requests, progress=progress)).result()

    async def arun(self, requests: list[JudgeRequest], progress: bool = True) -> list[JudgeResult]:
        keys, unique = self.unique(requests)
        cached = self.cache.get_many(list(unique))
        replies: dict[str, tuple[CachedReply | None, str | None, bool]] = {
            key: (reply, None, True) for key, reply in cached.items()
        }
        todo = [(key, request) for key, request in unique.items() if key not in cached]
        if todo:
            await self._ask(todo, replies, len(unique), len(cached), progress)
        return [
            JudgeResult.of(request, key, replies[key][0], cached=replies[key][2], error=replies[key][1])
            for key, request in zip(keys, requests)
        ]

    async def _ask(self, todo: list, replies: dict, total: int, done: int, progress: bool):
        """Send the cache misses, `concurrency` at a time; store each reply the moment it arrives."""
        from tqdm.auto import tqdm

        api_key = read_key(self.config)
        bar = tqdm(total=total, initial=done, desc="judge", unit="call", disable=not progress)
        semaphore = asyncio.Semaphore(self.config.concurrency)
        refused = asyncio.Event()  # after a 401/404 no waiting call may start: no retry storm
        answered = []

        async def one(client, key: str, request: JudgeRequest):
            async with semaphore:
                if refused.is_set():
                    return
                body = self.body(request)
                try:
                    reply, error = await complete(client, body, self.config, api_key)
                    if reply is not None:
                        self.cache.put(key, self.model, {"body": body, "sample": request.sample}, reply)
                        answered.append(key)
                    elif error.startswith("connection failed") and not answered:
                        # nothing ever got through: the endpoint is down or mistyped, not flaky
                        raise JudgeError(f"cannot reach the judge at {self.base_url}: {error}; check `base_url`")
                except JudgeError:
                    refused.set()
                    raise
            replies[key] = (reply, error, False)
            bar.update(1)

        async with open_client(self.config, api_key) as client:
            tasks = [asyncio.ensure_future(one(client, key, request)) for key, request in todo]
            try:
                await asyncio.gather(*tasks)
            finally:
                for task in tasks:
                    task.cancel()
                await asyncio.gather(*tasks, return_exceptions=True)  # let cancelled calls close their connections
                bar.close()

    def run_batch(
        self,
        requests: list[JudgeRequest],
        poll_interval: float = 30.0,
        completion_window: str = "24h",
        max_wait: float | None = None,
        progress: bool = True,
    ) -> list[JudgeResult]:
        """Answer `requests` through the OpenAI Batch API (half price); see `lrv_hf.judge.batch.run_batch`."""
        from .batch import run_batch

        return run_batch(self, requests, poll_interval, completion_window, max_wait, progress)
