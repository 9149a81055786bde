"""Paired comparisons: exact McNemar on hand-counted tables, a seeded paired bootstrap, runs of every scorer, the CLI."""

import argparse
import json

import pytest

from lrv_hf.compare import compare_metric, compare_models, compare_runs, load_run, mcnemar, paired_bootstrap
from lrv_hf.errors import InputError


def write_run(folder, summary, rows):
    folder.mkdir(parents=True)
    (folder / "summary.json").write_text(json.dumps(summary))
    (folder / "scores.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    return folder


def pope_rows(model, wrong, n=20, strategy="random"):
    """POPE's scores.jsonl rows: item i asks about object i, label alternates yes/no; the `wrong` items are missed."""
    rows = []
    for i in range(n):
        label = "yes" if i % 2 == 0 else "no"
        predicted = label if i not in wrong else ("no" if label == "yes" else "yes")
        rows.append({"image_id": f"img{i // 4}", "question": f"Is there a object{i} in the image?", "label": label,
                     "strategy": strategy, "model": model, "answer": predicted.capitalize() + ".",
                     "predicted": predicted, "unknown": False})  # fmt: skip
    return rows


def pope_run(folder, model, wrong, **kwargs):
    return write_run(folder, {"unknown_as": "yes", "models": {model: {}}}, pope_rows(model, wrong, **kwargs))


@pytest.mark.parametrize(
    "a_only, b_only, p",
    [
        (1, 12, 2 * (1 + 13) / 2**13),  # P(X <= 1) for X ~ Bin(13, 1/2), doubled
        (0, 5, 2 / 2**5),
        (3, 3, 1.0),  # the doubled tail exceeds 1: capped
        (0, 0, 1.0),  # no discordant pair: no evidence either way
        (2, 8, 2 * (1 + 10 + 45) / 2**10),
    ],
)
def test_mcnemar_exact_against_hand_computed_tables(a_only, b_only, p):
    assert mcnemar(a_only, b_only) == pytest.approx(p, rel=1e-12)
    assert mcnemar(b_only, a_only) == mcnemar(a_only, b_only)


def test_paired_bootstrap_is_seeded_and_covers_the_true_difference():
    import numpy as np

    rng = np.random.default_rng(7)
    a = rng.integers(0, 11, size=300).astype(float)
    b = a + 1.0 + rng.normal(0, 1.5, size=300)  # true mean difference 1.0
    diffs = list(b - a)
    low, high = paired_bootstrap(diffs, seed=3)
    assert low < 1.0 < high and low < float(np.mean(diffs)) < high
    assert paired_bootstrap(diffs, seed=3) == [low, high]
    assert paired_bootstrap(diffs, seed=4) != [low, high]


def test_pope_runs_mcnemar_verdict(tmp_path):
    base = pope_run(tmp_path / "base", "base", wrong=set(range(12)))  # misses items 0-11
    lrv = pope_run(tmp_path / "lrv", "lrv", wrong={19})  # misses item 19 only
    result = compare_runs(base, lrv)
    section = result["metrics"]["pope/random"]
    assert (section["a_only_right"], section["b_only_right"], section["paired_items"]) == (1, 12, 20)
    assert section["a"] == 8 / 20 and section["b"] == 19 / 20 and section["difference"] == pytest.approx(11 / 20)
    assert section["p_value"] == pytest.approx(28 / 8192)
    assert section["verdict"] == "lrv better, p = 0.0034"
    same = compare_runs(base, pope_run(tmp_path / "base2", "other", wrong={0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 19}))
    assert same["metrics"]["pope/random"]["verdict"] == "no detectable difference (p = 1)"


def test_runs_on_different_data_are_refused(tmp_path):
    base = pope_run(tmp_path / "base", "base", wrong=set())
    rows = pope_rows("lrv", wrong=set())
    rows[3]["label"] = "yes"  # the same question with another reference: another probe file
    other = write_run(tmp_path / "other", {"unknown_as": "yes", "models": {}}, rows)
    with pytest.raises(InputError, match="disagree on the reference of .*object3"):
        compare_runs(base, other)
    disjoint = pope_run(tmp_path / "adv", "lrv", wrong=set(), strategy="adversarial")
    with pytest.raises(InputError, match="'pope/adversarial' is scored in only one run"):
        compare_runs(base, disjoint)
    mme = write_run(tmp_path / "mme", {"scorer": "mme", "data": {"fingerprint": "x"}, "models": {}}, [])
    with pytest.raises(InputError, match="is a pope run but .* a mme run"):
        compare_runs(base, mme)


def gavie_run(folder, model, scores, judge="gpt-4o", spread=None):
    rows = [{"image_id": str(i), "question": f"Describe image {i}.", "model": model, "scored": s is not None,
             "accuracy": s, "relevancy": None if s is None else 8.0} for i, s in enumerate(scores)]  # fmt: skip
    summary = {"accuracy": 0.0, "judge": {"model": judge}, "settings": {}}
    if spread is not None:
        summary["judge_noise"] = {c: {"run_spread": spread} for c in ("accuracy", "relevancy")}
    return write_run(folder, summary, rows)


def test_gavie_paired_difference_and_judge_spread(tmp_path):
    a_scores = [5.0, 6.0, 4.0, 7.0, 5.0, 6.0, 5.0, 4.0, None, 6.0]
    b_scores = [7.0, 8.0, 6.0, 8.0, 6.0, 8.0, 7.0, 6.0, 9.0, None]  # +2 +2 +2 +1 +1 +2 +2 +2 on the 8 shared items
    base = gavie_run(tmp_path / "base", "base", a_scores, spread=0.5)
    lrv = gavie_run(tmp_path / "lrv", "lrv", b_scores, spread=0.3)
    accuracy = compare_runs(base, lrv)["metrics"]["accuracy"]
    assert (accuracy["paired_items"], accuracy["only_in_a"], accuracy["only_in_b"]) == (8, 1, 1)
    assert accuracy["difference"] == pytest.approx(14 / 8)
    assert 1.0 <= accuracy["ci95"][0] <= 14 / 8 <= accuracy["ci95"][1] <= 2.0  # every diff is 1 or 2
    assert accuracy["judge_spread"] == 0.5 and accuracy["within_judge_spread"] is False
    assert accuracy["verdict"].startswith("lrv better, 95% CI [+1.")
    relevancy = compare_runs(base, lrv)["metrics"]["relevancy"]
    assert relevancy["difference"] == 0 and relevancy["verdict"].startswith("no detectable difference")
    noisy = gavie_run(tmp_path / "noisy", "lrv", b_scores, spread=2.0)
    assert compare_runs(base, noisy)["metrics"]["accuracy"]["verdict"].endswith(
        "but within the judge's run-to-run spread (2.00)")  # fmt: skip
    with pytest.raises(InputError, match="judged by gpt-4o but .* by llama"):
        compare_runs(base, gavie_run(tmp_path / "llama", "lrv", b_scores, judge="llama"))


def test_gqa_judge_runs_skip_unscored_verdicts(tmp_path):
    def run(folder, model, verdicts):
        rows = [{"question_id": str(i), "model": model, "verdict": v} for i, v in enumerate(verdicts)]
        return write_run(folder, {"scorer": "gqa-judge"}, rows)

    base = run(tmp_path / "base", "base", ["incorrect"] * 6 + ["correct", "unscored", "correct"])
    lrv = run(tmp_path / "lrv", "lrv", ["correct"] * 6 + ["incorrect", "correct", "correct"])
    section = compare_runs(base, lrv)["metrics"]["gqa-judge"]
    assert (section["paired_items"], section["a_only_right"], section["b_only_right"]) == (8, 1, 6)
    assert section["p_value"] == pytest.approx(2 * (1 + 7) / 2**7)


def test_several_models_in_one_run_and_the_mme_summary(tmp_path):
    rows = pope_rows("base", set(range(12))) + pope_rows("lrv", {19}) + pope_rows("lrv-pos", set(range(6)))
    run = write_run(tmp_path / "both", {"unknown_as": "yes", "models": {}}, rows)
    section = compare_models(run, baseline="base")
    assert set(section["models"]) == {"lrv", "lrv-pos"}
    assert section["models"]["lrv"]["pope/random"]["verdict"] == "lrv better, p = 0.0034"
    with pytest.raises(InputError, match="holds models base, lrv, lrv-pos; choose one with `model_a`"):
        compare_runs(run, run)

    from test_mme import ANSWERS_A, ITEMS, write_parquet, write_predictions

    from lrv_hf.mme import score_mme

    answers_b = {i: ITEMS[i][2] for i in range(len(ITEMS))}
    predictions = write_predictions(tmp_path / "p.jsonl", {"A": ANSWERS_A, "B": answers_b})
    result = score_mme(write_parquet(tmp_path / "data"), predictions, tmp_path / "mme")
    mme = result.summary["comparison"]["models"]["B"]["mme"]
    # 8 questions paired (A left e3 half-answered); A right on 5, B on all 8
    assert (mme["paired_items"], mme["a_only_right"], mme["b_only_right"]) == (8, 0, 3)
    assert mme["p_value"] == 0.25 and mme["verdict"] == "no detectable difference (p = 0.25)"
    assert "## Paired comparison" in (tmp_path / "mme" / "report.md").read_text()


def test_compare_metric_needs_shared_items():
    with pytest.raises(InputError, match="share no scored item"):
        compare_metric({"x": (True, "yes")}, {"y": (True, "yes")}, ("a", "b"))


def run_cli(argv):
    from lrv_hf import compare_cli

    parser = argparse.ArgumentParser()
    compare_cli.add_parser(parser.add_subparsers(dest="command"))
    args = parser.parse_args(argv)
    return args.run(args)


def test_cli_offline_run_and_errors(tmp_path, capsys):
    base = pope_run(tmp_path / "base", "base", wrong=set(range(12)))
    lrv = pope_run(tmp_path / "lrv", "lrv", wrong={19})
    assert run_cli(["compare", str(base), str(lrv), "--output-dir", str(tmp_path / "out")]) == 0
    assert "pope/random: lrv vs base: lrv better, p = 0.0034" in capsys.readouterr().out
    written = json.loads((tmp_path / "out" / "comparison.json").read_text())
    assert written["metrics"]["pope/random"]["b_only_right"] == 12
    report = (tmp_path / "out" / "comparison.md").read_text()
    assert "| base | lrv | pope/random | 40.00% | 95.00% | +55.00 [" in report
    assert (tmp_path / "out" / "comparison.png").stat().st_size > 0
    with pytest.raises(InputError, match=r"no summary.json; give the output folder"):
        run_cli(["compare", str(base), str(tmp_path), "--output-dir", str(tmp_path / "o")])
    with pytest.raises(InputError, match="has no model 'nobody' \\(--baseline\\)"):
        run_cli(["compare", str(base), "--baseline", "nobody", "--output-dir", str(tmp_path / "o")])
    assert load_run(base).scorer == "pope"


def test_two_real_gavie_runs_through_the_loopback_judge(chat_server, tmp_path, monkeypatch):
    """GAVIE outputs as `lrv_hf.gavie` writes them (two judge draws each): the difference is the hand-computed mean
    of the scripted judge's per-answer scores, and the judge spread is read from the runs' `judge_noise`."""
    from pathlib import Path

    import evaluate

    from lrv_hf.testing.judge_replies import gavie_reply, scores_for

    chat_server.reply = gavie_reply
    monkeypatch.chdir(Path(__file__).resolve().parents[1])
    gavie = evaluate.load("metrics/gavie")
    questions = [f"What is in corner {i}?" for i in range(6)]
    answers = {"base": [f"A dog, {i}." for i in range(6)], "lrv": [f"Grass only, {i}." for i in range(6)]}
    regions = [[{"caption": "a black dog lying on grass", "bbox": [12, 40, 210, 130]}]] * 6
    for model, given in answers.items():
        gavie.compute(predictions=given, questions=questions, regions=regions, models=[model] * 6,
                      image_ids=[str(i) for i in range(6)], judge_model="gpt-4o", base_url=chat_server.url,
                      api_key_env=None, judge_samples=2, output_dir=str(tmp_path / model))  # fmt: skip
    result = compare_runs(tmp_path / "base", tmp_path / "lrv")
    for index, criterion in enumerate(("accuracy", "relevancy")):
        section = result["metrics"][criterion]
        expected = sum(scores_for(b)[index] - scores_for(a)[index] for a, b in zip(*answers.values())) / 6
        assert section["paired_items"] == 6 and section["difference"] == pytest.approx(expected)
        assert section["judge_spread"] == 0.0  # the scripted judge repeats itself exactly
