"""The Gradio page: an image and an instruction in, the base's and the LRV adapter's answers out, side by side.

Settings come from environment variables (a Space's "Variables"): `LRV_BASE_MODEL` (`REPO_ID@REVISION`),
`LRV_ADAPTERS` (comma-separated allowlist of `REPO_ID@REVISION`, the first is the default), `LRV_MAX_NEW_TOKENS`,
`LRV_MAX_IMAGE_PIXELS` (larger uploads are refused from their header, never decoded).
"""

import logging
import os
import random
import tempfile
from pathlib import Path

import gradio as gr

from ..errors import InputError
from ..infer import GenerationSettings
from .compare import MAX_IMAGE_PIXELS, MAX_PROMPT_CHARS, Comparison


logger = logging.getLogger(__name__)

# the error panel shows only when it holds a message (Markdown renders a <p> then)
CSS = "#error-panel:has(p) {border: 1px solid #dc2626; background: #fef2f2; border-radius: 8px; padding: 2px 12px}"
LAUNCH_KWARGS = {"max_file_size": "10mb", "css": CSS}  # uploads beyond 10 MB never reach the model
EXAMPLE_SEED = 7

DESCRIPTION = """\
# LRV-Instruction: base vs. LRV adapter

LRV-Instruction ([Liu et al., ICLR 2024](https://arxiv.org/abs/2306.14565)) tunes a multimodal model with *negative*
instructions too: questions about objects or attributes that are **not** in the picture. Ask about something absent
and compare: the base tends to describe it anyway, the LRV adapter should say it is not there.
Both answers come from one loaded base model, with the LoRA adapter switched off and on.
"""


def make_examples(folder: str | Path | None = None, seed: int = EXAMPLE_SEED) -> list[list[str]]:
    """Example rows `[image path, instruction]` on images this project draws itself, mostly negative instructions."""
    from ..data import synth

    folder = Path(folder or Path(tempfile.gettempdir(), "lrv-hf-demo-examples"))
    folder.mkdir(parents=True, exist_ok=True)
    rng = random.Random(seed)
    examples = []
    for k in range(3):
        scene = synth.make_scene(rng)
        while len(scene["objects"]) < 2:
            scene = synth.make_scene(rng)
        path = folder / f"example-{seed}-{k}.png"
        synth.render(scene).save(path)
        negative = synth.negative_instructions(scene, rng)
        # a nonexistent object, a wrong attribute, then one honest question for contrast
        question = [negative[0]["question"], negative[2]["question"], "Describe the image briefly."][k]
        examples.append([str(path), question])
    return examples


def comparison_from_env() -> Comparison:
    """The `Comparison` a Space's variables describe (see the module docstring)."""
    base = os.environ.get("LRV_BASE_MODEL", "").strip()
    if not base:
        raise InputError("set LRV_BASE_MODEL to the base model as REPO_ID@REVISION")
    max_new_tokens = os.environ.get("LRV_MAX_NEW_TOKENS", "128")
    if not max_new_tokens.isdigit():
        raise InputError(f"LRV_MAX_NEW_TOKENS must be a whole number, got {max_new_tokens!r}")
    max_image_pixels = os.environ.get("LRV_MAX_IMAGE_PIXELS", str(MAX_IMAGE_PIXELS))
    if not max_image_pixels.isdigit():
        raise InputError(f"LRV_MAX_IMAGE_PIXELS must be a whole number, got {max_image_pixels!r}")
    settings = GenerationSettings(max_new_tokens=int(max_new_tokens), batch_size=2)
    try:
        return Comparison(
            base, os.environ.get("LRV_ADAPTERS", ""), settings=settings, max_image_pixels=int(max_image_pixels)
        )
    except ValueError as err:
        if "`max_image_pixels`" not in str(err):
            raise
        raise InputError(str(err).replace("`max_image_pixels`", "LRV_MAX_IMAGE_PIXELS")) from None


def build_app(
    comparison: Comparison, examples: list[list[str]] | None = None, opening: dict | None = None
) -> gr.Blocks:
    """The page over a loaded `Comparison`; `examples` default to `make_examples()`; `opening` (`{"image": path,
    "instruction": text}`) fills the inputs the page opens with."""
    examples = make_examples() if examples is None else examples
    opening = opening or {}

    def compare(upload, instruction, adapter):
        # the events run unpreprocessed: Gradio's image preprocessing opens and decodes an upload in full, before any
        # size check, and its errors bypass the panel; `stream` opens the uploaded file itself, header first
        image = upload.get("path") if isinstance(upload, dict) else upload
        try:
            for base_answer, adapter_answer in comparison.stream(image, instruction, adapter):
                yield base_answer, adapter_answer, ""
        except InputError as err:
            yield "", "", f"**Cannot answer:** {err}"
        except Exception:
            logger.exception("generation failed")  # the trace goes to the Space's logs, not to the visitor
            yield "", "", "**Something went wrong while generating.** The error was logged; try again."

    with gr.Blocks(title="LRV-Instruction: base vs. LRV adapter") as app:
        gr.Markdown(DESCRIPTION)
        with gr.Row():
            with gr.Column():
                image = gr.Image(value=opening.get("image"), type="filepath", label="Image", height=320)
                instruction = gr.Textbox(
                    value=opening.get("instruction"),
                    label="Instruction",
                    max_length=MAX_PROMPT_CHARS,
                    lines=2,
                    elem_id="instruction",
                )
                adapter = gr.Dropdown(
                    choices=comparison.allowlist,
                    value=comparison.allowlist[0] if comparison.allowlist else None,
                    allow_custom_value=True,
                    label="LRV adapter (REPO_ID@REVISION from the allowlist)",
                    elem_id="adapter",
                )
                button = gr.Button("Compare", variant="primary", elem_id="compare")
            with gr.Column():
                error = gr.Markdown(elem_id="error-panel")
                base_answer = gr.Textbox(label=f"Base ({comparison.base_name})", lines=5, elem_id="base-answer")
                adapter_answer = gr.Textbox(label="With the LRV adapter", lines=5, elem_id="adapter-answer")
        gr.Examples(examples, inputs=[image, instruction], label="Examples (most ask about things not in the picture)")
        outputs = [base_answer, adapter_answer, error]
        inputs = [image, instruction, adapter]
        button.click(compare, inputs, outputs, api_name="compare", preprocess=False)
        instruction.submit(compare, inputs, outputs, api_name=False, preprocess=False)
    return app


def launch_demo(
    base: str,
    adapters: list[str],
    settings: GenerationSettings | None = None,
    examples_dir: str | Path | None = None,
    launch: bool = True,
    max_image_pixels: int = MAX_IMAGE_PIXELS,
    opening: dict | None = None,
) -> gr.Blocks:
    """The demo's entry point: load `base`, check every adapter of the allowlist now (not on the first visitor's
    click), build the page and, when `launch`, serve it (Gradio reads GRADIO_SERVER_NAME / GRADIO_SERVER_PORT).

    Args:
        base (`str`): base model as `PATH`, `REPO_ID` or `REPO_ID@REVISION`.
        adapters (`list[str]`): the adapters the page may use; the first is the default.
        settings (`GenerationSettings`, *optional*): generation settings of both answers.
        examples_dir (`str`, *optional*): where the example images are drawn (default: a temp folder).
        max_image_pixels (`int`, *optional*): larger uploads are refused from their header, before decoding.
        opening (`dict`, *optional*): `{"image": path, "instruction": text}` the page opens with.
    """
    try:
        comparison = Comparison(
            base, adapters, settings=settings or GenerationSettings(), max_image_pixels=max_image_pixels
        )
    except ValueError as err:
        if "max_image_pixels" not in str(err):
            raise
        raise InputError(str(err), "max_image_pixels") from None
    for adapter in comparison.allowlist:
        comparison.adapter(adapter)
    image = (opening or {}).get("image")
    if image and not Path(image).is_file():
        raise InputError(f"{image}: no such image file (the image the page opens on)")
    app = build_app(comparison, make_examples(examples_dir), opening)
    if launch:
        app.launch(**LAUNCH_KWARGS)
    return app
