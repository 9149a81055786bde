"""The GAVIE reply parser: every unambiguous style a judge writes is read; anything else is unscored, never guessed."""

import pytest

from lrv_hf.gavie import parse_reply


# every style below says the same thing about two answers: relevancy 8 and 3, accuracy 9 and 2
REPLIES = {
    "release": "relevancy: \nscore of answer1: 8\nreason: follows it.\nscore of answer2: 3\nreason: drifts\n"
    "over two lines.\n\naccuracy: \nscore of answer1: 9\nreason: right\nscore of answer2: 2\nreason: a glass",
    "markdown": "**Relevancy**\n- Answer 1: 8/10 — follows it.\n- Answer 2: 3/10 — drifts\n\n"
    "**Accuracy**:\n- Answer 1: 9/10 — right\n- Answer 2: 2 out of 10 — a glass",
    "accuracy first": "### Accuracy\nscore of the answer1: 9\nreason: right\nscore of the answer2: 2\nreason: a glass"
    "\n\n### Relevancy Score:\nscore of answer 1: 8\nreason: follows it.\nscore of answer 2: 3\nreason: drifts",
    "blocks": "Answer 1:\nRelevancy: 8\nAccuracy: 9\nReason: fine.\n\nAnswer 2:\nrelevancy - 3\naccuracy: 20/100",
    "hundreds": "Relevancy:\nAnswer1: 80/100\nAnswer2: 30/100\nAccuracy:\nAnswer1: 90/100\nAnswer2: 20/100",
    "range in the header": "Relevancy (0-10):\nAnswer 1: 8\nAnswer 2: 3\n\nAccuracy (0-10):\nAnswer 1: 9\nAnswer 2: 2",
    "numbered criteria with an aside": "Answer 1:\n1. Relevancy (does it follow the instruction): 8/10\n"
    "2. Accuracy (is it true to the image): 9/10\n\nAnswer 2:\n1. Relevancy (does it follow the instruction): 3/10\n"
    "2. Accuracy (is it true to the image): 2/10",
    "table": "| Answer | Relevancy | Accuracy | Reason |\n|---|:---:|---|---|\n| Answer 1 | 8 | **9** | right |\n"
    "| Answer 2 | 3/10 | 2/10 | a glass |",
    "table by criterion": "| Criterion | Answer 1 | Answer 2 |\n|---|---|---|\n| Relevancy | 8 | 3 |\n"
    "| Accuracy | 9 | 2 |",
    "prose": "I would give Answer 1 an accuracy score of 9 and a relevancy score of 8, since it follows the "
    "instruction. Answer 2 gets a relevancy score of 3. I would give an accuracy score of 2 to Answer 2 as it "
    "invents a glass, while Answer 1 does not.",
    "figure first": "Answer 1: 8/10 - relevant, 9/10 - accurate\nAnswer 2: 3/10 - relevant, 2/10 - inaccurate",
}


@pytest.mark.parametrize("style", sorted(REPLIES))
def test_every_style_reads_to_the_same_scores_in_the_packed_form(style):
    parsed = parse_reply(REPLIES[style], 2)
    assert parsed.scores == {"accuracy": [9.0, 2.0], "relevancy": [8.0, 3.0]}
    assert parsed.all_complete


SINGLE = {
    "range in the header": "Relevancy (0-10): 7\nAccuracy (0-10): 4",
    "numbered criteria with an aside": "1. Relevancy (does it follow the instruction): 7/10\n"
    "2. Accuracy (is it accurate concerning the image content): 4/10",
    "prose": "The answer follows the instruction, so I give it a relevancy score of 7. It invents a dog: "
    "accuracy score of 4.",
    "figure first": "7/10 - relevant: it answers the question.\n4/10 - accurate only in part: it invents a dog.",
    "table": "| Answer | Relevancy | Accuracy |\n|---|---|---|\n| 1 | 7 | 4 |",
    "label then figure": "Relevancy: 7\nReason: on topic.\nAccuracy: 4/10\nReason: invents a dog.",
}


@pytest.mark.parametrize("style", sorted(SINGLE))
def test_every_style_reads_a_single_answer(style):
    assert parse_reply(SINGLE[style], 1).scores == {"accuracy": [4.0], "relevancy": [7.0]}


def test_reasons_are_exact_and_multiline():
    parsed = parse_reply(REPLIES["release"], 2)
    assert parsed.reasons["relevancy"] == ["follows it.", "drifts\nover two lines."]
    assert parsed.reasons["accuracy"] == ["right", "a glass"]
    assert parse_reply(REPLIES["markdown"], 2).reasons["accuracy"] == ["right", "a glass"]
    assert parse_reply(REPLIES["table"], 2).reasons["accuracy"] == ["right", "a glass"]
    assert parse_reply(SINGLE["label then figure"], 1).reasons["accuracy"] == ["invents a dog."]


@pytest.mark.parametrize(
    "text",
    ["Relevancy: 7\nAccuracy: -3", "Relevancy: 7\nAccuracy -3", "Relevancy: 7\nAccuracy: 1e1", "Relevancy: 7\nAccuracy: 11",
     "Relevancy: 7\nAccuracy: 7-8", "Relevancy: 7\nAccuracy: 7,5", "Relevancy: 7\nAccuracy: 80%",
     "Relevancy: 7\nAccuracy: 12/10", "Relevancy: 7\nAccuracy: 5/0",
     "relevancy: \nscore of answer1: 7\naccuracy: \nscore of answer1: -3",
     "relevancy: \nscore of answer1: 7\naccuracy: \nscore of answer1: 1e1",
     "Relevancy (0-10): 7\nAccuracy (0-10): -3",
     "| Answer | Relevancy | Accuracy |\n|---|---|---|\n| 1 | 7 | -3 |",
     "Relevancy: 7\nAccuracy: 4\nOn reflection, Accuracy: 6"],
)  # fmt: skip
def test_a_negative_an_exponent_a_range_or_two_scores_is_unscored_never_clamped(text):
    parsed = parse_reply(text, 1)
    assert parsed.scores == {"accuracy": [None], "relevancy": [7.0]}


def test_packed_form_unscores_only_the_bad_slot():
    text = (
        "relevancy:\nscore of answer1: 8\nscore of answer2: -3\nscore of answer3: 5\n"
        "accuracy:\nscore of answer1: 1e1\nscore of answer2: 4\nscore of answer3: 6\nscore of answer3: 2"
    )
    parsed = parse_reply(text, 3)
    assert parsed.scores == {"accuracy": [None, 4.0, None], "relevancy": [8.0, None, 5.0]}
    assert [parsed.complete(slot) for slot in range(3)] == [False, False, False]


def test_the_same_score_twice_is_one_score():
    parsed = parse_reply("Relevancy: 7\nAccuracy: 4\nIn short: accuracy 4, relevancy 7.", 1)
    assert parsed.scores == {"accuracy": [4.0], "relevancy": [7.0]}


def test_a_number_in_a_reason_never_overrides_a_score_line():
    text = "relevancy:\nscore of answer1: 8\nreason: the relevancy score of 2 it deserves is wrong\n" + (
        "accuracy:\nscore of answer1: 9\nreason: it says Answer 1 has an accuracy score of 3"
    )
    assert parse_reply(text, 1).scores == {"accuracy": [9.0], "relevancy": [8.0]}


@pytest.mark.parametrize(
    "text",
    [None, "", "I cannot score these.", "relevancy: \nscore of answer1: 11\naccuracy: \nscore of answer1: 5",
     "relevancy: \nscore of answer1: 8\n", "Answer 1 and Answer 2 both get an accuracy score of 6."],
)  # fmt: skip
def test_unreadable_is_none_never_zero(text):
    parsed = parse_reply(text, 1)
    assert not parsed.complete(0)
    assert 0.0 not in parsed.scores["accuracy"] + parsed.scores["relevancy"]


def test_slots_the_prompt_did_not_ask_for_are_ignored():
    parsed = parse_reply("relevancy:\nscore of answer1: 5\nscore of answer3: 9\naccuracy:\nscore of answer1: 6", 2)
    assert parsed.scores == {"accuracy": [6.0, None], "relevancy": [5.0, None]}
