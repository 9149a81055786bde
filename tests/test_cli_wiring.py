"""The evaluation commands as `lrv-hf` runs them (`lrv_hf.cli.main`, the console entry): `mme score`, `pope score`
into `compare`, and `gqa-judge`, offline, with exit codes and one-line errors in the command's own words."""

import json

from test_mme import ANSWERS_A, write_predictions, write_release
from test_pope_official import ANSWERS, PROBES, question, write_pope_files

from lrv_hf.cli import build_parser, main
from lrv_hf.pope import read_probes


def test_every_evaluation_command_is_wired():
    commands = build_parser()._subparsers._group_actions[0].choices
    assert {"gavie", "pope", "mme", "gqa-judge", "compare", "infer"} <= set(commands)


def test_mme_score_through_lrv_hf(tmp_path, capsys):
    release = write_release(tmp_path / "release")
    predictions = write_predictions(tmp_path / "p.jsonl", {"A": ANSWERS_A})
    assert main(["mme", "score", "--data", str(release), "--predictions", str(predictions),
                 "--output-dir", str(tmp_path / "out")]) == 0  # fmt: skip
    summary = json.loads((tmp_path / "out" / "summary.json").read_text())
    assert (summary["models"]["A"]["perception"], summary["models"]["A"]["cognition"]) == (125.0, 50.0)
    assert main(["mme", "score", "--data", str(tmp_path / "nope"), "--predictions", str(predictions),
                 "--output-dir", str(tmp_path / "o")]) == 2  # fmt: skip
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("lrv-hf mme: error: ") and "--data" in err


def test_pope_runs_of_two_models_compared_through_lrv_hf(tmp_path, capsys):
    """Model A answers as in test_pope_official (random: 2 of 4 right, adversarial: 2 of 4), model B answers every
    probe right. Per split the discordant pairs are 0 vs 2, so the exact McNemar p-value is 2 * 0.5**2 = 0.5."""
    files = write_pope_files(tmp_path / "files")
    probes = read_probes(files)
    objects = {question(p[2]): p[2] for p in PROBES}
    runs = []
    for model in ("a", "b"):
        rows = [{"question_id": p["question_id"], "image_id": p["image_id"], "question": p["question"], "model": model,
                 "answer": ANSWERS[(p["strategy"], objects[p["question"]])] if model == "a" else p["label"].title()}
                for p in probes]  # fmt: skip
        predictions = tmp_path / f"{model}.jsonl"
        predictions.write_text("".join(json.dumps(r) + "\n" for r in rows))
        assert main(["pope", "score", "--probes", *map(str, files), "--predictions", str(predictions),
                     "--output-dir", str(tmp_path / model)]) == 0  # fmt: skip
        runs.append(str(tmp_path / model))
    assert main(["compare", *runs, "--output-dir", str(tmp_path / "cmp")]) == 0
    comparison = json.loads((tmp_path / "cmp" / "comparison.json").read_text())["metrics"]
    for split in ("random", "adversarial"):
        metric = comparison[f"pope/{split}"]
        assert (metric["paired_items"], metric["a_only_right"], metric["b_only_right"]) == (4, 0, 2)
        assert metric["p_value"] == 0.5
    assert main(["compare", runs[0], str(tmp_path / "files"), "--output-dir", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("lrv-hf compare: error: ") and "no summary.json" in err


def test_gqa_judge_dry_run_through_lrv_hf_spends_nothing(tmp_path, capsys):
    references = tmp_path / "refs.jsonl"
    references.write_text('{"question_id": "q1", "question": "What color is the ball?", "answer": "red"}\n')
    predictions = tmp_path / "base.jsonl"
    predictions.write_text('{"question_id": "q1", "answer": "It is red."}\n')
    # a base URL where nothing listens: a dry run must not call it
    assert main(["gqa-judge", "--references", str(references), "--predictions", str(predictions), "--judge-model",
                 "gpt-4o", "--output-dir", str(tmp_path / "o"), "--base-url", "http://127.0.0.1:9/v1",
                 "--dry-run"]) == 0  # fmt: skip
    assert "1 answers from 1 models -> 1 judge requests" in capsys.readouterr().out
    assert not (tmp_path / "o" / "summary.json").exists()
