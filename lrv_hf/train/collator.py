"""The training collator: chat template -> processor batch with labels on the assistant's answers only.

It works with any processor whose chat template renders each conversation prefix as a prefix of the whole: the
answer spans come from rendering the prefixes, the tokens come from the tokenizer's offsets, and the processor's
image-token expansion is matched from the end of the sequence, where the text after the image sits unchanged.
"""

import torch
from transformers import ProcessorMixin


IGNORE_INDEX = -100


# private-use code points stand in for the answers: no real text holds them and templates copy them verbatim
SENTINEL = "\ue000{}\ue001"


def _answer_text(message: dict) -> str:
    content = message["content"]
    return content if isinstance(content, str) else "".join(p["text"] for p in content if p["type"] == "text")


def answer_spans(
    processor: ProcessorMixin, messages: list[dict], gaps: dict | None = None
) -> tuple[str, list[tuple[int, int]]]:
    """The rendered conversation and the character spans the model must learn: each answer and its end-of-turn.

    A span runs from the end of the rendered prompt (`add_generation_prompt=True`) to the end of the rendered turn,
    so the end-of-turn token is learnt too (without it the model never stops). The conversation is rendered once with
    a sentinel in place of each answer; what the template writes around an answer is learnt from rendering the first
    exchange with and without its answer, and kept in `gaps` (a dict the caller reuses) so later conversations need
    one render each. A template for which that does not check out falls back to rendering every prefix.
    """
    assistant = [k for k, message in enumerate(messages) if message["role"] == "assistant"]
    if not assistant:
        return processor.apply_chat_template(messages, tokenize=False), []
    return _sentinel_spans(processor, messages, assistant, {} if gaps is None else gaps) or _prefix_spans(
        processor, messages
    )


def _sentinel_spans(processor, messages: list[dict], assistant: list[int], gaps: dict) -> tuple[str, list] | None:
    marked = list(messages)
    for i, k in enumerate(assistant):
        marked[k] = {"role": "assistant", "content": [{"type": "text", "text": SENTINEL.format(i)}]}
    rendered = processor.apply_chat_template(marked, tokenize=False)
    answers = [_answer_text(messages[k]) for k in assistant]
    check = None
    if not gaps:
        first = assistant[0]
        prompt = processor.apply_chat_template(messages[:first], tokenize=False, add_generation_prompt=True)
        turn = processor.apply_chat_template(messages[: first + 1], tokenize=False)
        before = rendered.find(SENTINEL.format(0)) - len(prompt)  # template text between the prompt and the answer
        after = len(turn) - len(prompt) - before - len(answers[0])  # the end-of-turn text
        if before < 0 or after < 0 or not turn.startswith(prompt):
            return None
        gaps.update(before=turn[len(prompt) : len(prompt) + before], after=turn[len(turn) - after :])
        check = (turn, len(prompt))
    gap_before, gap_after = gaps["before"], gaps["after"]
    before, after = len(gap_before), len(gap_after)
    pieces, spans, cursor, length = [], [], 0, 0
    for i, answer in enumerate(answers):
        mark = SENTINEL.format(i)
        pos = rendered.find(mark, cursor)
        end = pos + len(mark)
        if pos < 0 or rendered[pos - before : pos] != gap_before or rendered[end : end + after] != gap_after:
            return None
        pieces += [rendered[cursor:pos], answer]
        length += pos - cursor
        spans.append((length - before, length + len(answer) + after))
        length += len(answer)
        cursor = end
    text = "".join(pieces) + rendered[cursor:]
    if check and (not text.startswith(check[0]) or spans[0] != (check[1], len(check[0]))):
        gaps.clear()
        return None
    return text, spans


def _prefix_spans(processor, messages: list[dict]) -> tuple[str, list[tuple[int, int]]]:
    text = processor.apply_chat_template(messages, tokenize=False)
    spans, cursor = [], 0
    for k, message in enumerate(messages):
        if message["role"] != "assistant":
            continue
        prompt = processor.apply_chat_template(messages[:k], tokenize=False, add_generation_prompt=True)
        turn = processor.apply_chat_template(messages[: k + 1], tokenize=False)
        if text.startswith(turn) and turn.startswith(prompt):
            spans.append((len(prompt), len(turn)))
        else:
            # templates that render a turn differently once later turns follow: find the answer text itself
            answer = _answer_text(message)
            start = text.find(answer, cursor)
            if start < 0:
                raise ValueError(f"answer {answer[:40]!r} not found in the rendered conversation")
            spans.append((start, start + len(answer)))
        cursor = spans[-1][1]
    return text, spans


def first_question(messages: list[dict]) -> str:
    user = next(m for m in messages if m["role"] == "user")
    return " ".join(p["text"] for p in user["content"] if p["type"] == "text")


class AnswerOnlyCollator:
    """Collate chat rows (`messages`, `images`) into a padded processor batch whose `labels` cover only answers.

    Args:
        processor (`ProcessorMixin`):
            The model's processor; its tokenizer pads on the right for training.
        max_length (`int`, *optional*):
            Cut every sequence to this many tokens (the answers' tails; see `overlong_split`, which decides before
            training what fits). Without it nothing is cut: cutting image tokens would break the model's
            image-feature/image-token match, so samples must be sized before batching, never here.
    """

    def __init__(self, processor: ProcessorMixin, max_length: int | None = None):
        self.processor = processor
        self.tokenizer = processor.tokenizer
        self.tokenizer.padding_side = "right"
        self.max_length = max_length
        image_token = getattr(processor, "image_token", None)
        self.image_token = getattr(image_token, "content", image_token)  # InstructBLIP keeps an AddedToken
        self.image_token_id = self.tokenizer.convert_tokens_to_ids(self.image_token) if self.image_token else None
        self.offsets = True  # whether the processor returns character offsets (fast tokenizers do)
        self.gaps = {}  # what the chat template writes around an answer, learnt on the first conversation

    def _add_special_tokens(self, text: str) -> bool:
        # templates that write the BOS themselves must not get a second one from the tokenizer
        bos = self.tokenizer.bos_token
        return not (bos and text.startswith(bos))

    def _labels_before_expansion(self, rendered: list[tuple[str, list]]) -> list[tuple[list[int], list[int]]]:
        """Token ids of each text as the tokenizer sees it (one token per image placeholder) and their labels."""
        texts = [text for text, _ in rendered]
        encodings = self.tokenizer(
            texts, add_special_tokens=self._add_special_tokens(texts[0]), return_offsets_mapping=True, verbose=False
        )
        out = []
        for (_, spans), ids, offsets in zip(rendered, encodings["input_ids"], encodings["offset_mapping"]):
            labels = [
                token if end > begin and any(start <= begin < stop for start, stop in spans) else IGNORE_INDEX
                for token, (begin, end) in zip(ids, offsets)
            ]
            out.append((ids, labels))
        return out

    def _process(self, texts: list[str], images: list[list]) -> dict:
        kwargs = {"images": images} if any(images) else {}
        kwargs.update(
            text=texts, padding=True, return_tensors="pt", add_special_tokens=self._add_special_tokens(texts[0])
        )
        if self.offsets:
            try:
                return self.processor(return_offsets_mapping=True, **kwargs)
            except (NotImplementedError, TypeError, ValueError):
                self.offsets = False
        return self.processor(**kwargs)

    def _labels_from_offsets(self, batch: dict, rendered: list[tuple[str, list]]) -> torch.Tensor:
        """Labels from the processor's own offsets: one tokenization per step instead of two.

        The offsets count characters of the text after image-placeholder expansion; the expansion lies before the
        first answer, so the answer spans move by the length it added. A row where that does not hold (an image
        after the first answer) is labelled by aligning with the unexpanded tokenization instead.
        """
        offsets = batch.pop("offset_mapping")
        labels = torch.full_like(batch["input_ids"], IGNORE_INDEX)
        for row, (text, spans) in enumerate(rendered):
            if not spans:
                continue
            begin, end = offsets[row, :, 0], offsets[row, :, 1]
            attended = batch["attention_mask"][row].bool()
            # the text's last token ends where the expanded text ends (padding is on the right; tokens a processor
            # prepends without text, like InstructBLIP's query tokens, carry offsets into a string of their own)
            shift = int(end[attended.nonzero().max()]) - len(text)
            last_image = text.rfind(self.image_token) if self.image_token else -1
            if shift < 0 or (shift > 0 and not 0 <= last_image < spans[0][0]):
                labels[row] = self._labels_by_alignment(batch, [(text, spans)], [row])[0]
                continue
            learnt = torch.zeros_like(begin, dtype=torch.bool)
            for start, stop in spans:
                learnt |= (begin - shift >= start) & (begin - shift < stop)
            learnt &= (end > begin) & attended
            if self.image_token_id is not None:
                learnt &= batch["input_ids"][row] != self.image_token_id
            labels[row, learnt] = batch["input_ids"][row, learnt]
        return labels

    def _labels_by_alignment(self, batch: dict, rendered: list[tuple[str, list]], rows: list[int]) -> torch.Tensor:
        """Labels by tokenizing the unexpanded text and matching it to the batch from the end of each sequence."""
        labels = torch.full((len(rows), batch["input_ids"].shape[1]), IGNORE_INDEX)
        lengths = batch["attention_mask"].sum(dim=1).tolist()
        for out, ((ids, row_labels), row) in enumerate(zip(self._labels_before_expansion(rendered), rows)):
            # the processor expands image placeholders; the text after the last one is tokenized identically
            tail = len(ids)  # tokens after the last image placeholder (all of them when it is not in the text)
            if self.image_token_id is not None and self.image_token_id in ids:
                tail = ids[::-1].index(self.image_token_id)
            length = lengths[row]
            expanded = batch["input_ids"][row, :length].tolist()
            if tail and expanded[length - tail :] != ids[len(ids) - tail :]:
                raise RuntimeError("the processor tokenized the text after the image differently from the tokenizer")
            labels[out, length - tail : length] = torch.tensor(row_labels[len(ids) - tail :])
        return labels

    def __call__(self, features: list[dict]) -> dict:
        batch = self._collate(features)
        if self.max_length is not None and batch["input_ids"].shape[1] > self.max_length:
            # padding is on the right and images come before the first answer, so the cut takes answer text only
            length = batch["input_ids"].shape[1]
            for key, value in batch.items():
                if (
                    torch.is_tensor(value)
                    and value.dim() == 2
                    and value.shape[1] == length
                    and key != "pixel_values"
                    and not key.startswith("qformer")
                ):
                    batch[key] = value[:, : self.max_length]
        return batch

    def _collate(self, features: list[dict]) -> dict:
        rendered = [answer_spans(self.processor, f["messages"], self.gaps) for f in features]
        batch = self._process([text for text, _ in rendered], [list(f.get("images") or []) for f in features])
        if "offset_mapping" in batch:
            batch["labels"] = self._labels_from_offsets(batch, rendered)
        else:
            batch["labels"] = self._labels_by_alignment(batch, rendered, list(range(len(rendered))))
        if "qformer_input_ids" in batch:
            # InstructBLIP's Q-Former reads the instruction; given the whole rendered text it would see the answers
            questions = [first_question(f["messages"]) for f in features]
            qformer = self.processor.qformer_tokenizer(questions, padding=True, return_tensors="pt")
            batch["qformer_input_ids"], batch["qformer_attention_mask"] = qformer.input_ids, qformer.attention_mask
        return batch

    def measure(self, features: list[dict]) -> list[tuple[int, int]]:
        """(length in tokens, position of the first learnt token) of each sample, image tokens included.

        The position tells whether cutting at `max_length` would keep any answer; a sample without answers reports
        its length there.
        """
        batch = self._collate(features)
        out = []
        for row in range(len(features)):
            length = int(batch["attention_mask"][row].sum())
            learnt = (batch["labels"][row] != IGNORE_INDEX).nonzero()
            out.append((length, int(learnt[0]) if len(learnt) else length))
        return out
