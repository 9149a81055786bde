"""Issue 15's lab: stage-1 mixes for the tiny base, a linear probe where "Yes"/"No" is decided, and LoRA curves.

    python benchmarks/tiny_base_lab.py probe --base lrv_hf/testing/tiny_base
    python benchmarks/tiny_base_lab.py stage1 --output /tmp/base-or --mix caption=1,colour=2,shapes=1,colour_or=1
    python benchmarks/tiny_base_lab.py curve --base /tmp/base-or --targets q_proj,k_proj,v_proj,o_proj --steps 2500

`stage1` keeps the shipped base's tower (stage 0) and trains a fresh projector + language model on a mix of question
kinds, as the shipped build's stage 1 does (same seed, scenes, schedule and collator: the default mix rebuilds the
shipped weights). `probe` fits a logistic regression on the hidden states at the decision position (the prompt plus
" ", where the next token is "Yes" or "No") of "Is there a <shape> in the image?" and "Is the <shape> <colour>?", on
160 scenes, scored on 80 others, and reports how often the base names a drawn object's colour. `curve` trains LoRA
in a plain loop (the recipe's PEFT settings, collator and AdamW; no gradient clipping) on a 200-image synthetic
release and scores the held-out probes from the Yes/No logits every `--eval-every` steps. Figures: BENCHMARKS.md,
"Tiny base".
"""

import argparse
import copy
import json
import math
import random
import tempfile
import time
from pathlib import Path

import torch
from PIL import Image
from torch import nn

from lrv_hf.data import synth
from lrv_hf.data.views import to_messages
from lrv_hf.testing import tiny_adapters, tiny_base
from lrv_hf.testing.tiny import build_tiny_processor
from lrv_hf.train.collator import AnswerOnlyCollator


def _where(obj: dict) -> str:
    return synth._where(obj["bbox"])


def _caption(scene, rng):
    listing = " and ".join(f"a {o['color']} {o['name']}" for o in scene["objects"])
    return "Describe the image briefly.", f"{listing.capitalize()} on a {scene['background']} background."


def _colour(scene, rng):
    o = rng.choice(scene["objects"])
    return f"What color is the {o['name']}?", f"{o['color'].capitalize()}, the {o['name']} is {o['color']}."


def _colour_last(scene, rng):
    o = rng.choice(scene["objects"])
    return f"What color is the {o['name']}?", f"The {o['name']} is {o['color']}."


def _shapes(scene, rng):
    ordered = sorted(scene["objects"], key=lambda o: synth.SHAPES.index(o["name"]))
    return "Which shapes are in the image?", " and ".join(f"a {o['name']}" for o in ordered).capitalize() + "."


def _where_shape(scene, rng):
    o = rng.choice(scene["objects"])
    return (
        f"Where is the {o['name']}?",
        f"{_where(o).capitalize()}, the {o['name']} is in the {_where(o)} of the image.",
    )


def _where_pair(scene, rng):
    o = rng.choice(scene["objects"])
    named = f"{o['color']} {o['name']}"
    return f"Where is the {named}?", f"{_where(o).capitalize()}, the {named} is in the {_where(o)} of the image."


def _colour_or(scene, rng):
    o = rng.choice(scene["objects"])
    wrong = rng.choice(sorted(set(synth.COLORS) - {o["color"]}))
    first, second = rng.sample([o["color"], wrong], 2)
    return f"Is the {o['name']} {first} or {second}?", f"{o['color'].capitalize()}, the {o['name']} is {o['color']}."


# each kind: (scene, rng) -> (question, answer); every answer is true and names only drawn objects
KINDS = {
    "caption": _caption,
    "colour": _colour,
    "colour_last": _colour_last,
    "shapes": _shapes,
    "where": _where_shape,
    "where_pair": _where_pair,
    "colour_or": _colour_or,
}


def mix_turn(mix: dict[str, float]):
    """A stage-1 `turn` drawing kinds by weight; `caption=1,colour=2,shapes=1` draws as `description_turn` does."""
    kinds, weights = list(mix), list(mix.values())

    def turn(scene: dict, rng: random.Random) -> tuple[str, str]:
        return KINDS[kinds[rng.choices(range(len(kinds)), weights=weights)[0]]](scene, rng)

    return turn


def log(*parts):
    print(time.strftime("%H:%M:%S"), *parts, flush=True)


def load(path):
    from transformers import AutoProcessor, LlavaForConditionalGeneration

    return LlavaForConditionalGeneration.from_pretrained(path).eval(), AutoProcessor.from_pretrained(path)


def scenes(count: int, seed: str) -> list[dict]:
    return tiny_base._scenes(count, random.Random(seed))


def prompts(processor, questions: list[str]) -> list[str]:
    return [
        processor.apply_chat_template(
            [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": q}]}], add_generation_prompt=True
        )
        for q in questions
    ]


@torch.no_grad()
def decision_states(model, processor, images, questions, batch_size: int = 64):
    """Hidden states of every layer at the decision position, and the Yes-minus-No logit there."""
    tokenizer = processor.tokenizer
    tokenizer.padding_side = "left"
    yes, no = tokenizer.convert_tokens_to_ids("Yes"), tokenizer.convert_tokens_to_ids("No")
    states, margins = [], []
    texts = [p + " " for p in prompts(processor, questions)]  # " Yes" is "Ġ" + "Yes" in the tiny tokenizer
    for start in range(0, len(texts), batch_size):
        inputs = processor(
            images=images[start : start + batch_size], text=texts[start : start + batch_size], padding=True,
            return_tensors="pt",
        )  # fmt: skip
        out = model(**inputs, output_hidden_states=True)
        states.append(torch.stack([h[:, -1] for h in out.hidden_states], 1))
        margins.append(out.logits[:, -1, yes] - out.logits[:, -1, no])
    tokenizer.padding_side = "right"
    return torch.cat(states), torch.cat(margins)


def logistic_probe(x_train, y_train, x_test, y_test, l2: float = 1e-3) -> float:
    mean, std = x_train.mean(0), x_train.std(0) + 1e-6
    x_train, x_test = (x_train - mean) / std, (x_test - mean) / std
    w, b = torch.zeros(x_train.shape[1], requires_grad=True), torch.zeros(1, requires_grad=True)
    optimizer = torch.optim.LBFGS([w, b], max_iter=300)

    def closure():
        optimizer.zero_grad()
        loss = nn.functional.binary_cross_entropy_with_logits(x_train @ w + b, y_train) + l2 * (w**2).sum()
        loss.backward()
        return loss

    optimizer.step(closure)
    with torch.no_grad():
        return (((x_test @ w + b) > 0).float() == y_test).float().mean().item()


def presence_items(scene_list):
    images, questions, labels = [], [], []
    for scene in scene_list:
        image, drawn = synth.render(scene), {o["name"] for o in scene["objects"]}
        for shape in synth.SHAPES:
            images.append(image)
            questions.append(f"Is there a {shape} in the image?")
            labels.append(float(shape in drawn))
    return images, questions, torch.tensor(labels)


def colour_items(scene_list):
    images, questions, labels = [], [], []
    for i, scene in enumerate(scene_list):
        image = synth.render(scene)
        for obj in scene["objects"]:
            wrong = random.Random(f"{i}:{obj['name']}").choice(sorted(set(synth.COLORS) - {obj["color"]}))
            for colour, label in ((obj["color"], 1.0), (wrong, 0.0)):
                images.append(image)
                questions.append(f"Is the {obj['name']} {colour}?")
                labels.append(label)
    return images, questions, torch.tensor(labels)


@torch.no_grad()
def named_colour_accuracy(model, processor, scene_list) -> float:
    """How often "What color is the <shape>?" gets the drawn colour (and no other) in the answer's first clause."""
    images, questions, truth = [], [], []
    for scene in scene_list:
        for obj in scene["objects"]:
            images.append(synth.render(scene))
            questions.append(f"What color is the {obj['name']}?")
            truth.append(obj["color"])
    processor.tokenizer.padding_side = "left"
    inputs = processor(images=images, text=prompts(processor, questions), padding=True, return_tensors="pt")
    output = model.generate(**inputs, max_new_tokens=12, do_sample=False)
    processor.tokenizer.padding_side = "right"
    answers = processor.batch_decode(output[:, inputs["input_ids"].shape[1] :], skip_special_tokens=True)
    right = [
        colour in answer.lower().split(",")[0] and sum(c in answer.lower() for c in synth.COLORS) == 1
        for answer, colour in zip(answers, truth)
    ]
    return sum(right) / len(right)


def probe(model, processor) -> dict:
    train, test = scenes(160, "probe-train"), scenes(80, "probe-test")
    figures = {"named_colour": round(named_colour_accuracy(model, processor, test[:60]), 3)}
    for name, items in (("presence", presence_items), ("colour_match", colour_items)):
        (tr_images, tr_questions, y_train), (te_images, te_questions, y_test) = items(train), items(test)
        x_train, _ = decision_states(model, processor, tr_images, tr_questions)
        x_test, _ = decision_states(model, processor, te_images, te_questions)
        figures[name] = round(logistic_probe(x_train.flatten(1), y_train, x_test.flatten(1), y_test), 3)
        figures[f"{name}_majority"] = round(max(y_test.mean().item(), 1 - y_test.mean().item()), 3)
    return figures


def stage1(output: Path, mix: dict[str, float], steps: int, seed: int = 0) -> dict:
    """A fresh projector + language model on the shipped tower, trained on `mix`; saved to `output`."""
    shipped, _ = tiny_base.load_tiny_base()
    processor = build_tiny_processor()
    model = tiny_base.untrained_model(processor, seed)
    model.model.vision_tower.load_state_dict(shipped.model.vision_tower.state_dict())
    config = tiny_base.TinyBaseConfig(seed=seed, language_steps=steps)
    start = time.perf_counter()
    loss = tiny_base.train_language(model, processor, tiny_base.pretraining_scenes(config), config, turn=mix_turn(mix))
    model.save_pretrained(output)
    processor.save_pretrained(output)
    return {"loss": round(loss, 4), "seconds": round(time.perf_counter() - start), **probe(model, processor)}


def curve(base: str, targets: list[str], steps: int, eval_every: int, lr: float, batch_size: int, seed: int):
    """LoRA in a plain loop on a synthetic release's `filter_cap.json`; held-out probes scored every `eval_every`."""
    from peft import LoraConfig, get_peft_model

    release = Path(tempfile.mkdtemp(prefix="tiny-lab-")) / "release"
    synth.write_synthetic_release(release, num_images=200, seed=0)
    rows = json.loads((release / "filter_cap.json").read_text())["annotations"]
    held = {}
    for name, probes in tiny_adapters.held_out_probes(release, seed=0).items():
        images = [Image.open(release / "images" / f"{p['image_id']}.jpg").convert("RGB") for p in probes]
        labels = torch.tensor([float(p["label"] == "yes") for p in probes])
        held[name] = (images, [p["question"] for p in probes], labels)
    model, processor = load(base)
    model = get_peft_model(
        copy.deepcopy(model),
        LoraConfig(
            r=16, lora_alpha=32, lora_dropout=0.0, modules_to_save=["lm_head"],
            target_modules=rf".*\blanguage_model\b.*\.({'|'.join(targets)})$",
        ),
    )  # fmt: skip
    collator = AnswerOnlyCollator(processor, max_length=512)
    images = {}
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=lr, weight_decay=0.0)
    scheduler = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda s: min(1, (s + 1) / 10) * 0.5 * (1 + math.cos(math.pi * min(s, steps) / steps))
    )
    order, rng, start = [], random.Random(seed), time.perf_counter()
    torch.manual_seed(seed)
    model.train()
    for step in range(1, steps + 1):
        if len(order) < batch_size:
            more = list(range(len(rows)))
            rng.shuffle(more)
            order += more
        batch, order = [rows[i] for i in order[:batch_size]], order[batch_size:]
        for row in batch:
            if row["image_id"] not in images:
                images[row["image_id"]] = Image.open(release / "images" / f"{row['image_id']}.jpg").convert("RGB")
        loss = model(
            **collator(
                [
                    {"messages": to_messages([r["question"]], [r["answer"]]), "images": [images[r["image_id"]]]}
                    for r in batch
                ]
            )
        ).loss
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        scheduler.step()
        if step % eval_every == 0 or step == steps:
            model.eval()
            figures = {}
            for name, (probe_images, questions, labels) in held.items():
                _, margin = decision_states(model, processor, probe_images, questions)
                said_yes = (margin > 0).float()
                figures[name] = {
                    "accuracy": round((said_yes == labels).float().mean().item(), 3),
                    "yes_ratio": round(said_yes.mean().item(), 3),
                    "no_to_no": round(((said_yes == 0) & (labels == 0)).sum().item() / (labels == 0).sum().item(), 3),
                }
            model.train()
            log(f"step {step} loss {loss.item():.3f} {time.perf_counter() - start:.0f}s", figures)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("probe")
    p.add_argument("--base", default=str(tiny_base.SHIPPED))
    s = sub.add_parser("stage1")
    s.add_argument("--output", required=True)
    s.add_argument("--mix", default="caption=1,colour=2,shapes=1", help=f"kind=weight, kinds: {', '.join(KINDS)}")
    s.add_argument("--steps", type=int, default=tiny_base.TinyBaseConfig.language_steps)
    s.add_argument("--seed", type=int, default=0)
    c = sub.add_parser("curve")
    c.add_argument("--base", default=str(tiny_base.SHIPPED))
    c.add_argument("--targets", default="v_proj,o_proj")
    c.add_argument("--steps", type=int, default=1500)
    c.add_argument("--eval-every", type=int, default=250)
    c.add_argument("--lr", type=float, default=3e-3)
    c.add_argument("--batch-size", type=int, default=16)
    c.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    if args.command == "probe":
        log(args.base, probe(*load(args.base)))
    elif args.command == "stage1":
        mix = {kind: float(weight) for kind, weight in (part.split("=") for part in args.mix.split(","))}
        unknown = set(mix) - set(KINDS)
        if unknown:
            parser.error(f"--mix: unknown kinds {sorted(unknown)}; known: {', '.join(KINDS)}")
        log(args.output, mix, stage1(Path(args.output), mix, args.steps, args.seed))
    else:
        curve(args.base, args.targets.split(","), args.steps, args.eval_every, args.lr, args.batch_size, args.seed)


if __name__ == "__main__":
    main()
