"""Tests that training teaches something: the shipped tiny base sees, and positive-only tuning gives LRV's yes-bias.

Each adapter trains once per session (fixed seeds) from the shipped base with the `tiny/lora-cpu` recipe on a
synthetic release, and are probed on its held-out fifth of images, which no training step saw.
"""

import random

import pytest
import torch

from lrv_hf.data import synth
from lrv_hf.data.synth import write_synthetic_release
from lrv_hf.testing import tiny_adapters, tiny_base


NUM_IMAGES = 200  # 160 to train on, 40 held out


@pytest.fixture(scope="session")
def learning_release(tmp_path_factory):
    root = tmp_path_factory.mktemp("learning")
    write_synthetic_release(root / "release", num_images=NUM_IMAGES, seed=0)
    datasets = tiny_adapters.build_adapter_datasets(root / "release", root / "data")
    probes = tiny_adapters.held_out_probes(root / "release", seed=0)
    return {"root": root, "release": root / "release", "datasets": datasets, "probes": probes}


def _train_and_probe(learning_release, name: str, *overrides: str) -> dict:
    run = learning_release["root"] / name
    overrides = ("--save_strategy", "no", "--disable_tqdm", "true", *overrides)
    tiny_adapters.train_adapter(learning_release["datasets"][name], run, *overrides)
    return tiny_adapters.probe(run, learning_release["release"], learning_release["probes"])


@pytest.fixture(scope="session")
def positive_only_scores(learning_release):
    # the yes-bias is complete by step 100 (issue 15 saw yes-ratio 1.00 there on every base); the recipe's 1500 steps
    # would only make the test slower
    return _train_and_probe(learning_release, "positive-only", "--max_steps", "120")


@pytest.fixture(scope="session")
def lrv_scores(learning_release):
    return _train_and_probe(learning_release, "lrv")


@pytest.mark.slow
def test_lrv_adapter_answers_pope_on_held_out_images(lrv_scores):
    """With negative instructions the adapter looks: POPE on images no training step saw, balanced yes/no."""
    pope = lrv_scores["pope"]
    assert pope["n"] >= 100
    assert pope["accuracy"] >= 0.85, pope
    assert 0.40 <= pope["yes_ratio"] <= 0.60, pope


# Not reached yet: "Is the ball red?" when it is blue needs the asked colour compared with the drawn one. LoRA on the
# queries and keys learns that in some runs (wrong colours answered "no" 0.80 after 2500 steps) but then moves the
# look-up the POPE answers rest on, from run to run (BENCHMARKS.md, "Tiny base"). The recipe keeps POPE.
# strict: the day it passes, the marker must go. It trains the recipe's full run to confirm a known failure, so
# `make test` leaves it out (setup.cfg: -m "not targets"); run it with `pytest -m targets tests/test_learning.py`.
@pytest.mark.slow
@pytest.mark.targets
@pytest.mark.xfail(strict=True, reason="issue 15: the LRV adapter does not yet compare colours (chance level)")
def test_lrv_adapter_rejects_wrong_colours_of_present_objects(lrv_scores):
    assert lrv_scores["attribute_negative_accuracy"] >= 0.8, lrv_scores["attribute"]
    # a model that says "no" to every colour question would pass the line above; it must also say "yes" to the truth
    assert lrv_scores["attribute"]["recall"] >= 0.6, lrv_scores["attribute"]


def test_positive_only_adapter_says_yes_to_absent_objects(positive_only_scores):
    """LRV's yes-bias, reproduced: tuned without negative instructions, the adapter says yes to what is not there."""
    pope = positive_only_scores["pope"]
    assert pope["n"] >= 100 and pope["tn"] + pope["fp"] == pope["n"] // 2  # balanced: half the probes are absent
    assert pope["yes_ratio"] >= 0.80, pope


def test_shipped_base_names_the_shapes_it_sees():
    """The base was never asked yes/no; asked which shapes it sees, it names those drawn in unseen scenes."""
    model, processor = tiny_base.load_tiny_base()
    rng = random.Random("test-unseen-scenes")
    scenes = [s for s in (synth.make_scene(rng) for _ in range(60)) if len(s["objects"]) >= 2][:40]
    prompt = processor.apply_chat_template(
        [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": "Which shapes are in the image?"}]}],
        add_generation_prompt=True,
    )
    processor.tokenizer.padding_side = "left"
    inputs = processor(
        images=[synth.render(s) for s in scenes], text=[prompt] * len(scenes), padding=True, return_tensors="pt"
    )
    with torch.inference_mode():
        output = model.generate(**inputs, max_new_tokens=16, do_sample=False)
    answers = processor.batch_decode(output[:, inputs["input_ids"].shape[1] :], skip_special_tokens=True)
    exact = [
        {shape for shape in synth.SHAPES if shape in answer} == {o["name"] for o in scene["objects"]}
        for answer, scene in zip(answers, scenes)
    ]
    assert sum(exact) / len(exact) >= 0.75, list(zip(answers, scenes))[:5]


def test_rebuild_script_runs_and_is_reproducible(tmp_path):
    short = ["--num-scenes", "200", "--vision-steps", "3", "--language-steps", "2", "--threads", "1"]
    figures = tiny_base.main(["--output", str(tmp_path / "a"), *short])
    assert figures["vision_seconds"] > 0 and figures["language_loss"] > 0
    tiny_base.main(["--output", str(tmp_path / "b"), *short])
    untrained = tiny_base.main(
        ["--output", str(tmp_path / "c"), *short[:2], "--vision-steps", "0", "--language-steps", "0"]
    )
    assert untrained["vision_seconds"] >= 0
    from safetensors.torch import load_file

    a, b, c = (load_file(tmp_path / name / "model.safetensors") for name in "abc")
    assert a.keys() == b.keys() == c.keys()
    assert all(torch.equal(a[key], b[key]) for key in a), "the same seed must rebuild the same weights"
    tower = [key for key in a if "vision_tower" in key]
    language = [key for key in a if "language_model" in key or "multi_modal_projector" in key]
    assert any(not torch.equal(a[key], c[key]) for key in tower), "stage 0 did not train the tower"
    assert any(not torch.equal(a[key], c[key]) for key in language), "stage 1 did not train the language side"
    from transformers import AutoProcessor, LlavaForConditionalGeneration

    model = LlavaForConditionalGeneration.from_pretrained(tmp_path / "a")
    assert model.config.vision_config.hidden_size == tiny_base.VISION_WIDTH
    assert AutoProcessor.from_pretrained(tmp_path / "a").chat_template


def test_config_refuses_bad_values():
    with pytest.raises(ValueError, match="`vision_steps` must be 0 or more"):
        tiny_base.TinyBaseConfig(vision_steps=-1)
    with pytest.raises(ValueError, match="`num_scenes` must be at least 1"):
        tiny_base.TinyBaseConfig(num_scenes=0)
