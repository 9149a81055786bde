"""Reading GAVIE scores out of a judge's free-text reply: liberal in what it accepts, exact in what it reports.

Judges write `relevancy:` or `**Relevancy**`, `score of answer1: 8` or `Answer 1: 8/10`, sections in either order or
one block per answer, reasons over several lines. A score that cannot be read is `None` (the caller re-asks, then
marks the sample unscored); it is never guessed, never 0.
"""

import re
from dataclasses import dataclass, field


CRITERIA = ("accuracy", "relevancy")

# a section header: "relevancy:", "**Relevancy**", "### Accuracy score:", "2. Accuracy" (alone or before a score line)
_SECTION = re.compile(
    r"^[ \t#>*_\-\d.()]*(relevancy|relevance|accuracy)(?:[ \t]+scores?)?[ \t*_]*(?::[ \t*_]*)?(?=$|score|answer)",
    re.IGNORECASE | re.MULTILINE,
)
# one score: "score of answer1: 8", "score of the answer 2: 8/10", "Answer 3: 7 out of 10", "**Answer1**: 9"
_NUMBER = r"(\d+(?:\.\d+)?)\s*(?:/\s*(\d+)|out\s+of\s+(\d+))?"
_SCORE = re.compile(
    r"(?:score\s+(?:of|for)\s+(?:the\s+)?)?answer\s*[_#]?\s*(\d+)[\s*_]*(?:score)?[\s*_]*[:：=\-–][\s*_]*" + _NUMBER,
    re.IGNORECASE,
)
# one block per answer: "Answer 1:\nrelevancy: 8\naccuracy: 7" (also the whole reply when only one answer is judged)
_ANSWER_BLOCK = re.compile(r"^[ \t#>*_\-]*(?:score\s+of\s+)?answer\s*(\d+)\b", re.IGNORECASE | re.MULTILINE)
_CRITERION_SCORE = re.compile(
    r"(relevancy|relevance|accuracy)(?:[ \t]+scores?)?[\s*_]*[:：=\-–]?[\s*_]*" + _NUMBER, re.IGNORECASE
)
_REASON_PREFIX = re.compile(r"^[\s\-–—*_:,.;]*(?:reason(?:ing)?|explanation)?[\s*_]*[:：\-–—]?\s*", re.IGNORECASE)


@dataclass
class ParsedReply:
    """Scores (0-10, `None` where unreadable) and reasons per answer slot, for both criteria."""

    num_answers: int
    scores: dict[str, list[float | None]] = field(default_factory=dict)
    reasons: dict[str, list[str | None]] = field(default_factory=dict)

    def __post_init__(self):
        for criterion in CRITERIA:
            self.scores.setdefault(criterion, [None] * self.num_answers)
            self.reasons.setdefault(criterion, [None] * self.num_answers)

    def complete(self, slot: int) -> bool:
        """Both criteria were read for answer `slot` (0-based)."""
        return all(self.scores[c][slot] is not None for c in CRITERIA)

    @property
    def all_complete(self) -> bool:
        return all(self.complete(slot) for slot in range(self.num_answers))


def _criterion(word: str) -> str:
    return "relevancy" if word.lower().startswith("releva") else "accuracy"


def _value(number: str, over: str | None, out_of: str | None) -> float | None:
    """A 0-10 score; `8/10` is 8, `80/100` is 8; anything outside [0, 10] is unreadable, not clipped."""
    value = float(number)
    denominator = over or out_of
    if denominator is not None:
        if float(denominator) == 0:
            return None
        value = value * 10 / float(denominator)
    return value if 0 <= value <= 10 else None


def _reason(text: str) -> str | None:
    # drop the "reason:" label in front and the next bullet's marker behind
    reason = _REASON_PREFIX.sub("", text, count=1).rstrip(" \t\n-*_#>").strip("*_").strip()
    return reason or None


def _read_sections(text: str, parsed: ParsedReply):
    headers = list(_SECTION.finditer(text))
    for index, header in enumerate(headers):
        criterion = _criterion(header.group(1))
        end = headers[index + 1].start() if index + 1 < len(headers) else len(text)
        body = text[header.end() : end]
        scores = list(_SCORE.finditer(body))
        for j, match in enumerate(scores):
            slot = int(match.group(1)) - 1
            if not 0 <= slot < parsed.num_answers or parsed.scores[criterion][slot] is not None:
                continue  # an answer the prompt did not ask about, or a repeat: keep the first reading
            value = _value(*match.group(2, 3, 4))
            if value is None:
                continue
            parsed.scores[criterion][slot] = value
            stop = scores[j + 1].start() if j + 1 < len(scores) else len(body)
            parsed.reasons[criterion][slot] = _reason(body[match.end() : stop])
        # "relevancy: 8" straight after the header, for a single answer
        if parsed.num_answers == 1 and not scores and parsed.scores[criterion][0] is None:
            match = re.match(r"[\s*_]*" + _NUMBER, body)
            if match and (value := _value(*match.groups())) is not None:
                parsed.scores[criterion][0] = value
                parsed.reasons[criterion][0] = _reason(body[match.end() :])


def _read_blocks(text: str, parsed: ParsedReply):
    blocks = list(_ANSWER_BLOCK.finditer(text))
    spans = [(int(m.group(1)) - 1, m.end(), blocks[i + 1].start() if i + 1 < len(blocks) else len(text))
             for i, m in enumerate(blocks)]  # fmt: skip
    if parsed.num_answers == 1 and not spans:
        spans = [(0, 0, len(text))]
    for slot, start, end in spans:
        if not 0 <= slot < parsed.num_answers:
            continue
        body = text[start:end]
        found = list(_CRITERION_SCORE.finditer(body))
        for j, match in enumerate(found):
            criterion = _criterion(match.group(1))
            if parsed.scores[criterion][slot] is not None:
                continue
            value = _value(*match.group(2, 3, 4))
            if value is None:
                continue
            parsed.scores[criterion][slot] = value
            stop = found[j + 1].start() if j + 1 < len(found) else len(body)
            parsed.reasons[criterion][slot] = _reason(body[match.end() : stop])


def parse_reply(text: str | None, num_answers: int) -> ParsedReply:
    """Read both criteria's scores and reasons for `num_answers` answers out of a judge reply.

    Example:

    ```python
    >>> parsed = parse_reply("**Accuracy**\\nAnswer 1: 7/10 - it invents a glass.\\n\\nRelevancy:\\nAnswer 1: 9", 1)
    >>> parsed.scores
    {'accuracy': [7.0], 'relevancy': [9.0]}
    >>> parsed.reasons["accuracy"]
    ['it invents a glass.']

    ```
    """
    parsed = ParsedReply(num_answers)
    if not text:
        return parsed
    text = text.replace("\r\n", "\n")
    _read_sections(text, parsed)
    if not parsed.all_complete:
        _read_blocks(text, parsed)
    return parsed
