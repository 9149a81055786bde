"""The LRV-Instruction generation prompts: dense captions with boxes, then the request for one kind of instruction.

The positive and both negative prompts reproduce the released files byte for byte (preamble, box list, counts,
constraints, output format, blank lines, trailing spaces and final newlines); knowledge manipulation is written in the
same style.
"""

POSITIVE = "positive"
NEGATIVE_NONEXISTENT = "negative-nonexistent"
NEGATIVE_EXISTENT = "negative-existent"
NEGATIVE_KNOWLEDGE = "negative-knowledge"
KINDS = (POSITIVE, NEGATIVE_NONEXISTENT, NEGATIVE_EXISTENT, NEGATIVE_KNOWLEDGE)
DEFAULT_KINDS = (POSITIVE, NEGATIVE_NONEXISTENT, NEGATIVE_EXISTENT)  # what the release generated from VG captions

# the protocol's constraints, checked again on every generated row
POSITIVE_COUNT = 20
NEGATIVE_COUNT = 6
MAX_ANSWER_WORDS = 30  # "The answers should be less than 30 words."

HEADER = (
    "Give an image with following information: bounding box, positions that are the object left-top corner "
    "coordinates(X, Y), object sizes(Width, Height). Highly overlapping bounding boxes may refer to the same object."
    "\n\nbounding box:\n"
)
# as the release lists them, typo ("Muli-choice") and casing included: the model saw exactly this
TASK_LINE = (
    "Task: image captioning, Image Sentiment Analysis, Activity Recognition, Object Interaction Analysis, Object "
    "Attribute Detection, Muli-choice VQA, Visual Entailment, Visual Commonsense reasoning, Styled Image Caption, "
    "Referential Expression Grounding."
)
POSITIVE_REQUEST = (
    f"Come up with {POSITIVE_COUNT} diverse instructions for all the tasks above with different language styles and "
    "accurate answers. The instructions should contain interrogative sentences and declarative sentences. The answers "
    f"should be less than {MAX_ANSWER_WORDS} words. Each task should have less than 3 instructions."
)
_NEGATIVE_STYLE = (
    "in the images with different language styles. The instructions should contain interrogative and declarative "
    "sentences. Please also explain the reason."
)
NEGATIVE_REQUESTS = {
    NEGATIVE_NONEXISTENT: (
        f"Come up with {NEGATIVE_COUNT} misleading instructions with nonexistent elements (nonexistent objects, "
        f"nonexistent activities, nonexistent attributes, nonexistent interactions) {_NEGATIVE_STYLE}"
    ),
    NEGATIVE_EXISTENT: (
        f"Come up with {NEGATIVE_COUNT} misleading instructions of existing objects with wrong attributes "
        f"{_NEGATIVE_STYLE}"
    ),
    # the paper's third negative type; not in the released prompts, so written here in their words and shape
    NEGATIVE_KNOWLEDGE: (
        f"Come up with {NEGATIVE_COUNT} misleading instructions of existing objects with wrong knowledge (wrong facts, "
        "wrong history, wrong functions, wrong common sense about the objects) "
        f"{_NEGATIVE_STYLE}"
    ),
}
POSITIVE_FORMAT = "Output format:\nInstruction: \ninstruction example\nAnswer: \nanswer example\nTask: \ntask sample"
NEGATIVE_FORMAT = "Output format:\nInstruction: \ninstruction example\nReason:\nReason example"
# the released files end differently: one newline, except the wrong-attribute prompt's two
ENDINGS = {POSITIVE: "\n", NEGATIVE_NONEXISTENT: "\n", NEGATIVE_EXISTENT: "\n\n", NEGATIVE_KNOWLEDGE: "\n"}

# the ten tasks of the positive prompt, as rows name them
TASKS = (
    "Image Captioning",
    "Image Sentiment Analysis",
    "Activity Recognition",
    "Object Interaction Analysis",
    "Object Attribute Detection",
    "Multi-choice VQA",
    "Visual Entailment",
    "Visual Commonsense Reasoning",
    "Styled Image Caption",
    "Referential Expression Grounding",
)


def _number(value) -> str:
    """Box numbers as the release prints them: integers without a decimal point."""
    return str(int(value)) if float(value).is_integer() else f"{float(value):g}"


def box_line(region: dict) -> str:
    """`<caption> X: <x> Y: <y> Width: <w> Height: <h>`, the generation prompts' box format (real heights)."""
    x, y, w, h = region["bbox"]
    # a caption is printed as written (trailing spaces too) but may not break the one-box-per-line list
    caption = " ".join(region["caption"].splitlines())
    return f"{caption} X: {_number(x)} Y: {_number(y)} Width: {_number(w)} Height: {_number(h)}"


def build_prompt(kind: str, regions: list[dict]) -> str:
    """The generation prompt of one `kind` for an image described by `regions`.

    Args:
        kind (`str`): One of `KINDS`: `positive`, `negative-nonexistent`, `negative-existent`, `negative-knowledge`.
        regions (`list[dict]`): `[{"caption": str, "bbox": [x, y, w, h]}]`, as `lrv_hf.data.load_regions` returns.
    """
    boxes = "".join(box_line(region) + "\n" for region in regions)
    if kind == POSITIVE:
        return f"{HEADER}{boxes}\n{TASK_LINE}\n\n{POSITIVE_REQUEST}\n\n{POSITIVE_FORMAT}{ENDINGS[kind]}"
    if kind in NEGATIVE_REQUESTS:
        return f"{HEADER}{boxes}\n\n{NEGATIVE_REQUESTS[kind]}\n\n{NEGATIVE_FORMAT}{ENDINGS[kind]}"
    raise ValueError(f"`kind` must be one of {', '.join(KINDS)}; got {kind!r}")


def build_messages(kind: str, regions: list[dict]) -> list[dict]:
    """The chat messages sent for one image and kind: the prompt as one user turn, as the released script sent it."""
    return [{"role": "user", "content": build_prompt(kind, regions)}]
