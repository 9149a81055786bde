"""`lrv-hf quickstart`, shortened: every step runs, the report shows base vs adapter, and a rerun redoes nothing paid."""

import json

import pytest

from lrv_hf.cli import main


pytestmark = pytest.mark.slow


def quickstart(out, *extra):
    argv = ["quickstart", "--output-dir", str(out), "--num-images", "10", "--max-steps", "4"]
    return main(argv + ["--max-new-tokens", "6", *extra])


def test_quickstart_dry_run_then_real_judge_then_cached_rerun(tmp_path, chat_server, capsys, monkeypatch):
    from lrv_hf.testing.judge_replies import gavie_reply

    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    out = tmp_path / "qs"

    # 1. no judge set: everything runs, GAVIE is a dry run that prints the command and the cost
    assert quickstart(out) == 0
    printed = capsys.readouterr().out
    assert f"report: {out / 'report.md'}" in printed and "Do it for real" in printed
    report = (out / "report.md").read_text()
    assert "the pipeline, not quality" in report
    assert "## GAVIE (dry run: no judge was set)" in report and "lrv-hf gavie --predictions" in report
    assert "LRV's full evaluation set (1000 questions" in report and "2,000 calls" in report
    assert (out / "loss.png").stat().st_size > 0 and (out / "scores.png").stat().st_size > 0
    assert chat_server.request_count == 0
    questions = json.loads((out / "release" / "evaluation_set.json").read_text())
    predictions = [json.loads(line) for line in (out / "predictions.jsonl").read_text().splitlines()]
    assert len(predictions) == 2 * len(questions)  # base and adapter for every held-out question
    assert len({p["model"] for p in predictions}) == 2
    pope = json.loads((out / "pope" / "summary.json").read_text())
    assert len(pope["models"]) == 2 and all(
        set(s) == {"random", "popular", "adversarial"} for s in pope["models"].values()
    )
    assert "| POPE accuracy (mean of the 3 samplings) |" in report

    # 2. a judge at a base URL: the data and the adapter are reused, GAVIE is scored for real
    chat_server.reply = gavie_reply
    assert quickstart(out, "--base-url", chat_server.url) == 0
    printed = capsys.readouterr().out
    assert "[data] reusing" in printed and "[train] reusing" in printed
    assert chat_server.request_count == len(predictions)
    report = (out / "report.md").read_text()
    assert "| GAVIE accuracy |" in report and "| GAVIE relevancy |" in report
    summary = json.loads((out / "gavie" / "summary.json").read_text())
    assert summary["n_scored"] == summary["n"] == len(predictions)

    # 3. a rerun, from Python this time, pays for no judge call twice and returns the figures it reports
    from lrv_hf.quickstart import QuickstartConfig, run_quickstart

    config = QuickstartConfig(output_dir=str(out), num_images=10, max_steps=4, max_new_tokens=6)
    config.base_url = chat_server.url
    result = run_quickstart(config)
    assert chat_server.request_count == len(predictions)
    assert result.report == out / "report.md" and result.gavie["summary"]["accuracy"] == summary["accuracy"]
    assert result.pope == pope and len(result.losses) >= 1
