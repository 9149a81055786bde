"""Endpoint inference: answers equal in-process ones, reruns ask nothing, bad endpoints fail up front; vLLM checks,
summary identity and Hub upload."""

import io
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from lrv_hf.cli import main as cli
from lrv_hf.errors import InputError
from lrv_hf.infer import (
    EndpointConfig,
    EndpointError,
    GenerationSettings,
    meta_path,
    run_endpoint_inference,
    run_inference,
)
from lrv_hf.infer.endpoint import image_data_url
from lrv_hf.testing.chat_server import ChatServer, Fault
from lrv_hf.testing.model_server import ListingServer, ModelServer


def rows_of(path) -> list[dict]:
    return [json.loads(line) for line in Path(path).read_text().splitlines()]


@pytest.fixture
def release(synthetic_release):
    return {"data": str(synthetic_release / "evaluation_set.json"), "images": str(synthetic_release / "images")}


@pytest.fixture(scope="module")
def base(tmp_path_factory):
    from lrv_hf.testing.hub import save_base

    return str(save_base(tmp_path_factory.mktemp("tiny") / "base"))


def test_endpoint_answers_equal_in_process_answers(base, release, tmp_path):
    local = tmp_path / "local.jsonl"
    run_inference(base, release["data"], str(local), images=release["images"], limit=6,
                  settings=GenerationSettings(max_new_tokens=8, batch_size=3))  # fmt: skip
    with ModelServer(base, served_name="tiny") as server:
        out = tmp_path / "endpoint.jsonl"
        config = EndpointConfig(server.url, "tiny", max_tokens=8, concurrency=4, cache_path=str(tmp_path / "c.sqlite"))
        result = run_endpoint_inference(config, release["data"], str(out), images=release["images"], limit=6)
        assert (result.written, result.usage.paid_calls) == (6, 6)
        requests = server.request_count
        again = run_endpoint_inference(config, release["data"], str(tmp_path / "again.jsonl"),
                                       images=release["images"], limit=6)  # fmt: skip
        assert server.request_count == requests and again.usage.cached == 6  # the cache answered every question
    answers = {(r["image_id"], r["question"]): r["answer"] for r in rows_of(local)}
    assert any(answers.values())
    assert {(r["image_id"], r["question"]): r["answer"] for r in rows_of(out)} == answers
    assert rows_of(tmp_path / "again.jsonl") == rows_of(out)
    assert {r["model"] for r in rows_of(out)} == {"tiny"}
    meta = json.loads(meta_path(out).read_text())
    settings = meta["settings"]  # what changes an answer, checked again on resume
    assert settings["model"] == "tiny" and settings["endpoint"].startswith("http://127.0.0.1:") and meta["rows"] == 6
    assert settings["generation"] == {"temperature": 0.0, "max_tokens": 8, "system_prompt": None}


def test_jpeg_sent_as_is_and_other_formats_reencoded(synthetic_release):
    from PIL import Image

    jpeg = next((synthetic_release / "images").glob("*.jpg")).read_bytes()
    assert image_data_url(jpeg, 10**6) == "data:image/jpeg;base64," + __import__("base64").b64encode(jpeg).decode()
    bmp = io.BytesIO()
    Image.new("RGB", (32, 32), "red").save(bmp, format="BMP")
    assert image_data_url(bmp.getvalue(), 10**6).startswith("data:image/jpeg;base64,/9j/")
    with pytest.raises(ValueError, match=r"over `max_image_bytes` \(100\)"):
        image_data_url(jpeg, 100)


def test_refusal_and_empty_reply_are_recorded(chat_server, release, tmp_path):
    def reply(body):
        question = body["messages"][-1]["content"][1]["text"]
        if len(question) % 3 == 0:
            message = {"role": "assistant", "content": None, "refusal": "I can't help with that."}
            return {"id": "x", "object": "chat.completion", "choices": [{"index": 0, "message": message,
                    "finish_reason": "stop"}], "usage": {"prompt_tokens": 5, "completion_tokens": 6}}  # fmt: skip
        return "" if len(question) % 3 == 1 else "yes"

    chat_server.reply = reply
    out = tmp_path / "p.jsonl"
    config = EndpointConfig(chat_server.url, "gpt-test", system_prompt="Answer briefly.", max_retries=0)
    run_endpoint_inference(config, release["data"], str(out), images=release["images"], limit=12)
    rows = rows_of(out)
    expected = ["I can't help with that." if len(r["question"]) % 3 == 0 else "" if len(r["question"]) % 3 == 1
                else "yes" for r in rows]  # fmt: skip
    assert [r["answer"] for r in rows] == expected and len(set(expected)) == 3
    assert json.loads(meta_path(out).read_text())["empty_answers"] == expected.count("")
    assert chat_server.completed[0].body["messages"][0] == {"role": "system", "content": "Answer briefly."}
    assert len(chat_server.completed) == 12  # a refusal is an answer, not a retry


def test_dry_run_sends_nothing_and_counts_cached(chat_server, release, tmp_path):
    out = tmp_path / "p.jsonl"
    config = EndpointConfig(chat_server.url, "gpt-4o-mini", cache_path=str(tmp_path / "cache.sqlite"))
    dry = run_endpoint_inference(config, release["data"], str(out), images=release["images"], limit=5, dry_run=True)
    assert (dry.estimate.calls, dry.estimate.cached, chat_server.request_count) == (5, 0, 0)
    assert dry.estimate.cost_usd > 0 and not out.exists()
    run_endpoint_inference(config, release["data"], str(out), images=release["images"], limit=3)
    out.unlink()
    dry = run_endpoint_inference(config, release["data"], str(out), images=release["images"], limit=5, dry_run=True)
    assert (dry.estimate.calls, dry.estimate.cached) == (2, 3)


def test_bad_endpoints_fail_before_any_paid_call(release, tmp_path, monkeypatch):
    common = {"data": release["data"], "output": str(tmp_path / "p.jsonl"), "images": release["images"], "limit": 4}
    with ChatServer() as closed:
        url = closed.url
    with pytest.raises(EndpointError, match=r"cannot reach the endpoint http://127\.0\.0\.1:\d+/v1"):
        run_endpoint_inference(EndpointConfig(url, "m", max_retries=0), **common)

    monkeypatch.setenv("ENDPOINT_KEY", "wrong-key")
    with ListingServer(["lrv", "llava-hf/llava-1.5-7b-hf"], api_key="right-key") as server:
        with pytest.raises(EndpointError, match=r"endpoint http://127.0.0.1:\d+/v1 answered 401 .*ENDPOINT_KEY"):
            run_endpoint_inference(EndpointConfig(server.url, "lrv", api_key_env="ENDPOINT_KEY"), **common)
        monkeypatch.setenv("ENDPOINT_KEY", "right-key")
        with pytest.raises(EndpointError, match=r"does not serve model 'lvr' \(it serves lrv, llava-hf/llava-1.5"):
            run_endpoint_inference(EndpointConfig(server.url, "lvr", api_key_env="ENDPOINT_KEY"), **common)
        with pytest.raises(InputError, match=r"question 0 \(image_id '\w+'\): .*over `max_image_bytes` \(200\)"):
            run_endpoint_inference(
                EndpointConfig(server.url, "lrv", api_key_env="ENDPOINT_KEY", max_image_bytes=200), **common
            )
        assert server.request_count == 0
        # a text-only model: the first question alone is asked, and its 400 ends the run
        server.fault_fn = lambda index, body: Fault(400)
        with pytest.raises(EndpointError, match=r"refused the first question .* does model 'lrv' accept images"):
            run_endpoint_inference(EndpointConfig(server.url, "lrv", api_key_env="ENDPOINT_KEY"), **common)
        assert server.request_count == 1
    monkeypatch.delenv("ENDPOINT_KEY")
    with pytest.raises(InputError, match="environment variable ENDPOINT_KEY is not set"):
        run_endpoint_inference(EndpointConfig(url, "m", api_key_env="ENDPOINT_KEY"), **common)


def test_cli_flags_and_errors(chat_server, release, tmp_path, capsys):
    out = tmp_path / "p.jsonl"
    argv = ["infer", "--endpoint", chat_server.url, "--model", "m", "--data", release["data"], "--images",
            release["images"], "--output", str(out), "--limit", "3"]  # fmt: skip
    assert cli(argv + ["--dry-run"]) == 0
    assert "3 requests to send (0 cached)" in capsys.readouterr().out and chat_server.request_count == 0
    assert cli(argv) == 0
    assert "wrote 3 rows (0 already there)" in capsys.readouterr().out and len(rows_of(out)) == 3
    assert cli(argv + ["--adapter", "x"]) == 2
    assert "serve the adapter as a LoRA module" in capsys.readouterr().err
    assert cli([*argv[:2], "localhost:8000", *argv[3:]]) == 2
    assert "--endpoint must be an http(s) URL" in capsys.readouterr().err


def test_kill_9_resumes_without_losing_or_repeating(release, tmp_path):
    """A killed `lrv-hf infer --endpoint` is rerun: every question answered once, no stored reply paid twice."""
    with ChatServer(latency=0.05) as server:
        out = tmp_path / "p.jsonl"
        argv = [sys.executable, "-m", "lrv_hf.cli", "infer", "--endpoint", server.url, "--model", "m", "--data",
                release["data"], "--images", release["images"], "--output", str(out),
                "--concurrency", "2"]  # fmt: skip
        proc = subprocess.Popen(argv, env={**os.environ}, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 60
        while len(server.completed) < 6 and time.monotonic() < deadline:
            time.sleep(0.05)
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        total = len(json.loads(Path(release["data"]).read_text()))  # the evaluation set's questions
        assert 6 <= len(server.completed) < total
        assert subprocess.run(argv, env={**os.environ}, capture_output=True).returncode == 0
        # every reply stored before the kill is reused; only the (at most `concurrency`) calls in flight are re-asked
        asked = server.completed_prompts()
        assert len(asked) == total and sum(asked.values()) - total <= 2
    rows = rows_of(out)
    assert len(rows) == total and len({(r["image_id"], r["question"]) for r in rows}) == len(rows)


def test_check_vllm_passes_our_lora_and_names_each_problem(base, tmp_path, capsys):
    from lrv_hf.testing.hub import save_adapter

    adapter = save_adapter(Path(base), tmp_path / "lrv", base_name="llava-hf/llava-1.5-7b-hf")
    assert cli(["adapters", "check-vllm", str(adapter)]) == 0
    assert capsys.readouterr().out.strip() == (
        f"{adapter}: vLLM can serve it: vllm serve llava-hf/llava-1.5-7b-hf --enable-lora --lora-modules lrv={adapter}"
    )
    config = json.loads((adapter / "adapter_config.json").read_text())
    (adapter / "adapter_config.json").write_text(json.dumps({**config, "r": 64}))
    assert cli(["adapters", "check-vllm", str(adapter)]) == 0
    assert "--enable-lora --max-lora-rank 64 --lora-modules" in capsys.readouterr().out

    bad = {**config, "r": 512, "use_dora": True, "modules_to_save": ["lm_head"],
           "target_modules": ["q_proj", "vision_tower.encoder.layers.0.mlp.fc1"]}  # fmt: skip
    (adapter / "adapter_config.json").write_text(json.dumps(bad))
    assert cli(["adapters", "check-vllm", str(adapter)]) == 1
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 4 and all(line.startswith(f"{adapter}: ") for line in lines)
    for said in (
        "r 512: over 256",
        "use_dora",
        "modules_to_save ['lm_head']",
        "['vision_tower.encoder.layers.0.mlp.fc1']",
    ):
        assert sum(said in line for line in lines) == 1, said
    assert cli(["adapters", "check-vllm", str(tmp_path)]) == 2
    assert "adapter_config.json: unreadable" in capsys.readouterr().err


def test_summary_carries_identity_and_push_uploads_one_folder(chat_server, release, synthetic_release, tmp_path,
                                                               monkeypatch, capsys):  # fmt: skip
    import hashlib
    import shutil

    from huggingface_hub import HfApi

    from lrv_hf import __version__
    from lrv_hf.compare import compare_runs, load_run
    from lrv_hf.testing import echo_reply, gavie_reply

    chat_server.reply = lambda body: gavie_reply(body) if body["model"] == "gpt-4o" else echo_reply(body)
    predictions = tmp_path / "p.jsonl"
    run_endpoint_inference(EndpointConfig(chat_server.url, "served-lrv"), release["data"], str(predictions),
                           images=release["images"], limit=4)  # fmt: skip
    calls = []
    monkeypatch.setattr(HfApi, "create_repo", lambda self, repo_id, **kw: calls.append(("create", repo_id, kw)))
    monkeypatch.setattr(HfApi, "upload_folder", lambda self, **kw: calls.append(("upload", self.token, kw)))
    regions = synthetic_release / "vg_annotation.json"
    out = tmp_path / "gavie"
    argv = ["gavie", "--predictions", str(predictions), "--regions", str(regions), "--judge-model", "gpt-4o",
            "--base-url", chat_server.url, "--output-dir", str(out), "--push-to-hub", "me/lrv-runs"]  # fmt: skip
    monkeypatch.delenv("HF_TOKEN", raising=False)
    judged = chat_server.request_count
    assert cli(argv) == 2 and chat_server.request_count == judged  # refused before the judge was paid
    assert (
        "--push-to-hub me/lrv-runs: pushing needs a write token in the environment variable HF_TOKEN"
        in capsys.readouterr().err
    )
    monkeypatch.setenv("HF_TOKEN", "hf_secret_token")
    assert cli(argv) == 0
    summary = json.loads((out / "summary.json").read_text())
    identity = summary["identity"]
    assert identity["models"]["served-lrv"]["endpoint"] == chat_server.url
    assert identity["models"]["served-lrv"]["generation"]["temperature"] == 0.0
    assert identity["data"] == {"path": str(regions), "fingerprint": hashlib.sha256(regions.read_bytes()).hexdigest()}
    assert identity["judge"] == {"model": "gpt-4o", "base_url": chat_server.url}
    assert identity["lrv_hf_version"] == __version__
    (create, upload) = calls
    assert create == ("create", "me/lrv-runs", {"repo_type": "dataset", "private": None, "exist_ok": True})
    assert upload[1] == "hf_secret_token" and upload[2]["repo_type"] == "dataset"
    assert upload[2]["folder_path"] == out and upload[2]["allow_patterns"] == ["summary.json", "scores.jsonl",
                                                                              "report.md", "report.png"]  # fmt: skip
    assert upload[2]["path_in_repo"].startswith(f"gavie/served-lrv-{identity['data']['fingerprint'][:8]}-")
    assert "hf_secret_token" not in "".join(p.read_text() for p in out.glob("*.json*"))

    # compare refuses runs on other data or from another judge, whatever their per-item rows say
    for change, said in (({"data": {"fingerprint": "other"}}, "scored different data"),
                         ({"judge": {"model": "gpt-4.1"}}, "was judged by gpt-4o but")):  # fmt: skip
        other = tmp_path / f"other-{len(said)}"
        shutil.copytree(out, other)
        changed = {**summary, "identity": {**identity, **change}}
        (other / "summary.json").write_text(json.dumps(changed))
        with pytest.raises(InputError, match=said):
            compare_runs(load_run(out), load_run(other))


@pytest.mark.slow
def test_transformers_serve_answers_equal_in_process_answers(base, release, tmp_path):
    """`transformers serve` takes the image content parts offline: the same tiny LLaVA there and here agrees."""
    import shutil
    import socket
    import urllib.request

    serve = shutil.which("transformers", path=os.path.dirname(sys.executable))
    if serve is None:
        pytest.skip("the `transformers` console script is not installed next to this Python")
    with socket.socket() as probe_socket:
        probe_socket.bind(("127.0.0.1", 0))
        port = probe_socket.getsockname()[1]
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}
    proc = subprocess.Popen([serve, "serve", base, "--host", "127.0.0.1", "--port", str(port)], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip
    try:
        deadline = time.monotonic() + 120
        while True:
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=2)
                break
            except OSError:
                assert proc.poll() is None and time.monotonic() < deadline, "transformers serve did not come up"
                time.sleep(0.5)
        out = tmp_path / "served.jsonl"
        config = EndpointConfig(f"http://127.0.0.1:{port}/v1", base, max_tokens=8, concurrency=1)
        run_endpoint_inference(config, release["data"], str(out), images=release["images"], limit=4)
    finally:
        proc.terminate()
        proc.wait(timeout=30)
    local = tmp_path / "local.jsonl"
    run_inference(base, release["data"], str(local), images=release["images"], limit=4,
                  settings=GenerationSettings(max_new_tokens=8, batch_size=4))  # fmt: skip
    answers = {(r["image_id"], r["question"]): r["answer"] for r in rows_of(local)}
    assert any(answers.values())
    assert {(r["image_id"], r["question"]): r["answer"] for r in rows_of(out)} == answers


def test_pope_from_an_endpoint_keeps_question_ids_and_its_summary_names_the_served_model(
    chat_server, synthetic_release, tmp_path
):
    import hashlib

    from lrv_hf.pope.scoring import score_files

    image_ids = sorted(p.stem for p in (synthetic_release / "images").glob("*.jpg"))[:3]
    probes = tmp_path / "probes.jsonl"
    rows = [{"question_id": 100 + k, "image_id": image_id, "question": f"Is there a {obj} in the image?",
             "label": label} for k, (image_id, (obj, label)) in
            enumerate((i, o) for i in image_ids for o in (("dog", "yes"), ("kite", "no")))]  # fmt: skip
    probes.write_text("".join(json.dumps(r) + "\n" for r in rows))
    chat_server.reply = lambda body: "Yes, there is." if "dog" in json.dumps(body["messages"]) else "No."
    predictions = tmp_path / "p.jsonl"
    config = EndpointConfig(chat_server.url, "served-model")
    run_endpoint_inference(config, str(probes), str(predictions), images=str(synthetic_release / "images"))
    # questions go as the source words them: nothing added to POPE's question
    sent = [r.body["messages"][-1]["content"][1]["text"] for r in chat_server.completed]
    assert sorted(sent) == sorted(r["question"] for r in rows)
    assert [r["question_id"] for r in rows_of(predictions)] == [str(r["question_id"]) for r in rows]
    result = score_files(probes, [predictions], tmp_path / "pope")
    assert result.summary["models"]["served-model"]["all"]["accuracy"] == 1.0
    identity = json.loads((tmp_path / "pope" / "summary.json").read_text())["identity"]
    assert identity["scorer"] == "pope" and identity["judge"] is None
    assert identity["models"]["served-model"]["endpoint"] == chat_server.url
    assert identity["data"]["fingerprint"] == hashlib.sha256(probes.read_bytes()).hexdigest()
