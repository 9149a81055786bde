"""`lrv_hf.judge.Judge` against a real HTTP server on 127.0.0.1: caching, faults, refusals, cost, Batch API."""

import asyncio
import json
import logging
import os
import re
import socket
import sys
from pathlib import Path

import pytest

import lrv_hf.judge as judge_module
from lrv_hf import InputError
from lrv_hf.judge import Judge, JudgeConfig, JudgeError, JudgeRequest
from lrv_hf.testing.chat_server import Fault


KEY = "sk-test-SECRET-0123456789abcdef"


def requests_for(n: int, sample: int = 0) -> list[JudgeRequest]:
    return [JudgeRequest([{"role": "user", "content": f"question {i}"}], sample=sample) for i in range(n)]


@pytest.fixture
def judge_for(chat_server, tmp_path, monkeypatch):
    monkeypatch.setenv("JUDGE_TEST_KEY", KEY)
    chat_server.api_key = KEY

    def make(**kwargs):
        options = dict(model="gpt-4o", base_url=chat_server.url, api_key_env="JUDGE_TEST_KEY",  # noqa: C408
                       cache_path=tmp_path / "judge.sqlite", concurrency=4, timeout=5.0)  # fmt: skip
        options.update(kwargs)
        return Judge(JudgeConfig(**options))

    return make


def test_run_keeps_order_and_caches(chat_server, judge_for):
    judge = judge_for()
    results = judge.run(requests_for(10), progress=False)
    assert [r.text for r in results] == [f"echo: question {i}" for i in range(10)]
    assert not any(r.cached for r in results) and all(r.error is None for r in results)
    assert all(r.prompt_tokens > 0 and r.completion_tokens > 0 for r in results)
    assert chat_server.request_count == 10

    again = judge_for().run(requests_for(10), progress=False)  # a new process would see the same file
    assert chat_server.request_count == 10
    assert all(r.cached for r in again)
    assert [r.text for r in again] == [r.text for r in results]
    assert [r.cache_key for r in again] == [r.cache_key for r in results]


def test_cache_key_covers_model_sampling_and_sample(chat_server, judge_for):
    judge = judge_for()
    request = requests_for(1)[0]
    keys = {
        judge.key(request),
        judge.key(JudgeRequest(request.messages, sample=1)),
        judge_for(temperature=0.7).key(request),
        judge_for(max_tokens=10).key(request),
        judge_for(model="gpt-4o-mini").key(request),
    }
    assert len(keys) == 5
    # metadata is bookkeeping, not part of what is asked
    assert judge.key(JudgeRequest(request.messages, metadata={"row": 3})) == judge.key(request)
    # identical requests in one run are paid once
    results = judge.run([request, JudgeRequest(request.messages), JudgeRequest(request.messages, sample=1)], False)
    assert chat_server.request_count == 2 and results[0].text == results[1].text


def test_full_coverage_through_faults_without_duplicate_paid_calls(chat_server, judge_for):
    chat_server.inject(429, count=3, retry_after=0.2).inject(500, count=3).inject(502).inject("drop", count=3)
    chat_server.inject("malformed", count=3)
    judge = judge_for(max_retries=6)
    results = judge.run(requests_for(20), progress=False)
    assert all(r.text == f"echo: question {i}" for i, r in enumerate(results))
    outcomes = [r.outcome for r in chat_server.chat_requests]
    assert outcomes.count("429") == 3 and outcomes.count("500") == 3 and outcomes.count("drop") == 3
    assert outcomes.count("malformed") == 3
    assert set(chat_server.completed_prompts().values()) == {1}  # every prompt billed exactly once
    assert len(chat_server.completed) == 20


def test_retry_after_is_honoured(chat_server, judge_for):
    chat_server.inject(429, retry_after=1.5)
    judge_for(concurrency=1).run(requests_for(1), progress=False)
    first, second = chat_server.chat_requests
    assert first.outcome == "429" and second.outcome == "ok"
    assert second.time - first.time >= 1.4  # waited as told, not the SDK's first backoff (at most 0.5 s)


def test_timeouts_are_retried(chat_server, judge_for):
    chat_server.inject("slow", delay=1.5)
    results = judge_for(timeout=0.5, concurrency=1).run(requests_for(2), progress=False)
    assert [r.text for r in results] == ["echo: question 0", "echo: question 1"]
    assert chat_server.request_count == 3


def test_exhausted_retries_end_as_errors_then_resume(chat_server, judge_for):
    chat_server.inject(503, count=3)
    judge = judge_for(max_retries=2, concurrency=1)
    results = judge.run(requests_for(2), progress=False)
    assert results[0].text is None and "HTTP 503" in results[0].error and "3 tries" in results[0].error
    assert results[1].text == "echo: question 1"
    again = judge.run(requests_for(2), progress=False)
    assert [r.cached for r in again] == [False, True] and again[0].text == "echo: question 0"


def test_bad_request_is_not_retried(chat_server, judge_for):
    chat_server.inject(400)
    results = judge_for().run(requests_for(1), progress=False)
    assert results[0].text is None and results[0].error.startswith("HTTP 400")
    assert chat_server.request_count == 1


@pytest.mark.parametrize("status", [401, 404])
def test_refusals_stop_the_run_without_a_retry_storm(chat_server, judge_for, status, monkeypatch):
    if status == 401:
        monkeypatch.setenv("JUDGE_TEST_KEY", KEY + "-wrong")
    else:
        chat_server.fault_fn = lambda index, body: Fault(404)
    with pytest.raises(JudgeError) as info:
        judge_for(concurrency=2, max_retries=6).run(requests_for(50), progress=False)
    assert str(status) in str(info.value)
    assert KEY not in str(info.value) and KEY[-4:] not in str(info.value)
    assert chat_server.request_count <= 2  # what was in flight, no retries


def test_unreachable_endpoint_fails_fast_with_a_clear_error(tmp_path):
    with socket.socket() as probe:  # a port nobody listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    judge = Judge("gpt-4o", base_url=f"http://127.0.0.1:{port}/v1", api_key_env=None, max_retries=1,
                  cache_path=tmp_path / "c.sqlite")  # fmt: skip
    with pytest.raises(JudgeError, match=f"cannot reach the judge at http://127.0.0.1:{port}/v1"):
        judge.run(requests_for(20), progress=False)


def test_missing_key_is_a_clear_error_for_openai(monkeypatch, tmp_path):
    monkeypatch.delenv("NOPE_KEY", raising=False)
    judge = Judge("gpt-4o", api_key_env="NOPE_KEY", cache_path=tmp_path / "c.sqlite")
    with pytest.raises(InputError, match="NOPE_KEY is not set"):
        judge.run(requests_for(1), progress=False)


def test_key_never_reaches_cache_logs_or_repr(chat_server, judge_for, tmp_path, caplog):
    caplog.set_level(logging.DEBUG)
    chat_server.inject(500).inject("drop").inject(429, retry_after=0)
    judge = judge_for()
    judge.run(requests_for(5), progress=False)
    assert "retry" in caplog.text and KEY not in caplog.text
    assert all(r.headers.get("Authorization") == f"Bearer {KEY}" for r in chat_server.chat_requests)
    for path in tmp_path.glob("judge.sqlite*"):
        assert KEY.encode() not in path.read_bytes()
    assert KEY not in repr(judge) and KEY not in json.dumps(judge.__dict__, default=str)


def test_estimate_excludes_cache_hits_and_prices(chat_server, judge_for):
    judge = judge_for(prices={"gpt-4o": {"input": 1.0, "output": 2.0}})
    estimate = judge.estimate(requests_for(4), completion_tokens=100)
    assert estimate.calls == 4 and estimate.cached == 0 and chat_server.request_count == 0
    assert estimate.cost_usd == pytest.approx((estimate.prompt_tokens * 1.0 + 400 * 2.0) / 1e6)
    assert estimate.batch_cost_usd == pytest.approx(estimate.cost_usd / 2)
    results = judge.run(requests_for(2), progress=False)
    after = judge.estimate(requests_for(4), completion_tokens=100)
    assert after.calls == 2 and after.cached == 2
    assert judge.cost(results) == pytest.approx(
        sum(r.prompt_tokens * 1.0 + r.completion_tokens * 2.0 for r in results) / 1e6
    )
    assert judge.cost(judge.run(requests_for(2), progress=False)) == 0.0  # cached: nothing paid
    assert judge_for(model="my-local-model").estimate(requests_for(1)).cost_usd is None
    # dated snapshots price like their family
    assert judge_for(model="gpt-4o-2024-08-06", prices=None).estimate(requests_for(1)).cost_usd > 0


def test_azure_route_and_header(chat_server, judge_for):
    judge = judge_for(base_url=chat_server.root, azure_api_version="2024-10-21", model="my-deployment")
    results = judge.run(requests_for(1), progress=False)
    assert results[0].text == "echo: question 0"
    record = chat_server.chat_requests[0]
    assert record.path == "/openai/deployments/my-deployment/chat/completions"
    assert record.headers.get("api-key") == KEY and "Authorization" not in record.headers


def test_run_inside_an_event_loop(chat_server, judge_for):
    judge = judge_for()

    async def notebook_cell():
        return judge.run(requests_for(2), progress=False)

    assert [r.text for r in asyncio.run(notebook_cell())] == ["echo: question 0", "echo: question 1"]


def test_batch_api_collects_into_the_same_cache(chat_server, judge_for):
    judge = judge_for(prices={"gpt-4o": {"input": 1.0, "output": 2.0}})
    results = judge.run_batch(requests_for(6), poll_interval=0.01)
    assert [r.text for r in results] == [f"echo: question {i}" for i in range(6)]
    assert all(r.via_batch for r in results) and chat_server.request_count == 0
    assert chat_server.batch_lines == 6 and len(chat_server.batches) == 1
    assert judge.cost(results) == pytest.approx(
        sum(r.prompt_tokens * 1.0 + r.completion_tokens * 2.0 for r in results) / 2e6
    )
    again = judge.run(requests_for(8), progress=False)  # chat mode reuses the batch replies
    assert all(r.cached for r in again[:6]) and chat_server.request_count == 2


def test_batch_resume_reattaches_instead_of_resubmitting(chat_server, judge_for):
    chat_server.batch_polls = 1000
    with pytest.raises(JudgeError, match="still in_progress"):
        judge_for().run_batch(requests_for(3), poll_interval=0.01, max_wait=0.05)
    assert len(chat_server.batches) == 1
    chat_server.batch_polls = 0
    results = judge_for().run_batch(requests_for(3), poll_interval=0.01)  # a fresh process, same cache file
    assert [r.text for r in results] == [f"echo: question {i}" for i in range(3)]
    assert len(chat_server.batches) == 1 and chat_server.batch_lines == 3


@pytest.mark.parametrize("status", [401, 404])
def test_refusal_is_one_line_after_one_call_and_no_retry(chat_server, judge_for, status, monkeypatch):
    if status == 401:
        monkeypatch.setenv("JUDGE_TEST_KEY", KEY + "-wrong")
        expected = rf"judge endpoint {chat_server.url} answered 401 \(.*\): check the key in \$JUDGE_TEST_KEY"
    else:
        chat_server.fault_fn = lambda index, body: Fault(404)
        expected = rf"judge endpoint {chat_server.url} answered 404 \(.*\): check `base_url` and that model 'gpt-4o'"
    with pytest.raises(JudgeError, match=expected) as info:
        judge_for(concurrency=1, max_retries=6).run(requests_for(5), progress=False)
    assert "\n" not in str(info.value) and KEY[-4:] not in str(info.value)
    assert chat_server.request_count == 1  # the SDK does not retry a refusal, and no queued call starts


def test_batch_refusal_is_one_line_without_the_key(chat_server, judge_for, monkeypatch):
    monkeypatch.setenv("JUDGE_TEST_KEY", KEY + "-wrong")
    with pytest.raises(JudgeError, match=rf"batch API at {chat_server.url} answered 401 .*JUDGE_TEST_KEY") as info:
        judge_for(max_retries=6).run_batch(requests_for(3), poll_interval=0.01)
    assert KEY not in str(info.value) and len(chat_server.records) == 1 and chat_server.batches == {}


def test_http_sessions_are_the_sdks_not_the_judges(chat_server, judge_for, monkeypatch):
    import importlib.util

    import aiohttp

    callers = []
    # the SDK's HTTP layer is httpx2 from openai 3 on, httpx before: watch whichever is installed
    http_modules = [importlib.import_module(name) for name in ("httpx", "httpx2") if importlib.util.find_spec(name)]
    for cls in [aiohttp.ClientSession] + [c for m in http_modules for c in (m.AsyncClient, m.Client)]:
        original = cls.__init__

        def spy(self, *args, __original=original, __cls=cls, **kwargs):
            callers.append((__cls.__name__, sys._getframe(1).f_code.co_filename))
            __original(self, *args, **kwargs)

        monkeypatch.setattr(cls, "__init__", spy)
    judge = judge_for()
    assert [r.text for r in judge.run(requests_for(3), progress=False)] == [f"echo: question {i}" for i in range(3)]
    assert judge.run_batch(requests_for(5), poll_interval=0.01)[4].text == "echo: question 4"
    judge_dir = str(Path(judge_module.__file__).parent)
    assert not [c for c in callers if c[1].startswith(judge_dir)]
    # chat calls ride the SDK's aiohttp backend, created inside the SDK
    assert any(name == "ClientSession" and f"{os.sep}openai{os.sep}" in path for name, path in callers)
    for source in Path(judge_dir).glob("*.py"):
        assert not re.search(r"^\s*(import|from)\s+(aiohttp|httpx)", source.read_text(), re.MULTILINE), source


@pytest.mark.parametrize(
    "settings, message",
    [
        ({"concurrency": 0}, "`concurrency` must be >= 1"),
        ({"max_retries": -1}, "`max_retries` must be >= 0"),
        ({"timeout": 0}, "`timeout` must be > 0"),
        ({"azure_api_version": "2024-10-21"}, "`azure_api_version`.* needs `base_url`"),
        ({"prices": {"gpt-4o": {"input": "cheap"}}}, "`prices` entry 'gpt-4o' must be"),
    ],
)
def test_config_names_the_bad_field(settings, message):
    with pytest.raises(InputError, match=message):
        JudgeConfig("gpt-4o", **settings)


def test_a_server_in_its_own_process_answers_and_counts(tmp_path):
    """`ChatServerProcess` (what the benchmarks measure against) serves the same protocol from a child process."""
    from lrv_hf.judge import Judge, JudgeRequest
    from lrv_hf.testing.chat_server import ChatServerProcess

    with ChatServerProcess() as server:
        judge = Judge("gpt-4o", base_url=server.url, api_key_env=None, cache_path=tmp_path / "c.sqlite")
        request = JudgeRequest([{"role": "user", "content": "hello"}])
        (result,) = judge.run([request], progress=False)
        assert result.text is not None and server.request_count == 1
        judge.run([request], progress=False)  # cached: the child sees no second call
        assert server.request_count == 1
