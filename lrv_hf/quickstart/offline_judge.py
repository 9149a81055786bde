"""The quickstart's offline stand-in for a GAVIE judge: scores read from the dense captions, served on 127.0.0.1.

It is no language model: it checks the colours and shapes an answer asserts (or denies) against the synthetic
captions, so offline scores are deterministic and mean something on this data, and only on this data.
"""

import re

from ..data import synth
from ..testing.judge_replies import answers_in


MODEL = "offline-caption-judge"  # its own name, so its cached replies never pass for a real judge's
SHAPES = "|".join(synth.SHAPES)
COLORS = "|".join(synth.COLORS)
# an optional negation, an optional colour, then a shape: "no kite", "not a red ball", "the blue box"
MENTION = re.compile(rf"\b(?:(no|not)\s+(?:an?\s+|the\s+)?)?(?:({COLORS})\s+)?({SHAPES})s?\b")
ATTRIBUTE = re.compile(rf"\b({SHAPES}) is (not )?({COLORS})\b")  # "the ball is red", "the box is not green"


def scene_of(prompt: str) -> dict[str, set[str]]:
    """shape -> colours drawn, from the prompt's `bounding box:` lines ("a red ball X:.. Y:..")."""
    boxes = prompt.split("bounding box:\n", 1)[1].split("\nHere is the instruction", 1)[0]
    scene: dict[str, set[str]] = {}
    for line in boxes.splitlines():
        for _, color, shape in MENTION.findall(line.lower()):
            scene.setdefault(shape, set()).update({color} if color else set())
    return scene


def accuracy(answer: str, question: str, scene: dict[str, set[str]]) -> int:
    """0-10: the share of the answer's claims the captions bear out (a bare "yes"/"no" claims the question)."""
    text = answer.lower()
    claims = []  # (shape, colour or "", asserted present?)
    for negation, color, shape in MENTION.findall(text):
        claims.append((shape, color, not negation))
    claims += [(shape, color, not negation) for shape, negation, color in ATTRIBUTE.findall(text)]
    verdict = re.match(r"\W*(yes|no|true|false)\b", text)
    asked = MENTION.findall(question.lower())
    if verdict and asked:
        _, color, shape = asked[-1]
        # "Is the ball red?" names the colour after the shape
        color = color or next(iter(re.findall(rf"\b({COLORS})\b", question.lower())), "")
        claims.append((shape, color, verdict.group(1) in ("yes", "true")))
    if not claims:
        return 0 if not text.strip() else 5  # nothing checkable: neither right nor wrong
    right = sum(
        (shape in scene and (not color or color in scene[shape])) == present for shape, color, present in claims
    )
    return round(10 * right / len(claims))


def relevancy(answer: str, question: str) -> int:
    """0-10: a yes/no question answered yes or no, and an answer that speaks of what was asked about."""
    text, question = answer.lower().strip(), question.lower()
    if not text:
        return 0
    score = 10
    if re.match(r"(is|are|can|does|do)\b", question) and not re.match(r"\W*(yes|no)\b", text):
        score -= 4
    asked = {shape for _, _, shape in MENTION.findall(question)}
    if asked and not asked & {shape for _, _, shape in MENTION.findall(text)}:
        score -= 4
    return score


def reply(body: dict) -> str:
    """The judge's reply to a GAVIE request, in the release's output format."""
    prompt = body["messages"][-1]["content"]
    question = prompt.split("Here is the instruction for the image:\n", 1)[1].split("\n", 1)[0]
    scene, answers = scene_of(prompt), answers_in(prompt)
    rel = "".join(f"score of answer{i}: {relevancy(a, question)}\nreason: offline\n" for i, a in enumerate(answers, 1))
    acc = "".join(
        f"score of answer{i}: {accuracy(a, question, scene)}\nreason: offline\n" for i, a in enumerate(answers, 1)
    )
    return f"relevancy: \n{rel}\naccuracy: \n{acc}"
