"""Tests of `lrv_hf.train`: recipes, the answer-only collator, adapters, preflight, save/reload, merge, resume, DDP.

Everything runs on CPU with the tiny LLaVA built from configs and the synthetic release; nothing is downloaded.
"""

import json
import logging
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
import yaml
from PIL import Image

from lrv_hf.data.export import build_dataset
from lrv_hf.data.synth import write_synthetic_release
from lrv_hf.data.views import to_messages
from lrv_hf.errors import InputError
from lrv_hf.testing.tiny import NUM_IMAGE_TOKENS, build_tiny_llava
from lrv_hf.train.card import model_card
from lrv_hf.train.collator import IGNORE_INDEX, AnswerOnlyCollator
from lrv_hf.train.config import LRVTrainingArguments, ModelArguments, parse_train_args
from lrv_hf.train.model import apply_adapter, preflight
from lrv_hf.train.recipes import list_recipes, recipe_path
from lrv_hf.train.trainer import LRVTrainer, _damage, main


REPO = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent


@pytest.fixture(scope="module")
def tiny():
    return build_tiny_llava(seed=0)


@pytest.fixture(scope="module")
def lrv_dataset(tmp_path_factory) -> str:
    """A built synthetic LRV-Instruction folder (10 images, 8 with answered instructions)."""
    root = tmp_path_factory.mktemp("lrv")
    write_synthetic_release(root / "release", num_images=10, seed=0)
    build_dataset([root / "release" / "filter_cap.json"], root / "release" / "images", root / "dataset")
    return str(root / "dataset")


def tiny_args(output_dir, dataset: str, *extra: str) -> list[str]:
    """Flags of a short tiny run: a few steps, no progress bar."""
    return [
        "--recipe", "tiny/lora-cpu", "--output_dir", str(output_dir), "--dataset_name", dataset,
        "--per_device_train_batch_size", "4", "--max_steps", "4", "--save_strategy", "no",
        "--logging_steps", "1", "--disable_tqdm", "true",
        "--multi_turn", "true",  # one conversation per image (8 here), the data shape these tests count on
        *extra,
    ]  # fmt: skip


def frozen_changes(trainer) -> tuple[list[str], list[str]]:
    """(trainable parameters equal to their start, frozen parameters that differ from the saved base)."""
    from transformers import AutoModelForImageTextToText

    base = AutoModelForImageTextToText.from_pretrained(Path(trainer.args.output_dir, "base")).state_dict()
    model = trainer.model
    unchanged_trainable, changed_frozen = [], []
    for name, param in model.named_parameters():
        if param.requires_grad:
            if "lora_B" in name and torch.count_nonzero(param) == 0:  # LoRA B starts at zero
                unchanged_trainable.append(name)
            if ".modules_to_save." in name:
                original = name.replace(".modules_to_save.default.", ".original_module.")
                if torch.equal(param, dict(model.named_parameters())[original]):
                    unchanged_trainable.append(name)
            continue
        key = name.removeprefix("base_model.model.").replace(".base_layer", "").replace(".original_module", "")
        if not torch.equal(param.detach(), base[key]):
            changed_frozen.append(name)
    return unchanged_trainable, changed_frozen


# recipes and configuration


def tiny_family(family: str):
    """A tiny model of each family the recipes name, built from configs."""
    from transformers import AutoModelForImageTextToText, InstructBlipConfig, LlamaConfig, Qwen2VLConfig

    text = {
        "hidden_size": 32,
        "intermediate_size": 64,
        "num_hidden_layers": 2,
        "num_attention_heads": 2,
        "vocab_size": 128,
    }
    if family in ("tiny", "llava-1.5-7b"):
        return build_tiny_llava()[0]
    if family == "instructblip-vicuna-7b":
        vision = {
            "hidden_size": 32,
            "intermediate_size": 64,
            "num_hidden_layers": 2,
            "num_attention_heads": 2,
            "image_size": 32,
        }
        qformer = {"hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 2, "num_attention_heads": 2}
        config = InstructBlipConfig(
            vision_config={**vision, "patch_size": 8},
            qformer_config={**qformer, "vocab_size": 128, "encoder_hidden_size": 32},
            text_config=LlamaConfig(**text).to_dict(),
            num_query_tokens=4,
        )
    elif family == "qwen2-vl-2b":
        config = Qwen2VLConfig(
            text_config=dict(
                model_type="qwen2", **text, num_key_value_heads=2, bos_token_id=None, eos_token_id=None,
                rope_scaling={"type": "mrope", "mrope_section": [2, 2, 4]},
            ),
            vision_config={"depth": 2, "embed_dim": 32, "hidden_size": 32, "num_heads": 2, "mlp_ratio": 2, "spatial_merge_size": 2},
        )  # fmt: skip
    else:
        raise AssertionError(f"no tiny model for recipe family {family}: add one here")
    return AutoModelForImageTextToText.from_config(config)


@pytest.mark.parametrize("recipe", list_recipes())
def test_every_recipe_parses_and_instantiates_at_tiny_size(recipe, tmp_path):
    model_args, adapter_args, data_args, training_args = parse_train_args(
        ["--recipe", recipe, "--output_dir", str(tmp_path)]
    )
    assert training_args.recipe == recipe
    assert not training_args.bf16, "V100 recipes must not ask for bf16"
    model = apply_adapter(tiny_family(recipe.split("/")[0]), adapter_args)
    trainable = [name for name, p in model.named_parameters() if p.requires_grad]
    assert trainable
    for name in trainable:
        if adapter_args.adapter == "lora":
            assert "lora_" in name or ".modules_to_save." in name, name
            if "lora_" in name:
                assert adapter_args.lora_scope in name and "vision" not in name and "visual" not in name, name
        else:
            assert any(f"{module}.modules_to_save" in name for module in adapter_args.trainable_modules), name
    assert all(p.dtype == torch.float32 for p in model.parameters() if p.requires_grad)


def test_instructblip_projector_recipe_collates_and_trains_only_the_projection():
    """LRV V1 at tiny size: MiniGPT-4's template, labels on the answer only, query tokens prepended, the Q-Former reads
    the question only, only the projection learns."""
    import copy

    from transformers import (
        InstructBlipConfig,
        InstructBlipForConditionalGeneration,
        InstructBlipProcessor,
        LlamaConfig,
        PreTrainedTokenizerFast,
    )
    from transformers.models.blip.image_processing_pil_blip import BlipImageProcessorPil

    from lrv_hf.testing.tiny import build_tiny_tokenizer

    # as on the Hub: the Vicuna tokenizer names no image token, the processor adds `<image>`
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=build_tiny_tokenizer().backend_tokenizer,
        bos_token="<s>", eos_token="</s>", pad_token="<pad>", unk_token="<unk>", padding_side="right",
    )  # fmt: skip
    processor = InstructBlipProcessor(
        image_processor=BlipImageProcessorPil(size={"height": 32, "width": 32}),
        tokenizer=tokenizer,
        qformer_tokenizer=copy.deepcopy(tokenizer),
        num_query_tokens=4,
    )
    recipe = "instructblip-vicuna-7b/projector-v100"
    model_args, adapter_args, _, _ = parse_train_args(["--recipe", recipe, "--output_dir", "unused"])
    processor.chat_template = model_args.chat_template
    image = Image.new("RGB", (64, 64))
    rows = [
        {"messages": to_messages(["What color is the ball?"], ["The ball is red."]), "images": [image]},
        {"messages": to_messages(["Is there a kite?"], ["There is no kite in the image."]), "images": [image]},
    ]
    # MiniGPT-4's conversation (LRV-V1's data): `<ImageHere>` is where MiniGPT-4 puts the image embeddings; here the
    # processor puts the query tokens first, so only the `<Img></Img>` text is left of it
    assert processor.apply_chat_template(rows[0]["messages"], tokenize=False) == (
        "<s>###Human: <Img></Img> What color is the ball?###Assistant: The ball is red.###"
    )
    batch = AnswerOnlyCollator(processor)(rows)
    for row, (question, answer) in enumerate([("What color is the ball?", "The ball is red."),
                                              ("Is there a kite?", "There is no kite in the image.")]):  # fmt: skip
        labels = batch["labels"][row]
        learnt = (labels != IGNORE_INDEX).nonzero().flatten().tolist()
        # exactly the answer and MiniGPT-4's end symbol, one contiguous run ending at the last token
        assert learnt == list(range(learnt[0], int(batch["attention_mask"][row].sum())))
        assert tokenizer.decode(labels[learnt]) == f" {answer}###"
        assert tokenizer.decode(batch["input_ids"][row][: learnt[0]]).endswith(f"{question}###Assistant:")
        assert (
            tokenizer.decode(batch["qformer_input_ids"][row][batch["qformer_attention_mask"][row].bool()]) == question
        )
        assert tokenizer.convert_ids_to_tokens(batch["input_ids"][row][:5].tolist()) == ["<image>"] * 4 + ["<s>"]
    small = {"hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 2, "num_attention_heads": 2}
    config = InstructBlipConfig(
        vision_config={**small, "image_size": 32, "patch_size": 8},
        qformer_config={**small, "vocab_size": len(tokenizer), "encoder_hidden_size": 32},
        text_config=LlamaConfig(**small, vocab_size=len(tokenizer)).to_dict(),
        num_query_tokens=4,
        image_token_index=tokenizer.convert_tokens_to_ids("<image>"),
    )
    model = apply_adapter(InstructBlipForConditionalGeneration(config), adapter_args)
    loss = model(**batch).loss
    loss.backward()
    assert torch.isfinite(loss)
    learnt = {name for name, p in model.named_parameters() if p.grad is not None}
    assert learnt == {f"base_model.model.language_projection.modules_to_save.default.{w}" for w in ("weight", "bias")}


def test_layering_defaults_recipe_command_line(tmp_path):
    _, adapter_args, _, training_args = parse_train_args(["--recipe", "llava-1.5-7b/lora-v100", "--lora_r", "16"])
    assert adapter_args.lora_r == 16  # command line over recipe
    assert adapter_args.lora_alpha == 32  # recipe
    assert training_args.learning_rate == 2e-4 and training_args.remove_unused_columns is False  # our defaults
    assert training_args.output_dir == "runs/llava-1.5-7b/lora-v100"
    _, adapter_args, _, training_args = parse_train_args(["--recipe=tiny/lora-cpu", "--output-dir", "elsewhere"])
    assert adapter_args.lora_r == 16 and training_args.output_dir == "elsewhere"  # the tiny recipe's r, the flag's dir


def test_unknown_keys_are_errors(tmp_path):
    recipe = tmp_path / "mine.yaml"
    recipe.write_text(yaml.safe_dump({"lora_r": 4, "lora_rank": 8}))
    with pytest.raises(InputError, match=r"mine.yaml: unknown recipe key\(s\) lora_rank"):
        parse_train_args(["--recipe", str(recipe)])
    with pytest.raises(InputError, match="--lora_rnk"):
        parse_train_args(["--recipe", "tiny/lora-cpu", "--lora_rnk", "4"])
    with pytest.raises(InputError, match="no such recipe"):
        parse_train_args(["--recipe", "llava/nope"])
    with pytest.raises(InputError, match="`adapter` must be one of"):
        parse_train_args(["--adapter", "full"])


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({"lora_r": "eight"}, "`lora_r` must be int, got 'eight'"),
        ({"learning_rate": [1]}, "`learning_rate` must be float"),
        ({"multi_turn": "yes"}, "`multi_turn` must be bool"),
        ({"lora_target_modules": "q_proj"}, "`lora_target_modules` must be list"),
        ({"lr_scheduler_type": "cosine_wiggle"}, "`lr_scheduler_type` must be"),
        ({"learning_rate": 0}, "`learning_rate` must be positive, got 0"),
        ({"learning_rate": -1e-4}, "`learning_rate` must be positive"),
        ({"overlong": "wrap"}, "`overlong` must be one of"),
    ],
)
def test_recipe_values_are_checked_when_parsed(tmp_path, values, message):
    recipe = tmp_path / "mine.yaml"
    recipe.write_text(yaml.safe_dump({"lora_r": 4, **values}))
    with pytest.raises(InputError, match=f"mine.yaml: {re.escape(message)}"):
        parse_train_args(["--recipe", str(recipe)])


def test_yaml_exponent_without_dot_is_a_float(tmp_path):
    recipe = tmp_path / "mine.yaml"
    recipe.write_text("learning_rate: 1e-4\nlora_r: 4\n")  # YAML 1.1 reads 1e-4 as a string
    _, adapter_args, _, training_args = parse_train_args(["--recipe", str(recipe), "--lora_r", "2"])
    assert training_args.learning_rate == 1e-4 and adapter_args.lora_r == 2


def test_bad_values_are_reported_before_the_model_loads(tmp_path, lrv_dataset, monkeypatch):
    from lrv_hf.train import trainer as trainer_module

    def never(*args, **kwargs):
        raise AssertionError("the model was loaded before the bad input was found")

    monkeypatch.setattr(trainer_module, "load_adapter_model", never)
    with pytest.raises(InputError, match="`learning_rate` must be positive"):
        main(tiny_args(tmp_path, lrv_dataset, "--learning_rate", "0"))
    empty = tmp_path / "empty"
    write_synthetic_release(empty / "release", num_images=5, seed=0)
    release = json.loads((empty / "release" / "filter_cap.json").read_text())
    for row in release["annotations"]:
        row.pop("answer", None)
    (empty / "release" / "filter_cap.json").write_text(json.dumps(release))
    build_dataset([empty / "release" / "filter_cap.json"], empty / "release" / "images", empty / "dataset")
    with pytest.raises(InputError, match="`dataset_name` .*: no answered instructions"):
        main(tiny_args(tmp_path / "run", str(empty / "dataset")))
    with pytest.raises(InputError, match="`max_length` 40: every one of the 8 conversations is longer"):
        main(tiny_args(tmp_path / "run", lrv_dataset, "--max_length", "40"))


def test_preflight_refuses_bf16_on_v100_and_falls_back_from_flash_attention():
    v100 = (7, 0)
    with pytest.raises(InputError, match="bf16 needs compute capability 8.0.*V100"):
        preflight(ModelArguments(dtype="float16"), LRVTrainingArguments(output_dir="x", bf16=True, use_cpu=True), v100)
    with pytest.raises(InputError, match="bf16"):
        preflight(ModelArguments(dtype="bfloat16"), LRVTrainingArguments(output_dir="x", use_cpu=True), v100)
    model_args = ModelArguments(attn_implementation="flash_attention_2")
    preflight(model_args, LRVTrainingArguments(output_dir="x", fp16=True, use_cpu=True), v100)
    assert model_args.attn_implementation == "sdpa"
    preflight(ModelArguments(dtype="bfloat16"), LRVTrainingArguments(output_dir="x", use_cpu=True), (8, 0))
    with pytest.raises(InputError, match="needs a CUDA GPU"):
        preflight(ModelArguments(), LRVTrainingArguments(output_dir="x", fp16=True, use_cpu=True))


# the collator


def conversation(answers=("The ball is red.", "No, it is small.")):
    image = Image.new("RGB", (128, 128), (200, 30, 30))
    return {"messages": to_messages(["What color is the ball?", "Is it big?"], list(answers)), "images": [image]}


def test_label_mask_covers_exactly_the_answer_tokens(tiny):
    _, processor = tiny
    collator = AnswerOnlyCollator(processor, max_length=256)
    short = {"messages": to_messages(["Describe it."], ["A red ball."]), "images": [Image.new("RGB", (64, 64))]}
    batch = collator([conversation(), short])
    tokenizer = processor.tokenizer
    for row, answers in enumerate([[" The ball is red.</s>", " No, it is small.</s>"], [" A red ball.</s>"]]):
        labels, ids = batch["labels"][row], batch["input_ids"][row]
        learnt = labels != IGNORE_INDEX
        assert torch.equal(labels[learnt], ids[learnt])
        expected = tokenizer("".join(answers), add_special_tokens=False).input_ids
        assert labels[learnt].tolist() == expected
        # each answer is one contiguous run, and no image or pad token is learnt
        assert int((learnt[1:] & ~learnt[:-1]).sum()) == len(answers)
        assert (
            not learnt[ids == processor.image_token_id].any() and not learnt[batch["attention_mask"][row] == 0].any()
        )
        assert int((ids == processor.image_token_id).sum()) == NUM_IMAGE_TOKENS
    assert batch["attention_mask"][1].sum() < batch["attention_mask"][0].sum()  # right padding
    assert batch["attention_mask"][1, -1] == 0


CHATML = (
    "{% for message in messages %}{% if loop.first and message['role'] != 'system' %}<|im_start|>system\nYou are a "
    "helpful assistant.<|im_end|>\n{% endif %}<|im_start|>{{ message['role'] }}\n{% for part in message['content'] %}"
    "{% if part['type'] == 'image' %}<image>\n{% else %}{{ part['text'] }}{% endif %}{% endfor %}<|im_end|>\n"
    "{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)


@pytest.mark.parametrize("template", ["tiny", "chatml", "instructblip-vicuna-7b/projector-v100"])
def test_answer_spans_follow_the_template(tiny, template):
    """The answer + end-of-turn is learnt whatever the template writes around it (Qwen's ChatML, MiniGPT-4's)."""
    from transformers import LlavaProcessor

    _, tiny_processor = tiny
    processor = LlavaProcessor(
        image_processor=tiny_processor.image_processor,
        tokenizer=tiny_processor.tokenizer,
        patch_size=tiny_processor.patch_size,
        vision_feature_select_strategy="default",
        num_additional_image_tokens=1,
        chat_template=tiny_processor.chat_template,
    )
    expected, with_image = " The ball is red.</s> No, it is small.</s>", True
    if template == "chatml":
        processor.chat_template = CHATML
        expected = "The ball is red.<|im_end|>\nNo, it is small.<|im_end|>\n"
    elif template != "tiny":
        processor.chat_template = yaml.safe_load(recipe_path(template).read_text())["chat_template"]
        expected = " The ball is red.### No, it is small.###"  # MiniGPT-4's `###` ends each answer
        with_image = False  # InstructBLIP's processor prepends the query tokens; its template names no image
    row = conversation()
    if not with_image:
        row["images"] = []
        row["messages"][0]["content"] = row["messages"][0]["content"][1:]
    by_alignment = AnswerOnlyCollator(processor)
    by_alignment.offsets = False
    for collator in (AnswerOnlyCollator(processor), by_alignment):
        labels = collator([row, row])["labels"][1]
        assert processor.tokenizer.decode(labels[labels != IGNORE_INDEX]) == expected


def test_offsets_and_alignment_give_the_same_labels(tiny):
    # offsets: one tokenization per step; alignment: the fallback for processors without offsets
    _, processor = tiny
    by_alignment = AnswerOnlyCollator(processor)
    by_alignment.offsets = False
    rows = [conversation(), conversation(answers=("Blue.", "Yes, very big indeed."))]
    fast, slow = AnswerOnlyCollator(processor)(rows), by_alignment(rows)
    assert "offset_mapping" not in fast and torch.equal(fast["labels"], slow["labels"])


def test_measure_and_truncation_keep_the_image_whole(tiny):
    _, processor = tiny
    long, short = conversation(answers=("The ball is red. " * 20, "No.")), conversation()
    (long_length, long_first), (short_length, short_first) = AnswerOnlyCollator(processor).measure([long, short])
    whole = AnswerOnlyCollator(processor)([long, short])
    assert (long_length, short_length) == tuple(whole["attention_mask"].sum(dim=1).tolist())
    assert long_first == short_first == int((whole["labels"][1] != IGNORE_INDEX).nonzero()[0])
    assert short_first > NUM_IMAGE_TOKENS and long_length > 80 > short_first
    cut = AnswerOnlyCollator(processor, max_length=80)([long, short])
    assert cut["input_ids"].shape == cut["labels"].shape == cut["attention_mask"].shape == (2, 80)
    assert torch.equal(cut["labels"], whole["labels"][:, :80])
    assert int((cut["input_ids"][0] == processor.image_token_id).sum()) == NUM_IMAGE_TOKENS


# training runs


SECRETS = {"HF_TOKEN": "hf_secret_value_123", "OPENAI_API_KEY": "sk-secret-value-456"}


@pytest.fixture(scope="module")
def lora_result(tmp_path_factory, lrv_dataset):
    """Overfits four conversations: the LoRA run that the save, reload, merge and card tests look at.

    It runs with a Hub token and a judge key in the environment, so the card tests can show that neither leaks.
    """
    out = tmp_path_factory.mktemp("lora")
    summaries = ["--gavie_summary", str(write_gavie(out)), "--pope_summary", str(write_pope(out))]
    with pytest.MonkeyPatch.context() as env:
        for name, value in SECRETS.items():
            env.setenv(name, value)
        # lr 1e-2: ten steps must overfit visibly (the recipe's 3e-3 is tuned for its 1500 steps)
        args = tiny_args(out, lrv_dataset, "--max_samples", "4", "--max_steps", "10", "--learning_rate", "1e-2")
        return main([*args, *summaries])


@pytest.fixture(scope="module")
def lora_run(lora_result):
    return lora_result.trainer


def write_gavie(folder: Path) -> Path:
    path = folder / "gavie_summary.json"
    path.write_text(json.dumps({"accuracy": 6.25, "relevancy": 8.5, "n": 40, "n_scored": 40}))
    return path


def write_pope(folder: Path) -> Path:
    path = folder / "pope_summary.json"
    figures = {"accuracy": 0.8125, "f1": 0.75, "precision": 0.8, "recall": 0.7, "yes_ratio": 0.45}
    path.write_text(json.dumps({"unknown_as": "no", "models": {"lrv": {"random": figures}}}))
    return path


def test_lora_trains_the_adapter_only(lora_run):
    unchanged_trainable, changed_frozen = frozen_changes(lora_run)
    assert not unchanged_trainable
    assert not changed_frozen


def test_projector_only_trains_the_projector_only(tmp_path, lrv_dataset):
    trainer = main(
        tiny_args(tmp_path, lrv_dataset, "--adapter", "projector", "--trainable_modules", "multi_modal_projector")
    ).trainer
    trainable = [name for name, p in trainer.model.named_parameters() if p.requires_grad]
    assert trainable and all("multi_modal_projector.modules_to_save" in name for name in trainable)
    unchanged_trainable, changed_frozen = frozen_changes(trainer)
    assert not unchanged_trainable and not changed_frozen
    saved = json.loads((tmp_path / "adapter_config.json").read_text())
    assert saved["modules_to_save"] == ["multi_modal_projector"]


def test_adapter_saved_as_safetensors_with_processor_and_card(lora_result):
    from huggingface_hub import ModelCard

    out = lora_result.output_dir
    assert lora_result.adapter_path == out / "adapter_model.safetensors" and lora_result.adapter_path.is_file()
    assert not list(out.glob("adapter_model.bin")) and lora_result.global_step == 10
    config = json.loads((out / "adapter_config.json").read_text())
    assert Path(config["base_model_name_or_path"]) == (out / "base").resolve()
    assert (out / "processor_config.json").is_file() and (out / "chat_template.jinja").is_file()
    card = ModelCard.load(lora_result.card_path)
    # a local base and a local dataset are no Hub ids: the Hub would link them to nothing
    assert card.data.base_model is None and card.data.datasets is None and card.data.library_name == "peft"
    results = {(r.dataset_type, r.dataset_config, r.metric_type): r.metric_value for r in card.data.eval_results}
    assert results == {
        ("lrv-instruction-gavie", None, "gavie-accuracy"): 6.25,
        ("lrv-instruction-gavie", None, "gavie-relevancy"): 8.5,
        ("pope", "random", "accuracy"): 0.8125,
        ("pope", "random", "f1"): 0.75,
    }
    assert f"`{config['base_model_name_or_path']} (revision main)`" in card.text
    assert "`tiny/lora-cpu`" in card.text and "| 6.25 | 8.50 | 40 |" in card.text and "lora_r | `16`" in card.text
    assert "| random | 0.8125 | 0.7500 |" in card.text and "@inproceedings{liu2023mitigating" in card.text


def test_no_secret_from_the_environment_reaches_any_file_of_the_run(lora_result):
    """The run had HF_TOKEN and OPENAI_API_KEY set (see `lora_result`): no byte of either may be written anywhere."""
    written = [p for p in lora_result.output_dir.rglob("*") if p.is_file()]
    assert any(p.name == "README.md" for p in written) and any(p.name == "training_args.bin" for p in written)
    for path in written:
        data = path.read_bytes()
        assert not [name for name, value in SECRETS.items() if value.encode() in data], path


def test_save_reload_gives_identical_logits_and_merge_the_same_outputs(lora_run, tiny):
    from peft import PeftModel
    from transformers import AutoModelForImageTextToText, AutoProcessor

    out = Path(lora_run.args.output_dir)
    processor = AutoProcessor.from_pretrained(out)
    batch = AnswerOnlyCollator(processor)([conversation()])
    batch.pop("labels")
    trained = lora_run.model.eval()
    with torch.no_grad():
        expected = trained(**batch).logits
        base = AutoModelForImageTextToText.from_pretrained(out / "base")
        reloaded = PeftModel.from_pretrained(base, out).eval()
        assert torch.equal(reloaded(**batch).logits, expected)
        merged = reloaded.merge_and_unload()
        torch.testing.assert_close(merged(**batch).logits, expected, atol=1e-4, rtol=1e-4)
        plain = AutoModelForImageTextToText.from_pretrained(out / "base")
        assert not torch.allclose(plain(**batch).logits, expected, atol=1e-3), "the adapter changed nothing"


def test_loss_decreases_when_overfitting(lora_run):
    losses = [entry["loss"] for entry in lora_run.state.log_history if "loss" in entry]
    assert len(losses) == 10
    assert sum(losses[-3:]) / 3 < 0.6 * sum(losses[:3]) / 3, losses


def test_resume_continues_from_the_saved_step(tmp_path, lrv_dataset, monkeypatch):
    flags = ["--save_strategy", "steps", "--save_steps", "2"]
    main(tiny_args(tmp_path, lrv_dataset, *flags, "--max_steps", "2"))  # the run that was "killed" after step 2
    assert (tmp_path / "checkpoint-2").is_dir()
    steps = []
    original = LRVTrainer.training_step

    def counting(self, *args, **kwargs):
        steps.append(self.state.global_step)
        return original(self, *args, **kwargs)

    monkeypatch.setattr(LRVTrainer, "training_step", counting)
    result = main(tiny_args(tmp_path, lrv_dataset, *flags, "--max_steps", "4"))
    assert steps == [2, 3] and result.resumed_from == str(tmp_path / "checkpoint-2")
    assert result.global_step == 4 and (tmp_path / "checkpoint-4").is_dir()


def test_a_damaged_latest_checkpoint_falls_back_to_the_newest_intact_one(tmp_path, lrv_dataset, monkeypatch, caplog):
    """Issue 14.2: a truncated adapter in the newest checkpoint made the resume crash."""
    flags = ["--save_strategy", "steps", "--save_steps", "2", "--save_total_limit", "3"]
    main(tiny_args(tmp_path, lrv_dataset, *flags, "--max_steps", "4"))
    weights = tmp_path / "checkpoint-4" / "adapter_model.safetensors"
    weights.write_bytes(weights.read_bytes()[: weights.stat().st_size // 2])  # the disk filled up while saving
    steps, original = [], LRVTrainer.training_step

    def counting(self, *args, **kwargs):
        steps.append(self.state.global_step)
        return original(self, *args, **kwargs)

    monkeypatch.setattr(LRVTrainer, "training_step", counting)
    with caplog.at_level(logging.INFO, logger="lrv_hf.train.trainer"):
        result = main(tiny_args(tmp_path, lrv_dataset, *flags, "--max_steps", "6"))
    assert result.resumed_from == str(tmp_path / "checkpoint-2") and steps == [2, 3, 4, 5]
    assert f"skipping {tmp_path / 'checkpoint-4'}: adapter_model.safetensors is unreadable" in caplog.text
    assert f"resuming from {tmp_path / 'checkpoint-2'}" in caplog.text
    weights.write_bytes(b"\x08")
    with pytest.raises(InputError, match=r"`resume_from_checkpoint` .*checkpoint-4: adapter_model.safetensors is"):
        main(tiny_args(tmp_path, lrv_dataset, *flags, "--resume_from_checkpoint", str(tmp_path / "checkpoint-4")))


def test_damage_is_found_in_each_file_a_checkpoint_needs(lora_result, tmp_path):
    import shutil

    source = tmp_path / "intact"
    shutil.copytree(lora_result.output_dir, source, ignore=shutil.ignore_patterns("base", "synthetic", "checkpoint-*"))
    (source / "trainer_state.json").write_text(json.dumps({"global_step": 10}))
    torch.save({"state": torch.zeros(100)}, source / "optimizer.pt")
    assert _damage(source) is None
    for name, expected in [
        ("trainer_state.json", "trainer_state.json is truncated"),
        ("optimizer.pt", "optimizer.pt is truncated"),
        ("adapter_model.safetensors", "adapter_model.safetensors is unreadable"),
    ]:
        damaged = tmp_path / name
        shutil.copytree(source, damaged)
        (damaged / name).write_bytes((source / name).read_bytes()[:-7])
        assert _damage(damaged).startswith(expected), name
    (damaged / "trainer_state.json").unlink()
    assert _damage(damaged) == "no trainer_state.json"


@pytest.mark.parametrize("overlong", ["drop", "truncate"])
def test_overlong_samples_are_settled_before_batching_even_at_batch_size_1(
    tmp_path, lrv_dataset, monkeypatch, caplog, overlong
):
    """Issue 14.1: at batch size 1 an over-long sample used to be a batch with nothing left, and the run crashed."""
    from datasets import load_dataset
    from transformers import AutoProcessor

    from lrv_hf.data import chat_view
    from lrv_hf.testing.tiny_base import tiny_base_path

    # the 8 synthetic conversations' token lengths; the limit leaves some of them over it
    processor = AutoProcessor.from_pretrained(tiny_base_path())
    conversations = chat_view(load_dataset(lrv_dataset, "instructions", split="train"), multi_turn=True)
    lengths = sorted(AnswerOnlyCollator(processor)([c])["input_ids"].shape[1] for c in conversations)
    limit = lengths[len(lengths) // 2]
    over = sum(length > limit for length in lengths)
    assert 0 < over < len(lengths)
    widths, original = [], LRVTrainer.training_step

    def recording(self, model, inputs, *args, **kwargs):
        widths.append(inputs["input_ids"].shape[1])
        return original(self, model, inputs, *args, **kwargs)

    monkeypatch.setattr(LRVTrainer, "training_step", recording)
    flags = [
        "--max_length",
        str(limit),
        "--per_device_train_batch_size",
        "1",
        "--max_steps",
        "9",
        "--overlong",
        overlong,
    ]
    with caplog.at_level(logging.WARNING, logger="lrv_hf.train.trainer"):
        result = main(tiny_args(tmp_path, lrv_dataset, *flags))
    dropped, truncated = (over, 0) if overlong == "drop" else (0, over)
    assert (result.dropped, result.truncated, result.conversations) == (dropped, truncated, 8 - dropped)
    assert result.global_step == 9 and len(widths) == 9 and max(widths) <= limit
    assert overlong == "drop" or max(widths) == limit  # the cut samples were trained on, cut
    assert caplog.text.count(f"{over} of 8 conversations are longer than `max_length`={limit}") == 1
    card = (tmp_path / "README.md").read_text()
    assert f"| data: dropped (longer than max_length={limit}) | `{dropped}` |" in card
    assert f"| data: answers cut at max_length | `{truncated}` |" in card


def test_nan_loss_stops_the_run_with_a_clear_message(tmp_path, lrv_dataset, monkeypatch):
    from transformers import Trainer

    monkeypatch.setattr(Trainer, "training_step", lambda self, *a, **k: torch.tensor(float("nan")))
    with pytest.raises(FloatingPointError, match=r"loss became nan at step 1 \(fp32\).*resume"):
        main(tiny_args(tmp_path, lrv_dataset))


def test_push_uploads_adapter_processor_and_card_only(tmp_path, lrv_dataset, monkeypatch):
    import huggingface_hub
    from huggingface_hub.utils import filter_repo_objects

    calls = {}

    class FakeApi:
        def __init__(self, token=None):
            calls["token"] = token

        def create_repo(self, repo_id, **kwargs):
            calls["repo"] = (repo_id, kwargs)

        def upload_folder(self, repo_id, folder_path, allow_patterns, ignore_patterns, **kwargs):
            files = [p.relative_to(folder_path).as_posix() for p in Path(folder_path).rglob("*") if p.is_file()]
            calls["files"] = set(
                filter_repo_objects(files, allow_patterns=allow_patterns, ignore_patterns=ignore_patterns)
            )

    monkeypatch.setattr(huggingface_hub, "HfApi", FakeApi)
    flags = ["--push_to_hub", "true", "--hub_model_id", "me/tiny-lrv", "--save_strategy", "steps", "--save_steps", "2"]
    main(tiny_args(tmp_path, lrv_dataset, "--max_steps", "2", *flags))
    assert calls["token"] is None and calls["repo"][0] == "me/tiny-lrv"  # the token comes from HF_TOKEN, never us
    assert {"adapter_model.safetensors", "adapter_config.json", "README.md", "processor_config.json"} <= calls["files"]
    assert not [
        f for f in calls["files"] if f.startswith(("base/", "checkpoint-", "synthetic/")) or f.endswith(".bin")
    ]


def test_model_card_links_hub_ids_and_refuses_a_token_in_the_recipe():
    card = model_card(
        "org/base", "abc123", "llava-1.5-7b/lora-v100", {"adapter": "lora"}, {"dataset": "org/lrv"}, "org/lrv"
    )
    assert card.data.base_model == "org/base" and card.data.datasets == ["org/lrv"] and not card.data.eval_results
    assert "`org/base (revision abc123)`" in card.text and "## GAVIE" not in card.text
    with pytest.raises(InputError, match="`hub_token`: pass the Hub token through the HF_TOKEN"):
        main(["--recipe", "tiny/lora-cpu", "--hub_token", "hf_x", "--output_dir", "unused"])


# entry points


def test_cli_lists_recipes_and_reports_bad_recipes_in_one_line():
    listed = subprocess.run([BIN / "lrv-hf", "train", "--list-recipes"], capture_output=True, text=True, check=True)
    assert listed.stdout.split() == list_recipes()
    bad = subprocess.run(
        [sys.executable, "-m", "lrv_hf.train", "--recipe", "nope/none", "--max_steps", "1"],
        capture_output=True,
        text=True,
    )
    assert bad.returncode == 2 and bad.stderr.strip().count("\n") == 0 and "no such recipe" in bad.stderr
    wrong = subprocess.run(
        [BIN / "lrv-hf", "train", "--recipe", "tiny/lora-cpu", "--max_steps", "many"], capture_output=True, text=True
    )
    assert wrong.returncode == 2 and wrong.stderr.strip().count("\n") == 0
    assert "--max_steps" in wrong.stderr and "invalid int value: 'many'" in wrong.stderr
    usage = subprocess.run([BIN / "lrv-hf", "train", "--help"], capture_output=True, text=True, check=True)
    assert "--lora_r" in usage.stdout and "--overlong" in usage.stdout and "--learning_rate" in usage.stdout


@pytest.mark.slow
def test_tiny_recipe_trains_a_working_adapter_from_the_command_line(tmp_path):
    out = tmp_path / "run"
    done = subprocess.run(
        # the recipe as shipped, cut to 40 of its 1500 steps (the learning itself is tests/test_learning.py's)
        [
            BIN / "lrv-hf",
            "train",
            "--recipe",
            "tiny/lora-cpu",
            "--output-dir",
            str(out),
            "--disable_tqdm",
            "true",
            "--max_steps",
            "40",
            "--save_steps",
            "40",
            "--logging_steps",
            "5",
        ],  # fmt: skip
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert (out / "adapter_model.safetensors").is_file() and (out / "base" / "model.safetensors").is_file()
    state = json.loads((out / "checkpoint-40" / "trainer_state.json").read_text())
    losses = [entry["loss"] for entry in state["log_history"] if "loss" in entry]
    assert losses[-1] < 0.5 * losses[0], losses


@pytest.mark.slow
def test_a_killed_run_resumes_from_its_last_complete_checkpoint(tmp_path, lrv_dataset):
    command = [
        BIN / "lrv-hf",
        "train",
        *tiny_args(tmp_path, lrv_dataset, "--save_strategy", "steps", "--save_steps", "2"),
    ]
    run = subprocess.Popen([*command, "--max_steps", "1000"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 240
        while not (tmp_path / "checkpoint-4" / "trainer_state.json").is_file():
            assert run.poll() is None and time.monotonic() < deadline, "the run never reached its 4th step"
            time.sleep(0.1)
    finally:
        run.kill()  # SIGKILL: nothing more is saved, a checkpoint being written stays half-written
        run.wait()
    (tmp_path / "checkpoint-1000").mkdir()  # as a kill in the middle of saving leaves it: no trainer_state.json
    complete = max(int(p.parent.name.split("-")[1]) for p in tmp_path.glob("checkpoint-*/trainer_state.json"))
    assert complete >= 4
    done = subprocess.run([*command, "--max_steps", str(complete + 2)], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    assert f"resuming from {tmp_path / f'checkpoint-{complete}'}" in done.stderr
    assert f"skipping {tmp_path / 'checkpoint-1000'}: no trainer_state.json" in done.stderr
    state = json.loads((tmp_path / f"checkpoint-{complete + 2}" / "trainer_state.json").read_text())
    assert state["global_step"] == complete + 2


DDP_WORKER = """
import json, logging, os, sys
import torch
from lrv_hf.train.trainer import main

logging.basicConfig(level=logging.INFO)
trainer = main(sys.argv[1:]).trainer
trainable = {n: p.detach().double().sum().item() for n, p in trainer.model.named_parameters() if p.requires_grad}
rank = int(os.environ.get("RANK", "0"))
out = os.path.join(trainer.args.output_dir, f"rank{rank}.json")
json.dump({"world_size": trainer.args.world_size, "step": trainer.state.global_step, "weights": trainable}, open(out, "w"))
"""


@pytest.mark.slow
def test_two_process_ddp_on_cpu_completes_and_ranks_agree(tmp_path, lrv_dataset):
    worker = tmp_path / "worker.py"
    worker.write_text(DDP_WORKER)
    out = tmp_path / "ddp"
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO)}
    done = subprocess.run(
        [BIN / "accelerate", "launch", "--multi_gpu", "--num_processes", "2", "--num_machines", "1",
         "--mixed_precision", "no", "--dynamo_backend", "no", str(worker),
         *tiny_args(out, lrv_dataset, "--max_length", "210")],
        capture_output=True, text=True, timeout=300, env=env, cwd=tmp_path,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    ranks = [json.loads((out / f"rank{r}.json").read_text()) for r in (0, 1)]
    assert ranks[0]["world_size"] == ranks[1]["world_size"] == 2
    assert ranks[0]["step"] == ranks[1]["step"] == 4
    assert ranks[0]["weights"] == ranks[1]["weights"]
    assert (out / "adapter_model.safetensors").is_file()
    # each rank sizes the data and builds the trainer, but only the main process speaks
    assert done.stderr.count("5 of 8 conversations are longer than `max_length`=210") == 1, done.stderr[-3000:]
    assert len(re.findall(r"training \d+ of \d+ parameters", done.stderr)) == 1, done.stderr[-3000:]


DEEPSPEED_WORKER = """
import json, logging, os, sys
from lrv_hf.train.trainer import LRVTrainer, main

logging.basicConfig(level=logging.INFO)
steps = []
original = LRVTrainer.training_step

def counting(self, *args, **kwargs):
    steps.append(self.state.global_step)
    return original(self, *args, **kwargs)

LRVTrainer.training_step = counting
trainer = main(sys.argv[1:]).trainer
record = {"deepspeed": trainer.is_deepspeed_enabled, "world_size": trainer.args.world_size, "steps": steps}
json.dump(record, open(os.path.join(trainer.args.output_dir, f"rank{os.environ.get('RANK', '0')}.json"), "w"))
"""


@pytest.mark.slow
def test_lora_under_deepspeed_zero2_resumes_from_its_checkpoint(tmp_path, lrv_dataset):
    """Issue 4 under DeepSpeed: 2 CPU processes, ZeRO-2 shards the optimizer, the resumed run goes on from step 2."""
    import importlib.util

    from peft import PeftModel, get_peft_model_state_dict
    from safetensors.torch import load_file
    from transformers import AutoModelForImageTextToText

    if importlib.util.find_spec("deepspeed") is None:
        pytest.skip("deepspeed is not installed: pip install 'lrv-hf[deepspeed]'")
    config = yaml.safe_load((REPO / "lrv_hf/recipes/accelerate/deepspeed-zero2-fp16.yaml").read_text())
    config.update(mixed_precision="no", num_processes=2)  # DeepSpeed's fp16 needs a GPU; the ZeRO-2 part is the same
    (tmp_path / "zero2-cpu.yaml").write_text(yaml.safe_dump(config))
    (tmp_path / "worker.py").write_text(DEEPSPEED_WORKER)
    out = tmp_path / "run"
    # the first run on a machine JIT-compiles DeepSpeed's shared-memory all-reduce (~1 min, cached afterwards)
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO), "DS_ACCELERATOR": "cpu"}

    def launch(max_steps: int) -> tuple[str, list[dict]]:
        flags = ["--save_strategy", "steps", "--save_steps", "2", "--max_steps", str(max_steps)]
        done = subprocess.run(
            [BIN / "accelerate", "launch", "--config_file", "zero2-cpu.yaml", "worker.py",
             *tiny_args(out, lrv_dataset, *flags)],
            capture_output=True, text=True, timeout=300, env=env, cwd=tmp_path,
        )  # fmt: skip
        assert done.returncode == 0, done.stderr[-3000:]
        return done.stderr, [json.loads((out / f"rank{r}.json").read_text()) for r in (0, 1)]

    _, ranks = launch(2)  # the run that stopped after its checkpoint at step 2
    assert [(r["deepspeed"], r["world_size"], r["steps"]) for r in ranks] == [(True, 2, [0, 1])] * 2
    checkpoint = out / "checkpoint-2"
    assert {p.name for p in (checkpoint / "global_step2").glob("zero_pp_rank_*_optim_states.pt")} == {
        f"zero_pp_rank_{r}_mp_rank_00_optim_states.pt" for r in (0, 1)
    }
    stderr, ranks = launch(4)
    assert f"resuming from {checkpoint}" in stderr
    assert [r["steps"] for r in ranks] == [[2, 3]] * 2
    assert json.loads((out / "checkpoint-4" / "trainer_state.json").read_text())["global_step"] == 4
    saved, final = load_file(checkpoint / "adapter_model.safetensors"), load_file(out / "adapter_model.safetensors")
    reloaded = get_peft_model_state_dict(
        PeftModel.from_pretrained(AutoModelForImageTextToText.from_pretrained(out / "base"), out)
    )
    assert reloaded.keys() == final.keys() == saved.keys()
    assert all(torch.equal(reloaded[k], final[k]) and not torch.equal(final[k], saved[k]) for k in final)


@pytest.mark.slow
def test_ctrl_c_of_python_m_train_is_exit_130_and_one_line(lrv_dataset, tmp_path):
    """A real SIGINT during `python -m lrv_hf.train` (what `accelerate launch -m` runs): exit 130, no traceback."""
    import signal

    argv = [sys.executable, "-m", "lrv_hf.train", *tiny_args(tmp_path / "run", lrv_dataset, "--max_steps", "2000")]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env)
    try:
        for line in proc.stdout:  # training has started once the Trainer logs its first loss
            if "'loss'" in line or '"loss"' in line:
                break
        proc.send_signal(signal.SIGINT)
        out, _ = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 130, out[-2000:]
    assert "Traceback" not in out
    assert out.strip().splitlines()[-1].startswith("lrv_hf.train: interrupted; the checkpoints saved so far are kept")
