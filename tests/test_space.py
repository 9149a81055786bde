"""The Space (`spaces_app/app.py`) launched on 127.0.0.1 over a local Hub cache, driven by `gradio_client` and Chromium.

The base and the adapters are published in a test-filled Hub cache under fake repo ids and commits, and the Space
resolves them through `huggingface_hub` with `HF_HUB_OFFLINE=1`: the same code path as on huggingface.co.
"""

import os
import shutil
import socket
import struct
import subprocess
import sys
import threading
import time
import urllib.request
import zlib
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
def space_server(hub, tmp_path_factory):
    """`python app.py` in `spaces_app/`, configured by the variables a Space's settings would hold: (process, url)."""
    ids = hub["ids"]
    env = {
        "HF_HUB_CACHE": str(hub["cache"]),
        "LRV_BASE_MODEL": ids["base"],
        "LRV_ADAPTERS": ",".join(ids[role] for role in ("lrv", "pickle", "other", "missing")),
        "LRV_MAX_NEW_TOKENS": "12",
    }
    log = tmp_path_factory.mktemp("space") / "space.log"
    proc, url = start([sys.executable, "app.py"], env, ROOT / "spaces_app", log)
    yield proc, url
    stop(proc)


@pytest.fixture(scope="module")
def space(space_server):
    return space_server[1]


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


def not_an_image(path: Path) -> str:
    path.write_text("These are my notes, not a picture.\n" * 20)  # named .png, as a careless upload would be
    return str(path)


def declared_size(path: Path, width: int, height: int) -> str:
    """A few-byte PNG whose header (IHDR, CRC fixed) declares `width` x `height`: a bomb, or a lie, to the decoder."""
    from PIL import Image

    Image.new("RGB", (8, 8), "red").save(path)
    data = bytearray(path.read_bytes())
    ihdr = 12  # signature (8), then the IHDR chunk's length (4); the chunk type and its 13 bytes follow
    data[ihdr + 4 : ihdr + 12] = struct.pack(">II", width, height)
    data[ihdr + 17 : ihdr + 21] = struct.pack(">I", zlib.crc32(bytes(data[ihdr : ihdr + 17])))
    path.write_bytes(bytes(data))
    return str(path)


BAD_UPLOADS = {  # name -> (make the file in a folder, what the error panel says)
    "text renamed .png": (lambda d: not_an_image(d / "notes.png"), "the upload is not an image this demo can read"),
    "20000x20000 bomb": (lambda d: declared_size(d / "bomb.png", 20000, 20000), "the image has over "),
    "header larger than the data": (lambda d: declared_size(d / "short.png", 640, 480), "the image is damaged"),
}


@pytest.fixture(scope="module")
def local_app(hub, example_image, tmp_path_factory):
    """The page over local folders, in this process: `(comparison, app, adapter)`."""
    from lrv_hf.demo.app import build_app
    from lrv_hf.demo.compare import Comparison
    from lrv_hf.infer import GenerationSettings

    base_dir = hub["base_dir"]
    adapter = str(save_adapter(base_dir, tmp_path_factory.mktemp("adapter"), base_name=str(base_dir)))
    comparison = Comparison(str(base_dir), [adapter], GenerationSettings(max_new_tokens=6))
    return comparison, build_app(comparison, [[example_image, QUESTION]]), adapter


def run_compare(app, image: str, instruction: str, adapter: str) -> list[tuple]:
    """The page's Compare event as Gradio runs it, without a server: Gradio's own input processing, then the
    function; every update the page would show."""
    import asyncio

    event = next(fn for fn in app.fns.values() if fn.api_name == "compare")
    upload = {"path": image, "orig_name": Path(image).name, "meta": {"_type": "gradio.FileData"}}
    inputs = asyncio.run(app.preprocess_data(event, [upload, instruction, adapter], None, explicit_call=True))
    return [tuple(update) for update in event.fn(*inputs)]


@pytest.mark.parametrize("upload", list(BAD_UPLOADS))
def test_a_bad_upload_shows_in_the_panel_in_process(local_app, tmp_path, upload):
    """Found by the hostile-upload trial (issue 14 item 14): these were stack traces, never reaching the panel."""
    _, app, adapter = local_app
    make, message = BAD_UPLOADS[upload]
    updates = run_compare(app, make(tmp_path), QUESTION, adapter)
    assert len(updates) == 1
    base, lrv, error = updates[0]
    assert (base, lrv) == ("", "")
    assert error.startswith("**Cannot answer:** ") and message in error and "Traceback" not in error
    assert str(tmp_path) not in error  # the server's upload folder is not the visitor's business


def test_the_pixel_limit_is_read_from_the_header_and_configurable(local_app, example_image):
    from lrv_hf.demo.compare import Comparison

    comparison, app, adapter = local_app
    *_, (base, lrv, error) = run_compare(app, example_image, QUESTION, adapter)
    assert error == "" and base and lrv
    comparison.max_image_pixels = 128 * 128 - 1  # the example is 128 x 128
    try:
        (_, _, error), *_ = run_compare(app, example_image, QUESTION, adapter)
    finally:
        comparison.max_image_pixels = 128 * 128
    assert "the image is 128x128 px (16,384 pixels); the limit is 16,383 pixels" in error
    assert list(comparison.stream(example_image, QUESTION, adapter))[-1] == (base, lrv)  # at the limit: accepted
    with pytest.raises(ValueError, match="`max_image_pixels` must be a whole number of pixels from 1 to"):
        Comparison("unused", [], max_image_pixels=0)


@pytest.mark.parametrize(
    ("value", "message"),
    [("0", "must be a whole number of pixels from 1 to"), ("1e6", "must be a whole number, got '1e6'")],
)
def test_the_space_reads_its_pixel_limit(monkeypatch, value, message):
    from lrv_hf.demo.app import comparison_from_env
    from lrv_hf.errors import InputError

    monkeypatch.setenv("LRV_BASE_MODEL", "unused/base@main")  # refused before anything loads
    monkeypatch.setenv("LRV_MAX_IMAGE_PIXELS", value)
    with pytest.raises(InputError, match=f"LRV_MAX_IMAGE_PIXELS {message}"):
        comparison_from_env()


@pytest.mark.parametrize("upload", list(BAD_UPLOADS))
def test_a_bad_upload_shows_in_the_panel(space, hub, tmp_path, upload):
    """The same trial through the Space's API, as a visitor's browser or `gradio_client` sends it."""
    make, message = BAD_UPLOADS[upload]
    (base, lrv, error), _ = call(space, make(tmp_path), hub["ids"]["lrv"])
    assert (base, lrv) == ("", "")
    assert error.startswith("**Cannot answer:** ") and message in error and "Traceback" not in error


def test_a_refused_large_upload_is_never_decoded(space_server, hub, tmp_path, example_image):
    """A 12000 x 12000 PNG (a few hundred KB) is refused from its header: the Space's memory never grows by its
    decoded size (432 MB as RGB); before the fix Gradio decoded it in full before the size check."""
    import psutil
    from PIL import Image

    proc, url = space_server
    large = tmp_path / "large.png"
    Image.new("1", (12000, 12000)).save(large)  # 18 MB here; 1 bit a pixel compresses to a small file
    call(url, example_image, hub["ids"]["lrv"])  # warm: the first request's one-off allocations are not counted
    server = psutil.Process(proc.pid)
    before = server.memory_info().rss
    peak, done = [before], threading.Event()

    def sample():  # a decode takes about a second: sampling every 5 ms cannot miss it
        while not done.is_set():
            peak.append(server.memory_info().rss)
            time.sleep(0.005)

    sampler = threading.Thread(target=sample)
    sampler.start()
    try:
        (_, _, error), _ = call(url, str(large), hub["ids"]["lrv"])
    finally:
        done.set()
        sampler.join()
    grown = max(peak) - before
    assert grown < 150 * 2**20, f"the server grew by {grown / 2**20:.0f} MB while refusing the upload"
    assert "the image is 12000x12000 px (144,000,000 pixels); the limit is 16,777,216 pixels" in error


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
def test_in_a_real_browser(space, hub, example_image, tmp_path):
    """Headless Chromium fills the form, clicks Compare, waits for both answers, then picks a pickle adapter and
    waits for the error panel; on a fresh page it uploads a text file named .png and waits for the panel again. The
    screenshots are kept under test-artifacts/."""
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

            page = browser.new_page(viewport={"width": 1280, "height": 1000})
            page.goto(space)
            page.locator("#compare").wait_for(timeout=60_000)
            page.locator("input[type=file]").first.set_input_files(not_an_image(tmp_path / "notes.png"))
            page.locator("#instruction textarea").fill(QUESTION)
            page.locator("#compare").click()
            page.locator("#error-panel").get_by_text("Cannot answer").wait_for(timeout=60_000)
            not_image = page.locator("#error-panel").inner_text()
            page.screenshot(path=str(ARTIFACTS / "space-not-an-image.png"), full_page=True)
        finally:
            browser.close()
    assert base and lrv and base != lrv
    assert "Cannot answer" not in error
    assert "it holds pickle weights (adapter_model.bin)" in refusal
    assert "the upload is not an image this demo can read" in not_image


def test_the_demo_command_refuses_a_bad_pixel_limit_before_loading_anything(capsys):
    """`lrv-hf demo --max-image-pixels 0` is one line naming the flag, exit 2, before the base is looked up."""
    from lrv_hf.cli import main

    assert main(["demo", "--base", "no/such-base", "--adapter", "no/such-adapter", "--max-image-pixels", "0"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("lrv-hf demo: error: --max-image-pixels must be a whole number of pixels from 1 to")
    assert len(err.splitlines()) == 1
