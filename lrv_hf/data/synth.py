"""A deterministic, small synthetic LRV release: images of simple coloured objects with the files the release ships.

It feeds every test and the quickstart. The images carry their own ground truth (dense captions with boxes, object
lists), so positive instructions are true, and both negative kinds of the paper are built from it: nonexistent
element manipulation (asking about an object that is not drawn) and existent element manipulation (a drawn object
with a wrong attribute).
"""

import json
import random
from pathlib import Path

from PIL import Image, ImageDraw


COLORS = {
    "red": (220, 40, 40),
    "green": (40, 170, 60),
    "blue": (40, 80, 220),
    "yellow": (235, 210, 40),
    "purple": (140, 60, 190),
    "orange": (245, 140, 30),
    "black": (20, 20, 20),
    "white": (250, 250, 250),
}
SHAPES = ("ball", "box", "kite", "sign", "tower")
BACKGROUNDS = {"gray": (150, 150, 150), "beige": (225, 210, 180), "teal": (70, 150, 150)}
IMAGE_SIZE = 128
FIRST_ID = 2_400_001  # Visual Genome-like numeric ids, as strings in the files


def _draw(draw: ImageDraw.ImageDraw, shape: str, box: tuple[int, int, int, int], fill):
    x, y, w, h = box
    if shape == "ball":
        draw.ellipse([x, y, x + w, y + h], fill=fill)
    elif shape == "kite":
        draw.polygon([(x + w / 2, y), (x + w, y + h / 2), (x + w / 2, y + h), (x, y + h / 2)], fill=fill)
    else:
        draw.rectangle([x, y, x + w, y + h], fill=fill)


def _place(rng: random.Random, shape: str, taken: list) -> tuple[int, int, int, int] | None:
    for _ in range(50):
        w, h = {"sign": (44, 22), "tower": (20, 48)}.get(shape, (30, 30))
        x, y = rng.randrange(2, IMAGE_SIZE - w - 2), rng.randrange(2, IMAGE_SIZE - h - 2)
        if all(x + w < a or a + c < x or y + h < b or b + d < y for a, b, c, d in taken):
            return (x, y, w, h)
    return None


def _where(box) -> str:
    x, y, w, h = box
    cx, cy = x + w / 2, y + h / 2
    vertical = "top" if cy < IMAGE_SIZE / 3 else "bottom" if cy > 2 * IMAGE_SIZE / 3 else "middle"
    horizontal = "left" if cx < IMAGE_SIZE / 3 else "right" if cx > 2 * IMAGE_SIZE / 3 else "center"
    return f"{vertical} {horizontal}" if vertical != "middle" or horizontal != "center" else "center"


def make_scene(rng: random.Random) -> dict:
    """Choose a background and 2-4 distinct objects with boxes; returns the scene's ground truth."""
    background = rng.choice(sorted(BACKGROUNDS))
    objects, taken = [], []
    for shape in rng.sample(SHAPES, rng.randint(2, 4)):
        box = _place(rng, shape, taken)
        if box is None:
            continue
        taken.append(box)
        objects.append({"name": shape, "color": rng.choice(sorted(COLORS)), "bbox": list(box)})
    return {"background": background, "objects": objects}


def render(scene: dict) -> Image.Image:
    image = Image.new("RGB", (IMAGE_SIZE, IMAGE_SIZE), BACKGROUNDS[scene["background"]])
    draw = ImageDraw.Draw(image)
    for obj in scene["objects"]:
        _draw(draw, obj["name"], tuple(obj["bbox"]), COLORS[obj["color"]])
    return image


def regions_of(scene: dict) -> list[dict]:
    """Dense captions with boxes, several per object as in Visual Genome (overlapping boxes, varied phrasing)."""
    regions = []
    for obj in scene["objects"]:
        x, y, w, h = obj["bbox"]
        regions.append({"caption": f"a {obj['color']} {obj['name']}", "bbox": [x, y, w, h]})
        regions.append({"caption": f"the {obj['name']} is {obj['color']}", "bbox": [x - 1, y + 1, w + 2, h]})
        regions.append({"caption": f"{obj['color']} {obj['name']} in the {_where(obj['bbox'])}", "bbox": [x, y, w, h]})
    regions.append({"caption": f"{scene['background']} background", "bbox": [0, 0, IMAGE_SIZE, IMAGE_SIZE]})
    return regions


def _listing(objects: list[dict]) -> str:
    names = [f"a {o['color']} {o['name']}" for o in objects]
    return names[0] if len(names) == 1 else ", ".join(names[:-1]) + " and " + names[-1]


def positive_instructions(scene: dict, rng: random.Random) -> list[dict]:
    objects, background = scene["objects"], scene["background"]
    first, second = objects[0], objects[1]
    options = sorted({o["name"] for o in objects} | {rng.choice(SHAPES)})
    rows = [
        (
            "Describe the image briefly.",
            f"{_listing(objects).capitalize()} on a {background} background.",
            "Image Captioning",
        ),
        (
            f"Is there a {second['name']} in the image?",
            f"Yes, there is a {second['color']} {second['name']} in the {_where(second['bbox'])} of the image.",
            "Object Detection",
        ),
        (
            f"What color is the {first['name']}?",
            f"The {first['name']} is {first['color']}.",
            "Object Attribute Detection",
        ),
        (
            f"Is the {first['name']} {first['color']}?",
            f"Yes, the {first['name']} is {first['color']}.",
            "Object Attribute Detection",
        ),
        (
            f"Where is the {second['color']} {second['name']} located in the picture?",
            f"The {second['color']} {second['name']} is in the {_where(second['bbox'])} of the image.",
            "Referential Expression Grounding",
        ),
        (
            f"How many objects are drawn on the {background} background?",
            f"There are {len(objects)} objects: {_listing(objects)}.",
            "Object Counting",
        ),
        (f"Which of these is {second['color']}: {', '.join(options)}?", f"The {second['name']}.", "Multi-choice VQA"),
        (
            f"The image shows a {first['color']} {first['name']}. True or false?",
            f"True, there is a {first['color']} {first['name']} in the image.",
            "Visual Entailment",
        ),
    ]
    return [{"question": q, "answer": a, "task": t} for q, a, t in rows]


def negative_instructions(scene: dict, rng: random.Random) -> list[dict]:
    """Both manipulations of the paper: a nonexistent element, and an existent element with a wrong attribute."""
    objects = scene["objects"]
    present = {o["name"] for o in objects}
    absent = sorted(set(SHAPES) - present)
    nonexistent = []
    for template in ("Is there a {s} in the image?", "Describe the {c} {s} next to the {o}."):
        shape, color, anchor = rng.choice(absent), rng.choice(sorted(COLORS)), rng.choice(objects)["name"]
        nonexistent.append(
            (
                template.format(c=color, s=shape, o=anchor),
                f"No, there is no {shape} in the image. The image shows {_listing(objects)}.",
            )
        )
    target = rng.choice(objects)
    wrong = rng.choice(sorted(set(COLORS) - {target["color"]}))
    # the yes/no pair of each kind comes first: `filter_cap.json` takes the first two negatives
    rows = [
        nonexistent[0],
        (f"Is the {target['name']} {wrong}?", f"No, the {target['name']} is {target['color']}, not {wrong}."),
        nonexistent[1],
    ]
    rows.append(
        (
            f"Can you see the {wrong} {target['name']} in the image?",
            f"There is no {wrong} {target['name']}; the {target['name']} in the image is {target['color']}.",
        )
    )
    rows.append(
        (
            f"The {wrong} {target['name']} stands out against the background.",
            f"This is misleading: the {target['name']} is {target['color']}, not {wrong}.",
        )
    )
    return [{"question": q, "answer": a, "task": "negative"} for q, a in rows]


def existence_pairs(scene: dict, asked: set[str], rng: random.Random) -> list[dict]:
    """More "Is there a <shape>?" questions in yes/no pairs (a drawn shape, an absent one), skipping those `asked`.

    POPE-style balance: each "yes" comes with a "no", so these rows add no lean either way to LRV's data.
    """
    objects = [o for o in scene["objects"] if o["name"] not in asked]
    absent = [s for s in SHAPES if s not in asked and s not in {o["name"] for o in scene["objects"]}]
    rng.shuffle(absent)
    rows = []
    for obj, shape in zip(objects, absent):
        rows.append(
            {
                "question": f"Is there a {obj['name']} in the image?",
                "answer": f"Yes, there is a {obj['color']} {obj['name']} in the {_where(obj['bbox'])} of the image.",
                "task": "Object Detection",
            }
        )
        rows.append(
            {
                "question": f"Is there a {shape} in the image?",
                "answer": f"No, there is no {shape} in the image. The image shows {_listing(scene['objects'])}.",
                "task": "negative",
            }
        )
    return rows


def write_synthetic_release(output_dir: str | Path, num_images: int = 48, seed: int = 0) -> dict:
    """Write a synthetic release in the release formats and return counts of what was written.

    Files: `images/<id>.jpg`, `filter_cap.json` (`{"annotations": [...]}`), `filter_cap_more.json` (a list),
    `evaluation_set.json` (questions on held-out images), `vg_annotation.json` (dense captions with boxes) and
    `objects.json` (Visual Genome `objects.json` shape, for POPE).
    """
    if num_images < 5:
        raise ValueError(f"`num_images` must be at least 5, got {num_images}")
    rng = random.Random(seed)
    out = Path(output_dir)
    (out / "images").mkdir(parents=True, exist_ok=True)
    n_eval = max(1, num_images // 5)
    train, more, evaluation, vg, objects = [], [], [], {}, []
    for i in range(num_images):
        image_id = str(FIRST_ID + i)
        scene = make_scene(rng)
        while len(scene["objects"]) < 2:
            scene = make_scene(rng)
        render(scene).save(out / "images" / f"{image_id}.jpg", quality=90)
        vg[image_id] = regions_of(scene)
        objects.append(
            {
                "image_id": int(image_id),
                "objects": [
                    {
                        "object_id": int(image_id) * 10 + j,
                        "names": [o["name"]],
                        "attributes": [o["color"]],
                        "x": o["bbox"][0],
                        "y": o["bbox"][1],
                        "w": o["bbox"][2],
                        "h": o["bbox"][3],
                    }
                    for j, o in enumerate(scene["objects"])
                ],
            }
        )
        positives, negatives = positive_instructions(scene, rng), negative_instructions(scene, rng)
        if i >= num_images - n_eval:
            # held-out images: questions only, as in the released evaluation set (positive and negative mixed)
            for row in positives[1:4] + negatives[::2]:
                evaluation.append({"image_id": image_id, "question": row["question"]})
            continue
        # filter_cap.json: four positives (two of them "yes" answers), the two matching "no" answers, and more
        # existence questions in yes/no pairs
        asked = {row["question"].split()[3] for row in (positives[1], negatives[0])}  # "Is there a <shape> ..."
        for row in positives[:4] + negatives[:2] + existence_pairs(scene, asked, rng):
            train.append({"image_id": image_id, **row})
        for row in positives[4:] + negatives[2:]:
            more.append({"image_id": image_id, **row})
    files = {
        "filter_cap.json": {"annotations": train},
        "filter_cap_more.json": more,
        "evaluation_set.json": evaluation,
        "vg_annotation.json": vg,
        "objects.json": objects,
    }
    for name, payload in files.items():
        (out / name).write_text(json.dumps(payload, indent=1) + "\n")
    return {
        "images": num_images,
        "instructions": len(train),
        "more": len(more),
        "evaluation": len(evaluation),
        "held_out_images": n_eval,
    }


def attribute_probes(objects: dict[str, list[tuple[str, str]]], seed: int = 0) -> list[dict]:
    """Yes/no colour probes, one pair per drawn object: "Is the ball blue?" (yes) and "Is the ball red?" (no).

    The "no" probes are LRV's existent element manipulation: the object is there, its attribute is wrong.

    Args:
        objects (`dict`): image id -> `(name, colour)` of each drawn object (see `read_object_colors`).

    Returns:
        `list[dict]`: rows `{"image_id", "question", "label", "object"}`, yes and no alternating.
    """
    rows = []
    for image_id, drawn in objects.items():
        for name, color in drawn:
            wrong = random.Random(f"{seed}:{image_id}:{name}").choice(sorted(set(COLORS) - {color}))
            for shown, label in ((color, "yes"), (wrong, "no")):
                rows.append(
                    {"image_id": image_id, "question": f"Is the {name} {shown}?", "label": label, "object": name}
                )
    return rows


def read_object_colors(path: str | Path) -> dict[str, list[tuple[str, str]]]:
    """Image id -> `(name, colour)` of each object, from the `objects.json` a synthetic release writes."""
    return {
        str(entry["image_id"]): [(obj["names"][0], obj["attributes"][0]) for obj in entry["objects"]]
        for entry in json.loads(Path(path).read_text())
    }
