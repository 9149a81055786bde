"""Views derived from the per-image rows: one row per instruction, and the chat view used by training and inference.

The chat view is the shape processors' chat templates and TRL expect: `messages` (role + typed content parts)
and `images` (the PIL images the `{"type": "image"}` parts refer to, in order).
"""

from datasets import Dataset, Features, List, Value

from .features import INSTRUCTION_FEATURES, INSTRUCTION_FIELDS


def explode(batch: dict) -> dict:
    """Batched `map` function: per-image rows -> one row per instruction (the image repeated)."""
    out = {name: [] for name in INSTRUCTION_FEATURES}
    for i, questions in enumerate(batch["question"]):
        for j in range(len(questions)):
            for name in ("image", "image_id", "regions"):
                out[name].append(batch[name][i])
            for name in INSTRUCTION_FIELDS:
                out[name].append(batch[name][i][j])
    return out


def instruction_view(dataset: Dataset, **map_kwargs) -> Dataset:
    """One row per instruction with scalar `question`, `answer`, `task`, `polarity`, `source`."""
    return dataset.map(
        explode, batched=True, remove_columns=dataset.column_names, features=INSTRUCTION_FEATURES, **map_kwargs
    )


def user_turn(question: str, with_image: bool = True) -> dict:
    content = [{"type": "image", "text": None}] if with_image else []
    return {"role": "user", "content": content + [{"type": "text", "text": question}]}


def assistant_turn(answer: str) -> dict:
    return {"role": "assistant", "content": [{"type": "text", "text": answer}]}


def to_messages(questions: list[str], answers: list[str | None] | None = None) -> list[dict]:
    """A conversation: the image rides on the first user turn; turns without an answer end the conversation.

    With `answers=None` it is a prompt (user turns only), as inference needs.
    """
    messages = []
    for k, question in enumerate(questions):
        messages.append(user_turn(question, with_image=k == 0))
        if answers is not None and answers[k] is not None:
            messages.append(assistant_turn(answers[k]))
    return messages


CHAT_FEATURES = Features(
    {
        "messages": List(
            {"role": Value("string"), "content": List({"type": Value("string"), "text": Value("string")})}
        ),
        "images": List(INSTRUCTION_FEATURES["image"]),
        "image_id": Value("string"),
        "task": Value("string"),
        "polarity": Value("string"),
    }
)


def _chat_batch(batch: dict, multi_turn: bool) -> dict:
    out = {name: [] for name in CHAT_FEATURES}
    for i, questions in enumerate(batch["question"]):
        answers = batch["answer"][i]
        pairs = [(q, a) for q, a in zip(questions, answers) if a is not None]
        groups = [pairs] if multi_turn else [[pair] for pair in pairs]
        for k, group in enumerate(groups):
            if not group:
                continue
            out["messages"].append(to_messages([q for q, _ in group], [a for _, a in group]))
            out["images"].append([batch["image"][i]])
            out["image_id"].append(batch["image_id"][i])
            tasks = batch["task"][i] if multi_turn else [batch["task"][i][k]]
            polarities = batch["polarity"][i] if multi_turn else [batch["polarity"][i][k]]
            out["task"].append(tasks[0] if len(set(tasks)) == 1 else None)
            out["polarity"].append(polarities[0] if len(set(polarities)) == 1 else None)
    return out


def chat_view(dataset: Dataset, multi_turn: bool = False, **map_kwargs) -> Dataset:
    """Answered instructions as conversations: one per instruction, or one multi-turn per image (`multi_turn`).

    Rows without an answer (the evaluation set) are left out: they have nothing to train on.
    """
    return dataset.map(
        _chat_batch,
        batched=True,
        fn_kwargs={"multi_turn": multi_turn},
        remove_columns=dataset.column_names,
        features=CHAT_FEATURES,
        **map_kwargs,
    )
