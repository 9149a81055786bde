"""The judge's wire: `openai` SDK clients for the configured endpoint, and one chat call with the SDK's retries.

The SDK retries 408/409/429/5xx, timeouts and dropped connections, honouring `Retry-After`; this module adds what it
does not do: retrying a 200 whose body is not a chat completion, failing fast on refusals, and keeping the key out.
"""

import logging
import os
from typing import TYPE_CHECKING

from ..errors import InputError
from .cache import CachedReply
from .config import JudgeConfig


if TYPE_CHECKING:  # the SDK is imported when a call is made: a fully cached rerun never loads it (~1 s)
    import openai

logger = logging.getLogger(__name__)

OPENAI_BASE_URL = "https://api.openai.com/v1"
# the SDK insists on a key; a local server without auth ignores this one (and it is no secret)
NO_KEY = "no-key"


class JudgeError(InputError):
    """The endpoint refused the run as configured (bad key, unknown model or URL): retrying cannot help."""


def refusals() -> tuple[type[Exception], ...]:
    """The SDK errors that end a run: a wrong key, no permission, an unknown model or route."""
    import openai

    return openai.AuthenticationError, openai.PermissionDeniedError, openai.NotFoundError


def endpoint(config: JudgeConfig) -> str:
    """The URL calls go to, as a user would recognise it in an error."""
    return (config.base_url or OPENAI_BASE_URL).rstrip("/")


def read_key(config: JudgeConfig) -> str | None:
    """The key from `config.api_key_env`; an unset variable is an error only against OpenAI's own API."""
    key = os.environ.get(config.api_key_env) if config.api_key_env else None
    if not key and config.base_url is None:
        raise InputError(
            f"environment variable {config.api_key_env} is not set; export your key there or name another variable "
            "in `api_key_env`"
        )
    return key or None


def redact(text: str, key: str | None) -> str:
    """Strip the key (and OpenAI's masked echo of it) from anything that may be shown or logged."""
    if key:
        text = text.replace(key, "***")
        if len(key) > 8:  # OpenAI echoes a masked key ("sk-ab***wxyz"): drop its tail too
            text = text.replace(key[-4:], "***")
    return text


def open_client(config: JudgeConfig, key: str | None, sync: bool = False):
    """An SDK client for the endpoint: async on the SDK's aiohttp backend for chat calls, sync for the Batch API."""
    import openai

    options = {"api_key": key or NO_KEY, "timeout": config.timeout, "max_retries": config.max_retries}
    if sync:
        if config.azure_api_version:
            return openai.AzureOpenAI(azure_endpoint=config.base_url, api_version=config.azure_api_version, **options)
        return openai.OpenAI(base_url=endpoint(config), **options)
    # aiohttp rather than the default httpx2 transport: less CPU per call at 32+ calls in flight (BENCHMARKS.md)
    options["http_client"] = openai.DefaultAioHttpClient(timeout=config.timeout)
    if config.azure_api_version:
        return openai.AsyncAzureOpenAI(azure_endpoint=config.base_url, api_version=config.azure_api_version, **options)
    return openai.AsyncOpenAI(base_url=endpoint(config), **options)


def refusal(
    err: "openai.APIStatusError", config: JudgeConfig, key: str | None, what: str = "judge endpoint"
) -> JudgeError:
    """One line saying who refused, with what status, and what to check; never the key."""
    detail = err.body.get("message", "") if isinstance(err.body, dict) else ""
    detail = redact(str(detail or err.message)[:200], key)
    if err.status_code in (401, 403):
        hint = (
            f"check the key in ${config.api_key_env}"
            if config.api_key_env
            else "the endpoint wants a key (`api_key_env`)"
        )
    else:
        hint = f"check `base_url` and that model {config.model!r} exists there"
    return JudgeError(f"{what} {endpoint(config)} answered {err.status_code} ({detail}): {hint}")


def failure(err: "openai.OpenAIError", config: JudgeConfig, key: str | None) -> str:
    """Why a call that the SDK gave up on failed, as stored in `JudgeResult.error`."""
    import openai

    tries = f"gave up after {config.max_retries + 1} tries"
    if isinstance(err, openai.APIConnectionError):
        # the aiohttp backend reports a refused or reset connection as a connect timeout: the root cause tells
        root = err
        while root.__cause__ is not None:
            root = root.__cause__
        if isinstance(root, TimeoutError) or (root is err and isinstance(err, openai.APITimeoutError)):
            return f"timed out after {config.timeout:g}s ({tries})"
        return f"connection failed ({type(root).__name__}; {tries})"
    if isinstance(err, openai.APIStatusError):
        if err.status_code in (408, 409, 429) or err.status_code >= 500:  # what the SDK retries
            return f"HTTP {err.status_code} ({tries})"
        return redact(f"HTTP {err.status_code}: {err.message}"[:300], key)
    return redact(f"{type(err).__name__}: {err}"[:300], key)


def parse_completion(data: dict, via_batch: bool) -> CachedReply:
    """Text and usage of a chat-completion body; raises `ValueError`, `KeyError`, ... when it is not one."""
    choice = data["choices"][0]
    text = choice["message"]["content"]
    if text is None and (choice["message"].get("refusal") or choice.get("finish_reason") == "content_filter"):
        # a refusal or a filtered reply is an answer (asking again gives the same): kept as its text, or empty
        text = choice["message"].get("refusal") or ""
    if not isinstance(text, str):
        raise ValueError("the reply has no text content")
    usage = data.get("usage") or {}
    return CachedReply(text, int(usage.get("prompt_tokens") or 0), int(usage.get("completion_tokens") or 0), via_batch)


async def complete(client, body: dict, config: JudgeConfig, key: str | None) -> tuple[CachedReply | None, str | None]:
    """One chat call: `(reply, None)`, or `(None, why)` once retries are spent; raises `JudgeError` on a refusal."""
    import openai

    problem = "no try made"
    for attempt in range(config.max_retries + 1):
        try:
            # `post` (the SDK's call for any route) sends `body` as cached, and `cast_to=object` returns the JSON:
            # `chat.completions.create` re-validates the params and builds pydantic models (+2 ms CPU per call)
            data = await client.post("/chat/completions", body=body, cast_to=object)
        except refusals() as err:
            raise refusal(err, config, key) from None
        except openai.OpenAIError as err:
            return None, failure(err, config, key)
        except ValueError:  # a 200 whose body is not JSON (a proxy cut it short): the SDK does not retry that
            problem = "malformed reply"
        else:
            try:
                return parse_completion(data, via_batch=False), None
            except (ValueError, KeyError, IndexError, TypeError):
                problem = "malformed reply"
                said = data.get("error") if isinstance(data, dict) else None  # a 200 some gateways send on failure
                if isinstance(said, dict):
                    said = said.get("message") or said.get("code")
                if isinstance(said, str) and said.strip():
                    problem = redact(
                        f"malformed reply: the endpoint answered HTTP 200 with an error: {said}"[:300], key
                    )
        # asked again at once: a broken body is no sign of load
        logger.debug("judge call: %s; retry %d of %d", problem, attempt + 1, config.max_retries)
    return None, f"{problem} (gave up after {config.max_retries + 1} tries)"
