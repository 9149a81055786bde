"""The GQA judge protocol: the released prompt (snapshot), the verdict parser, scoring through the loopback judge,
the hand-worked accuracy with its interval, re-asks, the cache, the dry run and the CLI."""

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from lrv_hf import InputError
from lrv_hf.gqa import (
    GQAAnswer,
    Reference,
    build_prompt,
    parse_verdicts,
    read_predictions,
    read_references,
    score_gqa,
)
from lrv_hf.judge import Judge


HERE = Path(__file__).parent
LRV_HF = str(Path(sys.executable).parent / "lrv-hf")


# -- prompt ----------------------------------------------------------------------------------------------------------
def test_prompt_is_the_released_text_in_its_shape():
    # made-up content in the released example's shape (the project never copies the release in; fed the release's
    # own question and answers, build_prompt was checked by hand to give GQA_Evaluation_prompt.txt byte for byte)
    example = json.loads((HERE / "fixtures" / "gqa_example.json").read_text(encoding="utf-8"))
    prompt = build_prompt(example["question"], example["correct_answer"], example["answers"])
    assert prompt.encode() == (HERE / "snapshots" / "gqa_prompt.txt").read_bytes()
    assert "whether a student\u2019s answer" in prompt and "and a students' answer." in prompt
    assert f'Question: {example["question"]}"\nCorrect Answer: red\n\n' in prompt  # the release's stray quote
    assert prompt.endswith("\noutput format:\nStudent Answer1:\nStudent Answer2:\n")
    single = build_prompt("Is it red?", "yes", ["yes"])
    assert single.endswith("Student Answer1: yes\n\noutput format:\nStudent Answer1:\n")
    with pytest.raises(ValueError, match="`answers` must hold at least one answer"):
        build_prompt("q", "a", [])


# -- verdicts --------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "text",
    ["Student Answer1: Correct\nStudent Answer2: Incorrect",
     "**Student Answer 1:** correct.\n**Student Answer 2:** Wrong: it says table, the answer is couch.",
     "Student Answer1:\nCorrect, a sofa is a couch.\n\nStudent Answer2:\nNot correct",
     "Answer 1 - yes\nAnswer 2 - no",
     "Student Answer1: Correct\nStudent Answer2: Incorrect\n\nStudent Answer1 is more correct."],
)  # fmt: skip
def test_verdicts_in_every_style(text):
    assert parse_verdicts(text, 2) == ["correct", "incorrect"]


@pytest.mark.parametrize(
    ("text", "expected"),
    [("Student Answer1: Partially correct\nStudent Answer2: incorrect", [None, "incorrect"]),
     ("Student Answer1: correct", ["correct", None]),
     ("Student Answer1: correct\nStudent Answer2: wrong\nStudent Answer2: correct", ["correct", None]),
     ("Student Answer1 is more correct than Student Answer2.", [None, None]),
     ("Student Answer1: correct\nStudent Answer3: correct", ["correct", None]),
     ("", [None, None]), (None, [None, None])],
)  # fmt: skip
def test_a_hedge_a_gap_or_two_verdicts_is_unscored_never_wrong(text, expected):
    assert parse_verdicts(text, 2) == expected


def test_a_single_answer_may_come_without_its_label():
    assert parse_verdicts("Correct.", 1) == ["correct"]
    assert parse_verdicts("Incorrect - the answer is couch.", 1) == ["incorrect"]
    assert parse_verdicts("It depends.", 1) == [None]


# -- scoring through the loopback judge ----------------------------------------------------------------------------
def gqa_judge_reply(body: dict) -> str:
    """A scripted judge: an answer is correct when it contains the correct answer as a word; "maybe" gets a hedge."""
    prompt = body["messages"][-1]["content"]
    correct = re.search(r"^Correct Answer: (.*)$", prompt, re.MULTILINE).group(1).lower()
    answers = re.findall(r"^Student Answer(\d+): (.*)$", prompt, re.MULTILINE)
    lines = []
    for number, answer in answers:
        if "maybe" in answer:
            verdict = "partially correct"
        else:
            verdict = "Correct" if re.search(rf"\b{re.escape(correct)}\b", answer.lower()) else "Incorrect"
        lines.append(f"Student Answer{number}: {verdict}")
    return "\n".join(lines)


REFERENCES = {
    qid: Reference(qid, question, answer, image)
    for qid, question, answer, image in [
        ("q1", "Which kind of furniture is in front of the mirror?", "couch", "img1"),
        ("q2", "What color is the car?", "red", "img2"),
        ("q3", "On which side is the lamp?", "left", "img3"),
        ("q4", "Is the man wearing a hat?", "yes", "img4"),
        ("q5", "How many dogs are there?", "two", "img5"),
    ]
}
ANSWERS = {  # base: right on q1, q3; wrong on q2, q4; a hedge on q5.  lrv: right on all but q3
    "base": ["a brown couch", "blue", "left side", "no", "maybe"],
    "lrv": ["couch", "red", "right", "yes", "two dogs"],
}


def make_answers(models=("base", "lrv")) -> list[GQAAnswer]:
    return [
        GQAAnswer(f"{model}.jsonl: line {i + 1}", model, None, ANSWERS[model][i], f"q{i + 1}")
        for model in models
        for i in range(5)
    ]


@pytest.fixture
def gqa_judge(chat_server, tmp_path):
    chat_server.reply = gqa_judge_reply
    return Judge("gpt-4o", base_url=chat_server.url, api_key_env=None, cache_path=tmp_path / "cache.sqlite",
                 concurrency=4)  # fmt: skip


def test_accuracy_ci_and_coverage_are_the_hand_worked_numbers(chat_server, gqa_judge):
    result = score_gqa(REFERENCES, make_answers(), gqa_judge, progress=False)
    summary = result.summary()
    base, lrv = summary["by_model"]["base"], summary["by_model"]["lrv"]
    # base: 2 correct of 4 verdicts (q5 hedged: unscored, not wrong); Wilson: centre 0.5, half-width
    # 1.96/(1 + 1.96^2/4) * sqrt(0.25/4 + 1.96^2/64) = 0.34996
    assert (base["n"], base["n_scored"], base["correct"], base["unscored"]) == (5, 4, 2, 1)
    assert base["accuracy"] == 0.5 and base["coverage"] == 0.8
    assert base["accuracy_ci95"] == pytest.approx([0.15004, 0.84996], abs=1e-5)
    # lrv: 4 of 5; centre (0.8 + 0.38415)/1.76829 = 0.66966, half-width 1.10839 * 0.26536 = 0.29412
    assert (lrv["correct"], lrv["n_scored"], lrv["accuracy"], lrv["coverage"]) == (4, 5, 0.8, 1.0)
    assert lrv["accuracy_ci95"] == pytest.approx([0.37553, 0.96378], abs=1e-5)
    assert (
        summary["n"] == 10 and summary["n_scored"] == 9 and summary["unscored"] == {"judge reply could not be read": 1}
    )
    verdicts = {(r["model"], r["question_id"]): r["verdict"] for r in result.rows}
    assert verdicts[("base", "q5")] == "unscored" and verdicts[("lrv", "q3")] == "incorrect"
    hedged = next(r for r in result.rows if r["verdict"] == "unscored")
    assert "partially correct" in hedged["raw_reply"] and hedged["cache_key"] is None
    # one prompt per question with both models' answers in input order; q5 asked again twice (max_reasks=2)
    assert chat_server.request_count == 5 + 2
    (prompt,) = [
        r.body["messages"][0]["content"] for r in chat_server.completed if "mirror" in r.body["messages"][0]["content"]
    ]
    assert prompt == build_prompt(REFERENCES["q1"].question, "couch", ["a brown couch", "couch"])
    assert result.nothing_scored() is None


def test_a_rerun_pays_for_no_judge_call_twice(chat_server, gqa_judge):
    first = score_gqa(REFERENCES, make_answers(), gqa_judge, progress=False)
    paid = chat_server.request_count
    again = score_gqa(REFERENCES, make_answers(), gqa_judge, progress=False)
    assert chat_server.request_count == paid  # re-asks included: each has its own cache entry
    assert [r["verdict"] for r in again.rows] == [r["verdict"] for r in first.rows]
    assert again.summary()["judge"]["paid_calls"] == 0 and again.summary()["judge"]["cached"] == paid


def test_one_answer_per_prompt_and_a_flaky_reply_recovered(chat_server, gqa_judge):
    calls = {"n": 0}

    def flaky(body):
        calls["n"] += 1
        return "Let me think about it." if calls["n"] == 1 else gqa_judge_reply(body)

    chat_server.reply = flaky
    gqa_judge.concurrency = 1
    result = score_gqa(REFERENCES, make_answers(("lrv",)), gqa_judge, answers_per_prompt=1, progress=False)
    assert chat_server.request_count == 5 + 1
    assert result.summary()["by_model"]["lrv"]["correct"] == 4 and result.summary()["n_scored"] == 5
    assert all(r["answers_in_prompt"] == 1 for r in result.rows)


def test_failed_calls_are_unscored_with_their_reason(chat_server, gqa_judge):
    chat_server.inject(500, count=100)
    gqa_judge.max_retries = 0
    result = score_gqa(REFERENCES, make_answers(("base",))[:1], gqa_judge, max_reasks=0, progress=False)
    assert result.rows[0]["verdict"] == "unscored"
    assert result.rows[0]["unscored_reason"].startswith("judge call failed: HTTP 500")
    summary = result.summary()
    assert summary["by_model"]["base"]["accuracy"] is None and summary["by_model"]["base"]["incorrect"] == 0
    assert "scored none of the 1 answer (1 judge call failed)" in result.nothing_scored()


# -- joining predictions to references -----------------------------------------------------------------------------
def test_join_on_question_id_then_image_and_question_then_question():
    refs = dict(REFERENCES)
    refs["q6"] = Reference("q6", "What color is the car?", "blue", "img6")  # the same question on another image
    answers = [
        GQAAnswer("p: line 1", "m", "ignored when the id is given", "couch", "q1"),
        GQAAnswer("p: line 2", "m", "What color is the car?", "blue", None, "img6"),
        GQAAnswer("p: line 3", "m", "On which side is the lamp?", "left"),
    ]
    from lrv_hf.gqa.score import join

    assert join(answers, refs) == ["q1", "q6", "q3"]
    with pytest.raises(InputError, match=r"p: line 9: 2 questions in references read 'What color is the car\?'"):
        join([GQAAnswer("p: line 9", "m", "What color is the car?", "red")], refs)
    with pytest.raises(InputError, match="p: line 4: question_id 'q9' is not in references"):
        join([GQAAnswer("p: line 4", "m", None, "x", "q9")], refs)
    with pytest.raises(InputError, match=r"p: line 2: model 'm' answers question 'q1' twice \(first at p: line 1\)"):
        join([GQAAnswer("p: line 1", "m", None, "a", "q1"), GQAAnswer("p: line 2", "m", None, "b", "q1")], refs)


def test_references_in_gqa_own_format_and_as_jsonl(tmp_path):
    gqa = tmp_path / "testdev_balanced_questions.json"
    gqa.write_text(json.dumps({
        "20968155": {"semantic": [], "entailed": [], "equivalent": ["20968155"], "question": "Is the sky blue?",
                     "imageId": "n1", "isBalanced": True, "groups": {"global": None}, "answer": "yes",
                     "semanticStr": "select: sky", "annotations": {}, "types": {"structural": "verify"},
                     "fullAnswer": "Yes, the sky is blue."},
    }))  # fmt: skip
    assert read_references(gqa) == {"20968155": Reference("20968155", "Is the sky blue?", "yes", "n1")}
    rows = tmp_path / "refs.jsonl"
    rows.write_text('{"question_id": 7, "question": "Q?", "answer": "A"}\n\n{"question_id": "8", "question": "R?", '
                    '"answer": "B", "image_id": 3}\n')  # fmt: skip
    assert read_references(rows) == {"7": Reference("7", "Q?", "A"), "8": Reference("8", "R?", "B", "3")}
    listed = tmp_path / "refs.json"
    listed.write_text('[{"question_id": 7, "question": "Q?", "answer": "A"}]')
    assert read_references(listed) == {"7": Reference("7", "Q?", "A")}


@pytest.mark.parametrize(
    ("name", "content", "message"),
    [("test.json", '{"201": {"question": "Is it red?", "imageId": "n3"}}',
      r"test.json: question '201': field `answer` is missing or empty \(GQA's test questions have no answers"),
     ("refs.jsonl", '{"question_id": 1, "question": "Q?", "answer": "A"}\n{"question_id": 1, "question": "Q?", '
      '"answer": "B"}\n', "refs.jsonl: line 2: question_id '1' appears twice with different content"),
     ("refs.jsonl", '{"question": "Q?", "answer": "A"}\n', "refs.jsonl: line 1: field `question_id` is missing"),
     ("refs.json", '{"1": {"question": "Q?", "answer": "A"}', "refs.json: invalid JSON at line 1 column 40"),
     ("refs.jsonl", "", "refs.jsonl: the file holds no questions")],
)  # fmt: skip
def test_bad_references_name_the_file_and_row(tmp_path, name, content, message):
    path = tmp_path / name
    path.write_text(content)
    with pytest.raises(InputError, match=message):
        read_references(path)


def test_predictions_reader_defaults_the_model_to_the_file_name(tmp_path):
    path = tmp_path / "llava-lrv.jsonl"
    path.write_text('{"question_id": 5, "question": "Q?", "answer": "A"}\n{"question": "R?", "answer": "B", '
                    '"model": "other", "image_id": "n1"}\n')  # fmt: skip
    first, second = read_predictions(path)
    assert (first.model, first.question_id, first.where) == ("llava-lrv", "5", f"{path}: line 1")
    assert (second.model, second.question_id, second.image_id) == ("other", None, "n1")
    path.write_text('{"question_id": 5, "answer": 3}\n')
    with pytest.raises(InputError, match=r"line 1: field `answer` is missing or not a string"):
        read_predictions(path)
    path.write_text('{"answer": "A"}\n')
    with pytest.raises(InputError, match=r"line 1: field `question` is missing or empty \(and there is no"):
        read_predictions(path)


# -- CLI -------------------------------------------------------------------------------------------------------------
@pytest.fixture
def gqa_files(tmp_path):
    references = tmp_path / "questions.json"
    references.write_text(json.dumps({r.question_id: {"question": r.question, "answer": r.answer,
                                                      "imageId": r.image_id} for r in REFERENCES.values()}))  # fmt: skip
    files = []
    for model, answers in ANSWERS.items():
        path = tmp_path / f"{model}.jsonl"
        path.write_text("".join(json.dumps({"question_id": f"q{i + 1}", "answer": a}) + "\n"
                                for i, a in enumerate(answers)))  # fmt: skip
        files.append(path)
    return references, files


def cli(*args, timeout=120):
    return subprocess.run([LRV_HF, "gqa-judge", *map(str, args)], capture_output=True, text=True, timeout=timeout,
                          env=os.environ.copy())  # fmt: skip


def test_cli_judges_two_models_and_writes_every_output(chat_server, gqa_files, tmp_path):
    chat_server.reply = gqa_judge_reply
    references, files = gqa_files
    out = tmp_path / "out"
    args = ["--references", references, "--predictions", *files, "--judge-model", "gpt-4o", "--output-dir", out,
            "--base-url", chat_server.url, "--no-progress"]  # fmt: skip
    done = cli(*args)
    assert done.returncode == 0, done.stderr
    summary = json.loads((out / "summary.json").read_text())
    assert summary["by_model"]["base"]["accuracy"] == 0.5 and summary["by_model"]["lrv"]["accuracy"] == 0.8
    assert summary["n_references"] == 5 and summary["judge"]["paid_calls"] == 7
    rows = [json.loads(line) for line in (out / "scores.jsonl").read_text().splitlines()]
    assert len(rows) == 10 and {(r["model"], r["question_id"], r["verdict"]) for r in rows} >= {
        ("base", "q5", "unscored"), ("lrv", "q1", "correct"), ("base", "q2", "incorrect")}  # fmt: skip
    assert all(r["raw_reply"] for r in rows)
    report = (out / "report.md").read_text()
    assert "| `base` | 2 / 4 | 50.0 [15.0, 85.0] | 80.0% | 1 | 0 of 5 |" in report
    assert "| `lrv` | 4 / 5 | 80.0 [37.6, 96.4] | 100.0% | 0 | 0 of 5 |" in report
    assert re.search(r"^lrv\s+4/5\s+80\.0 \[37\.6, 96\.4\]\s+100\.0%$", done.stdout, re.MULTILINE)
    rerun = cli(*args)
    assert rerun.returncode == 0 and chat_server.request_count == 7  # nothing paid twice
    assert (out / "scores.jsonl").read_text().splitlines() == [json.dumps(r, ensure_ascii=False) for r in rows]


def test_cli_dry_run_sends_nothing(chat_server, gqa_files, tmp_path):
    references, files = gqa_files
    done = cli("--references", references, "--predictions", *files, "--judge-model", "gpt-4o", "--output-dir",
               tmp_path / "o", "--base-url", chat_server.url, "--dry-run")  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert "10 answers from 2 models -> 5 judge requests, 0 already cached, 5 to pay for" in done.stdout
    assert "estimated cost with gpt-4o: $" in done.stdout
    assert chat_server.request_count == 0 and not (tmp_path / "o" / "summary.json").exists()


def test_cli_batch_mode_gives_the_same_verdicts(chat_server, gqa_files, tmp_path):
    chat_server.reply = gqa_judge_reply
    references, files = gqa_files
    done = cli("--references", references, "--predictions", *files, "--judge-model", "gpt-4o", "--output-dir",
               tmp_path / "o", "--base-url", chat_server.url, "--batch", "--poll-interval", "0.01")  # fmt: skip
    assert done.returncode == 0, done.stderr
    summary = json.loads((tmp_path / "o" / "summary.json").read_text())
    assert summary["by_model"]["base"]["accuracy"] == 0.5 and summary["by_model"]["lrv"]["correct"] == 4
    assert chat_server.request_count == 0 and chat_server.batch_lines == 5 + 2  # the re-asks go through batches too


def test_cli_run_that_judges_nothing_exits_nonzero_with_the_judge_words(chat_server, gqa_files, tmp_path):
    chat_server.reply = lambda body: "I'm unable to grade student work."
    references, files = gqa_files
    done = cli("--references", references, "--predictions", *files, "--judge-model", "gpt-4o", "--output-dir",
               tmp_path / "o", "--base-url", chat_server.url, "--max-reasks", "0", "--no-progress")  # fmt: skip
    assert done.returncode == 1
    assert "scored none of the 10 answers (10 judge reply could not be read)" in done.stderr
    assert "I'm unable to grade student work." in done.stderr and "Traceback" not in done.stderr


@pytest.mark.parametrize(
    ("content", "message"),
    [('{"question_id": "q1"}\n', "base.jsonl: line 1: field `answer` is missing"),
     ('{"question_id": "q9", "answer": "a"}\n', "base.jsonl: line 1: question_id 'q9' is not in"),
     ('{"question_id": "q1", "answer": "a"}\n{"question_id": "q1", "answer": "b"}\n', "answers question 'q1' twice"),
     ('{"question": "Is it?", "answer": "a"}\n', "base.jsonl: line 1: no question in")],
)  # fmt: skip
def test_cli_bad_input_is_one_line(gqa_files, tmp_path, content, message):
    references, files = gqa_files
    files[0].write_text(content)
    done = cli("--references", references, "--predictions", *files, "--judge-model", "gpt-4o", "--output-dir",
               tmp_path / "o", "--base-url", "http://127.0.0.1:9/v1", "--dry-run")  # fmt: skip
    assert done.returncode == 2 and message in done.stderr, done.stderr
    assert len(done.stderr.strip().splitlines()) == 1 and "Traceback" not in done.stderr


def test_sigkill_midway_then_resume_pays_nothing_twice(chat_server, gqa_files, tmp_path):
    import signal
    import sqlite3
    import time

    chat_server.reply, chat_server.latency = gqa_judge_reply, 0.2
    references, files = gqa_files
    common = ["--references", references, "--predictions", *files, "--judge-model", "gpt-4o", "--base-url",
              chat_server.url, "--concurrency", "1", "--no-progress"]  # fmt: skip
    reference = cli(*common, "--output-dir", tmp_path / "ref")
    assert reference.returncode == 0, reference.stderr
    chat_server.reset()

    out = tmp_path / "resumed"
    cache = out / "judge_cache.sqlite"
    process = subprocess.Popen([LRV_HF, "gqa-judge", *map(str, common), "--output-dir", str(out)],
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip
    cached_before, deadline = 0, time.monotonic() + 60
    while time.monotonic() < deadline and cached_before < 2:
        if cache.exists():
            try:
                with sqlite3.connect(cache) as db:
                    cached_before = db.execute("SELECT COUNT(*) FROM replies").fetchone()[0]
            except sqlite3.OperationalError:
                cached_before = 0
        time.sleep(0.02)
    os.kill(process.pid, signal.SIGKILL)
    process.wait()
    assert 2 <= cached_before < 7, "the kill must land mid-run"
    with sqlite3.connect(cache) as db:
        survived = db.execute("SELECT COUNT(*) FROM replies").fetchone()[0]
    paid_before = len(chat_server.completed)
    chat_server.reset()

    resumed = cli(*common, "--output-dir", out)
    assert resumed.returncode == 0, resumed.stderr
    # 5 prompts + 2 re-asks in all: what was cached before the kill is not paid again (at most the call in flight)
    assert survived + len(chat_server.completed) == 7
    assert paid_before + len(chat_server.completed) <= 7 + 1
    assert (out / "scores.jsonl").read_text() == (tmp_path / "ref" / "scores.jsonl").read_text()
