"""The GAVIE judge prompt: dense captions with boxes, the instruction, K answers, two criteria, an output form.

The text follows the released prompt character for character (its double space, blank lines and trailing spaces).
The release prints `Height:` from the box *width*; `legacy=True` keeps that bug so scores compare with the paper.
"""

HEADER = (
    "Give  an image with following information: bounding box, positions that are the object left-top corner "
    "coordinates(X, Y), object sizes(Width, Height). Highly overlapping bounding boxes may refer to the same object."
    "\n\nbounding box:\n"
)
CRITERIA = (
    "Suppose you are a smart teacher, after looking at the image information above, please score the above "
    "answers(0-10) according to the following criteria:\n"
    "1: whether the response directly follows the instruction\n"
    "2: whether the response is accurate concerning the image content.\n"
)


def _number(value) -> str:
    """Box numbers as the release prints them: integers without a decimal point."""
    return str(int(value)) if float(value).is_integer() else f"{float(value):g}"


def box_line(region: dict, legacy: bool = False) -> str:
    """`<caption> X:<x> Y:<y> Width:<w> Height:<h>` (legacy: Height is the width, as in the release)."""
    x, y, w, h = region["bbox"]
    height = w if legacy else h
    return f"{region['caption']} X:{_number(x)} Y:{_number(y)} Width:{_number(w)} Height:{_number(height)}"


def build_prompt(regions: list[dict], instruction: str, answers: list[str], legacy: bool = False) -> str:
    """The GAVIE prompt judging `answers` (1..K, in order) to `instruction` against the image's `regions`.

    Args:
        regions (`list[dict]`): `[{"caption": str, "bbox": [x, y, w, h]}]`, as `lrv_hf.data.load_regions` returns.
        instruction (`str`): The question the answers reply to.
        answers (`list[str]`): One answer per model; their order is the `Answer1..K` numbering.
        legacy (`bool`, *optional*, defaults to `False`): Print `Height` from the width, as the released prompt does.
    """
    if not answers:
        raise ValueError("`answers` must hold at least one answer")
    boxes = "".join(box_line(region, legacy) + "\n" for region in regions)
    numbered = "".join(f"Answer{i}: {answer}\n" for i, answer in enumerate(answers, start=1))
    form = "".join(f"score of answer{i}: \nreason: \n" for i in range(1, len(answers) + 1))
    return (
        f"{HEADER}{boxes}\nHere is the instruction for the image:\n{instruction}\n\n{numbered}\n{CRITERIA}\n\n"
        f"Output format:\n\nrelevancy: \n{form}\naccuracy: \n{form}"
    )


def build_messages(regions: list[dict], instruction: str, answers: list[str], legacy: bool = False) -> list[dict]:
    """The chat messages sent to the judge: the prompt as one user turn, as the paper used it."""
    return [{"role": "user", "content": build_prompt(regions, instruction, answers, legacy)}]
