"""`Judge`: one client for any OpenAI-compatible chat endpoint (OpenAI, Azure OpenAI, vLLM, `transformers serve`).

Bounded concurrency, timeouts, retries with backoff that honour `Retry-After`, a persistent SQLite cache, token and
cost accounting, an offline cost estimate and the OpenAI Batch API. It knows nothing about what it is asked.
"""

import asyncio
import email.utils
import json
import logging
import os
import random
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from ..errors import InputError
from .cache import CachedReply, JudgeCache, cache_key
from .prices import BATCH_DISCOUNT, DEFAULT_PRICES, cost_usd, estimate_tokens, price_for


if TYPE_CHECKING:  # the HTTP clients are imported when a call is made: a cached rerun never loads them
    import aiohttp
    import httpx

logger = logging.getLogger(__name__)

OPENAI_BASE_URL = "https://api.openai.com/v1"
RETRY_STATUS = {408, 409, 429}  # plus every 5xx
BATCH_LIMIT = 50_000  # requests per batch file (OpenAI's limit)


class JudgeError(InputError):
    """The endpoint refused the run as configured (bad key, unknown model or URL): retrying cannot help."""


@dataclass
class _Reply:
    """An HTTP reply read in full: the fields of `httpx.Response` that the retry and error logic looks at."""

    status_code: int
    headers: dict
    content: bytes

    @property
    def text(self) -> str:
        return self.content.decode("utf-8", errors="replace")

    def json(self):
        return json.loads(self.content)


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
        return dict(self.__dict__)


class Judge:
    """A chat-completions client built for scoring and generation runs of thousands of calls.

    Args:
        model (`str`): The judge model (on Azure: the deployment name).
        base_url (`str`, *optional*): The endpoint, e.g. `http://localhost:8000/v1`. Defaults to OpenAI's.
        api_key_env (`str`, *optional*, defaults to `"OPENAI_API_KEY"`):
            The environment variable holding the key; the key itself is read when a call is made and never stored.
            Against a custom `base_url` a missing variable means "no key" (local servers need none).
        cache_path (`str`, *optional*): SQLite cache file; `None` keeps replies in memory only.
        concurrency (`int`, *optional*, defaults to `16`): Calls in flight at once.
        max_retries (`int`, *optional*, defaults to `6`): Retries per call on 429, 5xx, timeouts, dropped connections
            and malformed replies.
        timeout (`float`, *optional*, defaults to `60.0`): Seconds per call.
        temperature (`float`, *optional*, defaults to `0.0`): Sampling temperature (`None`: the server's default).
        max_tokens (`int`, *optional*, defaults to `1024`): Completion limit (`None`: not sent).
        prices (`dict`, *optional*): `{model: {"input": usd_per_1M, "output": usd_per_1M}}` merged over the defaults.
        azure_api_version (`str`, *optional*): Talk to Azure OpenAI (`base_url` is the resource endpoint).
        backoff_base (`float`, *optional*, defaults to `1.0`): First backoff in seconds; doubles per retry, jittered.
        backoff_max (`float`, *optional*, defaults to `60.0`): Longest wait between two tries.
        extra_body (`dict`, *optional*): More request fields (e.g. `{"seed": 0}`); part of the cache key.
    """

    def __init__(
        self,
        model: str,
        base_url: str | None = None,
        api_key_env: str | None = "OPENAI_API_KEY",
        cache_path: str | Path | None = None,
        concurrency: int = 16,
        max_retries: int = 6,
        timeout: float = 60.0,
        temperature: float | None = 0.0,
        max_tokens: int | None = 1024,
        prices: dict[str, dict[str, float]] | None = None,
        azure_api_version: str | None = None,
        backoff_base: float = 1.0,
        backoff_max: float = 60.0,
        extra_body: dict | None = None,
    ):
        if not model:
            raise InputError("judge: `model` is empty; pass the judge model name (e.g. --judge-model gpt-4o)")
        if concurrency < 1:
            raise InputError(f"judge: `concurrency` must be >= 1, got {concurrency}")
        if max_retries < 0:
            raise InputError(f"judge: `max_retries` must be >= 0, got {max_retries}")
        if azure_api_version and not base_url:
            raise InputError("judge: Azure OpenAI needs `base_url` (https://<resource>.openai.azure.com)")
        self.model = model
        self.base_url = (base_url or OPENAI_BASE_URL).rstrip("/")
        self.custom_endpoint = base_url is not None
        self.api_key_env = api_key_env
        self.cache = JudgeCache(cache_path)
        self.concurrency = concurrency
        self.max_retries = max_retries
        self.timeout = timeout
        self.temperature = temperature
        self.max_tokens = max_tokens
        self.prices = {**DEFAULT_PRICES, **(prices or {})}
        self.azure_api_version = azure_api_version
        self.backoff_base = backoff_base
        self.backoff_max = backoff_max
        self.extra_body = dict(extra_body or {})

    def __repr__(self) -> str:  # never shows the key: it is not an attribute
        return f"Judge(model={self.model!r}, base_url={self.base_url!r}, api_key_env={self.api_key_env!r})"

    # -- request building --------------------------------------------------------------------------------------------
    def body(self, request: JudgeRequest) -> dict:
        """The JSON body sent for `request`."""
        body = {"model": self.model, "messages": request.messages}
        if self.temperature is not None:
            body["temperature"] = self.temperature
        if self.max_tokens is not None:
            body["max_tokens"] = self.max_tokens
        body.update(self.extra_body)
        return body

    def key(self, request: JudgeRequest) -> str:
        """The cache key: judge model + sampling parameters + exact messages + sample index (never the API key)."""
        return cache_key({"body": self.body(request), "sample": request.sample})

    def _url(self, path: str) -> str:
        if self.azure_api_version:
            prefix = f"{self.base_url}/openai"
            if path == "/chat/completions":
                prefix += f"/deployments/{self.model}"
            return f"{prefix}{path}?api-version={self.azure_api_version}"
        return f"{self.base_url}{path}"

    def _api_key(self) -> str | None:
        key = os.environ.get(self.api_key_env) if self.api_key_env else None
        if not key and not self.custom_endpoint:
            raise InputError(
                f"judge: environment variable {self.api_key_env} is not set; export your key there "
                "or name another variable with --api-key-env"
            )
        return key or None

    def _headers(self, key: str | None) -> dict:
        if key is None:
            return {}
        return {"api-key": key} if self.azure_api_version else {"Authorization": f"Bearer {key}"}

    def _redact(self, text: str, key: str | None) -> str:
        """Strip the key (and OpenAI's masked echo of it) from anything that may be shown or logged."""
        if key:
            text = text.replace(key, "***")
            if len(key) > 8:  # OpenAI echoes a masked key ("sk-ab***wxyz"): drop its tail too
                text = text.replace(key[-4:], "***")
        return text

    # -- accounting ------------------------------------------------------------------------------------------------
    def cost(self, results: list[JudgeResult], include_cached: bool = False) -> float | None:
        """USD for the tokens in `results` (only calls paid in this run unless `include_cached`)."""
        price = price_for(self.model, self.prices)
        if price is None:
            return None
        total = 0.0
        for result in results:
            if result.text is None or (result.cached and not include_cached):
                continue
            factor = BATCH_DISCOUNT if result.via_batch else 1.0
            total += factor * cost_usd(price, result.prompt_tokens, result.completion_tokens)
        return total

    def estimate(self, requests: list[JudgeRequest], completion_tokens: int | None = None) -> JudgeEstimate:
        """Calls to pay for (cache hits and duplicates excluded), estimated tokens and cost; spends nothing.

        Args:
            completion_tokens (`int`, *optional*): Expected reply length per call. Defaults to the mean of this
                model's cached replies, else a quarter of `max_tokens`.
        """
        keys = {}
        for request in requests:
            keys.setdefault(self.key(request), request)
        cached = self.cache.get_many(list(keys))
        todo = [request for key, request in keys.items() if key not in cached]
        if completion_tokens is None:
            completion_tokens = self.cache.mean_completion_tokens(self.model) or (self.max_tokens or 1024) / 4
        prompt = sum(estimate_tokens(r.messages) for r in todo)
        completion = round(completion_tokens * len(todo))
        price = price_for(self.model, self.prices)
        cost = cost_usd(price, prompt, completion)
        max_cost = cost_usd(price, prompt, (self.max_tokens or 4096) * len(todo))
        return JudgeEstimate(
            requests=len(requests),
            cached=len(requests) - sum(1 for r in requests if self.key(r) not in cached),
            calls=len(todo),
            prompt_tokens=prompt,
            completion_tokens=completion,
            cost_usd=cost,
            batch_cost_usd=None if cost is None else cost * BATCH_DISCOUNT,
            max_cost_usd=max_cost,
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
        import aiohttp
        from tqdm.auto import tqdm

        keys = [self.key(r) for r in requests]
        unique: dict[str, JudgeRequest] = {}
        for key, request in zip(keys, requests):
            unique.setdefault(key, request)
        cached = self.cache.get_many(list(unique))
        replies: dict[str, tuple[CachedReply | None, str | None, bool]] = {
            key: (reply, None, True) for key, reply in cached.items()
        }
        todo = [(key, request) for key, request in unique.items() if key not in cached]
        if todo:
            api_key = self._api_key()
            bar = tqdm(total=len(unique), initial=len(cached), desc="judge", unit="call", disable=not progress)
            semaphore = asyncio.Semaphore(self.concurrency)
            # aiohttp rather than httpx here: at 32+ calls in flight httpcore's pool bookkeeping costs ~15% throughput
            connector = aiohttp.TCPConnector(limit=self.concurrency)
            timeout = aiohttp.ClientTimeout(total=self.timeout)
            async with aiohttp.ClientSession(connector=connector, timeout=timeout) as client:
                refused = asyncio.Event()  # after a 401/404 no waiting call may start: no retry storm

                answered = []

                async def one(key: str, request: JudgeRequest):
                    async with semaphore:
                        if refused.is_set():
                            return
                        try:
                            reply, error = await self._call(client, api_key, key, request)
                            if reply is not None:
                                answered.append(key)
                            elif error.startswith("connection failed") and not answered:
                                # nothing ever got through: the endpoint is down or mistyped, not flaky
                                raise JudgeError(
                                    f"cannot reach the judge at {self.base_url}: {error}; check --base-url"
                                )
                        except JudgeError:
                            refused.set()
                            raise
                    replies[key] = (reply, error, False)
                    bar.update(1)

                tasks = [asyncio.ensure_future(one(key, request)) for key, request in todo]
                try:
                    await asyncio.gather(*tasks)
                finally:
                    for task in tasks:
                        task.cancel()
                    bar.close()
        results = []
        for key, request in zip(keys, requests):
            reply, error, was_cached = replies[key]
            results.append(JudgeResult.of(request, key, reply, cached=was_cached, error=error))
        return results

    def _wait(self, attempt: int, response: "_Reply | httpx.Response | None" = None) -> float:
        """Seconds before the next try: the server's `Retry-After` when it sends one, else jittered backoff."""
        if response is not None:
            for header, scale in (("retry-after-ms", 1e-3), ("retry-after", 1.0)):
                value = response.headers.get(header)
                if value is None:
                    continue
                try:
                    return min(max(0.0, float(value) * scale), self.backoff_max)
                except ValueError:
                    when = email.utils.parsedate_to_datetime(value) if scale == 1.0 else None
                    if when is not None:
                        return min(max(0.0, when.timestamp() - time.time()), self.backoff_max)
        cap = min(self.backoff_max, self.backoff_base * 2**attempt)
        # "equal jitter": never zero, and concurrent callers spread out instead of retrying in lockstep
        return cap / 2 + random.uniform(0, cap / 2)

    def _fatal(self, status: int, response: "_Reply | httpx.Response", api_key: str | None) -> JudgeError:
        try:
            detail = response.json().get("error", {}).get("message", "")
        except (ValueError, AttributeError):
            detail = response.text[:200]
        detail = self._redact(str(detail), api_key)
        if status in (401, 403):
            hint = f"check the key in ${self.api_key_env}" if self.api_key_env else "the endpoint wants a key"
        else:
            hint = f"check --base-url ({self.base_url}) and that model {self.model!r} exists there"
        return JudgeError(f"judge endpoint answered {status} ({detail}): {hint}")

    @staticmethod
    def _parse(response: _Reply) -> CachedReply:
        """Text and usage of a chat-completion body; raises `ValueError` when it is not one."""
        data = response.json()
        text = data["choices"][0]["message"]["content"]
        if not isinstance(text, str):
            raise ValueError("the reply has no text content")
        usage = data.get("usage") or {}
        prompt_tokens = int(usage.get("prompt_tokens") or 0)
        completion_tokens = int(usage.get("completion_tokens") or 0)
        return CachedReply(text, prompt_tokens, completion_tokens, via_batch=False)

    async def _call(self, client: "aiohttp.ClientSession", api_key: str | None, key: str, request: JudgeRequest):
        import aiohttp

        body = self.body(request)
        url = self._url("/chat/completions")
        headers = self._headers(api_key)
        problem = "no try made"
        for attempt in range(self.max_retries + 1):
            response = None
            try:
                async with client.post(url, json=body, headers=headers) as raw:
                    headers_in = {name.lower(): value for name, value in raw.headers.items()}
                    response = _Reply(raw.status, headers_in, await raw.read())
            except asyncio.TimeoutError:
                problem = f"timed out after {self.timeout:g}s"
            except aiohttp.ClientError as err:
                problem = f"connection failed ({type(err).__name__})"
            else:
                status = response.status_code
                if status == 200:
                    try:
                        reply = self._parse(response)
                    except (ValueError, KeyError, IndexError, TypeError):
                        problem = "malformed reply"
                    else:
                        self.cache.put(key, self.model, {"body": body, "sample": request.sample}, reply)
                        return reply, None
                elif status in (401, 403, 404):
                    raise self._fatal(status, response, api_key)
                elif status in RETRY_STATUS or status >= 500:
                    problem = f"HTTP {status}"
                else:  # 400, 413, 422: this request is wrong as sent, retrying it cannot help
                    return None, self._redact(f"HTTP {status}: {response.text[:300]}", api_key)
            if attempt == self.max_retries:
                break
            wait = self._wait(attempt, response if response is not None and response.status_code != 200 else None)
            logger.debug("judge call %s: %s; retry %d in %.2fs", key[:12], problem, attempt + 1, wait)
            await asyncio.sleep(wait)
        return None, f"{problem} (gave up after {self.max_retries + 1} tries)"

    # -- OpenAI Batch API ------------------------------------------------------------------------------------------
    def _sync_request(self, client: "httpx.Client", method: str, path: str, api_key: str | None, **kwargs):
        """One Batch API call with the same retry policy as chat calls."""
        import httpx

        url = self._url(path)
        for attempt in range(self.max_retries + 1):
            response = None
            try:
                response = client.request(method, url, headers=self._headers(api_key), **kwargs)
            except httpx.TransportError as err:
                problem = f"connection failed ({type(err).__name__})"
            else:
                if response.status_code < 300:
                    return response
                if response.status_code in (401, 403, 404):
                    raise self._fatal(response.status_code, response, api_key)
                if response.status_code not in RETRY_STATUS and response.status_code < 500:
                    raise JudgeError(
                        self._redact(
                            f"batch API {path} answered {response.status_code}: {response.text[:300]}", api_key
                        )  # fmt: skip
                    )
                problem = f"HTTP {response.status_code}"
            if attempt == self.max_retries:
                raise JudgeError(f"batch API {path}: {problem} (gave up after {self.max_retries + 1} tries)")
            time.sleep(self._wait(attempt, response))

    def run_batch(
        self,
        requests: list[JudgeRequest],
        poll_interval: float = 30.0,
        completion_window: str = "24h",
        max_wait: float | None = None,
        progress: bool = True,
    ) -> list[JudgeResult]:
        """Answer `requests` through the OpenAI Batch API (half price, results within `completion_window`).

        The cache misses are written to JSONL, uploaded and submitted; the batch id is recorded in the cache file
        at once, so a run interrupted while waiting re-attaches to its batch instead of paying for a second one.
        Replies land in the same cache as `run`; anything the batch failed on comes back with `error` set.
        """
        import httpx

        keys = [self.key(r) for r in requests]
        unique: dict[str, JudgeRequest] = {}
        for key, request in zip(keys, requests):
            unique.setdefault(key, request)
        api_key = None
        errors: dict[str, str] = {}
        with httpx.Client(timeout=self.timeout) as client:
            pending = self.cache.open_batches(self.model)
            cached = self.cache.get_many(list(unique))
            in_flight = {key for _, batch_keys in pending for key in batch_keys}
            todo = [(key, request) for key, request in unique.items() if key not in cached and key not in in_flight]
            if todo or pending:
                api_key = self._api_key()
            for start in range(0, len(todo), BATCH_LIMIT):
                chunk = todo[start : start + BATCH_LIMIT]
                lines = [
                    json.dumps(
                        {
                            "custom_id": key,
                            "method": "POST",
                            "url": "/v1/chat/completions",
                            "body": self.body(request),
                        },
                        ensure_ascii=False,
                    )  # fmt: skip
                    for key, request in chunk
                ]
                upload = self._sync_request(
                    client, "POST", "/files", api_key,
                    files={"file": ("lrv_hf_judge_batch.jsonl", ("\n".join(lines) + "\n").encode(),
                                    "application/jsonl")},
                    data={"purpose": "batch"},
                ).json()  # fmt: skip
                batch = self._sync_request(
                    client, "POST", "/batches", api_key,
                    json={"input_file_id": upload["id"], "endpoint": "/v1/chat/completions",
                          "completion_window": completion_window},
                ).json()  # fmt: skip
                self.cache.add_batch(batch["id"], self.model, upload["id"], [key for key, _ in chunk])
                pending.append((batch["id"], [key for key, _ in chunk]))
                logger.info("submitted batch %s with %d requests", batch["id"], len(chunk))
            started = time.monotonic()
            for batch_id, batch_keys in pending:
                while True:
                    batch = self._sync_request(client, "GET", f"/batches/{batch_id}", api_key).json()
                    status = batch.get("status")
                    if progress:
                        counts = batch.get("request_counts") or {}
                        logger.info("batch %s: %s %s", batch_id, status, counts)
                    if status in ("completed", "failed", "expired", "cancelled"):
                        break
                    if max_wait is not None and time.monotonic() - started > max_wait:
                        raise JudgeError(
                            f"batch {batch_id} still {status} after {max_wait:g}s; rerun the same command later to "
                            "collect it (it is recorded in the cache file)"
                        )
                    time.sleep(poll_interval)
                for file_field in ("output_file_id", "error_file_id"):
                    if batch.get(file_field):
                        content = self._sync_request(client, "GET", f"/files/{batch[file_field]}/content", api_key)
                        self._collect(content.text, unique, errors)
                if status != "completed":
                    for key in batch_keys:
                        errors.setdefault(key, f"batch {batch_id} ended {status}")
                self.cache.close_batch(batch_id, status)
        final = self.cache.get_many(list(unique))
        results = []
        for key, request in zip(keys, requests):
            reply = final.get(key)
            was_cached = key in cached
            results.append(
                JudgeResult.of(
                    request, key, reply, cached=was_cached, error=errors.get(key, "not answered by the batch")
                )
            )
        return results

    def _collect(self, text: str, unique: dict[str, JudgeRequest], errors: dict[str, str]):
        """Store every answered line of a batch output file in the cache."""
        for line in text.splitlines():
            if not line.strip():
                continue
            try:
                item = json.loads(line)
                key = item["custom_id"]
                response = item.get("response") or {}
                if item.get("error") or response.get("status_code") != 200:
                    errors[key] = f"batch error: {item.get('error') or response.get('status_code')}"
                    continue
                data = response["body"]
                usage = data.get("usage") or {}
                reply = CachedReply(
                    data["choices"][0]["message"]["content"],
                    int(usage.get("prompt_tokens") or 0),
                    int(usage.get("completion_tokens") or 0),
                    via_batch=True,
                )
            except (ValueError, KeyError, IndexError, TypeError):
                logger.warning("skipping a malformed batch output line: %.120s", line)
                continue
            request = unique.get(key)
            stored = {"body": self.body(request), "sample": request.sample} if request else {"custom_id": key}
            self.cache.put(key, self.model, stored, reply)
