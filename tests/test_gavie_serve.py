"""GAVIE against a real local judge: `transformers serve` with a tiny model built from a config, fully offline.

The model's replies are gibberish; they must end as unscored answers with their reason, never as a crash or a 0.
"""

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
from tiny_chat_model import save_tiny_chat_model

from lrv_hf.gavie import score
from lrv_hf.gavie.score import Prediction
from lrv_hf.judge import Judge


@pytest.fixture
def served_tiny_model(tmp_path):
    model = save_tiny_chat_model(tmp_path / "tiny-judge")
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    command = [str(Path(sys.executable).parent / "transformers"), "serve", str(model), "--host", "127.0.0.1",
               "--port", str(port), "--device", "cpu"]  # fmt: skip
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}
    log = (tmp_path / "serve.log").open("w")
    process = subprocess.Popen(command, env=env, stdout=log, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 120
        while True:
            try:
                if httpx.get(f"http://127.0.0.1:{port}/health", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if process.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"transformers serve did not start: {(tmp_path / 'serve.log').read_text()[-2000:]}")
            time.sleep(0.5)
        yield str(model), f"http://127.0.0.1:{port}/v1"
    finally:
        process.terminate()
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
        log.close()


@pytest.mark.slow
def test_gibberish_from_a_served_tiny_model_ends_unscored(served_tiny_model, tmp_path):
    model, base_url = served_tiny_model
    judge = Judge(model, base_url=base_url, api_key_env=None, cache_path=tmp_path / "c.sqlite", concurrency=2,
                  max_tokens=24, timeout=60)  # fmt: skip
    regions = {"1": [{"caption": "a red bus on a street", "bbox": [5, 10, 120, 80]}]}
    predictions = [
        Prediction(i, "1", "What is in the image?", answer) for i, answer in enumerate(["A bus.", "A cat."])
    ]
    run = score(predictions, regions, judge, max_reasks=1, progress=False)
    summary = run.summary()
    assert [r["scored"] for r in run.rows] == [False, False]
    assert {r["unscored_reason"] for r in run.rows} == {"judge reply could not be read"}
    assert summary["accuracy"] is None and summary["coverage"] == 0.0 and summary["n"] == 2
    # real replies came back (with real usage), they just hold no scores
    assert all(r.text is not None and r.completion_tokens > 0 for r in run.results)
    assert summary["judge"]["paid_calls"] == 4 and summary["judge"]["failed_calls"] == 0
