"""The OpenAI Batch API for a `Judge`: upload the cache misses, submit, poll, and collect replies into the cache.

A submitted batch is recorded in the cache file at once, so a run interrupted while waiting re-attaches to it
instead of paying for a second one.
"""

import json
import logging
import time

import openai

from .transport import JudgeError, failure, open_client, parse_completion, read_key, refusal, refusals


logger = logging.getLogger(__name__)

BATCH_LIMIT = 50_000  # requests per batch file (OpenAI's limit)
ENDED = ("completed", "failed", "expired", "cancelled")


def run_batch(judge, requests: list, poll_interval: float, completion_window: str, max_wait: float | None,
              progress: bool) -> list:  # fmt: skip
    """Answer `requests` through the Batch API (results within `completion_window`), in `judge`'s cache.

    Anything the batch failed on comes back with `error` set; a rerun asks only for those.
    """
    from .client import JudgeResult

    keys, unique = judge.unique(requests)
    errors: dict[str, str] = {}
    pending = judge.cache.open_batches(judge.model)
    cached = judge.cache.get_many(list(unique))
    in_flight = {key for _, batch_keys in pending for key in batch_keys}
    todo = [(key, request) for key, request in unique.items() if key not in cached and key not in in_flight]
    if todo or pending:
        api_key = read_key(judge.config)
        with open_client(judge.config, api_key, sync=True) as client:
            try:
                for start in range(0, len(todo), BATCH_LIMIT):
                    pending.append(_submit(judge, client, todo[start : start + BATCH_LIMIT], completion_window))
                started = time.monotonic()
                for batch_id, batch_keys in pending:
                    _collect(judge, client, batch_id, batch_keys, unique, errors, poll_interval, started, max_wait,
                             progress)  # fmt: skip
            except refusals() as err:
                raise refusal(err, judge.config, api_key, what="batch API at") from None
            except openai.OpenAIError as err:
                raise JudgeError(f"batch API: {failure(err, judge.config, api_key)}") from None
    final = judge.cache.get_many(list(unique))
    return [
        JudgeResult.of(
            request, key, final.get(key), cached=key in cached, error=errors.get(key, "not answered by the batch")
        )  # fmt: skip
        for key, request in zip(keys, requests)
    ]


def _submit(judge, client, chunk: list, completion_window: str) -> tuple[str, list[str]]:
    lines = [
        json.dumps(
            {"custom_id": key, "method": "POST", "url": "/v1/chat/completions", "body": judge.body(request)},
            ensure_ascii=False,
        )  # fmt: skip
        for key, request in chunk
    ]
    data = ("\n".join(lines) + "\n").encode()
    upload = client.files.create(file=("lrv_hf_judge_batch.jsonl", data, "application/jsonl"), purpose="batch")
    batch = client.batches.create(
        input_file_id=upload.id, endpoint="/v1/chat/completions", completion_window=completion_window
    )
    batch_keys = [key for key, _ in chunk]
    judge.cache.add_batch(batch.id, judge.model, upload.id, batch_keys)
    logger.info("submitted batch %s with %d requests", batch.id, len(chunk))
    return batch.id, batch_keys


def _collect(judge, client, batch_id: str, batch_keys: list[str], unique: dict, errors: dict, poll_interval: float,
             started: float, max_wait: float | None, progress: bool):  # fmt: skip
    """Wait for one batch to end, then store its answered lines in the cache and note the failed ones."""
    while True:
        batch = client.batches.retrieve(batch_id)
        if progress:
            logger.info("batch %s: %s %s", batch_id, batch.status, batch.request_counts)
        if batch.status in ENDED:
            break
        if max_wait is not None and time.monotonic() - started > max_wait:
            raise JudgeError(
                f"batch {batch_id} still {batch.status} after {max_wait:g}s; rerun the same command later to "
                "collect it (it is recorded in the cache file)"
            )
        time.sleep(poll_interval)
    for file_id in (batch.output_file_id, batch.error_file_id):
        if file_id:
            _store(judge, client.files.content(file_id).text, unique, errors)
    if batch.status != "completed":
        for key in batch_keys:
            errors.setdefault(key, f"batch {batch_id} ended {batch.status}")
    judge.cache.close_batch(batch_id, batch.status)


def _store(judge, text: str, unique: dict, errors: dict):
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
            reply = parse_completion(response["body"], via_batch=True)
        except (ValueError, KeyError, IndexError, TypeError):
            logger.warning("skipping a malformed batch output line: %.120s", line)
            continue
        request = unique.get(key)
        stored = {"body": judge.body(request), "sample": request.sample} if request else {"custom_id": key}
        judge.cache.put(key, judge.model, stored, reply)
