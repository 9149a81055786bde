"""Reading the GQA judge's verdicts: each student answer is `correct` or `incorrect`, or unscored, never guessed.

The release asks for `Student Answer1: ...` lines; judges write `Correct`, `**Incorrect.** The answer is ...`,
`Answer 2 - wrong`, or the verdict on the next line. A hedge ("partially correct"), a missing line, or two different
verdicts for one answer leave that answer unscored, so the caller re-asks and never counts it as wrong.
"""

import re


CORRECT, INCORRECT = "correct", "incorrect"
_WORDS = {
    "correct": CORRECT, "right": CORRECT, "yes": CORRECT, "true": CORRECT, "matches": CORRECT, "match": CORRECT,
    "incorrect": INCORRECT, "wrong": INCORRECT, "no": INCORRECT, "false": INCORRECT, "mismatch": INCORRECT,
}  # fmt: skip
_LABEL = re.compile(
    r"^[ \t#>*_\-]*(?:student[ \t]*)?answer[ \t]*#?(\d+)[ \t*_]*(?:[:：]|[-–—](?=\s))[ \t*_]*(.*)$",
    re.IGNORECASE | re.MULTILINE,
)
_NEGATED = re.compile(r"not\s+(?:correct|right|a\s+match)|does\s*n[o']t\s+match|doesn't\s+match", re.IGNORECASE)


def verdict_of(text: str) -> str | None:
    """`correct` or `incorrect` when `text` starts with an unambiguous verdict, else `None`."""
    text = text.strip().lstrip("*_`\"'([ ").lower()
    if _NEGATED.match(text):
        return INCORRECT
    word = re.match(r"[a-z]+", text)
    return _WORDS.get(word.group(0)) if word else None


def parse_verdicts(text: str | None, num_answers: int) -> list[str | None]:
    """The verdict per student answer (1..`num_answers`) in a judge reply; `None` where there is none to read.

    Example:

    ```python
    >>> parse_verdicts("Student Answer1: Correct\\nStudent Answer2: **Incorrect.** It says table.", 2)
    ['correct', 'incorrect']
    >>> parse_verdicts("Student Answer1: partially correct\\nStudent Answer2: wrong\\nStudent Answer2: right", 2)
    [None, None]

    ```
    """
    if not text:
        return [None] * num_answers
    text = text.replace("\r\n", "\n")
    found: dict[int, set] = {}
    labels = list(_LABEL.finditer(text))
    for index, label in enumerate(labels):
        slot = int(label.group(1)) - 1
        if not 0 <= slot < num_answers:
            continue
        rest = label.group(2)
        if not rest.strip(" *_"):  # the verdict on the line below the label
            end = labels[index + 1].start() if index + 1 < len(labels) else len(text)
            rest = next((line for line in text[label.end() : end].splitlines() if line.strip()), "")
        found.setdefault(slot, set()).add(verdict_of(rest))
    if not labels and num_answers == 1:  # one answer, judged without the label: "Correct."
        found[0] = {verdict_of(text)}
    return [next(iter(v)) if len(v := found.get(slot, set())) == 1 else None for slot in range(num_answers)]
