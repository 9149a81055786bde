"""`lrv-hf quickstart`: two adapters from one base side by side, paired, GAVIE offline or for real, the demo's
opening; a rerun redoes nothing paid. The full-length run checks that LRV data pulls the yes-ratio towards 0.5."""

import json

import pytest

from lrv_hf.cli import main
from lrv_hf.data import synth
from lrv_hf.gavie.prompt import build_messages
from lrv_hf.quickstart import offline_judge


def quickstart(out, *extra, images: int = 10, steps: int = 4):
    argv = ["quickstart", "--output-dir", str(out), "--num-images", str(images), "--max-steps", str(steps)]
    return main(argv + ["--max-new-tokens", "6", *extra])


def _scores(reply: str) -> list[int]:
    return [int(line.split(": ")[1]) for line in reply.splitlines() if line.startswith("score of answer")]


def test_offline_judge_scores_answers_against_the_captions():
    scene = {
        "background": "gray",
        "objects": [{"name": "ball", "color": "red", "bbox": [4, 4, 30, 30]}, {"name": "box", "color": "blue",
                    "bbox": [60, 60, 30, 30]}],
    }  # fmt: skip
    regions = synth.regions_of(scene)

    def judge(question, answers):
        reply = offline_judge.reply({"messages": build_messages(regions, question, answers)})
        relevancy, accuracy = _scores(reply)[: len(answers)], _scores(reply)[len(answers) :]
        return accuracy, relevancy

    accuracy, relevancy = judge(
        "Is there a kite in the image?",
        ["No, there is no kite in the image. The image shows a red ball and a blue box.", "Yes, there is a kite.", ""],
    )
    assert accuracy == [10, 0, 0] and relevancy == [10, 10, 0]
    accuracy, _ = judge("Is the ball green?", ["No, the ball is red, not green.", "Yes, the ball is green."])
    assert accuracy[0] > 5 > accuracy[1]
    accuracy, relevancy = judge("Describe the image briefly.", ["A red ball and a yellow box.", "A red ball."])
    assert accuracy == [5, 10] and relevancy == [10, 10]  # a yellow box is not drawn, a blue one is


@pytest.mark.slow
def test_quickstart_two_adapters_offline_judge_then_real_judge_then_cached_rerun(tmp_path, chat_server, capsys,
                                                                                 monkeypatch):  # fmt: skip
    from lrv_hf.testing.judge_replies import gavie_reply

    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    out = tmp_path / "qs"

    # 1. no judge set: both adapters train from one base, GAVIE is scored offline and priced for a real judge
    assert quickstart(out) == 0
    printed = capsys.readouterr().out
    assert f"report: {out / 'report.md'}" in printed and "Do it for real" in printed
    for name in ("positive-only", "lrv"):
        config = json.loads((out / name / "adapter_config.json").read_text())
        assert (out / name / "adapter_model.safetensors").is_file()
        assert config["base_model_name_or_path"] == str((out / "base").resolve())  # one base serves both
    positive = json.loads((out / "release" / "filter_cap_positive.json").read_text())["annotations"]
    everything = json.loads((out / "release" / "filter_cap.json").read_text())["annotations"]
    assert positive == [row for row in everything if row["task"] != "negative"] and len(positive) < len(everything)
    report = (out / "report.md").read_text()
    assert "| metric | base | positive-only | LRV |" in report
    for row in ("| POPE accuracy", "| POPE F1", "| POPE yes-ratio", "wrong colour of a drawn object answered no",
                "| GAVIE accuracy (0-10, offline stand-in judge)"):  # fmt: skip
        assert row in report
    assert "## Paired comparison" in report and "| positive-only | lrv | pope/random |" in report
    assert "| positive-only | lrv | GAVIE accuracy |" in report and "McNemar" in report
    assert (out / "compare" / "comparison.png").stat().st_size > 0 and (out / "scores.png").stat().st_size > 0
    assert "offline stand-in judge" in report and "lrv-hf gavie --predictions" in report
    assert "LRV's full evaluation set (1000 questions" in report and "3,000 calls" in report
    assert chat_server.request_count == 0  # the stand-in judge is the quickstart's own server
    questions = json.loads((out / "release" / "evaluation_set.json").read_text())
    predictions = [json.loads(line) for line in (out / "answers" / "predictions.jsonl").read_text().splitlines()]
    assert len(predictions) == 3 * len(questions)
    assert {p["model"] for p in predictions} == {"base", "positive-only", "lrv"}
    offline = json.loads((out / "gavie" / "summary.json").read_text())
    assert offline["judge"]["model"] == offline_judge.MODEL and offline["n_scored"] == len(predictions)
    pope = json.loads((out / "pope" / "summary.json").read_text())
    assert set(pope["models"]) == {"base", "positive-only", "lrv"}
    assert all(set(s) == {"random", "attribute"} for s in pope["models"].values())

    # the demo command opens the LRV adapter on a held-out probe about an absent object
    command = printed.split("demo (the LRV adapter on ")[1].splitlines()[1].split()
    image, instruction = command[command.index("--image") + 1], printed.split("--instruction ")[1].split("\n")[0]
    assert command[command.index("--adapter") + 1] == str(out / "lrv")
    probes = [json.loads(line) for line in (out / "pope" / "probes.jsonl").read_text().splitlines()]
    image_id = image.rsplit("/", 1)[1].removesuffix(".jpg")
    assert {"image_id": image_id, "question": instruction.strip("'"), "label": "no"}.items() <= next(
        p for p in probes if p["image_id"] == image_id and p["question"] == instruction.strip("'")
    ).items()
    held_out = {q["image_id"] for q in questions}
    assert image_id in held_out and image == str(out / "release" / "images" / f"{image_id}.jpg")

    from lrv_hf.demo.app import launch_demo

    app = launch_demo(str(out / "base"), [str(out / "lrv"), str(out / "positive-only")], launch=False,
                      examples_dir=tmp_path / "examples", opening={"image": image, "instruction": "Is there a kite?"})  # fmt: skip
    values = {c.get("props", {}).get("elem_id"): c["props"].get("value") for c in app.config["components"]}
    assert values["instruction"] == "Is there a kite?" and values["adapter"] == str(out / "lrv")
    images = [c for c in app.config["components"] if c.get("type") == "image"]
    assert images[0]["props"]["value"] is not None

    # 2. a judge at a base URL: data and adapters are reused, GAVIE is scored for real
    chat_server.reply = gavie_reply
    assert quickstart(out, "--base-url", chat_server.url) == 0
    printed = capsys.readouterr().out
    assert "[data] reusing" in printed and "[train] reusing the positive-only adapter" in printed
    assert "[train] reusing the lrv adapter" in printed
    assert chat_server.request_count == len({(p["image_id"], p["question"], p["answer"]) for p in predictions})
    report = (out / "report.md").read_text()
    assert "GAVIE accuracy (0-10, gpt-4o-mini)" in report and "offline stand-in" not in report
    summary = json.loads((out / "gavie" / "summary.json").read_text())
    assert summary["n_scored"] == summary["n"] == len(predictions)

    # 3. a rerun, from Python this time, pays for no judge call twice and returns the figures it reports
    from lrv_hf.quickstart import QuickstartConfig, run_quickstart

    calls = chat_server.request_count
    config = QuickstartConfig(output_dir=str(out), num_images=10, max_steps=4, max_new_tokens=6)
    config.base_url = chat_server.url
    result = run_quickstart(config)
    assert chat_server.request_count == calls
    assert result.report == out / "report.md" and result.gavie["summary"]["accuracy"] == summary["accuracy"]
    assert result.pope == pope and all(len(history) >= 1 for history in result.losses.values())


@pytest.mark.slow
@pytest.mark.timeout(900)  # two 120-step trainings: ~4 min on a quiet 2-core box, 10 on the loaded one
def test_quickstart_lrv_data_pulls_the_yes_ratio_towards_half(tmp_path, monkeypatch):
    """Behaviour, read from the summary files: positive-only tuning says yes too often, LRV's negatives pull the
    POPE yes-ratio on held-out images back towards 0.5 (120 steps each: the yes-bias is complete by 100; 80 images, so
    16 held out)."""
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    out = tmp_path / "qs"
    assert quickstart(out, images=80, steps=120) == 0
    pope = json.loads((out / "pope" / "summary.json").read_text())["models"]
    yes_ratio = {model: strategies["random"]["yes_ratio"] for model, strategies in pope.items()}
    assert pope["lrv"]["random"]["n"] >= 40
    assert yes_ratio["positive-only"] >= 0.8, yes_ratio
    assert abs(yes_ratio["lrv"] - 0.5) < abs(yes_ratio["positive-only"] - 0.5), yes_ratio
