"""The `evaluate` module metrics/gavie: loads from a checkout, runs its doctests, agrees with `lrv_hf.gavie`."""

import doctest
import math
import runpy
from pathlib import Path

import pytest
import yaml

from lrv_hf.testing.judge_replies import gavie_reply, scores_for


ROOT = Path(__file__).resolve().parents[1]
REGIONS = [{"caption": "a black dog lying on grass", "bbox": [12, 40, 210, 130]}]


@pytest.fixture
def gavie(monkeypatch):
    import evaluate

    monkeypatch.chdir(ROOT)
    return evaluate.load("metrics/gavie")


def test_doctests_run_offline(gavie):
    import evaluate

    namespace = {}
    source = (ROOT / "metrics/gavie/gavie.py").read_text()
    exec(compile(source, "gavie.py", "exec"), namespace)  # the module's own text, as evaluate runs it
    test = doctest.DocTestParser().get_doctest(namespace["_KWARGS_DESCRIPTION"], {"evaluate": evaluate}, "gavie",
                                               None, 0)  # fmt: skip
    runner = doctest.DocTestRunner(optionflags=doctest.NORMALIZE_WHITESPACE)
    runner.run(test)
    assert runner.summarize(verbose=False).failed == 0 and len(test.examples) == 4


def test_compute_scores_through_an_endpoint(gavie, chat_server, tmp_path):
    chat_server.reply = gavie_reply
    answers = ["A dog lies on the grass.", "A cat sits on a sofa.", "A dog.", "Grass."]
    results = gavie.compute(
        predictions=answers, questions=["Describe the image."] * 2 + ["What animal?"] * 2, regions=[REGIONS] * 4,
        models=["a", "b", "a", "b"], answers_per_prompt=2, judge_model="gpt-4o", base_url=chat_server.url,
        api_key_env=None, cache_path=str(tmp_path / "c.sqlite"), output_dir=str(tmp_path / "out"),
    )  # fmt: skip
    assert chat_server.request_count == 2  # two answers per prompt
    assert results["accuracy"] == pytest.approx(sum(scores_for(a)[0] for a in answers) / 4)
    assert results["relevancy"] == pytest.approx(sum(scores_for(a)[1] for a in answers) / 4)
    assert results["accuracy_ci_low"] <= results["accuracy"] <= results["accuracy_ci_high"]
    assert results["coverage"] == 1.0 and results["n"] == 4 and results["n_scored"] == 4
    assert all(type(v) in (float, int) for v in results.values())
    assert (tmp_path / "out" / "summary.json").exists() and (tmp_path / "out" / "report.md").exists()


def test_nothing_scored_is_nan_not_zero(gavie, chat_server):
    chat_server.reply = lambda body: "no idea"
    results = gavie.compute(predictions=["x"], questions=["q"], regions=[REGIONS], judge_model="gpt-4o",
                            base_url=chat_server.url, api_key_env=None, max_reasks=1)  # fmt: skip
    assert math.isnan(results["accuracy"]) and math.isnan(results["relevancy"])
    assert results["coverage"] == 0.0 and results["n_scored"] == 0 and chat_server.request_count == 2


def test_metric_folder_is_a_space(monkeypatch):

    card = (ROOT / "metrics/gavie/README.md").read_text()
    header = yaml.safe_load(card.split("---")[1])
    assert {"title", "emoji", "colorFrom", "colorTo", "sdk", "sdk_version", "app_file", "pinned"} <= set(header)
    assert (
        header["sdk"] == "gradio" and header["app_file"] == "app.py" and {"evaluate", "metric"} <= set(header["tags"])
    )
    import gradio as gr

    app = runpy.run_path(str(ROOT / "metrics/gavie/app.py"), run_name="space")  # what the Space imports, not launched
    assert isinstance(app["build_app"](), gr.Blocks)  # its own Blocks UI; tests/test_metric_spaces.py drives it
    assert "evaluate" in (ROOT / "metrics/gavie/requirements.txt").read_text()
    # evaluate's import checker reads one module per `import` line
    for line in (ROOT / "metrics/gavie/gavie.py").read_text().splitlines():
        if line.startswith("import "):
            assert "," not in line, line
