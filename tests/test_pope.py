"""POPE: answer reading, metrics on hand-computed cases, probe sets (balance, seeds, the three strategies), scoring
files, the `evaluate` module and the `lrv-hf pope` command line."""

import doctest
import json
import random
import runpy
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from lrv_hf.cli import main
from lrv_hf.errors import InputError
from lrv_hf.pope import (
    ProbeConfig,
    build_probes,
    compute_metrics,
    is_unknown,
    normalize_object_name,
    pope_label,
    question_for,
    read_objects,
    read_predictions,
    read_probes,
    score_predictions,
    with_article,
)
from lrv_hf.pope.probes import object_key


ROOT = Path(__file__).resolve().parent.parent


# -- reading answers ------------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "answer, label, unknown",
    [
        ("No.", "no", False),
        ("no", "no", False),
        ("No, there is no dog in the image.", "no", False),
        ("There is not a dog in the image.", "no", False),
        ("Yes, there is a dog.", "yes", False),
        ("Yes. But there is no cat.", "yes", False),  # only the first sentence counts
        ("There is a dog sitting on the sofa.", "yes", True),  # POPE reads a description as yes; it is unknown
        ("I cannot tell.", "yes", True),
        ("", "yes", True),
        ("NO", "yes", False),  # POPE's literal rule: a negation, but not one of its three words
        ("No!", "yes", False),
        ("There isn't a dog.", "yes", False),
    ],
)
def test_answer_reading_follows_pope_and_flags_unknowns(answer, label, unknown):
    assert pope_label(answer) == label
    assert is_unknown(answer) is unknown


# -- metrics --------------------------------------------------------------------------------------------------------
ANSWERS = ["Yes", "yes, there is", "No.", "No, there is not.", "There is a cat.", "not sure", "", "Yes."]
REFERENCES = ["yes", "no", "no", "yes", "yes", "no", "no", "yes"]
# POPE reads:  yes   yes              no     no                   yes (unknown)      no          yes (unknown)  yes


METRIC_KEYS = ("accuracy", "precision", "recall", "f1", "yes_ratio", "n", "tp", "fp", "tn", "fn")


@pytest.mark.parametrize(
    "unknown_as, expected",
    [
        # TP: Yes, There is a cat, Yes.  FP: yes there is, ""  TN: No., not sure  FN: No there is not
        ("yes", (5 / 8, 3 / 5, 3 / 4, 2 / 3, 5 / 8, 8, 3, 2, 2, 1)),
        # the two unknowns flip to the wrong side: "There is a cat." (ref yes) -> FN, "" (ref no) -> FP
        ("wrong", (4 / 8, 2 / 4, 2 / 4, 1 / 2, 4 / 8, 8, 2, 2, 2, 2)),
        # the two unknowns are dropped
        ("exclude", (4 / 6, 2 / 3, 2 / 3, 2 / 3, 3 / 6, 6, 2, 1, 2, 1)),
    ],
)
def test_metrics_hand_computed(unknown_as, expected):
    result = compute_metrics(ANSWERS, REFERENCES, unknown_as=unknown_as)
    assert result["unknown"] == 2
    assert tuple(result[k] for k in METRIC_KEYS) == pytest.approx(expected)
    assert all(type(result[k]) is float for k in ("accuracy", "precision", "recall", "f1", "yes_ratio"))


def test_metrics_undefined_ratios_are_zero_and_bad_references_raise():
    result = compute_metrics(["No.", "No."], ["yes", "no"])
    assert (result["precision"], result["recall"], result["f1"], result["accuracy"]) == (0.0, 0.0, 0.0, 0.5)
    assert compute_metrics([""], ["no"], unknown_as="exclude")["n"] == 0
    with pytest.raises(ValueError, match="reference 1"):
        compute_metrics(["yes", "no"], ["yes", "maybe"])
    with pytest.raises(ValueError, match="unknown_as"):
        compute_metrics(["yes"], ["yes"], unknown_as="no")


# -- names and questions --------------------------------------------------------------------------------------------
def test_object_names_articles_and_questions():
    assert normalize_object_name("  Red   Apple. ") == "red apple"
    assert [with_article(n) for n in ("apple", "dog", "umbrella", "unicorn", "hourglass", "one-way sign", "egg")] == [
        "an apple", "a dog", "an umbrella", "a unicorn", "an hourglass", "a one-way sign", "an egg",
    ]  # fmt: skip
    assert question_for("orange") == "Is there an orange in the image?"
    assert [object_key(n) for n in ("trees", "boxes", "berries", "bus", "grass", "tennis", "wine glasses")] == [
        "tree", "box", "berry", "bus", "grass", "tennis", "wine glass",
    ]  # fmt: skip


def _write(path: Path, payload) -> Path:
    path.write_text(json.dumps(payload))
    return path


def _image(image_id, *names):
    return {"image_id": image_id, "objects": [{"object_id": i, "names": [n], "x": 0, "y": 0, "w": 1, "h": 1}
                                              for i, n in enumerate(names)]}  # fmt: skip


def test_read_objects_normalises_merges_and_accepts_old_vg_names(tmp_path):
    rows = [_image(1, "Man", "man ", "Shirt"), {"image_id": 2, "objects": [{"object_id": 9, "name": "Tree"}]}]
    assert read_objects(_write(tmp_path / "objects.json", rows)) == {"1": ["man", "shirt"], "2": ["tree"]}


def test_read_objects_of_the_synthetic_release(synthetic_release):
    objects = read_objects(synthetic_release / "objects.json")
    assert len(objects) == 20 and all(2 <= len(names) <= 4 for names in objects.values())


# -- probe sets -----------------------------------------------------------------------------------------------------
# frequencies: person 5, fork 4, plate 3, giraffe 1, kite 1; "plate" co-occurs with "fork" 3 times, "person" never
STRATEGY_OBJECTS = {
    **{f"p{i}": ["person"] for i in range(5)},
    **{f"f{i}": ["fork", "plate"] for i in range(3)},
    "target": ["fork"],
    "giraffes": ["giraffe"],
    "kites": ["kite"],
}


def _negatives(rows, image_id):
    return [r["object"] for r in rows if r["image_id"] == image_id and r["label"] == "no"]


def test_the_three_strategies_pick_negatives_as_defined():
    config = ProbeConfig(num_per_image=1)
    popular = build_probes(STRATEGY_OBJECTS, ProbeConfig(strategies=("popular",), num_per_image=1))
    adversarial = build_probes(STRATEGY_OBJECTS, ProbeConfig(strategies=("adversarial",), num_per_image=1))
    assert _negatives(popular, "target") == ["person"]  # the most frequent absent object
    assert _negatives(adversarial, "target") == ["plate"]  # the absent object seen most often with "fork"
    # nothing co-occurs with "giraffe": adversarial falls back to popularity
    assert _negatives(adversarial, "giraffes") == ["person"]
    # random: any absent object, so over seeds it reaches the rare ones popular and adversarial never pick
    seen = set()
    for seed in range(40):
        rows = build_probes(STRATEGY_OBJECTS, ProbeConfig(strategies=("random",), num_per_image=1, seed=seed))
        seen.update(_negatives(rows, "target"))
    assert seen == {"person", "plate", "giraffe", "kite"}
    assert build_probes(STRATEGY_OBJECTS, config) == build_probes(STRATEGY_OBJECTS, config)


def test_adversarial_sums_co_occurrence_over_the_image_objects():
    objects = {
        "a": ["fork", "knife", "cup"],
        "b": ["fork", "knife", "cup"],
        "c": ["knife", "cup"],
        "d": ["fork", "spoon"],
        "e": ["fork", "spoon"],
        "f": ["fork", "spoon"],
        "target": ["fork", "knife"],
    }
    rows = build_probes(objects, ProbeConfig(strategies=("adversarial",), num_per_image=2))
    # cup: 2 (with fork) + 3 (with knife) = 5 beats spoon: 3 (with fork) + 0 = 3, though spoon is fork's top partner
    assert _negatives(rows, "target") == ["cup", "spoon"]


def test_popular_and_adversarial_match_a_brute_force_count():
    rng = random.Random(0)
    vocabulary = [f"thing{i}" for i in range(12)]
    objects = {str(i): rng.sample(vocabulary, rng.randint(1, 6)) for i in range(40)}
    frequency = {n: sum(n in names for names in objects.values()) for n in vocabulary}

    def co_occurrence(a, b):
        return sum(a in names and b in names for names in objects.values())

    config = {"num_per_image": 3, "seed": 0}
    popular = build_probes(objects, ProbeConfig(strategies=("popular",), **config))
    adversarial = build_probes(objects, ProbeConfig(strategies=("adversarial",), **config))
    for image_id, present in objects.items():
        absent = [n for n in vocabulary if n not in present and frequency[n]]
        count = min(3, len(present), len(absent))
        by_popularity = sorted(absent, key=lambda n: (-frequency[n], n))[:count]
        score = {n: sum(co_occurrence(p, n) for p in present) for n in absent}
        by_co_occurrence = sorted(absent, key=lambda n: (-score[n], -frequency[n], n))[:count]
        assert _negatives(popular, image_id) == by_popularity
        assert _negatives(adversarial, image_id) == by_co_occurrence


def test_probe_sets_are_balanced_and_deterministic_per_seed(synthetic_release):
    objects = read_objects(synthetic_release / "objects.json")
    rows = build_probes(objects, ProbeConfig(seed=3))
    assert rows == build_probes(objects, ProbeConfig(seed=3))
    assert rows != build_probes(objects, ProbeConfig(seed=4))
    positives = {}
    for strategy in ("random", "popular", "adversarial"):
        for image_id, present in objects.items():
            image_rows = [r for r in rows if r["strategy"] == strategy and r["image_id"] == image_id]
            yes = [r["object"] for r in image_rows if r["label"] == "yes"]
            no = [r["object"] for r in image_rows if r["label"] == "no"]
            assert len(yes) == len(no) == min(3, len(present), 5 - len(present))  # 5 shapes in the synthetic set
            assert set(yes) <= set(present) and not set(no) & set(present)
            assert [r["label"] for r in image_rows] == ["yes", "no"] * len(yes)
            assert positives.setdefault(image_id, yes) == yes  # positives shared by the strategies
            assert all(r["question"] == question_for(r["object"]) for r in image_rows)


def test_presence_uses_singular_forms_and_num_images_samples():
    objects = {"a": ["trees"], "b": ["tree"], "c": ["tree"], "d": ["bus"]}
    rows = build_probes(objects, ProbeConfig(strategies=("popular",), num_per_image=1))
    # "tree" is the most frequent name, yet never a "no" for an image annotated with "trees", nor "trees" for "tree"
    assert _negatives(rows, "a") == _negatives(rows, "b") == ["bus"]
    sampled = build_probes(objects, ProbeConfig(num_images=2, seed=1))
    assert len({r["image_id"] for r in sampled}) == 2
    with pytest.raises(ValueError, match="strategies"):
        ProbeConfig(strategies=("random", "hard"))


# -- scoring files --------------------------------------------------------------------------------------------------
def _jsonl(path: Path, rows) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def _probe(image_id, name, label, strategy):
    return {"image_id": image_id, "question": question_for(name), "label": label, "object": name, "strategy": strategy}


PROBES = [
    _probe("1", "dog", "yes", "random"), _probe("1", "cat", "no", "random"),
    _probe("1", "dog", "yes", "popular"), _probe("1", "person", "no", "popular"),
]  # fmt: skip


def test_one_answer_per_question_serves_every_strategy(tmp_path):
    probes = read_probes(_jsonl(tmp_path / "probes.jsonl", PROBES))
    answers = {"dog": "Yes.", "cat": "No.", "person": "There is a person."}
    predictions = _jsonl(
        tmp_path / "base.jsonl",
        [{"image_id": "1", "question": question_for(k), "answer": v} for k, v in answers.items()],
    )
    summary, rows = score_predictions(probes, read_predictions([predictions]))
    base = summary["models"]["base"]  # no `model` field: named after the file
    assert base["random"]["accuracy"] == 1.0 and base["random"]["unknown"] == 0
    assert base["popular"] == {
        "accuracy": 0.5, "precision": 0.5, "recall": 1.0, "f1": pytest.approx(2 / 3), "yes_ratio": 1.0,
        "n": 2, "unknown": 1, "tp": 1, "fp": 1, "tn": 0, "fn": 0, "missing": 0,
    }  # fmt: skip
    assert len(rows) == 4 and rows[3]["unknown"] is True
    excluded, _ = score_predictions(probes, read_predictions([predictions]), unknown_as="exclude")
    assert excluded["models"]["base"]["popular"]["n"] == 1


def test_answers_per_row_are_matched_in_order_and_other_counts_refused(tmp_path):
    probes = read_probes(_jsonl(tmp_path / "probes.jsonl", PROBES))
    dog = question_for("dog")
    rows = [
        {"image_id": "1", "question": dog, "answer": "Yes.", "model": "m"},
        {"image_id": "1", "question": dog, "answer": "No.", "model": "m"},
        {"image_id": 1, "question": question_for("cat"), "answer": "No.", "model": "m"},  # an int id joins too
    ]
    summary, _ = score_predictions(probes, read_predictions([_jsonl(tmp_path / "p.jsonl", rows)]))
    assert summary["models"]["m"]["random"]["tp"] == 1 and summary["models"]["m"]["popular"]["fn"] == 1
    assert summary["models"]["m"]["popular"]["missing"] == 1
    with pytest.raises(InputError, match="3 times, but the probes ask it 2 times, and the answers differ"):
        score_predictions(probes, read_predictions([_jsonl(tmp_path / "q.jsonl", rows + rows[:1])]))
    # repeated but identical answers (a resumed greedy run) are one answer
    same, _ = score_predictions(probes, read_predictions([_jsonl(tmp_path / "s.jsonl", [rows[0]] * 3 + rows[2:])]))
    assert same["models"]["m"]["popular"]["tp"] == 1
    other = [{"image_id": "9", "question": dog, "answer": "Yes."}]
    with pytest.raises(InputError, match="no prediction matches a probe"):
        score_predictions(probes, read_predictions([_jsonl(tmp_path / "r.jsonl", other)]))


# -- the evaluate module --------------------------------------------------------------------------------------------
def test_evaluate_module_matches_the_library_and_its_doctests_run(monkeypatch):
    import evaluate

    monkeypatch.chdir(ROOT)
    pope = evaluate.load("metrics/pope")
    for unknown_as in ("yes", "wrong", "exclude"):
        expected = compute_metrics(ANSWERS, REFERENCES, unknown_as=unknown_as)
        assert pope.compute(predictions=ANSWERS, references=REFERENCES, unknown_as=unknown_as) == expected

    source = (ROOT / "metrics/pope/pope.py").read_text()
    namespace = {}
    exec(compile(source, "pope.py", "exec"), namespace)  # the module's own text, as evaluate runs it
    test = doctest.DocTestParser().get_doctest(
        namespace["_KWARGS_DESCRIPTION"], {"evaluate": evaluate}, "pope", None, 0
    )
    runner = doctest.DocTestRunner(optionflags=doctest.NORMALIZE_WHITESPACE)
    runner.run(test)
    assert runner.summarize(verbose=False).failed == 0 and len(test.examples) == 6


def test_metric_card_has_the_spaces_header(monkeypatch):

    card = (ROOT / "metrics/pope/README.md").read_text()
    header = yaml.safe_load(card.split("---")[1])
    assert {"title", "emoji", "colorFrom", "colorTo", "sdk", "sdk_version", "app_file", "pinned"} <= set(header)
    assert header["sdk"] == "gradio" and header["app_file"] == "app.py" and header["pinned"] is False
    assert {"evaluate", "metric"} <= set(header["tags"])
    import gradio as gr

    app = runpy.run_path(str(ROOT / "metrics/pope/app.py"), run_name="space")  # what the Space imports, not launched
    assert isinstance(app["build_app"](), gr.Blocks)  # its own Blocks UI; tests/test_metric_spaces.py drives it


# -- command line ---------------------------------------------------------------------------------------------------
def test_cli_builds_and_scores_the_synthetic_release(synthetic_release, tmp_path, capsys):
    probes = tmp_path / "probes.jsonl"
    assert main(["pope", "build", "--objects", str(synthetic_release / "objects.json"), "--output", str(probes),
                 "--strategies", "random,adversarial", "--seed", "1"]) == 0  # fmt: skip
    rows = [json.loads(line) for line in probes.read_text().splitlines()]
    assert rows == build_probes(
        read_objects(synthetic_release / "objects.json"), ProbeConfig(strategies=("random", "adversarial"), seed=1)
    )
    # a model that always says yes: recall 1, precision and yes-ratio as the balanced set dictates
    answers = [
        {"image_id": r["image_id"], "question": r["question"], "answer": "Yes.", "model": "yes-man"} for r in rows
    ]
    predictions = _jsonl(tmp_path / "predictions.jsonl", answers)
    assert main(["pope", "score", "--probes", str(probes), "--predictions", str(predictions),
                 "--output-dir", str(tmp_path / "out")]) == 0  # fmt: skip
    summary = json.loads((tmp_path / "out/summary.json").read_text())
    for strategy in ("random", "adversarial"):
        metrics = summary["models"]["yes-man"][strategy]
        assert (metrics["accuracy"], metrics["precision"], metrics["recall"], metrics["yes_ratio"]) == (
            0.5,
            0.5,
            1.0,
            1.0,
        )
    assert "yes-man" in capsys.readouterr().out


@pytest.mark.parametrize(
    "argv, content, message",
    [
        (["pope", "build", "--objects", "{missing}", "--output", "{tmp}/p.jsonl"], None, "no such file"),
        (["pope", "build", "--objects", "{file}", "--output", "{tmp}/p.jsonl"], '[{"image_id": 1}]', "row 0"),
        (["pope", "build", "--objects", "{file}", "--output", "{tmp}/p.jsonl"], "[{", "invalid JSON"),
        (["pope", "build", "--objects", "{file}", "--output", "{tmp}/p.jsonl", "--strategies", "hard"], "[]",
         "strategies"),
        (["pope", "score", "--probes", "{file}", "--predictions", "{file}", "--output-dir", "{tmp}/o"],
         '{"image_id": "1", "question": "Is there a dog in the image?", "label": "yes"}\n{"image_id": "1"',
         "line 2: not valid JSON"),
        (["pope", "score", "--probes", "{file}", "--predictions", "{missing}", "--output-dir", "{tmp}/o"],
         '{"image_id": "1", "question": "Is there a dog in the image?", "label": "maybe"}', "field `label`"),
    ],
)  # fmt: skip
def test_cli_bad_input_is_one_line_and_exit_2(argv, content, message, tmp_path, capsys):
    file = tmp_path / "input.json"
    if content is not None:
        file.write_text(content)
    paths = {"missing": str(tmp_path / "missing.json"), "file": str(file), "tmp": str(tmp_path)}
    assert main([a.format(**paths) for a in argv]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and message in err and err.startswith("lrv-hf pope: error:")


def test_console_script_reports_a_missing_file_without_traceback(tmp_path):
    result = subprocess.run(
        [sys.executable, "-m", "lrv_hf.cli", "pope", "score", "--probes", str(tmp_path / "nope.jsonl"),
         "--predictions", str(tmp_path / "p.jsonl"), "--output-dir", str(tmp_path)],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [f"lrv-hf pope: error: {tmp_path / 'nope.jsonl'}: no such file"]
