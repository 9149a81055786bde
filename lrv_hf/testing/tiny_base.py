"""The tiny base that sees: a tiny `LlavaForConditionalGeneration` pre-trained on synthetic scenes, shipped as safetensors.

A random-init tiny LLaVA cannot tell a ball from a box, so adapters tuned on it show nothing. This module pre-trains
one in two seeded stages on positive data only (no yes/no questions, so the base stays neutral), as issue 15 measured:

1. the CLIP tower alone, with a throw-away linear head on each patch token LLaVA passes on (max over patches), on
   53 presence labels (5 shapes, 8 colours, 40 colour-shape pairs): dense labels teach it to see in minutes;
2. tower frozen: projector + language model + `lm_head` on captions, "What color is the <shape>?" (answered colour
   first: "Red, the ball is red.") and "Which shapes are in the image?", through the real chat template and
   answer-only collator. The colour-first answers make the model find a *named* object at the answer's first word,
   which is where a yes/no answer is decided; the adapters build on that look-up.

Rebuild the shipped copy (8 minutes on one thread of a 2-core box; the same seed gives the same weights, see
BENCHMARKS.md)::

    python -m lrv_hf.testing.tiny_base --output lrv_hf/testing/tiny_base --threads 1
"""

import argparse
import logging
import math
import random
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch import nn

from ..data import synth
from ..data.views import to_messages
from .tiny import build_tiny_processor, tiny_llava_config


logger = logging.getLogger(__name__)

SHIPPED = Path(__file__).with_name("tiny_base")
COLORS = sorted(synth.COLORS)
PAIRS = [(color, shape) for color in COLORS for shape in synth.SHAPES]
NUM_LABELS = len(synth.SHAPES) + len(COLORS) + len(PAIRS)  # 53
VISION_WIDTH = 64  # the 32-wide tower of the random tiny model does not learn to see shapes reliably (issue 15)
TURN_WEIGHTS = (1, 2, 1)  # stage 1: captions, colour questions, shape listings
LANGUAGE_WARMUP_STEPS = 50


@dataclass
class TinyBaseConfig:
    """How the tiny base is pre-trained; the defaults rebuild the shipped copy."""

    seed: int = field(default=0, metadata={"help": "seed of the scenes, the initial weights and the batch order"})
    num_scenes: int = field(default=20_000, metadata={"help": "synthetic scenes the tower is trained on"})
    vision_steps: int = field(default=2000, metadata={"help": "stage 0: tower steps on the presence labels"})
    vision_batch_size: int = field(default=128, metadata={"help": "stage 0 batch size"})
    vision_learning_rate: float = field(default=3e-3, metadata={"help": "stage 0 AdamW learning rate (cosine)"})
    language_steps: int = field(default=2500, metadata={"help": "stage 1: projector + LM steps on descriptions"})
    language_batch_size: int = field(default=32, metadata={"help": "stage 1 batch size"})
    language_learning_rate: float = field(default=2e-3, metadata={"help": "stage 1 AdamW learning rate (cosine)"})

    def __post_init__(self):
        for name in ("num_scenes", "vision_batch_size", "language_batch_size"):
            if getattr(self, name) < 1:
                raise ValueError(f"`{name}` must be at least 1, got {getattr(self, name)}")
        for name in ("vision_steps", "language_steps"):
            if getattr(self, name) < 0:
                raise ValueError(f"`{name}` must be 0 or more, got {getattr(self, name)}")


def tiny_base_path() -> Path:
    """The folder of the shipped tiny base (`config.json`, `model.safetensors`, tokenizer and processor files)."""
    return SHIPPED


def load_tiny_base():
    """The shipped tiny base and its processor, loaded offline from the package."""
    from transformers import AutoProcessor, LlavaForConditionalGeneration

    return LlavaForConditionalGeneration.from_pretrained(SHIPPED).eval(), AutoProcessor.from_pretrained(SHIPPED)


def copy_tiny_base(path: str | Path) -> Path:
    """Copy the shipped tiny base to `path` (a run's `base` folder, so its adapter's base path resolves there)."""
    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    for file in SHIPPED.iterdir():
        if file.is_file():
            shutil.copy2(file, path / file.name)
    return path


def presence_labels(scene: dict) -> torch.Tensor:
    """The 53 multi-hot presence labels of a scene: shapes, colours, colour-shape pairs."""
    labels = torch.zeros(NUM_LABELS)
    for obj in scene["objects"]:
        labels[synth.SHAPES.index(obj["name"])] = 1
        labels[len(synth.SHAPES) + COLORS.index(obj["color"])] = 1
        labels[len(synth.SHAPES) + len(COLORS) + PAIRS.index((obj["color"], obj["name"]))] = 1
    return labels


def description_turn(scene: dict, rng: random.Random) -> tuple[str, str]:
    """One positive question about the scene and its true answer; never a yes/no question.

    Half the questions name a drawn object and ask its colour, and the answer *starts* with the colour ("Red, the
    ball is red."): to say its first word the model must find the named object in the image, the look-up a yes/no
    answer needs at the same place. With the colour last ("The ball is red.") the model reads the shape from its own
    answer instead, and LoRA on top of it stayed at chance (BENCHMARKS.md, "Tiny base").
    """
    objects = scene["objects"]
    kind = rng.choices(range(3), weights=TURN_WEIGHTS)[0]
    if kind == 0:
        listing = " and ".join(f"a {o['color']} {o['name']}" for o in objects)
        return "Describe the image briefly.", f"{listing.capitalize()} on a {scene['background']} background."
    if kind == 1:
        obj = rng.choice(objects)
        return (
            f"What color is the {obj['name']}?",
            f"{obj['color'].capitalize()}, the {obj['name']} is {obj['color']}.",
        )
    shapes = " and ".join(f"a {o['name']}" for o in sorted(objects, key=lambda o: synth.SHAPES.index(o["name"])))
    return "Which shapes are in the image?", f"{shapes.capitalize()}."


def _scenes(count: int, rng: random.Random) -> list[dict]:
    scenes = []
    while len(scenes) < count:
        scene = synth.make_scene(rng)
        if len(scene["objects"]) >= 2:  # the release draws only scenes with two objects or more
            scenes.append(scene)
    return scenes


def _cosine(optimizer, steps: int, warmup: int = 0):
    steps = max(1, steps)
    return torch.optim.lr_scheduler.LambdaLR(
        optimizer,
        lambda s: (
            min(1.0, (s + 1) / warmup if warmup else 1.0) * 0.5 * (1 + math.cos(math.pi * min(s, steps) / steps))
        ),
    )


def _pixels(processor, scenes: list[dict]) -> torch.Tensor:
    images = [synth.render(scene) for scene in scenes]
    return processor.image_processor(images, return_tensors="pt")["pixel_values"]


def _patch_features(model, pixel_values: torch.Tensor) -> torch.Tensor:
    # the features LLaVA hands the projector: the configured layer's hidden states without the CLS token
    out = model.model.vision_tower(pixel_values, output_hidden_states=True)
    return out.hidden_states[model.config.vision_feature_layer][:, 1:]


def train_tower(model, processor, scenes: list[dict], config: TinyBaseConfig) -> dict:
    """Stage 0: the tower and a throw-away per-patch head on the presence labels (BCE on the max over patches)."""
    pixels = torch.cat([_pixels(processor, scenes[i : i + 1000]) for i in range(0, len(scenes), 1000)])
    labels = torch.stack([presence_labels(scene) for scene in scenes])
    held = max(1, len(scenes) // 20)  # the last 5% of scenes measure how well the tower sees
    head = nn.Linear(model.config.vision_config.hidden_size, NUM_LABELS)
    tower = model.model.vision_tower
    params = list(tower.parameters()) + list(head.parameters())
    optimizer = torch.optim.AdamW(params, lr=config.vision_learning_rate, weight_decay=0.0)
    scheduler = _cosine(optimizer, config.vision_steps)
    generator = torch.Generator().manual_seed(config.seed)
    tower.train()
    for step in range(config.vision_steps):
        index = torch.randint(0, len(scenes) - held, (config.vision_batch_size,), generator=generator)
        logits = head(_patch_features(model, pixels[index])).amax(dim=1)
        loss = nn.functional.binary_cross_entropy_with_logits(logits, labels[index])
        _update(loss, optimizer, scheduler)
        if step % 100 == 0:
            logger.info("tower step %d: loss %.4f", step, loss.item())
    tower.eval()
    with torch.no_grad():
        predicted = head(_patch_features(model, pixels[-held:])).amax(dim=1) > 0
    truth = labels[-held:].bool()
    shapes = slice(0, len(synth.SHAPES))
    colors = slice(len(synth.SHAPES), len(synth.SHAPES) + len(COLORS))
    return {
        f"{name}_f1": _f1(predicted[:, part], truth[:, part]) for name, part in (("shape", shapes), ("color", colors))
    }


def _f1(predicted: torch.Tensor, truth: torch.Tensor) -> float:
    tp = (predicted & truth).sum().item()
    return 2 * tp / max(1, predicted.sum().item() + truth.sum().item())


def train_language(model, processor, scenes: list[dict], config: TinyBaseConfig, turn=None) -> float:
    """Stage 1, tower frozen: projector + LM + `lm_head` learn to describe scenes (answer-only loss).

    `turn(scene, rng) -> (question, answer)` draws each example; `description_turn` when None (other stage-1 mixes are
    tried with `benchmarks/tiny_base_lab.py`).
    """
    from ..train.collator import AnswerOnlyCollator

    turn = turn or description_turn
    collator = AnswerOnlyCollator(processor, max_length=256)
    for param in model.model.vision_tower.parameters():
        param.requires_grad_(False)
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=config.language_learning_rate, weight_decay=0.0)
    scheduler = _cosine(optimizer, config.language_steps, warmup=LANGUAGE_WARMUP_STEPS)
    rng = random.Random(f"{config.seed}:language")
    model.train()
    loss = torch.tensor(float("nan"))
    for step in range(config.language_steps):
        rows = []
        for scene in rng.sample(scenes, config.language_batch_size):
            question, answer = turn(scene, rng)
            rows.append({"messages": to_messages([question], [answer]), "images": [synth.render(scene)]})
        batch = collator(rows)
        loss = model(**batch).loss
        _update(loss, optimizer, scheduler)
        if step % 100 == 0:
            logger.info("language step %d: loss %.4f", step, loss.item())
    model.eval()
    for param in model.parameters():
        param.requires_grad_(True)
    return loss.item()


def untrained_model(processor, seed: int):
    """The tiny base's architecture (the 64-wide tower), freshly initialised from `seed`, before either stage."""
    from transformers import LlavaForConditionalGeneration

    torch.manual_seed(seed)
    model = LlavaForConditionalGeneration(
        tiny_llava_config(
            processor.tokenizer, vision_hidden_size=VISION_WIDTH, vision_intermediate_size=4 * VISION_WIDTH
        )
    )
    for key in ("bos_token_id", "eos_token_id", "pad_token_id"):
        setattr(model.generation_config, key, getattr(processor.tokenizer, key))
    return model


def pretraining_scenes(config: TinyBaseConfig) -> list[dict]:
    """The seeded synthetic scenes both stages train on."""
    return _scenes(config.num_scenes, random.Random(f"tiny-base:{config.seed}"))


def _update(loss: torch.Tensor, optimizer, scheduler) -> None:
    optimizer.zero_grad()
    loss.backward()
    optimizer.step()
    scheduler.step()


def build_tiny_base(output: str | Path, config: TinyBaseConfig | None = None) -> dict:
    """Pre-train the tiny base (stages 0 and 1) and save it with its processor to `output`; returns the figures."""
    config = config or TinyBaseConfig()
    processor = build_tiny_processor()
    model = untrained_model(processor, config.seed)
    scenes = pretraining_scenes(config)
    figures = {}
    start = time.perf_counter()
    figures.update(train_tower(model, processor, scenes, config))
    figures["vision_seconds"] = round(time.perf_counter() - start, 1)
    start = time.perf_counter()
    figures["language_loss"] = round(train_language(model, processor, scenes, config), 4)
    figures["language_seconds"] = round(time.perf_counter() - start, 1)
    output = Path(output)
    model.save_pretrained(output)
    processor.save_pretrained(output)
    return figures


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(prog="python -m lrv_hf.testing.tiny_base", description=__doc__.split("\n")[0])
    parser.add_argument("--output", required=True, help="folder to write the base to")
    parser.add_argument("--seed", type=int, default=TinyBaseConfig.seed)
    parser.add_argument("--num-scenes", type=int, default=TinyBaseConfig.num_scenes)
    parser.add_argument("--vision-steps", type=int, default=TinyBaseConfig.vision_steps)
    parser.add_argument("--language-steps", type=int, default=TinyBaseConfig.language_steps)
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's choice)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    if args.threads:
        torch.set_num_threads(args.threads)
    config = TinyBaseConfig(
        seed=args.seed,
        num_scenes=args.num_scenes,
        vision_steps=args.vision_steps,
        language_steps=args.language_steps,
    )
    figures = build_tiny_base(args.output, config)
    print(" ".join(f"{key}={value}" for key, value in figures.items()))
    return figures


if __name__ == "__main__":
    main()
