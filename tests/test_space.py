"""The Space (`spaces_app/app.py`) launched on 127.0.0.1 over a local Hub cache, driven by `gradio_client` and Chromium.

The base and the adapters are published in a test-filled Hub cache under fake repo ids and commits, and the Space
resolves them through `huggingface_hub` with `HF_HUB_OFFLINE=1`: the same code path as on huggingface.co.
"""

import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from lrv_hf.testing.hub import publish, save_adapter, save_base


ROOT = Path(__file__).resolve().parents[1]
ARTIFACTS = ROOT / "test-artifacts"
BASE_REPO = "lrv-test/tiny-llava"
QUESTION = "Is there a blue kite next to the ball?"  # nothing of the kind is in the example images


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_until_up(url: str, proc: subprocess.Popen, log: Path, timeout: float = 180):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            pytest.fail(f"the app exited with {proc.returncode}:\n{log.read_text()[-3000:]}")
        try:
            with urllib.request.urlopen(url, timeout=2):
                return
        except OSError:
            time.sleep(0.5)
    pytest.fail(f"the app did not answer on {url} within {timeout} s:\n{log.read_text()[-3000:]}")


def start(command: list[str], env: dict, cwd: Path, log: Path) -> tuple[subprocess.Popen, str]:
    port = free_port()
    env = {**os.environ, **env, "GRADIO_SERVER_NAME": "127.0.0.1", "GRADIO_SERVER_PORT": str(port)}
    env |= {"HF_HUB_OFFLINE": "1", "GRADIO_ANALYTICS_ENABLED": "False", "OMP_NUM_THREADS": "1"}
    proc = subprocess.Popen(command, cwd=cwd, env=env, stdout=log.open("w"), stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}/"
    wait_until_up(url, proc, log)
    return proc, url


def stop(proc: subprocess.Popen):
    proc.terminate()
    try:
        proc.wait(timeout=20)
    except subprocess.TimeoutExpired:
        proc.kill()


@pytest.fixture(scope="module")
def hub(tmp_path_factory):
    """A Hub cache with the tiny base and four adapters: good, pickle, trained on another base; `ids` by role."""
    root = tmp_path_factory.mktemp("hub")
    cache = root / "cache"
    base = save_base(root / "base")
    ids = {"base": f"{BASE_REPO}@{publish(cache, BASE_REPO, base)}"}
    adapters = {
        "lrv": ("lrv-test/tiny-lrv", {"base_name": BASE_REPO}),
        "pickle": ("lrv-test/tiny-lrv-pickle", {"base_name": BASE_REPO, "pickle": True}),
        "other": ("lrv-test/other-base-lrv", {"base_name": "someone/another-base"}),
    }
    for role, (repo, kwargs) in adapters.items():
        ids[role] = f"{repo}@{publish(cache, repo, save_adapter(base, root / role, **kwargs))}"
    ids["missing"] = "lrv-test/never-published@" + "1" * 40  # allowlisted, but not on the (offline) Hub
    ids["foreign"] = "somebody/unvetted-lora@" + "2" * 40  # not allowlisted
    return {"cache": cache, "root": root, "base_dir": base, "ids": ids}


@pytest.fixture(scope="module")
def space(hub, tmp_path_factory):
    """`python app.py` in `spaces_app/`, configured by the variables a Space's settings would hold."""
    ids = hub["ids"]
    env = {
        "HF_HUB_CACHE": str(hub["cache"]),
        "LRV_BASE_MODEL": ids["base"],
        "LRV_ADAPTERS": ",".join(ids[role] for role in ("lrv", "pickle", "other", "missing")),
        "LRV_MAX_NEW_TOKENS": "12",
    }
    log = tmp_path_factory.mktemp("space") / "space.log"
    proc, url = start([sys.executable, "app.py"], env, ROOT / "spaces_app", log)
    yield url
    stop(proc)


@pytest.fixture(scope="module")
def example_image(tmp_path_factory):
    from lrv_hf.demo.app import make_examples

    return make_examples(tmp_path_factory.mktemp("examples"))[0][0]


def call(url: str, image: str, adapter: str, question: str = QUESTION):
    from gradio_client import Client, handle_file

    client = Client(url, verbose=False)
    job = client.submit(handle_file(image), question, adapter, api_name="/compare")
    final = job.result(timeout=120)
    return final, job.outputs()


def test_both_answers_stream_back(space, hub, example_image):
    (base, lrv, error), updates = call(space, example_image, hub["ids"]["lrv"])
    assert error == ""
    assert base and lrv and base != lrv
    assert len(updates) > 2, "answers arrived in one piece, not streamed"


def test_eight_concurrent_requests(space, hub, example_image):
    with ThreadPoolExecutor(8) as pool:
        results = list(pool.map(lambda _: call(space, example_image, hub["ids"]["lrv"])[0], range(8)))
    assert len(results) == 8
    assert all(error == "" and base and lrv for base, lrv, error in results)
    assert len(set(results)) == 1  # greedy, same input: interleaving requests must not mix adapters up


@pytest.mark.parametrize(
    ("role", "message"),
    [
        ("foreign", "is not in this demo's allowlist"),
        ("pickle", "it holds pickle weights (adapter_model.bin); only safetensors adapters are loaded"),
        ("other", "trained on base 'someone/another-base', but the loaded base is 'lrv-test/tiny-llava'"),
        ("missing", "cannot be fetched from the Hub"),
    ],
)
def test_error_panel(space, hub, example_image, role, message):
    (base, lrv, error), _ = call(space, example_image, hub["ids"][role])
    assert (base, lrv) == ("", "")
    assert error.startswith("**Cannot answer:**") and message in error and "Traceback" not in error


def test_limits_on_image_and_instruction(space, hub, tmp_path, example_image):
    from PIL import Image

    (_, _, error), _ = call(space, example_image, hub["ids"]["lrv"], question="Is it red? " * 100)
    assert "the instruction has 1099 characters; the limit is 1000" in error
    wide = tmp_path / "wide.png"
    Image.new("RGB", (5000, 8)).save(wide)
    (_, _, error), _ = call(space, str(wide), hub["ids"]["lrv"])
    assert "the image is 5000x8 px; the limit is 4096 px a side" in error


def test_switching_adapters_never_reloads_the_base(hub, example_image, monkeypatch):
    """In process, with local folders: the base is loaded once and stays the same object under every adapter."""
    from PIL import Image
    from transformers import AutoModelForImageTextToText

    from lrv_hf.demo.compare import Comparison
    from lrv_hf.infer import GenerationSettings

    root, base_dir = hub["root"], str(hub["base_dir"])
    second = save_adapter(hub["base_dir"], root / "second", base_name=base_dir, seed=2)
    first = save_adapter(hub["base_dir"], root / "first", base_name=base_dir, seed=1)
    loads = []
    original = AutoModelForImageTextToText.from_pretrained
    monkeypatch.setattr(
        AutoModelForImageTextToText, "from_pretrained", lambda *a, **k: loads.append(a) or original(*a, **k)
    )
    comparison = Comparison(base_dir, [str(first), str(second)], GenerationSettings(max_new_tokens=8))
    base_model = comparison.base_model
    image = Image.open(example_image)
    answers = [list(comparison.stream(image, QUESTION, str(a)))[-1] for a in (first, second, first)]
    assert len(loads) == 1 and comparison.base_model is base_model
    assert answers[0] == answers[2] and answers[0][1] != answers[1][1]
    assert answers[0][0] == answers[1][0]  # the base's answer does not depend on the adapter chosen
    assert sorted(comparison.adapters.values()) == ["adapter_0", "adapter_1"]


def test_generation_runs_under_spaces_gpu_when_present():
    """On ZeroGPU the `spaces` package is installed: generation must go through `spaces.GPU`; elsewhere, untouched."""
    probe = (
        "import sys, types\n"
        "fake = types.ModuleType('spaces')\n"
        "fake.GPU = lambda duration=60: (lambda fn: setattr(fn, 'zerogpu', duration) or fn)\n"
        "sys.modules['spaces'] = fake\n"
        "from lrv_hf.demo import compare\n"
        "print(getattr(compare._generate_pair, 'zerogpu', None))\n"
    )
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "120"
    from lrv_hf.demo import compare

    assert not hasattr(compare._generate_pair, "zerogpu")


@pytest.mark.slow
def test_lrv_hf_demo_serves_the_same_page(hub, example_image, tmp_path):
    """`lrv-hf demo` on local folders, on the port GRADIO_SERVER_PORT names."""
    adapter = save_adapter(hub["base_dir"], tmp_path / "adapter", base_name=str(hub["base_dir"]))
    command = [str(Path(sys.executable).with_name("lrv-hf")), "demo", "--base", str(hub["base_dir"])]
    command += ["--adapter", str(adapter), "--max-new-tokens", "6", "--examples-dir", str(tmp_path / "examples")]
    proc, url = start(command, {}, tmp_path, tmp_path / "demo.log")
    try:
        (base, lrv, error), _ = call(url, example_image, str(adapter))
    finally:
        stop(proc)
    assert error == "" and base and lrv and base != lrv


@pytest.mark.browser
def test_in_a_real_browser(space, hub, example_image):
    """Headless Chromium fills the form, clicks Compare, waits for both answers, then picks a pickle adapter and
    waits for the error panel; both screenshots are kept under test-artifacts/."""
    chromium = shutil.which("chromium") or "/usr/bin/chromium"
    if not Path(chromium).exists():
        pytest.skip("Chromium is not installed (apt-get install chromium); .ci/run installs it")
    playwright = pytest.importorskip("playwright.sync_api", reason="playwright is not installed (the dev extra)")
    args = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update"]
    args += ["--disable-sync", "--no-first-run"]
    ARTIFACTS.mkdir(exist_ok=True)
    with playwright.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium, headless=True, args=args)
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 1000})
            page.goto(space)
            page.locator("#compare").wait_for(timeout=60_000)
            page.locator("input[type=file]").first.set_input_files(example_image)
            page.locator("#instruction textarea").fill(QUESTION)
            page.locator("#compare").click()
            page.wait_for_function(
                "() => ['#base-answer', '#adapter-answer'].every(id => document.querySelector(id + ' textarea').value)"
                " && !document.querySelector('.generating')",
                timeout=60_000,
            )
            base = page.locator("#base-answer textarea").input_value()
            lrv = page.locator("#adapter-answer textarea").input_value()
            error = page.locator("#error-panel").inner_text()
            page.screenshot(path=str(ARTIFACTS / "space.png"), full_page=True)

            choice = page.locator("#adapter input")
            choice.fill(hub["ids"]["pickle"])
            choice.press("Enter")
            page.locator("#compare").click()
            panel = page.locator("#error-panel")
            panel.get_by_text("Cannot answer").wait_for(timeout=60_000)
            refusal = panel.inner_text()
            page.screenshot(path=str(ARTIFACTS / "space-error.png"), full_page=True)
        finally:
            browser.close()
    assert base and lrv and base != lrv
    assert "Cannot answer" not in error
    assert "it holds pickle weights (adapter_model.bin)" in refusal
