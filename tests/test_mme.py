"""MME: readers of the Hub Parquet and the release folders, calculation.py's scoring on a hand-made set, the CLI."""

import argparse
import io
import json

import pytest

from lrv_hf.errors import InputError
from lrv_hf.mme import mme_label, open_image, read_mme, score_answers, score_mme


# (question_id, question, answer, category): two categories, two questions per image, as MME
ITEMS = [
    ("existence/e1.jpg", "Is there a dog in this image? Please answer yes or no.", "Yes", "existence"),
    ("existence/e1.jpg", "Is there a cat in this image? Please answer yes or no.", "No", "existence"),
    ("existence/e2.jpg", "Is there a car in this image? Please answer yes or no.", "Yes", "existence"),
    ("existence/e2.jpg", "Is there a bus in this image? Please answer yes or no.", "No", "existence"),
    ("existence/e3.jpg", "Is there a kite in this image? Please answer yes or no.", "Yes", "existence"),
    ("existence/e3.jpg", "Is there a boat in this image? Please answer yes or no.", "No", "existence"),
    ("code_reasoning/c1.png", "Does this code print 3? Please answer yes or no.", "Yes", "code_reasoning"),
    ("code_reasoning/c1.png", "Does this code print 4? Please answer yes or no.", "No", "code_reasoning"),
    ("code_reasoning/c2.png", "Does this code print a? Please answer yes or no.", "Yes", "code_reasoning"),
    ("code_reasoning/c2.png", "Does this code print b? Please answer yes or no.", "No", "code_reasoning"),
]
# model A's answers, by item index; item 5 (e3's second question) is unanswered
ANSWERS_A = {0: "Yes, there is a dog.", 1: "No", 2: "yes", 3: "I think so", 4: "No",
             6: "Not sure", 7: "no.", 8: "YES", 9: "yes"}  # fmt: skip


def png_bytes(color="red") -> bytes:
    from PIL import Image

    buffer = io.BytesIO()
    Image.new("RGB", (8, 8), color).save(buffer, format="PNG")
    return buffer.getvalue()


def write_parquet(folder, items=ITEMS, **overrides):
    import pyarrow as pa
    import pyarrow.parquet as pq

    folder.mkdir(parents=True, exist_ok=True)
    rows = [{"question_id": q, "image": {"bytes": png_bytes(), "path": q.split("/")[1]}, "question": text,
             "answer": a, "category": c} | overrides for q, text, a, c in items]  # fmt: skip
    half = 2 * (len(rows) // 4)  # two shards, as the Hub repo's data/ folder holds; an image stays in one
    pq.write_table(pa.Table.from_pylist(rows[:half]), folder / "test-00000-of-00002.parquet")
    pq.write_table(pa.Table.from_pylist(rows[half:]), folder / "test-00001-of-00002.parquet")
    return folder


def write_release(root):
    """The release layout: existence with `<image>.txt` beside the image, code_reasoning with images/ + qa folder."""
    from PIL import Image

    for qid, pairs in {"existence/e1.jpg": ITEMS[0:2], "existence/e2.jpg": ITEMS[2:4], "existence/e3.jpg": ITEMS[4:6],
                       "code_reasoning/c1.png": ITEMS[6:8], "code_reasoning/c2.png": ITEMS[8:10]}.items():  # fmt: skip
        category, name = qid.split("/")
        nested = category == "code_reasoning"
        image_dir = root / category / ("images" if nested else "")
        text_dir = root / category / ("questions_answers_YN" if nested else "")
        image_dir.mkdir(parents=True, exist_ok=True)
        text_dir.mkdir(parents=True, exist_ok=True)
        Image.new("RGB", (8, 8)).save(image_dir / name)
        lines = [f"{question}\t{answer}" for _, question, answer, _ in pairs]
        (text_dir / (name.rsplit(".", 1)[0] + ".txt")).write_text("\n".join(lines) + "\n")
    (root / "eval_tool").mkdir()  # the release ships its scorer beside the categories
    return root


def write_predictions(path, answers_by_model):
    with open(path, "w") as fh:
        for model, answers in answers_by_model.items():
            for index, answer in answers.items():
                qid, question, _, _ = ITEMS[index]
                fh.write(json.dumps({"question_id": qid, "image_id": qid, "question": question, "answer": answer,
                                     "model": model}) + "\n")  # fmt: skip
    return path


@pytest.mark.parametrize(
    "answer, label",
    [("Yes", "yes"), ("no", "no"), ("Yes, there is.", "yes"), ("No.", "no"), ("  yes\n", "yes"),
     ("Not sure", "no"),  # calculation.py's four-character window: "not " holds "no"
     ("I think so", "other"), ("", "other"), ("There is no dog", "other"), ("nope", "no")],
)  # fmt: skip
def test_mme_label_is_calculation_py_rule(answer, label):
    assert mme_label(answer) == label


def test_score_answers_hand_computed():
    chosen = sorted(ANSWERS_A)
    result = score_answers(
        [ANSWERS_A[i] for i in chosen], [ITEMS[i][2] for i in chosen], [ITEMS[i][0] for i in chosen],
        [ITEMS[i][3] for i in chosen],
    )  # fmt: skip
    existence, code = result["categories"]["existence"], result["categories"]["code_reasoning"]
    # existence: e1 both right, e2 one right ("I think so" is other), e3 missing -> 3/4 questions, 1/2 images
    assert (existence["acc"], existence["acc_plus"], existence["score"]) == (75.0, 50.0, 125.0)
    assert existence["missing_images"] == ["existence/e3.jpg"] and existence["other_answers"] == 1
    # code: c1 "Not sure" -> no (wrong), "no." right; c2 "YES" right, "yes" wrong -> 2/4, no image with both right
    assert (code["acc"], code["acc_plus"], code["score"]) == (50.0, 0.0, 50.0)
    assert result["perception"] == 125.0 and result["cognition"] == 50.0
    assert (result["perception_categories"], result["cognition_categories"]) == (1, 1)
    assert (result["other_answers"], result["missing_images"]) == (1, 1)


def test_score_answers_refuses_three_answers_per_image():
    with pytest.raises(ValueError, match="has 3 answers"):
        score_answers(["yes"] * 3, ["yes"] * 3, ["existence/e1.jpg"] * 3, ["existence"] * 3)


def test_parquet_folder_and_release_folder_read_the_same(tmp_path):
    from_parquet = read_mme(write_parquet(tmp_path / "hub" / "data"))
    from_release = read_mme(write_release(tmp_path / "release"))
    strip = lambda items: sorted((i["question_id"], i["question"], i["answer"], i["category"]) for i in items)  # noqa: E731
    assert strip(from_parquet) == strip(from_release)
    assert strip(from_release)[0] == ("code_reasoning/c1.png", ITEMS[6][1], "yes", "code_reasoning")
    assert open_image(from_parquet[0]).size == (8, 8) and open_image(from_release[0]).size == (8, 8)
    assert read_mme(tmp_path / "hub" / "data" / "test-00000-of-00002.parquet", with_images=False)[0].keys() == {
        "question_id", "question", "answer", "category"}  # fmt: skip


def test_reader_errors_name_file_row_and_field(tmp_path):
    bad = write_parquet(tmp_path / "bad", answer="Maybe")
    with pytest.raises(InputError, match=r"test-00000-of-00002.parquet: row 0: field `answer` must be Yes or No"):
        read_mme(bad)
    with pytest.raises(InputError, match="image 'existence/e1.jpg' has 1 questions"):
        read_mme(write_parquet(tmp_path / "odd", items=ITEMS[1:]))
    release = write_release(tmp_path / "release")
    (release / "existence" / "e1.txt").write_text("Is there a dog? Yes\n")
    with pytest.raises(InputError, match=r"e1.txt: line 1: expected `question<TAB>answer`"):
        read_mme(release)
    with pytest.raises(InputError, match="neither a file, a folder nor a Hub dataset id"):
        read_mme(tmp_path / "nowhere")


def test_score_mme_two_models_and_outputs(tmp_path):
    data = write_parquet(tmp_path / "data")
    answers_b = {i: ITEMS[i][2] for i in range(len(ITEMS))}  # model B answers everything right
    predictions = write_predictions(tmp_path / "p.jsonl", {"A": ANSWERS_A, "B": answers_b})
    with open(predictions, "a") as fh:  # a row of another benchmark: counted, not scored
        fh.write(json.dumps({"image_id": "x.jpg", "question": "Is it?", "answer": "yes", "model": "A"}) + "\n")
    result = score_mme(data, predictions, tmp_path / "out")
    a, b = result.scores("A"), result.scores("B")
    assert (a["perception"], a["cognition"], a["complete"]) == (125.0, 50.0, False)
    assert (b["perception"], b["cognition"], b["complete"], b["missing_images"]) == (200.0, 200.0, True, 0)
    assert result.summary["unmatched_predictions"] == 1
    summary = json.loads((tmp_path / "out" / "summary.json").read_text())
    assert summary["models"]["A"]["categories"]["existence"]["missing_images"] == ["existence/e3.jpg"]
    rows = [json.loads(line) for line in (tmp_path / "out" / "scores.jsonl").read_text().splitlines()]
    # A: 9 answers minus the one of the missing image; B: 10
    assert sum(r["model"] == "A" for r in rows) == 8 and sum(r["model"] == "B" for r in rows) == 10
    assert not any(r["question_id"] == "existence/e3.jpg" and r["model"] == "A" for r in rows)
    report = (tmp_path / "out" / "report.md").read_text()
    assert "| existence | 75.00 | 50.00 | 125.00 | 2 | 1 | 1 |" in report and "**Incomplete:** A" in report
    assert (tmp_path / "out" / "report.png").stat().st_size > 0


def test_join_falls_back_to_image_id_and_refuses_duplicates(tmp_path):
    data = write_parquet(tmp_path / "data")
    rows = [{"image_id": ITEMS[i][0], "question": ITEMS[i][1], "answer": ITEMS[i][2]} for i in range(len(ITEMS))]
    path = tmp_path / "model-x.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    assert score_mme(data, path).scores("model-x")["perception"] == 200.0  # model named after the file
    path.write_text("".join(json.dumps(r) + "\n" for r in rows + rows[:1]))
    with pytest.raises(InputError, match=r"model-x.jsonl: line 11: model 'model-x' answers existence/e1.jpg"):
        score_mme(data, path)


def run_cli(argv):
    from lrv_hf.mme import cli

    parser = argparse.ArgumentParser()
    cli.add_parser(parser.add_subparsers(dest="command"))
    args = parser.parse_args(argv)
    return args.run(args)


def test_cli_offline_run_and_one_line_errors(tmp_path, capsys):
    release = write_release(tmp_path / "release")
    predictions = write_predictions(tmp_path / "p.jsonl", {"A": ANSWERS_A})
    assert run_cli(["mme", "score", "--data", str(release), "--predictions", str(predictions),
                    "--output-dir", str(tmp_path / "out")]) == 0  # fmt: skip
    out = capsys.readouterr().out
    assert "125.00" in out and "50.00" in out and (tmp_path / "out" / "report.md").is_file()
    with pytest.raises(InputError, match="is neither a file, a folder nor a Hub dataset id") as err:
        run_cli(["mme", "score", "--data", str(tmp_path / "nope"), "--predictions", str(predictions),
                 "--output-dir", str(tmp_path / "o")])  # fmt: skip
    assert "\n" not in str(err.value)
    (tmp_path / "broken.jsonl").write_text('{"question_id": "existence/e1.jpg", "question": "q"}\n')
    with pytest.raises(InputError, match=r"broken.jsonl: line 1: field `answer` is missing"):
        run_cli(["mme", "score", "--data", str(release), "--predictions", str(tmp_path / "broken.jsonl"),
                 "--output-dir", str(tmp_path / "o")])  # fmt: skip


def test_metric_module_doctest_and_card(monkeypatch):
    import doctest
    from pathlib import Path

    import evaluate
    import yaml

    root = Path(__file__).resolve().parents[1]
    monkeypatch.chdir(root)
    namespace = {}
    exec(compile((root / "metrics/mme/mme.py").read_text(), "mme.py", "exec"), namespace)
    test = doctest.DocTestParser().get_doctest(namespace["_KWARGS_DESCRIPTION"], {"evaluate": evaluate}, "mme",
                                               None, 0)  # fmt: skip
    runner = doctest.DocTestRunner(optionflags=doctest.NORMALIZE_WHITESPACE)
    runner.run(test)
    assert runner.summarize(verbose=False).failed == 0 and len(test.examples) == 3
    results = evaluate.load("metrics/mme").compute(
        predictions=[ANSWERS_A.get(i, "") for i in range(len(ITEMS)) if i != 5],
        references=[ITEMS[i][2] for i in range(len(ITEMS)) if i != 5],
        question_ids=[ITEMS[i][0] for i in range(len(ITEMS)) if i != 5],
        categories=[ITEMS[i][3] for i in range(len(ITEMS)) if i != 5],
    )
    assert results == {"perception": 125.0, "cognition": 50.0, "existence": 125.0, "code_reasoning": 50.0,
                       "other_answers": 1, "missing_images": 1}  # fmt: skip
    header = yaml.safe_load((root / "metrics/mme/README.md").read_text().split("---")[1])
    assert (
        header["sdk"] == "gradio" and header["app_file"] == "app.py" and {"evaluate", "metric"} <= set(header["tags"])
    )


def test_an_image_never_answered_is_missing_in_its_category(tmp_path):
    data = write_parquet(tmp_path / "data")
    only_existence = {i: ITEMS[i][2] for i in range(6)}  # code_reasoning never answered
    result = score_mme(data, write_predictions(tmp_path / "p.jsonl", {"A": only_existence}))
    figures = result.scores()
    code = figures["categories"]["code_reasoning"]
    assert code["missing_images"] == ["code_reasoning/c1.png", "code_reasoning/c2.png"] and code["score"] is None
    assert (figures["perception"], figures["cognition"], figures["cognition_categories"]) == (200.0, None, 0)
    assert figures["missing_images"] == 2 and figures["complete"] is False


def test_hub_dataset_id_goes_through_datasets(tmp_path):
    from lrv_hf.mme.data import _read_hub

    # `datasets.load_dataset` on a local copy of the Hub repo's layout: the same call a Hub id makes
    items = _read_hub(str(write_parquet(tmp_path / "MME" / "data").parent), with_images=True)
    assert len(items) == 10 and open_image(items[0]).size == (8, 8)
    with pytest.raises(InputError, match="^lrv-test/no-such-mme: cannot load the Hub dataset"):
        read_mme("lrv-test/no-such-mme")
