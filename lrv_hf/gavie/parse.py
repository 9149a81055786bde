"""Reading GAVIE scores out of a judge's free-text reply: liberal in the styles it accepts, never a guess.

Judges write `relevancy:` or `**Relevancy (0-10)**`, `score of answer1: 8` or `Answer 1: 8/10`, sections in either
order, one block per answer, a Markdown table, prose ("I would give Answer 1 an accuracy score of 6") or the figure
first (`7/10 - accurate`). A score is unscored (`None`: the caller re-asks, then marks the sample unscored) when it
cannot be read, lies outside 0-10, has a sign, an exponent or a range, or when one answer and criterion get two
different scores. It is never clamped, truncated, guessed or 0.
"""

import re
from dataclasses import dataclass, field


CRITERIA = ("accuracy", "relevancy")

_WORD = r"(relevancy|relevance|accuracy)"
# "(0-10)", "(does it follow the instruction)": a parenthetical between a criterion and its score
_ASIDE = r"(?:[ \t]*\([^)\n]{0,80}\))?"
# a figure with what may follow it; the sign, exponent and tail groups exist to reject "-3", "1e1", "7-8", "7,5"
_NUMBER = (
    r"([-−+]?)(\d+(?:\.\d+)?)([eE][-+]?\d+)?(?:\s*/\s*(\d+(?:\.\d+)?)|\s+out\s+of\s+(\d+(?:\.\d+)?))?"
    r"((?:\s*(?:-|–|~|to)\s*\d)|,\d|%)?"
)
# a section header: "relevancy:", "**Relevancy (0-10)**", "### Accuracy score:", "2. Accuracy" (alone on its line
# or before a score line)
_SECTION = re.compile(
    r"^[ \t#>*_\-\d.()]*" + _WORD + r"(?:[ \t]+scores?)?" + _ASIDE + r"[ \t*_]*(?::[ \t*_]*)?(?=$|score|answer)",
    re.IGNORECASE | re.MULTILINE,
)
# one score inside a section: "score of answer1: 8", "score of the answer 2: 8/10", "Answer 3: 7 out of 10"
_SCORE = re.compile(
    r"(?:score\s+(?:of|for)\s+(?:the\s+)?)?answer\s*[_#]?\s*(\d+)[\s*_]*(?:score)?[\s*_]*(?:[:：=]|[-–](?!\d))[\s*_]*"
    + _NUMBER,
    re.IGNORECASE,
)
# one block per answer: "Answer 1:\nrelevancy: 8\naccuracy: 7" (also the whole reply when only one answer is judged)
_ANSWER_BLOCK = re.compile(r"^[ \t#>*_\-]*(?:score\s+of\s+)?answer\s*(\d+)\b", re.IGNORECASE | re.MULTILINE)
_CRITERION_SCORE = re.compile(
    _WORD + r"(?:[ \t]+scores?)?" + _ASIDE + r"[\s*_]*(?:[:：=]|[-–](?!\d))?[\s*_]*" + _NUMBER, re.IGNORECASE
)
# prose: "I would give Answer 1 an accuracy score of 6", "an accuracy score of 6 to Answer 2"
_PROSE = re.compile(_WORD + r"\s+(?:score|rating)\s*(?:of|is|:)?\s*" + _NUMBER, re.IGNORECASE)
_PROSE_TO = re.compile(_PROSE.pattern + r"\s+(?:to|for)\s+(?:the\s+)?answer\s*(\d+)", re.IGNORECASE)
_MENTION = re.compile(r"\banswer\s*(\d+)", re.IGNORECASE)
# the figure first: "7/10 - accurate", "**8/10** (relevant)"
_FIGURE_FIRST = re.compile(
    r"(?<![\w.])[*_]*" + _NUMBER + r"[*_]*\s*[-–—:(]\s*[*_]*\s*(?:in|ir)?(accura|relevan)\w*", re.IGNORECASE
)
_TABLE_ROW = re.compile(r"^[ \t]*\|(.*)\|[ \t]*$", re.MULTILINE)
_REASON_PREFIX = re.compile(r"^[\s\-–—*_:,.;]*(?:reason(?:ing)?|explanation)?[\s*_]*[:：\-–—]?\s*", re.IGNORECASE)
_INVALID = "invalid"  # a reading that exists but is no 0-10 score: the slot is unscored, never read elsewhere


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


def _value(sign: str, number: str, exponent: str | None, over: str | None, out_of: str | None, tail: str | None):
    """A 0-10 score (`8/10` is 8, `80/100` is 8), or `_INVALID` for anything else: never clipped or truncated."""
    if sign or exponent or tail:
        return _INVALID
    value = float(number)
    denominator = over or out_of
    if denominator is not None:
        if float(denominator) == 0:
            return _INVALID
        value = value * 10 / float(denominator)
    return value if 0 <= value <= 10 else _INVALID


def _reason(text: str) -> str | None:
    # drop the "reason:" label in front and the next bullet's marker behind
    reason = _REASON_PREFIX.sub("", text, count=1).rstrip(" \t\n-*_#>").strip("*_").strip()
    return reason or None


class _Readings:
    """Every reading one style found, per (criterion, slot); a style's readings are settled before the next runs."""

    def __init__(self, parsed: ParsedReply):
        self.parsed = parsed
        self.settled: set[tuple[str, int]] = set()
        self.found: dict[tuple[str, int], list[tuple[float | str, str | None]]] = {}

    def add(self, criterion: str, slot: int, value, reason: str | None = None):
        key = (criterion, slot)
        if 0 <= slot < self.parsed.num_answers and key not in self.settled:
            self.found.setdefault(key, []).append((value, reason))

    def settle(self):
        """A slot read once, or read several times to the same score, is scored; two different scores are not."""
        for (criterion, slot), readings in self.found.items():
            values = {value for value, _ in readings}
            self.settled.add((criterion, slot))
            if len(values) == 1 and _INVALID not in values:
                self.parsed.scores[criterion][slot] = float(values.pop())
                self.parsed.reasons[criterion][slot] = next((r for _, r in readings if r), None)
        self.found = {}


def _answer_spans(text: str, num_answers: int) -> list[tuple[int, int, int]]:
    """(slot, start, end) of each "Answer N" block; the whole text is answer 1's when one answer has no heading."""
    blocks = list(_ANSWER_BLOCK.finditer(text))
    spans = [(int(m.group(1)) - 1, m.end(), blocks[i + 1].start() if i + 1 < len(blocks) else len(text))
             for i, m in enumerate(blocks)]  # fmt: skip
    if num_answers == 1 and not spans:
        spans = [(0, 0, len(text))]
    return spans


def _read_table(text: str, readings: _Readings):
    """A Markdown table: one row per answer and a column per criterion, or one row per criterion."""
    rows = [[cell.strip(" *_`") for cell in m.group(1).split("|")] for m in _TABLE_ROW.finditer(text)]
    rows = [row for row in rows if not all(re.fullmatch(r":?-{2,}:?|", cell) for cell in row)]  # the |---| line
    if len(rows) < 2:
        return
    head, body = rows[0], rows[1:]
    columns = {i: _criterion(m.group(1)) for i, cell in enumerate(head) if (m := re.search(_WORD, cell, re.I))}
    reason_columns = [i for i, cell in enumerate(head) if re.search(r"reason|explanation|comment", cell, re.I)]
    answer_columns = {i: int(m.group(1)) - 1 for i, cell in enumerate(head)
                      if (m := re.fullmatch(r"(?:answer|student)?\s*#?\s*(\d+)", cell, re.I))}  # fmt: skip
    cell_value = re.compile(r"[*_]*" + _NUMBER + r"[*_]*(?:\s.*)?$")
    if columns:  # one row per answer
        for row in body:
            slot = re.search(r"(\d+)", row[0]) if row else None
            if slot is None:
                continue
            reason = next((row[i] for i in reason_columns if i < len(row) and row[i]), None)
            for i, criterion in columns.items():
                if i < len(row) and (m := cell_value.match(row[i])):
                    readings.add(criterion, int(slot.group(1)) - 1, _value(*m.groups()), reason)
    elif answer_columns:  # one row per criterion
        for row in body:
            m = re.search(_WORD, row[0], re.I) if row else None
            if m is None:
                continue
            for i, slot in answer_columns.items():
                if i < len(row) and (value := cell_value.match(row[i])):
                    readings.add(_criterion(m.group(1)), slot, _value(*value.groups()))


def _read_sections(text: str, readings: _Readings):
    headers = list(_SECTION.finditer(text))
    for index, header in enumerate(headers):
        criterion = _criterion(header.group(1))
        end = headers[index + 1].start() if index + 1 < len(headers) else len(text)
        body = text[header.end() : end]
        scores = list(_SCORE.finditer(body))
        for j, match in enumerate(scores):
            stop = scores[j + 1].start() if j + 1 < len(scores) else len(body)
            readings.add(
                criterion, int(match.group(1)) - 1, _value(*match.groups()[1:]), _reason(body[match.end() : stop])
            )
        # "relevancy:\n8" after the header, for a single answer
        if readings.parsed.num_answers == 1 and not scores and (match := re.match(r"[\s*_]*" + _NUMBER, body)):
            readings.add(criterion, 0, _value(*match.groups()), _reason(body[match.end() :]))


def _read_blocks(text: str, readings: _Readings):
    for slot, start, end in _answer_spans(text, readings.parsed.num_answers):
        body = text[start:end]
        found = list(_CRITERION_SCORE.finditer(body))
        for j, match in enumerate(found):
            stop = found[j + 1].start() if j + 1 < len(found) else len(body)
            value = _value(*match.groups()[1:])
            readings.add(_criterion(match.group(1)), slot, value, _reason(body[match.end() : stop]))


def _sentence_after(text: str, end: int) -> str | None:
    return _reason(re.split(r"(?<=[.!?])\s|\n", text[end:], maxsplit=1)[0])


def _read_prose(text: str, readings: _Readings):
    """A sentence naming one answer scores that answer; one naming several must say "score of 6 to Answer 2"."""
    for sentence in re.split(r"(?<=[.!?])\s+|\n", text):
        mentioned = {int(m.group(1)) - 1 for m in _MENTION.finditer(sentence)}
        if len(mentioned) > 1:
            for match in _PROSE_TO.finditer(sentence):
                readings.add(_criterion(match.group(1)), int(match.group(8)) - 1, _value(*match.groups()[1:7]))
            continue
        if not mentioned and readings.parsed.num_answers > 1:
            continue
        slot = mentioned.pop() if mentioned else 0
        for match in _PROSE.finditer(sentence):
            readings.add(_criterion(match.group(1)), slot, _value(*match.groups()[1:]), _reason(sentence))


def _read_figure_first(text: str, readings: _Readings):
    for slot, start, end in _answer_spans(text, readings.parsed.num_answers):
        body = text[start:end]
        for match in _FIGURE_FIRST.finditer(body):
            criterion = "accuracy" if match.group(7).lower() == "accura" else "relevancy"
            readings.add(criterion, slot, _value(*match.groups()[:6]), _sentence_after(body, match.end()))


def parse_reply(text: str | None, num_answers: int) -> ParsedReply:
    """Read both criteria's scores and reasons for `num_answers` answers out of a judge reply.

    The styles are tried in turn (table, sections, blocks, prose, figure first); each settles only the scores no
    earlier style found, so a number in a reason never overrides a score line.

    Example:

    ```python
    >>> parsed = parse_reply("**Accuracy**\\nAnswer 1: 7/10 - it invents a glass.\\n\\nRelevancy:\\nAnswer 1: 9", 1)
    >>> parsed.scores
    {'accuracy': [7.0], 'relevancy': [9.0]}
    >>> parsed.reasons["accuracy"]
    ['it invents a glass.']
    >>> parse_reply("Accuracy: -3\\nRelevancy: 1e1", 1).scores
    {'accuracy': [None], 'relevancy': [None]}

    ```
    """
    parsed = ParsedReply(num_answers)
    if not text:
        return parsed
    text = text.replace("\r\n", "\n")
    readings = _Readings(parsed)
    for read in (_read_table, _read_sections, _read_blocks, _read_prose, _read_figure_first):
        read(text, readings)
        readings.settle()
    return parsed
