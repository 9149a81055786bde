"""A scripted GAVIE judge for the loopback server: deterministic scores in the several styles real judges write.

Scores derive from the answer text, so a rerun, a resumed run and an uninterrupted run must agree exactly.
"""

import re
import zlib


def answers_in(prompt: str) -> list[str]:
    return re.findall(r"^Answer\d+: (.*)$", prompt, flags=re.MULTILINE)


def scores_for(answer: str) -> tuple[int, int]:
    """(accuracy, relevancy) for an answer: a fixed function of its text."""
    digest = zlib.crc32(answer.encode())
    return digest % 11, (digest // 11) % 11


def gavie_reply(body: dict, style: str = "release") -> str:
    """A judge reply for the request `body` in one of the styles: release, markdown, blocks, accuracy_first."""
    answers = answers_in(body["messages"][-1]["content"])
    scores = [scores_for(a) for a in answers]
    if style == "markdown":
        rel = "\n".join(f"- Answer {i}: {r}/10 — follows it\n  over two lines" for i, (_, r) in enumerate(scores, 1))
        acc = "\n".join(f"- Answer {i}: {a}/10 — matches the boxes" for i, (a, _) in enumerate(scores, 1))
        return f"**Relevancy**\n{rel}\n\n**Accuracy**\n{acc}\n"
    if style == "blocks":
        return "\n".join(
            f"Answer {i}:\nAccuracy: {a}\nRelevancy: {r}\nReason: ok" for i, (a, r) in enumerate(scores, 1)
        )
    rel = "".join(
        f"score of answer{i}: {r}\nreason: it follows the instruction.\n" for i, (_, r) in enumerate(scores, 1)
    )
    acc = "".join(f"score of answer{i}: {a}\nreason: it matches the image.\n" for i, (a, _) in enumerate(scores, 1))
    if style == "accuracy_first":
        return f"Accuracy:\n{acc}\nRelevancy:\n{rel}"
    return f"relevancy: \n{rel}\naccuracy: \n{acc}"
