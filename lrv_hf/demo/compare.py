"""One base model answering with its LoRA switched off and on, side by side, streamed token by token.

The base loads once; each allowlisted adapter is fetched (safetensors only, trained on this base) and added to it
the first time it is asked for, so switching adapters never reloads the base. Both answers come from one
mixed-adapter batch (row 0 without LoRA, row 1 with it), so they stream together for the cost of one generation.
"""

import logging
import os
import queue
import threading
from collections.abc import Iterator
from pathlib import Path

from PIL import Image, UnidentifiedImageError

from ..adapters import ModelRef, check_base, fetch_adapter
from ..errors import InputError
from ..infer import GenerationSettings, render_prompts


logger = logging.getLogger(__name__)

MAX_IMAGE_SIDE = 4096  # larger uploads are refused, not silently shrunk: a 7B model sees 336 px anyway
MAX_IMAGE_PIXELS = MAX_IMAGE_SIDE**2  # checked from the header, before anything is decoded
MAX_PROMPT_CHARS = 1000
BASE = "__base__"  # peft's name for "no adapter" in a mixed-adapter batch

try:  # ZeroGPU: a GPU is attached only while a `spaces.GPU` function runs; elsewhere the decorator is a no-op
    import spaces

    gpu = spaces.GPU(duration=120)
except ImportError:

    def gpu(fn):
        return fn


def parse_allowlist(text: str | list[str] | None) -> list[str]:
    """Adapters as `REPO_ID@REVISION` (or local paths), from a comma/newline-separated string or a list."""
    if text is None:
        return []
    entries = text if isinstance(text, list) else text.replace("\n", ",").split(",")
    return [str(ModelRef.parse(entry)) for entry in entries if entry.strip()]


class PairStreamer:
    """A `generate` streamer for a batch of two: after each step, both rows' texts so far go into a queue."""

    def __init__(self, tokenizer):
        self.tokenizer = tokenizer
        self.tokens = [[], []]
        self.queue = queue.Queue()
        self.prompt_seen = False

    def put(self, value):
        if not self.prompt_seen:  # the first call carries the prompt
            self.prompt_seen = True
            return
        for row, token in enumerate(value.reshape(len(self.tokens), -1)[:, -1].tolist()):
            self.tokens[row].append(token)
        # a character split over byte-level tokens decodes as U+FFFD until its last byte arrives: hold it back
        self.queue.put(tuple(text.rstrip("\ufffd") for text in self.texts()))

    def texts(self) -> tuple[str, str]:
        return tuple(self.tokenizer.decode(t, skip_special_tokens=True).strip() for t in self.tokens)

    def end(self):
        self.queue.put(self.texts())
        self.queue.put(None)


class Comparison:
    """The loaded base, its processor, the adapter allowlist and the adapters loaded so far.

    Args:
        base (`str`): `PATH`, `REPO_ID` or `REPO_ID@REVISION`, loaded once with `from_pretrained`.
        allowlist (`list[str]`): adapters that may be fetched, as `REPO_ID@REVISION` or local paths.
        settings (`GenerationSettings`, *optional*): greedy, 128 new tokens by default.
        max_image_pixels (`int`, *optional*, defaults to `MAX_IMAGE_PIXELS`): larger images are refused from their
            header, never decoded; at most PIL's own limit, `PIL.Image.MAX_IMAGE_PIXELS`.
    """

    def __init__(
        self,
        base: str,
        allowlist: list[str],
        settings: GenerationSettings | None = None,
        dtype: str = "auto",
        token: str | None = None,
        max_image_pixels: int = MAX_IMAGE_PIXELS,
    ):
        import torch
        from transformers import AutoModelForImageTextToText, AutoProcessor

        # above PIL's limit, PIL warns when it opens the file (and refuses at twice it), before our check could run
        ceiling = Image.MAX_IMAGE_PIXELS or 2**63
        whole = isinstance(max_image_pixels, int) and not isinstance(max_image_pixels, bool)
        if not whole or not 1 <= max_image_pixels <= ceiling:
            raise ValueError(f"`max_image_pixels` must be a whole number of pixels from 1 to {ceiling:,}")
        self.max_image_pixels = max_image_pixels
        self.base_ref = ModelRef.parse(base)
        self.allowlist = parse_allowlist(allowlist)
        self.settings = settings or GenerationSettings()
        self.token = token or os.environ.get("HF_TOKEN")
        kwargs = {"revision": self.base_ref.revision, "token": self.token}
        try:
            self.processor = AutoProcessor.from_pretrained(self.base_ref.name, **kwargs)
            self.model = AutoModelForImageTextToText.from_pretrained(
                self.base_ref.name, dtype=dtype, use_safetensors=True, **kwargs
            )
        except OSError as err:
            raise InputError(f"base model {self.base_ref}: cannot be loaded ({str(err).splitlines()[0]})") from None
        self.processor.tokenizer.padding_side = "left"
        self.model = self.model.to("cuda" if torch.cuda.is_available() else "cpu").eval()
        self.base_model = self.model  # kept to show (and test) that adapters never replace it
        self.adapters: dict[str, str] = {}  # allowlist entry -> peft adapter name
        self.lock = threading.Lock()  # one generation or adapter load at a time: LoRA hooks are model-wide state

    @property
    def base_name(self) -> str:
        return str(self.base_ref)

    def adapter(self, spec: str) -> str:
        """The peft adapter name of an allowlisted adapter, fetching and adding it to the base on first use.

        Raises:
            `InputError`: not allowlisted, not fetchable, pickle weights, or trained on another base.
        """
        spec = (spec or "").strip()
        if not spec:
            raise InputError("choose an adapter")
        key = str(ModelRef.parse(spec))
        if key not in self.allowlist:
            raise InputError(f"adapter {key} is not in this demo's allowlist ({', '.join(self.allowlist) or 'empty'})")
        if key in self.adapters:
            return self.adapters[key]
        folder = fetch_adapter(key, token=self.token)
        check_base(folder, self.base_ref.name, key)
        name = f"adapter_{len(self.adapters)}"
        try:
            if not self.adapters:
                from peft import PeftModel

                self.model = PeftModel.from_pretrained(self.base_model, folder, adapter_name=name).eval()
            else:
                self.model.load_adapter(folder, adapter_name=name)
        except (ValueError, KeyError, RuntimeError) as err:
            raise InputError(f"adapter {key}: does not fit the base {self.base_name} ({err})") from None
        self.model.eval()
        self.adapters[key] = name
        logger.info("added adapter %s as %s (the base was not reloaded)", key, name)
        return name

    def check_size(self, image: Image.Image):
        """Refuses an image too large by its size alone, which an opened file knows from its header."""
        pixels = image.width * image.height
        if pixels > self.max_image_pixels:
            raise InputError(
                f"the image is {image.width}x{image.height} px ({pixels:,} pixels); "
                f"the limit is {self.max_image_pixels:,} pixels"
            )
        if max(image.size) > MAX_IMAGE_SIDE:
            raise InputError(f"the image is {image.width}x{image.height} px; the limit is {MAX_IMAGE_SIDE} px a side")

    def open_image(self, path: str | Path) -> Image.Image:
        """The image file at `path`, its size checked from the header before it is decoded, as RGB.

        Raises:
            `InputError`: not an image, larger than the limits, or damaged; the message never names the path (it is
            the server's upload folder).
        """
        try:
            image = Image.open(path)
        except Image.DecompressionBombError:
            raise InputError(
                f"the image has over {2 * Image.MAX_IMAGE_PIXELS:,} pixels; the limit is {self.max_image_pixels:,} pixels"
            ) from None
        except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as err:
            logger.info("refused an upload that is not an image: %s", err)
            raise InputError(
                "the upload is not an image this demo can read (PNG, JPEG, WebP, GIF, BMP, ...)"
            ) from None
        with image:
            self.check_size(image)
            try:
                return image.convert("RGB")  # the decode: only now, within the limits
            except (OSError, SyntaxError, ValueError) as err:
                logger.info("refused a damaged image: %s", err)
                raise InputError("the image is damaged: its data ends or breaks before the picture does") from None

    def check_inputs(self, image: str | Path | Image.Image | None, instruction: str | None) -> tuple[Image.Image, str]:
        """The image (a file path, opened here header first, or an image already in memory) as RGB, and the
        stripped instruction; `InputError` for anything the demo refuses."""
        if image is None or image == "":
            raise InputError("add an image")
        instruction = (instruction or "").strip()
        if not instruction:
            raise InputError("write an instruction")
        if len(instruction) > MAX_PROMPT_CHARS:
            raise InputError(f"the instruction has {len(instruction)} characters; the limit is {MAX_PROMPT_CHARS}")
        if isinstance(image, Image.Image):
            self.check_size(image)
            return image.convert("RGB"), instruction
        return self.open_image(image), instruction

    def stream(
        self, image: str | Path | Image.Image | None, instruction: str | None, adapter: str
    ) -> Iterator[tuple[str, str]]:
        """`(base answer so far, adapter answer so far)` after each generated token.

        Raises:
            `InputError`: a bad image or instruction, or an adapter that cannot be used (see `adapter`).
        """
        image, instruction = self.check_inputs(image, instruction)
        with self.lock:
            name = self.adapter(adapter)
        yield from _generate_pair(self, image, instruction, name)


@gpu
def _generate_pair(comparison: Comparison, image: Image.Image, instruction: str, name: str):
    import torch

    processor, model = comparison.processor, comparison.model
    inputs = processor(
        images=[image, image], text=render_prompts(processor, [instruction]) * 2, padding=True, return_tensors="pt"
    ).to(model.device)
    if "pixel_values" in inputs:
        inputs["pixel_values"] = inputs["pixel_values"].to(model.dtype)
    streamer = PairStreamer(processor.tokenizer)
    failure = []

    def work():
        try:
            with torch.inference_mode():
                model.generate(
                    **inputs,
                    **comparison.settings.generate_kwargs(),
                    pad_token_id=processor.tokenizer.pad_token_id,
                    adapter_names=[BASE, name],
                    streamer=streamer,
                )
        except Exception as err:  # re-raised in the caller's thread, where Gradio reports it
            failure.append(err)
            streamer.queue.put(None)
        finally:
            comparison.lock.release()

    comparison.lock.acquire()
    threading.Thread(target=work, daemon=True).start()
    while (texts := streamer.queue.get()) is not None:
        yield texts
    if failure:
        raise failure[0]
