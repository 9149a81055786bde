"""The GQA judge prompt of the LRV release: a question, its correct answer and K student answers in one prompt.

This is the package's own reproduction of the release's `GQA_Evaluation_prompt.txt`, byte for byte: its curly
apostrophe, its "students'" and the stray double quote after the question, which the released example has too.
"""

INSTRUCTION = (
    "You are an examiner who can judge whether a student\u2019s answer matches the correct answers. Next, I will "
    "provide you with the question, correct answer and a students' answer. Please judge which student's answers "
    "are more correct."
)


def build_prompt(question: str, correct_answer: str, answers: list[str]) -> str:
    """The release's GQA judge prompt for `answers` (1..K, in order) to `question`, whose right answer is known.

    Args:
        question (`str`): The GQA question.
        correct_answer (`str`): GQA's answer (one or two words).
        answers (`list[str]`): One answer per model; their order is the `Student Answer1..K` numbering.
    """
    if not answers:
        raise ValueError("`answers` must hold at least one answer")
    numbered = "".join(f"Student Answer{i}: {answer}\n" for i, answer in enumerate(answers, start=1))
    form = "".join(f"Student Answer{i}:\n" for i in range(1, len(answers) + 1))
    return f'{INSTRUCTION}\n\nQuestion: {question}"\nCorrect Answer: {correct_answer}\n\n{numbered}\noutput format:\n{form}'


def build_messages(question: str, correct_answer: str, answers: list[str]) -> list[dict]:
    """The chat messages sent to the judge: the prompt as one user turn."""
    return [{"role": "user", "content": build_prompt(question, correct_answer, answers)}]
