"""GAVIE: the released prompt (snapshots), scoring through the loopback judge, the CLI (the parser: test_gavie_parse)."""

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from lrv_hf.gavie import build_prompt, describe, pack, score, summarise
from lrv_hf.gavie.score import Prediction
from lrv_hf.judge import Judge, cache_key
from lrv_hf.testing.chat_server import Fault
from lrv_hf.testing.judge_replies import answers_in, gavie_reply, scores_for


HERE = Path(__file__).parent
# made-up content in the released example's shape: the project never copies the release in (the legacy prompt was
# checked by hand to equal the released GAVIE.txt byte for byte when fed that file's boxes and answers)
EXAMPLE = json.loads((HERE / "fixtures" / "gavie_example.json").read_text(encoding="utf-8"))
LRV_HF = str(Path(sys.executable).parent / "lrv-hf")
KEY = "sk-gavie-TEST-KEY-9f8e7d6c5b4a"


# -- prompt ----------------------------------------------------------------------------------------------------------
def test_legacy_prompt_keeps_the_released_text_and_its_quirks():
    example = EXAMPLE
    prompt = build_prompt(example["regions"], example["instruction"], example["answers"], legacy=True)
    assert prompt.encode() == (HERE / "snapshots" / "gavie_prompt_legacy.txt").read_bytes()
    assert prompt.startswith("Give  an image") and "relevancy: \nscore of answer1: \nreason: \n" in prompt
    assert "green grass  X:0 Y:210 Width:498 Height:498\n" in prompt  # caption's trailing space, width as height
    assert "a red ball on the grass X:20 Y:55 Width:120 Height:120\n" in prompt


def test_default_prompt_prints_real_heights():
    example = EXAMPLE
    prompt = build_prompt(example["regions"], example["instruction"], example["answers"])
    assert prompt == (HERE / "snapshots" / "gavie_prompt.txt").read_text(encoding="utf-8")
    x, y, w, h = example["regions"][0]["bbox"]
    assert w != h and f"a red ball on the grass X:{x} Y:{y} Width:{w} Height:{h}\n" in prompt
    legacy = build_prompt(example["regions"], example["instruction"], example["answers"], legacy=True)
    # only the box lines differ
    assert [a for a, b in zip(prompt.splitlines(), legacy.splitlines()) if a != b] == [
        line for line in prompt.splitlines() if " Height:" in line and line not in legacy.splitlines()
    ]


def test_single_answer_prompt_snapshot():
    example = EXAMPLE
    prompt = build_prompt(example["regions"][:3], example["instruction"], example["answers"][:1])
    assert prompt == (HERE / "snapshots" / "gavie_prompt_k1.txt").read_text(encoding="utf-8")
    assert "Answer2" not in prompt and prompt.endswith("accuracy: \nscore of answer1: \nreason: \n")


# -- scoring through the loopback judge ----------------------------------------------------------------------------
def make_predictions(n_questions: int = 6, models=("base", "lrv")) -> list[Prediction]:
    predictions = []
    for q in range(n_questions):
        for model in models:
            predictions.append(
                Prediction(
                    len(predictions),
                    f"img{q % 3}",
                    f"What is in picture {q}?",
                    f"{model} says thing {q}",
                    model,
                    ["negative", "attribute"][q % 2],
                    ["negative", "positive"][q % 2],
                )  # fmt: skip
            )
    return predictions


REGIONS = {f"img{i}": [{"caption": f"a thing {i}", "bbox": [1, 2, 30, 40]}] for i in range(3)}


@pytest.fixture
def gavie_judge(chat_server, tmp_path):
    chat_server.reply = gavie_reply
    return Judge("gpt-4o", base_url=chat_server.url, api_key_env=None, cache_path=tmp_path / "cache.sqlite",
                 concurrency=4)  # fmt: skip


@pytest.mark.parametrize("style", ["release", "markdown", "blocks", "accuracy_first"])
def test_scores_match_the_judge_in_every_reply_style(chat_server, gavie_judge, style):
    chat_server.reply = lambda body: gavie_reply(body, style)
    predictions = make_predictions()
    run = score(predictions, REGIONS, gavie_judge, answers_per_prompt=2, progress=False)
    for prediction, row in zip(predictions, run.rows):
        assert (row["accuracy"], row["relevancy"]) == scores_for(prediction.answer)
        assert row["scored"] and row["raw_reply"] and len(row["cache_key"]) == 64
    assert chat_server.request_count == 6  # 12 answers, 2 per prompt


def test_full_coverage_through_faults_and_identical_scores(chat_server, gavie_judge):
    kinds = [Fault(429, retry_after=0.05), Fault(500), Fault("drop"), Fault("malformed"), Fault(503)]
    chat_server.fault_fn = lambda index, body: kinds[index // 3 % len(kinds)] if index % 3 == 0 else None
    predictions = make_predictions(10)
    run = score(predictions, REGIONS, gavie_judge, answers_per_prompt=2, progress=False)
    assert run.summary()["coverage"] == 1.0
    assert all((r["accuracy"], r["relevancy"]) == scores_for(r["answer"]) for r in run.rows)
    outcomes = {r.outcome for r in chat_server.chat_requests}
    assert {"429", "500", "drop", "malformed", "503"} <= outcomes
    assert sorted(chat_server.completed_prompts().values()) == [1] * 10  # each prompt billed once


def test_packing_k5_sends_a_fifth_of_the_prompts(chat_server, gavie_judge):
    predictions = make_predictions(4, models=("m1", "m2", "m3", "m4", "m5"))
    assert [len(p) for p in pack(predictions, 5)] == [5] * 4
    assert [len(p) for p in pack(predictions, 2)] == [2, 2, 1] * 4
    run = score(predictions, REGIONS, gavie_judge, answers_per_prompt=5, progress=False)
    assert chat_server.request_count == 4
    assert [r["answer_slot"] for r in run.rows[:5]] == [1, 2, 3, 4, 5]
    # calls run concurrently, so the server may record them in any order: find the first pack's prompt by its question
    (prompt,) = [
        r.body["messages"][0]["content"]
        for r in chat_server.chat_requests
        if predictions[0].question in r.body["messages"][0]["content"]
    ]
    assert answers_in(prompt) == [p.answer for p in predictions[:5]]
    assert all((r["accuracy"], r["relevancy"]) == scores_for(r["answer"]) for r in run.rows)


def test_unreadable_replies_are_reasked_then_unscored_never_averaged(chat_server, gavie_judge):
    predictions = make_predictions(4, models=("base",))
    bad = predictions[1].answer
    chat_server.reply = lambda body: "Sorry, no." if bad in body["messages"][0]["content"] else gavie_reply(body)
    run = score(predictions, REGIONS, gavie_judge, max_reasks=2, progress=False)
    summary = run.summary()
    asked_bad = [r for r in chat_server.chat_requests if bad in r.body["messages"][0]["content"]]
    assert len(asked_bad) == 3  # first ask + 2 re-asks, then it stops
    row = run.rows[1]
    assert not row["scored"] and row["accuracy"] is None and row["unscored_reason"] == "judge reply could not be read"
    assert summary["n"] == 4 and summary["n_scored"] == 3 and summary["coverage"] == 0.75
    expected = [scores_for(p.answer)[0] for p in predictions if p.answer != bad]
    assert summary["accuracy"] == pytest.approx(sum(expected) / 3)
    assert summary["unscored"] == {"judge reply could not be read": 1}
    # a rerun pays for nothing: the unreadable replies are cached too
    before = chat_server.request_count
    score(predictions, REGIONS, gavie_judge, max_reasks=2, progress=False)
    assert chat_server.request_count == before


def test_reask_recovers_a_flaky_reply(chat_server, gavie_judge):
    calls = {"n": 0}

    def flaky(body):
        calls["n"] += 1
        return "hmm" if calls["n"] == 1 else gavie_reply(body)

    chat_server.reply = flaky
    run = score(make_predictions(1, models=("base",)), REGIONS, gavie_judge, progress=False)
    assert run.rows[0]["scored"] and chat_server.request_count == 2


def test_failed_calls_are_unscored_with_their_reason(chat_server, gavie_judge):
    chat_server.inject(500, count=100)
    gavie_judge.config.max_retries = 1  # the SDK backs off 0.5, 1, 2 ... s: keep the test short
    run = score(make_predictions(1, models=("base",)), REGIONS, gavie_judge, max_reasks=0, progress=False)
    assert run.rows[0]["unscored_reason"].startswith("judge call failed: HTTP 500")
    summary = run.summary()
    assert summary["accuracy"] is None and summary["n_scored"] == 0 and summary["judge"]["failed_calls"] == 1


def test_judge_samples_report_median_and_spread(chat_server, gavie_judge):
    seen = {}

    def drifting(body):  # a judge that drifts: each later draw of a prompt scores one point higher
        prompt = body["messages"][0]["content"]
        seen[prompt] = seen.get(prompt, -1) + 1
        text = gavie_reply(body)
        for value in range(10, -1, -1):
            text = text.replace(f": {value}\n", f": {min(10, value + seen[prompt])}\n")
        return text

    chat_server.reply = drifting
    predictions = make_predictions(3, models=("base",))
    run = score(predictions, REGIONS, gavie_judge, judge_samples=3, progress=False)
    assert chat_server.request_count == 9  # 3 prompts x 3 draws, each its own paid call
    row = run.rows[0]
    draws = [s["accuracy"] for s in row["samples"]]
    assert len({s["cache_key"] for s in row["samples"]}) == 3
    assert row["accuracy"] == sorted(draws)[1]
    noise = run.summary()["judge_noise"]
    assert noise["draws"] == 3 and noise["accuracy"]["run_spread"] > 0
    score(predictions, REGIONS, gavie_judge, judge_samples=3, progress=False)
    assert chat_server.request_count == 9  # cached separately


def test_breakdowns_and_confidence_intervals(chat_server, gavie_judge):
    run = score(make_predictions(8), REGIONS, gavie_judge, answers_per_prompt=2, progress=False)
    summary = run.summary()
    assert set(summary["by_task"]) == {"negative", "attribute"}
    assert set(summary["by_polarity"]) == {"negative", "positive"}
    assert set(summary["by_model"]) == {"base", "lrv"}
    assert summary["by_model"]["base"]["n"] == 8
    low, high = summary["accuracy_ci95"]
    assert low <= summary["accuracy"] <= high and summary["accuracy_std"] > 0
    stats = describe([5.0] * 10)
    assert stats["mean"] == 5.0 and stats["std"] == 0.0 and stats["ci95"] == [5.0, 5.0]
    assert describe([]) == {"mean": None, "std": None, "ci95": None, "n": 0}
    plain = summarise([dict(r, task=None, polarity=None, model=None) for r in run.rows], run.results, run.judge, {})
    assert "by_task" not in plain and "by_model" not in plain


def test_missing_regions_is_an_input_error(gavie_judge):
    from lrv_hf import InputError

    with pytest.raises(InputError, match="no regions for image_id 'img2'.*row 2"):
        score(make_predictions(3, models=("base",)), {"img0": REGIONS["img0"], "img1": REGIONS["img1"]},
              gavie_judge, progress=False)  # fmt: skip


# -- CLI -------------------------------------------------------------------------------------------------------------
@pytest.fixture
def gavie_files(tmp_path):
    predictions = tmp_path / "preds.jsonl"
    rows = [
        {"image_id": p.image_id, "question": p.question, "answer": p.answer, "model": p.model, "task": p.task}
        for p in make_predictions(10)
    ]
    predictions.write_text("".join(json.dumps(r) + "\n" for r in rows))
    regions = tmp_path / "vg_annotation.json"
    regions.write_text(json.dumps(REGIONS))
    return predictions, regions


def cli(*args, env=None, timeout=120):
    return subprocess.run([LRV_HF, "gavie", *map(str, args)], capture_output=True, text=True, timeout=timeout,
                          env={**os.environ, "JUDGE_KEY": KEY, **(env or {})})  # fmt: skip


def test_cli_scores_and_writes_every_output(chat_server, gavie_files, tmp_path):
    chat_server.reply, chat_server.api_key = gavie_reply, KEY
    predictions, regions = gavie_files
    out = tmp_path / "out"
    done = cli("--predictions", predictions, "--regions", regions, "--judge-model", "gpt-4o", "--output-dir", out,
               "--base-url", chat_server.url, "--api-key-env", "JUDGE_KEY", "--answers-per-prompt", "2")  # fmt: skip
    assert done.returncode == 0, done.stderr
    summary = json.loads((out / "summary.json").read_text())
    assert summary["n"] == 20 and summary["n_scored"] == 20 and summary["coverage"] == 1.0
    assert isinstance(summary["accuracy"], float) and isinstance(summary["relevancy"], float)
    assert set(summary["by_model_and_task"]) == {"base", "lrv"}  # what the plot compares
    assert summary["by_model_and_task"]["lrv"]["negative"]["n"] == 5
    rows = [json.loads(line) for line in (out / "scores.jsonl").read_text().splitlines()]
    assert len(rows) == 20 and {"image_id", "answer", "accuracy", "relevancy", "accuracy_reason",
                                "relevancy_reason", "raw_reply", "cache_key"} <= set(rows[0])  # fmt: skip
    assert "task=negative" in done.stdout and "model=lrv" in done.stdout  # the final table
    report = (out / "report.md").read_text()
    assert "![GAVIE per group](report.png)" in report and (out / "report.png").read_bytes()[:4] == b"\x89PNG"
    assert chat_server.request_count == 10
    # the key went to the server and nowhere else
    assert all(r.headers["Authorization"] == f"Bearer {KEY}" for r in chat_server.chat_requests)
    for path in out.iterdir():
        assert KEY.encode() not in path.read_bytes(), path
    assert KEY not in done.stdout + done.stderr


def test_cli_dry_run_spends_nothing(chat_server, gavie_files, tmp_path):
    predictions, regions = gavie_files
    done = cli("--predictions", predictions, "--regions", regions, "--judge-model", "gpt-4o", "--output-dir",
               tmp_path / "o", "--base-url", chat_server.url, "--dry-run", "--answers-per-prompt", "2")  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert "10 judge requests, 0 already cached, 10 to pay for" in done.stdout
    assert "estimated cost with gpt-4o: $" in done.stdout
    assert chat_server.request_count == 0 and not (tmp_path / "o" / "summary.json").exists()
    prices = tmp_path / "prices.json"
    prices.write_text(json.dumps({"my-judge": {"input": 1.0, "output": 0.0}}))
    done = cli("--predictions", predictions, "--regions", regions, "--judge-model", "my-judge", "--output-dir",
               tmp_path / "o", "--base-url", chat_server.url, "--dry-run", "--prices", prices)  # fmt: skip
    tokens = int(done.stdout.split("estimated tokens: ")[1].split()[0])
    assert f"estimated cost with my-judge: ${tokens / 1e6:.4f}" in done.stdout
    prices.write_text(json.dumps({"my-judge": {"input": "cheap"}}))
    done = cli("--predictions", predictions, "--regions", regions, "--judge-model", "my-judge", "--output-dir",
               tmp_path / "o", "--dry-run", "--prices", prices)  # fmt: skip
    assert done.returncode == 2 and "entry 'my-judge' must be" in done.stderr


def test_cli_batch_mode(chat_server, gavie_files, tmp_path):
    chat_server.reply = gavie_reply
    predictions, regions = gavie_files
    done = cli("--predictions", predictions, "--regions", regions, "--judge-model", "gpt-4o", "--output-dir",
               tmp_path / "o", "--base-url", chat_server.url, "--batch", "--poll-interval", "0.01")  # fmt: skip
    assert done.returncode == 0, done.stderr
    summary = json.loads((tmp_path / "o" / "summary.json").read_text())
    assert summary["n_scored"] == 20 and chat_server.request_count == 0 and chat_server.batch_lines == 20


@pytest.mark.parametrize(
    ("content", "message"),
    [('{"image_id": "img0", "question": "q"}\n', "line 1: field `answer` is missing"),
     ('{"image_id": "img0", "question": "q", "answer": "a"}\nnot json\n', "line 2: not valid JSON"),
     ('{"image_id": "img9", "question": "q", "answer": "a"}\n', "no regions for image_id 'img9'")],
)  # fmt: skip
def test_cli_bad_input_is_one_line(gavie_files, tmp_path, content, message):
    predictions, regions = gavie_files
    predictions.write_text(content)
    done = cli("--predictions", predictions, "--regions", regions, "--judge-model", "gpt-4o", "--output-dir",
               tmp_path / "o", "--base-url", "http://127.0.0.1:9/v1", "--dry-run")  # fmt: skip
    assert done.returncode == 2 and message in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1 and "Traceback" not in done.stderr


def test_cli_wrong_key_fails_fast_without_leaking_it(chat_server, gavie_files, tmp_path):
    chat_server.reply, chat_server.api_key = gavie_reply, KEY
    predictions, regions = gavie_files
    done = cli("--predictions", predictions, "--regions", regions, "--judge-model", "gpt-4o", "--output-dir",
               tmp_path / "o", "--base-url", chat_server.url, "--api-key-env", "WRONG_KEY",
               env={"WRONG_KEY": KEY + "x"})  # fmt: skip
    assert done.returncode == 2 and "401" in done.stderr and "WRONG_KEY" in done.stderr
    assert KEY not in done.stderr and "Traceback" not in done.stderr
    assert chat_server.request_count <= 16


def test_sigkill_midway_then_resume_equals_uninterrupted(chat_server, gavie_files, tmp_path):
    chat_server.reply, chat_server.latency = gavie_reply, 0.1
    predictions, regions = gavie_files
    common = ["--predictions", predictions, "--regions", regions, "--judge-model", "gpt-4o", "--base-url",
              chat_server.url, "--concurrency", "2", "--no-progress"]  # fmt: skip
    reference = cli(*common, "--output-dir", tmp_path / "ref")
    assert reference.returncode == 0, reference.stderr
    chat_server.reset()

    out = tmp_path / "resumed"
    cache = out / "judge_cache.sqlite"
    process = subprocess.Popen([LRV_HF, "gavie", *map(str, common), "--output-dir", str(out)],
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip
    deadline = time.monotonic() + 60
    cached_before = 0
    while time.monotonic() < deadline:
        if cache.exists():
            try:
                with sqlite3.connect(cache) as db:
                    cached_before = db.execute("SELECT COUNT(*) FROM replies").fetchone()[0]
            except sqlite3.OperationalError:
                cached_before = 0
        if cached_before >= 6:
            break
        time.sleep(0.02)
    os.kill(process.pid, signal.SIGKILL)
    process.wait()
    assert 6 <= cached_before < 20, "the kill must land mid-run"
    with sqlite3.connect(cache) as db:
        survived = {key for (key,) in db.execute("SELECT key FROM replies")}
    assert not (out / "summary.json").exists()
    paid_before = len(chat_server.completed)
    chat_server.reset()

    resumed = cli(*common, "--output-dir", out)
    assert resumed.returncode == 0, resumed.stderr
    # nothing received before the kill was asked again
    asked_again = {cache_key({"body": r.body, "sample": 0}) for r in chat_server.chat_requests}  # one draw, no re-asks
    assert not asked_again & survived
    assert paid_before + len(chat_server.completed) <= 20 + 2  # at most the calls in flight at the kill (concurrency)
    assert (out / "scores.jsonl").read_text() == (tmp_path / "ref" / "scores.jsonl").read_text()
    ref_summary = json.loads((tmp_path / "ref" / "summary.json").read_text())
    summary = json.loads((out / "summary.json").read_text())
    ref_summary.pop("judge"), summary.pop("judge")
    assert summary == ref_summary


# -- a run that scores nothing fails loudly (issue 14, item 13) ----------------------------------------------------
def test_cli_run_that_scores_nothing_exits_nonzero_and_shows_the_reply(chat_server, gavie_files, tmp_path):
    chat_server.reply = lambda body: "I'm sorry, but I can't assist with scoring these answers."
    predictions, regions = gavie_files
    out = tmp_path / "o"
    done = cli("--predictions", predictions, "--regions", regions, "--judge-model", "gpt-4o", "--output-dir", out,
               "--base-url", chat_server.url, "--max-reasks", "1", "--no-progress")  # fmt: skip
    assert done.returncode == 1, done.stderr
    assert "scored none of the 20 answers" in done.stderr and "judge reply could not be read" in done.stderr
    assert (
        "I'm sorry, but I can't assist with scoring these answers." in done.stderr and "Traceback" not in done.stderr
    )
    summary = json.loads((out / "summary.json").read_text())  # kept so the user can read every reply
    assert summary["n_scored"] == 0
    rows = [json.loads(line) for line in (out / "scores.jsonl").read_text().splitlines()]
    assert {r["raw_reply"] for r in rows} == {"I'm sorry, but I can't assist with scoring these answers."}


def test_cli_run_with_some_scores_still_exits_zero(chat_server, gavie_files, tmp_path):
    def half(body):
        prompt = body["messages"][0]["content"]
        return "no." if "base says" in prompt else gavie_reply(body)

    chat_server.reply = half
    predictions, regions = gavie_files
    done = cli("--predictions", predictions, "--regions", regions, "--judge-model", "gpt-4o", "--output-dir",
               tmp_path / "o", "--base-url", chat_server.url, "--max-reasks", "0", "--no-progress")  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert json.loads((tmp_path / "o" / "summary.json").read_text())["coverage"] == 0.5


def test_cli_judge_answering_200_with_an_error_body_exits_nonzero_with_the_provider_text(
    chat_server, gavie_files, tmp_path
):
    chat_server.reply = lambda body: {"error": {"message": "You exceeded your current quota", "code": "quota"}}
    predictions, regions = gavie_files
    done = cli("--predictions", predictions, "--regions", regions, "--judge-model", "gpt-4o", "--output-dir",
               tmp_path / "o", "--base-url", chat_server.url, "--max-reasks", "0", "--max-retries", "0",
               "--no-progress")  # fmt: skip
    assert done.returncode == 1, done.stderr
    assert "You exceeded your current quota" in done.stderr and "Traceback" not in done.stderr
