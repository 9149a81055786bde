"""The predictions JSONL (`lrv_hf.predictions`): one schema, one message per fault, question ids kept and joined on."""

import json

import pytest

from lrv_hf.errors import InputError
from lrv_hf.pope import read_predictions as read_pope_predictions
from lrv_hf.pope import read_probes, score_predictions
from lrv_hf.predictions import Prediction, read_predictions, read_written, write_predictions


def test_round_trip_keeps_optional_fields_and_derives_polarity(tmp_path):
    path = tmp_path / "p.jsonl"
    rows = [
        Prediction(0, "1", "Is there a cat?", "No.", model="m", question_id="7"),
        Prediction(1, "2", "Describe it.", "A dog.", task="Image Captioning", polarity="positive"),
    ]
    assert write_predictions(rows, path) == 2
    assert json.loads(path.read_text().splitlines()[0]) == {
        "image_id": "1", "question": "Is there a cat?", "answer": "No.", "model": "m", "question_id": "7"
    }  # fmt: skip
    assert read_predictions(path) == rows
    path.write_text('{"image_id": 3, "question": "q", "answer": "a", "task": "negative", "question_id": 12}\n')
    (row,) = read_predictions(path)
    assert (row.image_id, row.polarity, row.question_id) == ("3", "negative", "12")  # the release's task rule


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ('{"image_id": "1", "question": "q"}\n', r"p\.jsonl: line 1: field `answer` is missing"),
        ('\n{"image_id": "1", "question": "q", "answer": "a"}\nnot json\n', r"p\.jsonl: line 3: not valid JSON"),
        ('["image_id"]\n', r"p\.jsonl: line 1: expected a JSON object, got list"),
        ('{"image_id": "1", "question": "q", "answer": "a", "question_id": [1]}\n', r"line 1: field `question_id`"),
        ("\n\n", r"p\.jsonl: the file holds no predictions"),
    ],
)
def test_one_message_per_fault_naming_file_and_line(tmp_path, content, message):
    path = tmp_path / "p.jsonl"
    path.write_text(content)
    with pytest.raises(InputError, match=message):
        read_predictions(path)


def test_read_written_drops_a_line_cut_by_a_kill(tmp_path):
    path = tmp_path / "p.jsonl"
    whole = '{"image_id": "1", "question": "q", "answer": "a"}\n'
    path.write_text(whole + whole[:20])
    assert [p.image_id for p in read_written(path)] == ["1"]
    assert path.read_text() == whole  # the half line is gone, to be written again


def test_pope_joins_on_question_id_first_then_on_image_and_question(tmp_path):
    probes = tmp_path / "probes.jsonl"
    probes.write_text(
        '{"question_id": 1, "image_id": "a", "question": "Is there a dog in the image?", "label": "yes"}\n'
        '{"question_id": 2, "image_id": "a", "question": "Is there a cat in the image?", "label": "no"}\n'
    )
    predictions = tmp_path / "m.jsonl"
    # id 1 was asked with other wording (joined by its id); the second row has no id (joined by image + question)
    predictions.write_text(
        '{"question_id": 1, "image_id": "a", "question": "Is there a dog?", "answer": "Yes."}\n'
        '{"image_id": "a", "question": "Is there a cat in the image?", "answer": "No."}\n'
    )
    summary, rows = score_predictions(read_probes(probes), read_pope_predictions([predictions]))
    assert [(r["question_id"], r["answer"]) for r in rows] == [("1", "Yes."), ("2", "No.")]
    assert summary["models"]["m"]["all"]["accuracy"] == 1.0 and summary["models"]["m"]["all"]["missing"] == 0
