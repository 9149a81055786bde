"""LRV generation: the released prompt protocol (snapshots), the liberal reply parser, row checks, and `lrv-hf generate`
against the loopback chat server (reply styles, drops by reason, resume without repeated calls, dry run, Batch API).
"""

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from lrv_hf.cli import main
from lrv_hf.data import load_regions, write_synthetic_release
from lrv_hf.generate import (
    GenerationConfig,
    Item,
    build_prompt,
    canonical_task,
    collect,
    parse_reply,
    select_images,
    validate,
)
from lrv_hf.generate.parse import (
    DUPLICATE,
    EMPTY_INSTRUCTION,
    LONG_ANSWER,
    MISSING_ANSWER,
    MISSING_TASK,
    TRUNCATED,
)
from lrv_hf.generate.prompt import KINDS, NEGATIVE_EXISTENT, NEGATIVE_KNOWLEDGE, NEGATIVE_NONEXISTENT, POSITIVE
from lrv_hf.judge import Judge, JudgeRequest, JudgeResult, cache_key


HERE = Path(__file__).parent
LRV_HF = str(Path(sys.executable).parent / "lrv-hf")
KEY = "sk-generate-TEST-KEY-0a1b2c3d4e5f"
MAX_TOKENS = 2048
REGIONS = [
    {"caption": "elephant herd on rocks", "bbox": [73, 80, 418, 300]},
    {"caption": "plastic blue chairs ", "bbox": [146, 318, 93, 129]},  # the release keeps trailing spaces
    {"caption": "a man sitting down", "bbox": [200.0, 425, 65, 72]},
]


# -- prompt ----------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("kind", KINDS)
def test_prompt_snapshots(kind):
    prompt = build_prompt(kind, REGIONS)
    assert prompt.encode() == (HERE / "snapshots" / f"generate_{kind}.txt").read_bytes()


def test_prompt_follows_the_released_protocol():
    positive = build_prompt(POSITIVE, REGIONS)
    assert positive.startswith("Give an image with following information: bounding box, positions that are the ")
    # the generation prompts print the real height (only the GAVIE script prints the width twice)
    assert "\nelephant herd on rocks X: 73 Y: 80 Width: 418 Height: 300\n" in positive
    assert "\nplastic blue chairs  X: 146 Y: 318 Width: 93 Height: 129\n" in positive
    assert "a man sitting down X: 200 Y: 425" in positive
    assert "Come up with 20 diverse instructions" in positive and "less than 30 words" in positive
    assert "Muli-choice VQA" in positive and "Each task should have less than 3 instructions." in positive
    assert positive.endswith("Output format:\nInstruction: \ninstruction example\nAnswer: \nanswer example\nTask: \n"
                             "task sample\n")  # fmt: skip
    for kind in (NEGATIVE_NONEXISTENT, NEGATIVE_EXISTENT, NEGATIVE_KNOWLEDGE):
        negative = build_prompt(kind, REGIONS)
        assert "Width: 65 Height: 72\n\n\nCome up with 6 misleading instructions" in negative
        # the released files end in one newline, the wrong-attribute prompt in two
        ending = "\n\n" if kind == NEGATIVE_EXISTENT else "\n"
        assert negative.endswith("Please also explain the reason.\n\nOutput format:\nInstruction: \n"
                                 "instruction example\nReason:\nReason example" + ending)  # fmt: skip
    assert "nonexistent elements (nonexistent objects" in build_prompt(NEGATIVE_NONEXISTENT, REGIONS)
    assert "existing objects with wrong attributes" in build_prompt(NEGATIVE_EXISTENT, REGIONS)
    assert "wrong knowledge" in build_prompt(NEGATIVE_KNOWLEDGE, REGIONS)
    with pytest.raises(ValueError, match="`kind` must be one of"):
        build_prompt("negative", REGIONS)


# -- realistic replies -----------------------------------------------------------------------------------------------
# (instruction, answer, task as the model writes it): four good ones first, then one of each problem
POSITIVE_ITEMS = [
    ("What color is the ball in the picture?", "The ball is purple.", "Object Attribute Detection"),
    ("Describe the image in one sentence.", "A purple ball and a blue sign on a gray background.", "image captioning"),
    ("Which shape is shown: a ball, a cup or a tree?", "A ball.", "Muli-choice VQA"),
    (
        "Point out the sign at the bottom left.",
        "The blue sign at the bottom left, X: 19 Y: 98.",
        "Referring expression",
    ),
    ("Explain the scene in detail.", " ".join(["word"] * 30), "Image Captioning"),  # 30 words: too long
    ("Is the scene joyful?", "It looks calm.", "Emotion Guessing"),  # not a known task: kept under its own name
    ("what color is the ball in the picture", "Purple.", "Object Attribute Detection"),  # a repeat of the first
    ("", "An answer to nothing.", "Visual Entailment"),
    ("Is the sign blue?", None, "Visual Entailment"),
    ("How many objects are there?", "Two objects.", None),
]
POSITIVE_KEPT = [
    ("What color is the ball in the picture?", "The ball is purple.", "Object Attribute Detection"),
    ("Describe the image in one sentence.", "A purple ball and a blue sign on a gray background.", "Image Captioning"),
    ("Which shape is shown: a ball, a cup or a tree?", "A ball.", "Multi-choice VQA"),
    ("Point out the sign at the bottom left.", "The blue sign at the bottom left, X: 19 Y: 98.",
     "Referential Expression Grounding"),
    ("Is the scene joyful?", "It looks calm.", "Emotion Guessing"),
]  # fmt: skip
POSITIVE_DROPS = [LONG_ANSWER, DUPLICATE, EMPTY_INSTRUCTION, MISSING_ANSWER, MISSING_TASK]


def negative_items(kind: str) -> list[tuple]:
    thing = {NEGATIVE_NONEXISTENT: "dog", NEGATIVE_EXISTENT: "green ball", NEGATIVE_KNOWLEDGE: "ball from 1850"}[kind]
    return [
        (f"Is there a {thing} next to the sign?", f"There is no {thing} in the image.", None),
        (f"The {thing} is on the left.", f"The image does not show a {thing}.", None),
        (f"Describe the {thing} near the top.", None, None),  # no reason given
    ]


def render(items: list[tuple], kind: str, style: str) -> str:
    """A reply in one of the styles models write."""
    second = "Answer" if kind == POSITIVE else "Reason"
    blocks = []
    for number, (question, answer, task) in enumerate(items, start=1):
        fields = [("Instruction", question)]
        if answer is not None:
            fields.append((second, answer))
        if task is not None and kind == POSITIVE:
            fields.append(("Task", task))
        if style == "clean":  # the prompt's own format: labels alone on their line, a blank line between items
            blocks.append("".join(f"{label}: \n{value}\n" for label, value in fields))
        elif style == "numbered":
            blocks.append(f"{number}. " + "\n".join(f"{label}: {value}" for label, value in fields))
        elif style == "bold":
            head, *rest = fields
            blocks.append(f"**{head[0]} {number}:** {head[1]}\n" + "\n".join(f"**{k}:** {v}" for k, v in rest))
        elif style == "inline":
            blocks.append(" ".join(f"{label}: {value}" for label, value in fields))
    sep = "\n" if style == "inline" else "\n\n"
    return f"Sure! Here are the instructions:\n\n{sep.join(blocks)}\n\nI hope these are useful."


TRUNCATED_POSITIVE = render(POSITIVE_ITEMS[:3], POSITIVE, "clean").split("A ball.")[0] + "A ba"
GARBAGE = "I'm sorry, but I can't help with that request."
STYLES = ["clean", "numbered", "bold", "inline", "truncated", "garbage", "clean"]  # by image, in file order


def chat_reply(body: dict, replies: dict[str, str]):
    text = replies[body["messages"][0]["content"]]
    if text is TRUNCATED_POSITIVE:  # the model hit max_tokens: usage says so
        return {"choices": [{"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": "length"}],
                "usage": {"prompt_tokens": 900, "completion_tokens": MAX_TOKENS}}  # fmt: skip
    return text


@pytest.fixture
def release(tmp_path):
    """A synthetic release of 8 images (the last one's image file removed) and the reply to every prompt for it."""
    root = tmp_path / "release"
    write_synthetic_release(root, num_images=8, seed=1)
    regions = load_regions(root / "vg_annotation.json")
    ids = list(regions)
    (root / "images" / f"{ids[-1]}.jpg").unlink()
    replies = {}
    for index, image_id in enumerate(ids[:-1]):
        style = STYLES[index]
        for kind in KINDS:
            if kind == POSITIVE:
                text = {"truncated": TRUNCATED_POSITIVE, "garbage": GARBAGE}.get(style)
                text = text or render(POSITIVE_ITEMS, kind, style)
            else:
                text = render(negative_items(kind), kind, "clean" if style in ("truncated", "garbage") else style)
            replies[build_prompt(kind, regions[image_id])] = text
    return root, ids, replies


def test_parser_reads_every_style_to_the_same_items():
    expected = parse_reply(render(POSITIVE_ITEMS, POSITIVE, "clean"))
    assert len(expected) == len(POSITIVE_ITEMS)
    assert (expected[0].instruction, expected[0].answer, expected[0].task) == POSITIVE_ITEMS[0]
    assert expected[7].instruction == "" and expected[8].answer is None and expected[9].task is None
    for style in ("numbered", "bold", "inline"):
        assert parse_reply(render(POSITIVE_ITEMS, POSITIVE, style)) == expected, style
    negatives = parse_reply(render(negative_items(NEGATIVE_EXISTENT), NEGATIVE_EXISTENT, "bold"))
    assert [(i.instruction, i.reason) for i in negatives] == [q[:2] for q in negative_items(NEGATIVE_EXISTENT)]


def test_parser_edge_cases():
    multi = (
        "Instruction:\n\nWhat is\nthe man doing?\n\nAnswer:\nHe is sitting\non a chair.\nTask: Activity Recognition\n"
    )
    assert parse_reply(multi) == [
        Item("What is the man doing?", "He is sitting on a chair.", None, "Activity Recognition")
    ]
    # markdown headers, quotes, numbers in values, a note after the task, an explanation in place of a reason
    text = ('### Instruction 1:\n"Is the 3.5 m tower red?"\n- Explanation: The tower is blue.\n\n'
            "Instruction #2: Is it night?\nTask: Visual Entailment (a yes/no question)\nNote: all done\n")  # fmt: skip
    items = parse_reply(text)
    assert items[0] == Item("Is the 3.5 m tower red?", None, "The tower is blue.", None)
    assert items[1].task == "Visual Entailment (a yes/no question)" and len(items) == 2
    assert parse_reply(GARBAGE) == [] and parse_reply("") == []
    # numbers inside values stay; an item number alone on its line is a separator
    choices = "Instruction:\nWhich is red?\n1) the ball 2) the sign\nReason:\n- Neither is red.\n2.\nInstruction: Q2"
    assert [(i.instruction, i.reason) for i in parse_reply(choices)] == [
        ("Which is red? 1) the ball 2) the sign", "Neither is red."),
        ("Q2", None),
    ]
    # grouped by task, the task before the instruction
    grouped = "Task: Visual Entailment\nInstruction: Q1\nAnswer: A1\n\nTask: Activity Recognition\nInstruction: Q2\nAnswer: A2"
    assert parse_reply(grouped) == [Item("Q1", "A1", None, "Visual Entailment"),
                                    Item("Q2", "A2", None, "Activity Recognition")]  # fmt: skip
    # an answer label seen twice starts a new (instruction-less) item instead of overwriting the first
    twice = parse_reply("Instruction: Q?\nAnswer: one\nAnswer: two")
    assert [i.answer for i in twice] == ["one", "two"] and twice[1].instruction is None


def test_task_names_are_mapped_to_the_known_list():
    assert canonical_task("image captioning") == "Image Captioning"
    assert canonical_task("Muli-choice VQA") == canonical_task("Multiple Choice VQA") == "Multi-choice VQA"
    assert canonical_task("Visual Commonsense reasoning") == "Visual Commonsense Reasoning"
    assert canonical_task("referring expression grounding task") == "Referential Expression Grounding"
    assert canonical_task("Object Counting") is None and canonical_task("") is None
    # the paper names 16 tasks; the six beyond the released prompt's ten are known too
    assert canonical_task("optical character recognition") == "OCR"
    assert canonical_task("image anomaly detection task") == "Image Anomaly Detection"
    assert canonical_task("Facial expression recognition") == "Facial Expression Detection"


def test_an_unlisted_task_is_kept_under_its_own_name():
    row, reason = validate(Item("Is the scene joyful?", "It looks calm.", None, "Emotion Guessing"), POSITIVE)
    assert reason is None and row == {"question": "Is the scene joyful?", "answer": "It looks calm.",
                                      "task": "Emotion Guessing"}  # fmt: skip
    row, _ = validate(Item("Q?", "A.", None, "muli-choice vqa"), POSITIVE)
    assert row["task"] == "Multi-choice VQA"


def test_validate_reasons():
    assert validate(Item("Q?", " ".join(["w"] * 29), None, "Visual Entailment"), POSITIVE)[1] is None
    assert validate(Item("Q?", " ".join(["w"] * 30), None, "Visual Entailment"), POSITIVE)[1] == LONG_ANSWER
    assert validate(Item(None, "A", None, "Visual Entailment"), POSITIVE)[1] == EMPTY_INSTRUCTION
    assert validate(Item("Q?", None, None, "Visual Entailment"), POSITIVE)[1] == MISSING_ANSWER
    assert validate(Item("Q?", "A", None, None), POSITIVE)[1] == MISSING_TASK
    # negatives: the reason is the answer, the task is always "negative", long explanations are fine
    row, reason = validate(Item("Is the dog red?", None, " ".join(["x"] * 40), None), NEGATIVE_NONEXISTENT)
    assert reason is None and row == {
        "question": "Is the dog red?",
        "answer": " ".join(["x"] * 40),
        "task": "negative",
    }
    assert validate(Item("Is the dog red?", "No dog.", None, "Whatever"), NEGATIVE_EXISTENT)[0]["answer"] == "No dog."
    assert validate(Item("Is the dog red?", None, None, None), NEGATIVE_EXISTENT)[1] == MISSING_ANSWER


def test_collect_drops_the_last_item_of_a_cut_reply_and_counts_failures():
    judge = Judge("gpt-4o", base_url="http://127.0.0.1:9/v1", max_tokens=100)
    clean = render(POSITIVE_ITEMS[:2], POSITIVE, "clean")

    def result(text, completion_tokens, image_id, error=None):
        request = JudgeRequest([], metadata={"image_id": image_id, "kind": POSITIVE})
        return JudgeResult(request, text, error, False, 50, completion_tokens, "k")

    generation = collect([result(clean, 99, "a"), result(clean, 100, "b"), result(None, 0, "c", "HTTP 400")], judge)
    assert [row["image_id"] for row in generation.rows] == ["a", "a", "b"]
    assert generation.summary["dropped_by_reason"] == {TRUNCATED: 1}
    assert generation.summary["failed"] == 1 and generation.summary["errors"] == ["c/positive: HTTP 400"]
    assert generation.summary["calls"] == 2 and generation.summary["completion_tokens"] == 199


def test_config_and_selection_errors(tmp_path):
    with pytest.raises(ValueError, match="`kinds`: unknown kind 'negative'"):
        GenerationConfig(kinds="positive,negative")
    with pytest.raises(ValueError, match="names a kind twice"):
        GenerationConfig(kinds=("positive", "positive"))
    assert GenerationConfig(kinds=" positive , negative-knowledge").kinds == (POSITIVE, NEGATIVE_KNOWLEDGE)
    regions = tmp_path / "region_descriptions.json"  # Visual Genome's own shape
    regions.write_text(json.dumps([{"id": 7, "regions": [{"phrase": "a man sitting down", "x": 200, "y": 425,
                                                          "width": 65, "height": 72}]},
                                   {"id": 8, "regions": []}]))  # fmt: skip
    (tmp_path / "images").mkdir()
    with pytest.raises(ValueError, match="none of its 2 images has both regions and a file"):
        select_images(regions, tmp_path / "images")
    (tmp_path / "images" / "7.jpg").write_bytes(b"")
    selection = select_images(regions, tmp_path / "images")
    assert selection.to_dict() == {"used": 1, "scanned": 2, "missing_image": 0, "without_regions": 1}
    assert build_prompt(POSITIVE, selection.regions["7"]) == build_prompt(POSITIVE, [REGIONS[2]])


# -- the command -----------------------------------------------------------------------------------------------------
def generate_args(root: Path, out: Path, server, *extra) -> list[str]:
    return ["generate", "--regions", str(root / "vg_annotation.json"), "--images", str(root / "images"),
            "--judge-model", "gpt-4o", "--output-dir", str(out), "--base-url", server.url,
            "--api-key-env", "GENERATE_TEST_KEY", "--concurrency", "4", "--max-tokens", str(MAX_TOKENS), "--no-progress", *extra]  # fmt: skip


def expected_rows(ids: list[str], kinds: tuple[str, ...]) -> list[dict]:
    rows = []
    for index, image_id in enumerate(ids[:-1]):
        style = STYLES[index]
        for kind in kinds:
            if kind == POSITIVE:
                kept = {"truncated": POSITIVE_KEPT[:2], "garbage": []}.get(style, POSITIVE_KEPT)
                rows += [{"image_id": image_id, "question": q, "answer": a, "task": t} for q, a, t in kept]
            else:
                rows += [{"image_id": image_id, "question": q, "answer": a, "task": "negative"}
                         for q, a, _ in negative_items(kind)[:2]]  # fmt: skip
    return rows


def test_generate_rows_drops_summary_resume_and_dataset_build(chat_server, release, tmp_path, monkeypatch, capsys):
    root, ids, replies = release
    monkeypatch.setenv("GENERATE_TEST_KEY", KEY)
    chat_server.reply, chat_server.api_key = (lambda body: chat_reply(body, replies)), KEY
    out = tmp_path / "out"
    assert main(generate_args(root, out, chat_server)) == 0
    printed = capsys.readouterr().out
    rows = json.loads((out / "instructions.json").read_text())
    kinds = (POSITIVE, NEGATIVE_NONEXISTENT, NEGATIVE_EXISTENT)
    assert rows == expected_rows(ids, kinds)
    assert chat_server.request_count == 7 * 3

    summary = json.loads((out / "summary.json").read_text())
    good_styles = sum(style not in ("truncated", "garbage") for style in STYLES)  # 5 images with every reply style
    assert summary["images"] == {"used": 7, "scanned": 8, "missing_image": 1, "without_regions": 0}
    assert summary["kinds"] == list(kinds) and summary["output"] == "instructions.json"
    assert summary["calls"] == 21 and summary["cached"] == 0 and summary["failed"] == 0
    assert summary["rows_kept"] == len(rows) and summary["replies_without_instructions"] == 1
    assert summary["rows_by_kind"] == {POSITIVE: 5 * good_styles + 2, NEGATIVE_NONEXISTENT: 14, NEGATIVE_EXISTENT: 14}
    assert summary["unlisted_tasks"] == {"Emotion Guessing": good_styles}  # kept and counted, not dropped
    assert summary["rows_by_task"]["Emotion Guessing"] == good_styles
    assert summary["dropped_by_reason"] == {
        **{reason: good_styles for reason in POSITIVE_DROPS if reason != MISSING_ANSWER},
        MISSING_ANSWER: good_styles + 7 * 2,  # and one negative per image and kind
        TRUNCATED: 1,
    }
    assert summary["rows_dropped"] == sum(summary["dropped_by_reason"].values())
    assert summary["prompt_tokens"] > 0 and summary["completion_tokens"] > MAX_TOKENS
    assert summary["cost_usd"] == pytest.approx(
        (summary["prompt_tokens"] * 2.5 + summary["completion_tokens"] * 10) / 1e6
    )
    dropped = [json.loads(line) for line in (out / "dropped.jsonl").read_text().splitlines()]
    assert {"image_id": ids[5], "kind": POSITIVE, "problem": "reply without instructions", "reply": GARBAGE} in dropped
    assert len(dropped) == summary["rows_dropped"] + 1
    assert f"kept {len(rows)} rows" in printed and "1 without an image file" in printed

    # the same command again: every reply from the cache, not one call, the same file
    first = (out / "instructions.json").read_bytes()
    assert main(generate_args(root, out, chat_server)) == 0
    assert chat_server.request_count == 21
    assert (out / "instructions.json").read_bytes() == first
    again = json.loads((out / "summary.json").read_text())
    assert again["calls"] == 0 and again["cached"] == 21 and again["cost_usd"] == 0.0
    assert again["total_cost_usd"] == pytest.approx(summary["cost_usd"])

    # the key went to the server and nowhere else
    assert all(r.headers["Authorization"] == f"Bearer {KEY}" for r in chat_server.chat_requests)
    for path in out.iterdir():
        assert KEY.encode() not in path.read_bytes(), path

    # the output is a release file: `lrv-hf data build` takes it unchanged
    import datasets

    from lrv_hf.data.export import build_dataset

    built = tmp_path / "built"
    report = build_dataset(
        [out / "instructions.json"], root / "images", built, regions_file=root / "vg_annotation.json"
    )
    assert report["rows"] == len(rows) and report["images"] == 7
    dataset = datasets.load_dataset(str(built), "instructions", split="train")
    assert dataset.num_rows == 7
    by_image = {row["image_id"]: row for row in dataset}
    for image_id in ids[:-1]:
        mine = [r for r in rows if r["image_id"] == image_id]
        assert by_image[image_id]["question"] == [r["question"] for r in mine]
        assert by_image[image_id]["task"] == [r["task"] for r in mine]
        assert by_image[image_id]["polarity"] == ["negative" if r["task"] == "negative" else "positive" for r in mine]


def test_failed_calls_are_retried_by_a_rerun_and_nothing_else(chat_server, release, tmp_path, capsys):
    root, ids, replies = release
    chat_server.reply = lambda body: chat_reply(body, replies)
    chat_server.inject(400, count=3)  # refused as sent: not retried within the run
    out = tmp_path / "out"
    args = generate_args(root, out, chat_server, "--kinds", "positive,negative-knowledge")
    assert main(args) == 1
    assert "3 calls failed (first: " in capsys.readouterr().err
    summary = json.loads((out / "summary.json").read_text())
    assert summary["failed"] == 3 and summary["calls"] == 11 and chat_server.request_count == 14
    assert main(args) == 0
    assert chat_server.request_count == 17  # only the three failed ones were asked again
    assert set(chat_server.completed_prompts().values()) == {1}
    summary = json.loads((out / "summary.json").read_text())
    assert summary["calls"] == 3 and summary["cached"] == 11 and summary["failed"] == 0
    assert json.loads((out / "instructions.json").read_text()) == expected_rows(ids, (POSITIVE, NEGATIVE_KNOWLEDGE))


def test_sigkill_midway_then_resume_pays_each_call_once(chat_server, release, tmp_path):
    root, ids, replies = release
    chat_server.reply, chat_server.latency = (lambda body: chat_reply(body, replies)), 0.1
    out = tmp_path / "out"
    args = [LRV_HF, *generate_args(root, out, chat_server, "--concurrency", "1")]
    env = {**os.environ, "GENERATE_TEST_KEY": KEY}
    process = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env)
    cache, cached_before, deadline = out / "judge_cache.sqlite", 0, time.monotonic() + 60
    while time.monotonic() < deadline and cached_before < 5:
        if cache.exists():
            try:
                with sqlite3.connect(cache) as db:
                    cached_before = db.execute("SELECT COUNT(*) FROM replies").fetchone()[0]
            except sqlite3.OperationalError:
                pass
        time.sleep(0.02)
    os.kill(process.pid, signal.SIGKILL)
    process.wait()
    assert 5 <= cached_before < 21, "the kill must land mid-run"
    assert not (out / "summary.json").exists()
    with sqlite3.connect(cache) as db:
        survived = {key for (key,) in db.execute("SELECT key FROM replies")}
    chat_server.reset()
    chat_server.latency = 0.0
    done = subprocess.run(args, capture_output=True, text=True, env=env, timeout=120)
    assert done.returncode == 0, done.stderr
    body_keys = {cache_key({"body": r.body, "sample": 0}) for r in chat_server.chat_requests}
    assert not body_keys & survived and len(body_keys) == 21 - len(survived)
    assert json.loads((out / "instructions.json").read_text()) == expected_rows(ids, (POSITIVE, NEGATIVE_NONEXISTENT,
                                                                                        NEGATIVE_EXISTENT))  # fmt: skip


def test_dry_run_spends_nothing(chat_server, release, tmp_path, capsys):
    root, _, replies = release
    out = tmp_path / "out"
    assert main(generate_args(root, out, chat_server, "--dry-run", "--max-images", "3")) == 0
    printed = capsys.readouterr().out
    assert (
        "3 images (0 without an image file, 0 without regions) x 3 kinds = 9 requests, 0 cached -> 9 calls" in printed
    )
    assert "estimated cost $" in printed and "Batch API $" in printed
    assert chat_server.request_count == 0 and not out.exists()
    # after a real run the cached calls are not counted again
    chat_server.reply = lambda body: chat_reply(body, replies)
    assert main(generate_args(root, out, chat_server, "--max-images", "2")) == 0
    capsys.readouterr()
    assert main(generate_args(root, out, chat_server, "--dry-run", "--max-images", "3")) == 0
    assert "9 requests, 6 cached -> 3 calls" in capsys.readouterr().out
    assert chat_server.request_count == 6


def test_dry_run_prices_an_unlisted_model_from_a_price_file(chat_server, release, tmp_path, capsys):
    root, _, _ = release
    args = generate_args(root, tmp_path / "out", chat_server, "--dry-run", "--judge-model", "local-llm")
    assert main(args) == 0
    assert "estimated cost unknown (no price for this model; pass --prices)" in capsys.readouterr().out
    prices = tmp_path / "prices.json"
    prices.write_text(json.dumps({"local-llm": {"input": 1.0, "output": 2.0}}))
    assert main(args + ["--prices", str(prices)]) == 0
    assert "estimated cost $" in capsys.readouterr().out
    prices.write_text(json.dumps({"local-llm": {"input": 1.0}}))
    assert main(args + ["--prices", str(prices)]) == 2
    assert "entry 'local-llm' must be" in capsys.readouterr().err
    assert chat_server.request_count == 0


def test_batch_mode_gives_the_same_rows(chat_server, release, tmp_path):
    root, ids, replies = release
    chat_server.reply = lambda body: chat_reply(body, replies)
    out = tmp_path / "out"
    assert main(generate_args(root, out, chat_server, "--batch", "--poll-interval", "0.01")) == 0
    assert chat_server.request_count == 0 and chat_server.batch_lines == 21
    assert json.loads((out / "instructions.json").read_text()) == expected_rows(ids, (POSITIVE, NEGATIVE_NONEXISTENT,
                                                                                        NEGATIVE_EXISTENT))  # fmt: skip
    summary = json.loads((out / "summary.json").read_text())
    assert summary["calls"] == 21 and summary["cost_usd"] == pytest.approx(
        (summary["prompt_tokens"] * 2.5 + summary["completion_tokens"] * 10) / 2e6  # half price
    )


@pytest.mark.parametrize(
    ("extra", "message"),
    [(["--kinds", "positive,negative"], "invalid option: `kinds`: unknown kind 'negative'"),
     (["--max-images", "0"], "invalid option: `max_images` must be >= 1"),
     (["--regions", "{tmp}/missing.json"], "missing.json: no such file"),
     (["--images", "{tmp}/nowhere"], "nowhere: no such folder")],
)  # fmt: skip
def test_bad_input_is_one_line(release, tmp_path, capsys, extra, message):
    root, _, _ = release
    args = ["generate", "--regions", str(root / "vg_annotation.json"), "--images", str(root / "images"),
            "--judge-model", "gpt-4o", "--output-dir", str(tmp_path / "o"), "--dry-run"]  # fmt: skip
    assert main(args + [value.format(tmp=tmp_path) for value in extra]) == 2  # the last value of a flag wins
    err = capsys.readouterr().err
    assert message in err and len(err.strip().splitlines()) == 1 and "Traceback" not in err


def test_wrong_key_fails_fast_without_leaking_it(chat_server, release, tmp_path, monkeypatch, capsys):
    root, _, replies = release
    chat_server.reply, chat_server.api_key = (lambda body: chat_reply(body, replies)), KEY
    monkeypatch.setenv("GENERATE_TEST_KEY", KEY + "x")
    assert main(generate_args(root, tmp_path / "o", chat_server)) == 2
    err = capsys.readouterr().err
    assert "401" in err and "GENERATE_TEST_KEY" in err and KEY not in err
    assert chat_server.request_count <= 4  # the calls in flight when the first refusal came back
