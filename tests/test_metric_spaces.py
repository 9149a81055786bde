"""The metric folders as Spaces: each app.py serves its own Gradio Blocks, driven here by headless Chromium; the
`lrv-hf` version their requirements pin is the wheel `python -m build` makes, and that wheel installs in a bare venv.
"""

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import tomllib
from test_space import ARTIFACTS, start, stop

from lrv_hf.testing.judge_replies import gavie_reply


ROOT = Path(__file__).resolve().parents[1]
METRICS = ("gavie", "pope", "mme")


def version() -> str:
    return tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["version"]


@pytest.mark.parametrize("name", METRICS)
def test_each_metric_folder_is_a_current_gradio_space(name, monkeypatch):
    import gradio as gr

    folder = ROOT / "metrics" / name
    source = (folder / "app.py").read_text()
    assert "launch_gradio_widget" not in source  # evaluate's widget uses gr.inputs, gone since Gradio 4
    monkeypatch.syspath_prepend(str(folder))
    namespace = {"__file__": str(folder / "app.py"), "__name__": f"{name}_space"}
    exec(compile(source, str(folder / "app.py"), "exec"), namespace)
    assert isinstance(namespace["build_app"](), gr.Blocks)
    requirements = (folder / "requirements.txt").read_text()
    assert f"lrv-hf=={version()}" in requirements.splitlines() and "gradio" in requirements
    assert "app_file: app.py" in (folder / "README.md").read_text()


def chromium_page(playwright):
    chromium = shutil.which("chromium") or "/usr/bin/chromium"
    if not Path(chromium).exists():
        pytest.skip("Chromium is not installed (apt-get install chromium); .ci/run installs it")
    args = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
            "--disable-sync", "--no-first-run"]  # fmt: skip
    browser = playwright.chromium.launch(executable_path=chromium, headless=True, args=args)
    return browser, browser.new_page(viewport={"width": 1200, "height": 1000})


def result_text(page, needle: str) -> str:
    page.wait_for_function(
        "needle => (document.querySelector('#result')?.innerText || '').includes(needle)", arg=needle, timeout=60_000
    )
    return page.locator("#result").inner_text()


@pytest.fixture
def space(tmp_path, request):
    """Start `python metrics/<name>/app.py` on a free port; yields the URL."""
    name = request.param
    log = tmp_path / f"{name}.log"
    proc, url = start([sys.executable, str(ROOT / "metrics" / name / "app.py")], {}, ROOT, log)
    yield url
    stop(proc)


@pytest.mark.browser
@pytest.mark.parametrize("space", ["mme"], indirect=True)
def test_mme_space_in_a_browser(space):
    playwright = pytest.importorskip("playwright.sync_api", reason="playwright is not installed (the dev extra)")
    ARTIFACTS.mkdir(exist_ok=True)
    with playwright.sync_playwright() as p:
        browser, page = chromium_page(p)
        try:
            page.goto(space)
            page.locator("#score").click()
            text = result_text(page, "perception")
            page.screenshot(path=str(ARTIFACTS / "metric-mme.png"), full_page=True)
            page.locator("#rows textarea").fill('{"prediction": "yes", "reference": "Yes"}')
            page.locator("#score").click()
            page.get_by_text("line 1: field `question_id` is missing or not a string").first.wait_for(timeout=30_000)
        finally:
            browser.close()
    # the example: existence acc 3/4, acc+ 1/2 -> 125; count's only image has one answer: missing
    assert re.search(r'"perception": 125\.0', text) and re.search(r'"missing_images": 1', text)


@pytest.mark.browser
@pytest.mark.parametrize("space", ["pope"], indirect=True)
def test_pope_space_in_a_browser(space):
    playwright = pytest.importorskip("playwright.sync_api", reason="playwright is not installed (the dev extra)")
    with playwright.sync_playwright() as p:
        browser, page = chromium_page(p)
        try:
            page.goto(space)
            page.locator("#score").click()
            default = result_text(page, "accuracy")
            page.locator("#unknown-as").get_by_text("exclude").click()
            page.locator("#score").click()
            excluded = result_text(page, '"n": 3')
        finally:
            browser.close()
    assert '"accuracy": 0.5' in default and '"unknown": 1' in default
    assert '"yes_ratio": 0.333' in excluded


@pytest.mark.browser
@pytest.mark.parametrize("space", ["gavie"], indirect=True)
def test_gavie_space_estimates_and_scores_in_a_browser(space, chat_server):
    playwright = pytest.importorskip("playwright.sync_api", reason="playwright is not installed (the dev extra)")
    chat_server.reply = gavie_reply
    with playwright.sync_playwright() as p:
        browser, page = chromium_page(p)
        try:
            page.goto(space)
            page.locator("#estimate").click()
            estimate = result_text(page, "prompt_tokens")
            assert chat_server.request_count == 0  # an estimate calls nothing
            page.locator("#base-url input, #base-url textarea").first.fill(chat_server.url)
            page.locator("#api-key-env input, #api-key-env textarea").first.fill("")
            page.locator("#score").click()
            scored = result_text(page, "n_scored")
            page.screenshot(path=str(ARTIFACTS / "metric-gavie.png"), full_page=True)
        finally:
            browser.close()
    assert '"calls": 1' in estimate and '"prompt_tokens": 214' in estimate
    assert '"n_scored": 1' in scored and '"coverage": 1.0' in scored and chat_server.request_count == 1


@pytest.mark.slow
def test_wheel_installs_into_an_empty_venv(tmp_path):
    """`python -m build --wheel` (no isolation: offline) makes the version the metric folders pin; it installs into a
    bare venv and its library imports there from outside the checkout."""
    source, dist = tmp_path / "source", tmp_path / "dist"
    # a copy: setuptools writes build/ and *.egg-info beside the sources, and an egg-info on PYTHONPATH makes pip
    # believe the package is already installed
    shutil.copytree(ROOT / "lrv_hf", source / "lrv_hf", ignore=shutil.ignore_patterns("__pycache__"))
    for name in ("pyproject.toml", "setup.cfg", "README.md"):
        shutil.copy(ROOT / name, source / name)
    subprocess.run([sys.executable, "-m", "build", "--wheel", "--no-isolation", "--outdir", str(dist), str(source)],
                   check=True, capture_output=True, cwd=tmp_path)  # fmt: skip
    (wheel,) = dist.glob("*.whl")
    assert wheel.name == f"lrv_hf-{version()}-py3-none-any.whl"
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    python = venv / "bin" / "python"
    bare = {"PATH": "/usr/bin:/bin"}  # no PYTHONPATH: only what the venv holds
    subprocess.run([python, "-m", "pip", "install", "--no-deps", "--no-index", "-q", str(wheel)], check=True, env=bare)
    probe = ("import importlib.metadata as m, lrv_hf, lrv_hf.mme.data, lrv_hf.errors; from importlib import resources; "
             "print(m.version('lrv-hf'), lrv_hf.__file__, "
             "resources.files('lrv_hf').joinpath('recipes/tiny/lora-cpu.yaml').is_file())")  # fmt: skip
    done = subprocess.run([python, "-c", probe], capture_output=True, text=True, cwd=tmp_path, env=bare)
    assert done.returncode == 0, done.stderr
    out = done.stdout.split()
    assert out[0] == version() and out[1].startswith(str(venv)) and out[2] == "True"
    assert (venv / "bin" / "lrv-hf").is_file()
