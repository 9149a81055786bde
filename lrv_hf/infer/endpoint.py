"""Inference against any OpenAI-compatible endpoint: each question with its image as one chat-completions request.

It writes the same predictions JSONL as local inference, through the judge's transport (bounded concurrency, retries
honouring `Retry-After`, the SQLite reply cache that makes a rerun or a resumed kill ask nothing twice, accounting).
"""

import base64
import contextlib
import functools
import io
import json
import logging
import os
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import InputError
from ..judge import Judge, JudgeConfig, JudgeError, JudgeEstimate, JudgeRequest, JudgeUsage
from ..judge.accounting import cost_usd, price_for
from ..predictions import read_written
from .inputs import read_items
from .output import OutputLock, meta_path, record_settings, write_meta
from .run import InferResult, write_answers


logger = logging.getLogger(__name__)

# what one image costs in prompt tokens on OpenAI's vision models at "high" detail for a ~512 px image
# (85 + 4 tiles x 170); the real count comes back in `usage`
IMAGE_TOKENS = 765


class EndpointError(InputError):
    """The endpoint cannot answer as configured (unreachable, refused, unknown model, no image input)."""


@dataclass
class EndpointConfig:
    """Where the model under test is served, and how it is asked. Invalid values raise naming the field."""

    endpoint: str = field(metadata={"help": "OpenAI-compatible base URL, e.g. http://host:8000/v1 (vLLM, TGI, "
                                    "`transformers serve`, Ollama) or https://api.openai.com/v1."})  # fmt: skip
    model: str = field(
        metadata={"help": "The model name the endpoint serves (vLLM: the base or a `--lora-modules` name)."}
    )
    api_key_env: str | None = field(
        default=None, metadata={"help": "Environment variable holding the key; `None` sends none (local servers)."}
    )
    system_prompt: str | None = field(default=None, metadata={"help": "A system message before every question."})
    temperature: float = field(default=0.0, metadata={"help": "Sampling temperature; 0 is greedy, so reruns agree."})
    max_tokens: int = field(default=128, metadata={"help": "Most tokens per answer."})
    max_image_bytes: int = field(
        default=5_000_000,
        metadata={"help": "Largest image sent, in bytes before base64; a JPEG or PNG under it goes as it is, "
                  "anything else is re-encoded as JPEG, and one still over it is an error naming its row."},
    )  # fmt: skip
    concurrency: int = field(default=16, metadata={"help": "Requests in flight at once."})
    timeout: float = field(default=120.0, metadata={"help": "Seconds per try of one request."})
    max_retries: int = field(default=6, metadata={"help": "Retries per request on 429/5xx/timeouts/dropped links."})
    cache_path: str | None = field(
        default=None, metadata={"help": "SQLite reply cache; `None` is `<output>.cache.sqlite`."}
    )
    block_size: int = field(
        # each block ends on its slowest call with fewer than `concurrency` in flight: 1024 measured 1.24x the ideal
        # against 1.36x for 256 (BENCHMARKS.md); a bigger block costs only its images' bytes in memory (~6 MB)
        default=1024, metadata={"help": "Questions asked together and then appended to the output (a kill loses none "
                                "of their answers: they are in the cache)."}
    )  # fmt: skip
    prices: dict[str, dict[str, float]] | None = field(
        default=None, metadata={"help": 'USD per 1M tokens `{model: {"input": ..., "output": ...}}` for the estimate.'}
    )

    def __post_init__(self):
        if not self.endpoint or not self.endpoint.startswith(("http://", "https://")):
            raise InputError(f"`endpoint` must be an http(s) URL, got {self.endpoint!r}", "endpoint")
        if not self.model:
            raise InputError("`model` is empty; name the model the endpoint serves", "model")
        for name in ("max_tokens", "max_image_bytes", "concurrency", "block_size"):
            if getattr(self, name) < 1:
                raise InputError(f"`{name}` must be at least 1, got {getattr(self, name)}", name)
        if self.temperature < 0:
            raise InputError(f"`temperature` must be >= 0, got {self.temperature}", "temperature")

    def sampling(self) -> dict:
        """What decides an answer besides the question and image: recorded in the meta sidecar, checked on resume."""
        return {"temperature": self.temperature, "max_tokens": self.max_tokens, "system_prompt": self.system_prompt}

    def judge_config(self, cache_path: str | Path) -> JudgeConfig:
        return JudgeConfig(
            model=self.model,
            base_url=self.endpoint,
            api_key_env=self.api_key_env,
            cache_path=cache_path,
            concurrency=self.concurrency,
            timeout=self.timeout,
            max_retries=self.max_retries,
            temperature=self.temperature,
            max_tokens=self.max_tokens,
            prices=self.prices,
        )


@dataclass
class EndpointResult(InferResult):
    """`InferResult` plus what the run asked: the usage (after a run) or the estimate (`dry_run`)."""

    usage: JudgeUsage | None = None
    estimate: JudgeEstimate | None = None


# -- images -----------------------------------------------------------------------------------------------------------
def image_data_url(image, max_bytes: int) -> str:
    """A `data:` URL of `image` (file bytes or a PIL image): JPEG/PNG bytes under `max_bytes` go as they are.

    Raises `ValueError` when the image is still over `max_bytes` as JPEG, or is not an image.
    """
    if isinstance(image, bytes):
        kind = "jpeg" if image[:3] == b"\xff\xd8\xff" else "png" if image[:8] == b"\x89PNG\r\n\x1a\n" else None
        if kind and len(image) <= max_bytes:
            return f"data:image/{kind};base64,{base64.b64encode(image).decode()}"
        from PIL import Image

        try:
            with Image.open(io.BytesIO(image)) as opened:
                image = opened.convert("RGB")
        except OSError as err:
            raise ValueError(f"not an image ({err})") from None
    buffer = io.BytesIO()
    image.convert("RGB").save(buffer, format="JPEG", quality=95)
    if buffer.tell() > max_bytes:
        raise ValueError(f"the image is {buffer.tell():,} bytes as JPEG, over `max_image_bytes` ({max_bytes:,})")
    return f"data:image/jpeg;base64,{base64.b64encode(buffer.getvalue()).decode()}"


def image_loader(images: str | None, load_image, max_bytes: int):
    """`image_key -> data: URL`: a release's image files go as their bytes, a built dataset's images re-encoded."""
    from ..data import image_path

    @functools.lru_cache(maxsize=64)
    def load(key) -> str:
        source = image_path(images, key).read_bytes() if images else load_image(key)
        return image_data_url(source, max_bytes)

    return load


def check_images(todo: list, image_url) -> None:
    """Every image of `todo` through the cap once, before the first request: a bad one names its row."""
    seen = set()
    for index, (item, _) in enumerate(todo):
        if item.image_key not in seen:
            seen.add(item.image_key)
            try:
                image_url(item.image_key)
            except (ValueError, OSError) as err:
                raise InputError(f"question {index} (image_id {item.image_id!r}): {err}", "max_image_bytes") from None


def messages_for(question: str, image_url: str, system_prompt: str | None) -> list[dict]:
    """One question with its image, the image first as local inference's chat template puts it."""
    user = {"role": "user", "content": [{"type": "image_url", "image_url": {"url": image_url}},
                                        {"type": "text", "text": question}]}  # fmt: skip
    return ([{"role": "system", "content": system_prompt}] if system_prompt else []) + [user]


# -- the endpoint -----------------------------------------------------------------------------------------------------
def _endpoint_error(err: Exception) -> EndpointError:
    """A judge transport error, reworded for the model under test and naming this module's parameters."""
    message = str(err).replace("judge endpoint", "endpoint").replace("the judge", "the endpoint")
    return EndpointError(message.replace("`base_url`", "`endpoint`"), ("endpoint", "model", "api_key_env"))


def probe(config: EndpointConfig) -> list[str] | None:
    """Ask the endpoint for its models before any paid call: one line when it is unreachable, refuses the key, or
    does not serve `config.model`. Returns the served model names (None when the server does not list them)."""
    import openai

    from ..judge.transport import open_client, read_key, refusal

    judge_config = config.judge_config(cache_path=None)
    key = read_key(judge_config)
    client = open_client(judge_config, key, sync=True).with_options(max_retries=1, timeout=min(config.timeout, 30))
    try:
        served = [model.id for model in client.models.list()]
    except (openai.AuthenticationError, openai.PermissionDeniedError) as err:
        raise _endpoint_error(refusal(err, judge_config, key)) from None
    except openai.APIConnectionError as err:
        root = err.__cause__ or err
        raise EndpointError(
            f"cannot reach the endpoint {config.endpoint} ({type(root).__name__}); check `endpoint` and that the "
            "server is up",
            "endpoint",
        ) from None
    except (openai.APIStatusError, openai.APIResponseValidationError, ValueError):
        return None  # a server without `GET /models` (some gateways): the first question tells instead
    finally:
        client.close()
    if served and config.model not in served:
        raise EndpointError(
            f"the endpoint {config.endpoint} does not serve model {config.model!r} (it serves "
            f"{', '.join(served[:12])}); check `model`",
            "model",
        )
    return served


@dataclass
class EndpointAnswerer:
    """Answers batches through `judge` (any label: the endpoint serves one model); records every result."""

    judge: Judge
    config: EndpointConfig
    results: list = field(default_factory=list)

    def requests(self, image_urls: list[str], questions: list[str]) -> list[JudgeRequest]:
        return [JudgeRequest(messages_for(q, url, self.config.system_prompt)) for url, q in zip(image_urls, questions)]

    def answer(self, label: str, images: list[str], questions: list[str]) -> list[str]:
        requests = self.requests(images, questions)
        try:
            if not self.results:  # the first question alone: a server that takes no images says so once, not N times
                results = self.judge.run(requests[:1], progress=False)
                self._check_first(results[0], questions[0])
                results += self.judge.run(requests[1:], progress=False) if len(requests) > 1 else []
            else:
                results = self.judge.run(requests, progress=False)
        except JudgeError as err:
            raise _endpoint_error(err) from None
        self.results += results
        failed = [r for r in results if r.text is None]
        if failed:
            raise EndpointError(
                f"the endpoint {self.config.endpoint}: {len(failed)} of {len(results)} requests failed "
                f"({failed[0].error}); the answers so far are kept, rerun to resume"
            )
        return [r.text.strip() for r in results]

    def _check_first(self, result, question: str) -> None:
        if result.text is None and result.error and result.error.startswith(("HTTP 400", "HTTP 415", "HTTP 422")):
            raise EndpointError(
                f"the endpoint {self.config.endpoint} refused the first question ({question!r}) with {result.error}; "
                f"does model {self.config.model!r} accept images?",
                "model",
            )


def run_endpoint_inference(
    config: EndpointConfig,
    data: str,
    output: str,
    images: str | None = None,
    split: str | None = None,
    data_config: str | None = None,
    limit: int | None = None,
    dry_run: bool = False,
) -> EndpointResult:
    """Answer every question of `data` by the model behind `config.endpoint`; write the predictions JSONL.

    Args:
        config (`EndpointConfig`): the endpoint, model, sampling and transport settings.
        data (`str`): a built dataset folder, or a release JSON / JSONL file (then `images` is needed).
        output (`str`): the predictions JSONL; resumed when it exists and was written with the same settings.
        images (`str`, *optional*): the folder of `<image_id>.jpg` of a release file.
        split, data_config (`str`, *optional*): which split/config of a built folder (needed when it has several).
        limit (`int`, *optional*): answer only the first `limit` questions.
        dry_run (`bool`, *optional*, defaults to `False`): check everything, estimate calls and cost, send nothing.
    """
    if config.api_key_env and not os.environ.get(config.api_key_env):
        raise InputError(f"environment variable {config.api_key_env} is not set; export the key there", "api_key_env")
    items, load_image = read_items(data, images, data_config, split)
    items = items[:limit] if limit is not None else items
    output = Path(output)
    output.parent.mkdir(parents=True, exist_ok=True)
    label = config.model
    # everything that changes an answer (checked on resume); paths made absolute, so a rerun from elsewhere matches
    settings = {
        "model": label,
        "adapter": None,
        "endpoint": config.endpoint,
        "data": os.path.abspath(data) if Path(data).exists() else str(data),
        "images": os.path.abspath(images) if images else None,
        "config": data_config,
        "split": split,
        "generation": config.sampling(),
        "max_image_bytes": config.max_image_bytes,
    }
    image_url = image_loader(images, load_image, config.max_image_bytes)
    cache_path = config.cache_path or f"{output}.cache.sqlite"
    judge = Judge(config.judge_config(cache_path))
    answerer = EndpointAnswerer(judge, config)
    with contextlib.nullcontext() if dry_run else OutputLock(output):
        if not dry_run:
            record_settings(output, settings, {"models": [label]})
        done = Counter((p.model, p.image_id, p.question) for p in read_written(output))
        todo = []
        for item in items:
            if done[(label, item.image_id, item.question)] > 0:
                done[(label, item.image_id, item.question)] -= 1
            else:
                todo.append((item, [label]))
        if todo:  # a finished output reruns without the endpoint
            check_images(todo, image_url)
            probe(config)
        result = EndpointResult(rows=len(items), written=0, skipped=len(items) - len(todo), output=output)
        if dry_run:
            result.estimate = _estimate(answerer, todo, image_url)
            return result
        logger.info("%d of %d questions to ask %s at %s", len(todo), len(items), label, config.endpoint)
        if todo:
            write_answers(answerer, todo, image_url, [label], config.block_size, output)
        result.written = len(todo)
        result.usage = judge.usage(answerer.results)
        written = read_written(output)
        meta = json.loads(meta_path(output).read_text(encoding="utf-8"))
        empty = sum(1 for p in written if p.model == label and not p.answer.strip())
        write_meta(
            meta_path(output), {**meta, "rows": len(items), "empty_answers": empty, "usage": result.usage.to_dict()}
        )
    return result


def _estimate(answerer: EndpointAnswerer, todo: list, image_url) -> JudgeEstimate:
    """The judge's estimate over every request not yet answered or cached, plus the image tokens it cannot see."""
    judge, total = answerer.judge, None
    for start in range(0, len(todo), answerer.config.block_size):
        block = [item for item, _ in todo[start : start + answerer.config.block_size]]
        estimate = judge.estimate(
            answerer.requests([image_url(i.image_key) for i in block], [i.question for i in block])
        )
        if total is None:
            total = estimate
        else:
            for name in ("requests", "cached", "calls", "prompt_tokens", "completion_tokens"):
                setattr(total, name, getattr(total, name) + getattr(estimate, name))
    if total is None:
        return JudgeEstimate(0, 0, 0, 0, 0, 0.0, 0.0, 0.0)
    total.prompt_tokens += IMAGE_TOKENS * total.calls
    price = price_for(judge.model, judge.prices)
    total.cost_usd = cost_usd(price, total.prompt_tokens, total.completion_tokens)
    total.batch_cost_usd = None  # the Batch API is not used for inference
    total.max_cost_usd = cost_usd(price, total.prompt_tokens, (judge.max_tokens or 0) * total.calls)
    return total
