"""Reading generated instructions out of a model's free-text reply, and checking each one against the protocol.

Models write `Instruction:` or `**Instruction 3:**` or `1. Instruction:`, put values on the label's line or the next,
add blank lines, preambles and closing remarks, and stop mid-item at the token limit. The parser accepts all of that;
`validate` then keeps a row only when it meets the protocol, and names the reason when it does not. A task name
outside the known list is no fault: the row keeps the name as written, and the run summary counts it.
"""

import re
from dataclasses import dataclass

from ..data.release import NEGATIVE_TASK
from .prompt import MAX_ANSWER_WORDS, POSITIVE, TASKS


# drop reasons, as counted in the run summary
EMPTY_INSTRUCTION = "empty instruction"
MISSING_ANSWER = "missing answer"
MISSING_TASK = "missing task"
LONG_ANSWER = f"answer of {MAX_ANSWER_WORDS}+ words"
DUPLICATE = "duplicate instruction"
TRUNCATED = "truncated reply"

# list markers, markdown headers and numbering in front of a line: "1.", "2)", "(3)", "- ", "### ", "> "
_BULLET = r"^\s*(?:[#>]+\s*)?(?:[-*•]\s+)?"
_LEADER = re.compile(_BULLET + r"(?:\(?\d{1,3}[.):](?!\d)\s*)?")
# a field label: "Instruction:", "Instruction 3:", "Instruction #3:", "Reason:"; the value may follow on the line
_LABEL = re.compile(
    r"^(instruction|question|answer|reason|explanation|task)\s*(?:#?\s*\d{1,3})?\s*[:：]\s*(.*)$", re.IGNORECASE
)
# a second label inside one line: "Instruction: Is it red? Answer: Yes."
_INLINE = re.compile(r"\s+(?=(?:Answer|Reason|Task)\s*:)")
_FIELDS = {
    "instruction": "instruction",
    "question": "instruction",
    "answer": "answer",
    "reason": "reason",
    "explanation": "reason",
    "task": "task",
}
_QUOTES = "\"'“”‘’`"


def _key(text: str) -> str:
    """Lower-case letters and digits only: how task names and instructions are compared."""
    return " ".join(re.sub(r"[^0-9a-z]+", " ", text.lower()).split())


# the tasks the paper's statistics name besides the ten the released positive prompt lists (16 in the paper's count)
PAPER_TASKS = (
    "Object Detection",
    "Image Quality Assessment",
    "Image Anomaly Detection",
    "OCR",
    "Dense Captioning",
    "Facial Expression Detection",
    "Semantic Segmentation",
)
KNOWN_TASKS = TASKS + PAPER_TASKS

# spellings models use for the known tasks (the prompt's own "Muli-choice" typo included), by their `_key`
TASK_ALIASES = {_key(task): task for task in KNOWN_TASKS} | {
    _key(alias): task
    for task, aliases in {
        "Image Captioning": ("image caption", "captioning", "image description"),
        "Image Sentiment Analysis": ("sentiment analysis", "image sentiment"),
        "Activity Recognition": ("action recognition", "activity detection"),
        "Object Interaction Analysis": ("object interaction", "object interactions analysis", "interaction analysis"),
        "Object Attribute Detection": ("object attribute recognition", "attribute detection", "object attributes"),
        "Multi-choice VQA": (
            "muli choice vqa",
            "multiple choice vqa",
            "multichoice vqa",
            "multi choice visual question answering",
            "multiple choice visual question answering",
            "multiple choice question answering",
        ),
        "Visual Entailment": ("visual entailment task",),
        "Visual Commonsense Reasoning": ("visual common sense reasoning", "commonsense reasoning", "vcr"),
        "Styled Image Caption": ("styled image captioning", "stylized image caption", "styled caption"),
        "Referential Expression Grounding": (
            "referring expression grounding",
            "referential expression",
            "referring expression comprehension",
            "referential grounding",
            "referring expression",
        ),
        "Image Quality Assessment": ("image quality", "quality assessment"),
        "Image Anomaly Detection": ("anomaly detection",),
        "OCR": ("optical character recognition", "text recognition", "scene text recognition"),
        "Dense Captioning": ("dense caption", "region captioning"),
        "Facial Expression Detection": ("facial expression recognition", "facial expression"),
    }.items()
    for alias in aliases
}


def canonical_task(name: str) -> str | None:
    """The known name of a task as a model wrote it (`"muli-choice VQA"` -> `"Multi-choice VQA"`), else None."""
    key = _key(name)
    if key.endswith(" task"):
        key = key[: -len(" task")]
    return TASK_ALIASES.get(key)


@dataclass
class Item:
    """One instruction as read from a reply: the fields found (`None` when absent), before any check."""

    instruction: str | None = None
    answer: str | None = None
    reason: str | None = None
    task: str | None = None


def _clean(value: str) -> str:
    value = " ".join(value.split())
    # strip matching outer quotes a model wraps around a whole value
    while len(value) >= 2 and value[0] in _QUOTES and value[-1] in _QUOTES:
        value = value[1:-1].strip()
    return value


def parse_reply(text: str) -> list[Item]:
    """The items of one reply, in order; text before the first `Instruction:` and after the last field is ignored.

    A value runs over the label's line and the following lines until the next label or a blank line after it; a task
    is one line. Bold markers, list numbering and headers around labels are dropped.
    """
    items: list[Item] = []
    current: Item | None = None
    field_name: str | None = None
    lines: list[str] = []
    for raw in text.replace("**", "").replace("__", "").splitlines():
        lines.extend(_INLINE.split(raw))
    values: dict[str, list[str]] = {}

    def close_item():
        if current is None:
            return
        for name, parts in values.items():
            setattr(current, name, _clean(" ".join(parts)))
        items.append(current)

    for raw in lines:
        line = _LEADER.sub("", raw, count=1).strip()
        label = _LABEL.match(line)
        if label:
            name = _FIELDS[label.group(1).lower()]
            # a new instruction or a field seen twice closes the item; an instruction after a lone task joins it
            # (some replies group by task: "Task: X" then "Instruction:", "Answer:")
            task_first = name == "instruction" and set(values) == {"task"}
            if current is None or name in values or (name == "instruction" and not task_first):
                close_item()
                current, values = Item(), {}
            field_name = name
            values[name] = [label.group(2)] if label.group(2).strip() else []
            continue
        if current is None or field_name is None:
            continue  # a preamble ("Sure! Here are 20 instructions:")
        if not line:  # blank, or an item number alone ("2.")
            if values.get(field_name):
                field_name = None  # a blank line ends a value that has started
            continue
        if field_name == "task" and values[field_name]:
            continue  # the task is one line; what follows is commentary
        # numbers inside a value are content ("1) a ball 2) a cup"); only list bullets go
        values[field_name].append(re.sub(_BULLET, "", raw).strip())
    close_item()
    return items


def validate(item: Item, kind: str) -> tuple[dict | None, str | None]:
    """`(row fields, None)` when `item` meets the protocol of `kind`, else `(None, reason)`.

    Row fields are `question`, `answer` and `task`; a negative's reason is its answer and its task is `"negative"`; a
    positive's task is its known name (`KNOWN_TASKS`) or, outside that list, the name as written.
    """
    question = item.instruction or ""
    if not question:
        return None, EMPTY_INSTRUCTION
    if kind != POSITIVE:
        answer = item.reason or item.answer
        if not answer:
            return None, MISSING_ANSWER
        return {"question": question, "answer": answer, "task": NEGATIVE_TASK}, None
    answer = item.answer or item.reason
    if not answer:
        return None, MISSING_ANSWER
    if not item.task:
        return None, MISSING_TASK
    if len(answer.split()) >= MAX_ANSWER_WORDS:
        return None, LONG_ANSWER
    # a task outside the known list keeps the name the model gave it: the summary counts it, nothing is lost
    task = canonical_task(item.task) or item.task
    return {"question": question, "answer": answer, "task": task}, None


def instruction_key(question: str) -> str:
    """What two instructions must share to be the same one (case, spacing and punctuation aside)."""
    return _key(question)
