"""`lrv_hf.infer` / `lrv-hf infer`: batched == one-by-one, base vs adapter from one base, resume, sharding, refusals."""

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from lrv_hf.cli import main as cli
from lrv_hf.errors import InputError
from lrv_hf.infer import GenerationSettings, InferResult, generate_answers, load_model, meta_path, run_inference
from lrv_hf.testing.hub import save_adapter, save_base


SETTINGS = GenerationSettings(max_new_tokens=8, batch_size=4)


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    """A tiny base, an adapter trained on it, a pickle adapter and an adapter of another base."""
    root = tmp_path_factory.mktemp("tiny")
    base = save_base(root / "base")
    return {
        "base": str(base),
        "adapter": str(save_adapter(base, root / "adapter", base_name=str(base))),
        "pickle": str(save_adapter(base, root / "pickle", base_name=str(base), pickle=True)),
        "other": str(save_adapter(base, root / "other", base_name="someone/another-base")),
    }


def read_rows(path) -> list[dict]:
    return [json.loads(line) for line in Path(path).read_text().splitlines()]


def test_batched_answers_equal_one_by_one(tiny, synthetic_release):
    from PIL import Image

    model, processor = load_model(tiny["base"])
    images = [Image.open(p) for p in sorted((synthetic_release / "images").glob("*.jpg"))[:4]]
    # different lengths, so left padding really happens
    questions = ["Is there a kite?", "Describe the image briefly.", "What color is the ball next to the box?", "Hi"]
    batched = generate_answers(model, processor, images, questions, SETTINGS)
    alone = [generate_answers(model, processor, [i], [q], SETTINGS)[0] for i, q in zip(images, questions)]
    assert batched == alone
    assert any(batched), "the tiny model answered nothing: the comparison would be empty"


def test_release_file_base_and_adapter_from_one_base(tiny, synthetic_release, tmp_path):
    common = {"images": str(synthetic_release / "images"), "settings": SETTINGS, "limit": 6}
    data = str(synthetic_release / "evaluation_set.json")
    out = tmp_path / "both.jsonl"
    result = run_inference(tiny["base"], data, str(out), adapter=tiny["adapter"], both=True, **common)
    assert result == InferResult(rows=12, written=12, skipped=0, output=out)
    rows = read_rows(out)
    assert [r["model"] for r in rows] == [tiny["base"], tiny["adapter"]] * 6  # each question's answers together
    assert all(set(r) == {"image_id", "question", "answer", "model"} for r in rows)  # the eval set has no task
    base = {(r["image_id"], r["question"]): r["answer"] for r in rows if r["model"] == tiny["base"]}
    lrv = {(r["image_id"], r["question"]): r["answer"] for r in rows if r["model"] == tiny["adapter"]}
    assert base.keys() == lrv.keys() and len(base) == 6
    assert base != lrv

    # disable_adapter() gives exactly the answers of the base loaded alone
    alone = tmp_path / "base.jsonl"
    run_inference(tiny["base"], data, str(alone), **common)
    assert {(r["image_id"], r["question"]): r["answer"] for r in read_rows(alone)} == base

    meta = json.loads(meta_path(out).read_text())
    assert meta["generation"] == {"max_new_tokens": 8, "batch_size": 4, "do_sample": False, "num_beams": 1}
    assert meta["models"] == [tiny["base"], tiny["adapter"]] and meta["rows"] == 12


def test_resume_skips_written_rows(tiny, synthetic_release, tmp_path):
    common = {"images": str(synthetic_release / "images"), "settings": SETTINGS, "limit": 7}
    data = str(synthetic_release / "filter_cap.json")
    full = tmp_path / "full.jsonl"
    run_inference(tiny["base"], data, str(full), adapter=tiny["adapter"], **common)
    expected = read_rows(full)
    assert {r["polarity"] for r in expected} >= {"positive"} and all("task" in r for r in expected)

    # a kill after 3 rows, in the middle of writing the 4th
    out = tmp_path / "killed.jsonl"
    lines = full.read_text().splitlines(keepends=True)
    out.write_text("".join(lines[:3]) + lines[3][:20])
    meta_path(out).write_text(meta_path(full).read_text())
    result = run_inference(tiny["base"], data, str(out), adapter=tiny["adapter"], **common)
    assert (result.written, result.skipped) == (4, 3)
    assert read_rows(out) == expected

    again = run_inference(tiny["base"], data, str(out), adapter=tiny["adapter"], **common)
    assert (again.written, again.skipped) == (0, 7)

    # other settings never append to the same file
    with pytest.raises(InputError, match=r"the output was written with other settings"):
        run_inference(
            tiny["base"], data, str(out), adapter=tiny["adapter"], **{**common, "settings": GenerationSettings(4)}
        )


def test_cli_on_a_built_dataset(tiny, built_dataset, tmp_path, capsys):
    out = tmp_path / "pred.jsonl"
    argv = ["infer", "--model", tiny["base"], "--adapter", tiny["adapter"], "--data", str(built_dataset)]
    argv += ["--output", str(out), "--max-new-tokens", "4", "--limit", "5"]
    assert cli(argv) == 2
    assert "choose one with --config" in capsys.readouterr().err
    assert cli(argv + ["--config", "instructions"]) == 0
    rows = read_rows(out)
    assert len(rows) == 5 and {r["model"] for r in rows} == {tiny["adapter"]}
    assert all(r["task"] and r["polarity"] in ("positive", "negative") for r in rows)


def test_jsonl_rows_as_data_keep_their_question_id(tiny, synthetic_release, tmp_path):
    """POPE probe files (JSONL rows with `image_id`, `question` and maybe `question_id`; extra keys ignored) are
    answered as they are, and each answer keeps its row's `question_id` (scorers join on it first)."""
    ids = sorted(p.stem for p in (synthetic_release / "images").glob("*.jpg"))[:2]
    probes = tmp_path / "probes.jsonl"
    rows = [{"image_id": i, "question": "Is there a kite in the image?", "label": "no"} for i in ids]
    rows[0]["question_id"] = 17
    probes.write_text("".join(json.dumps(row) + "\n" for row in rows))
    out = tmp_path / "answers.jsonl"
    run_inference(tiny["base"], str(probes), str(out), images=str(synthetic_release / "images"), settings=SETTINGS)
    written = read_rows(out)
    assert [(r["image_id"], r["question"]) for r in written] == [(r["image_id"], r["question"]) for r in rows]
    assert written[0]["question_id"] == "17" and "question_id" not in written[1]


@pytest.mark.parametrize(
    ("kwargs", "parameter", "message"),
    [
        ({"both": True}, ("both", "adapter"), "`both` needs `adapter`"),
        ({}, "images", "a release file needs `images`"),
        ({"images": "/nonexistent"}, "images", "/nonexistent: no such folder"),
        ({"settings_kwargs": {"batch_size": 0}}, "batch_size", "`batch_size` must be at least 1"),
    ],
)
def test_library_errors_name_parameters_not_flags(tiny, synthetic_release, tmp_path, kwargs, parameter, message):
    """A Python caller is told the parameter (`images`), never a command-line flag (`--images`)."""
    data = str(synthetic_release / "evaluation_set.json")
    with pytest.raises(InputError, match=re.escape(message)) as caught:
        settings = GenerationSettings(**kwargs.pop("settings_kwargs", {}))
        run_inference(tiny["base"], data, str(tmp_path / "p.jsonl"), settings=settings, **kwargs)
    assert caught.value.parameter == parameter and "--" not in str(caught.value)


@pytest.mark.parametrize(
    ("adapter", "extra", "message"),
    [
        ("pickle", [], "pickle weights (adapter_model.bin); only safetensors adapters are loaded"),
        ("other", [], "trained on base 'someone/another-base'"),
        ("adapter", ["--both", "--images", "/nonexistent"], "/nonexistent: no such folder"),
        ("adapter", [], "a release file needs --images"),
        ("adapter", ["--batch-size", "0", "--images", "/tmp"], "--batch-size must be at least 1"),
    ],
)
def test_cli_refusals_are_one_line(tiny, synthetic_release, tmp_path, capsys, adapter, extra, message):
    argv = ["infer", "--model", tiny["base"], "--adapter", tiny[adapter], "--output", str(tmp_path / "p.jsonl")]
    argv += ["--data", str(synthetic_release / "evaluation_set.json")]
    if adapter != "adapter":
        argv += ["--images", str(synthetic_release / "images")]
    assert cli(argv + extra) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and len(err.splitlines()) == 1 and "Traceback" not in err


@pytest.mark.slow
def test_sharded_under_accelerate_launch_merges_in_order(tiny, synthetic_release, tmp_path):
    """Two CPU processes (gloo): each writes its part, process 0 merges; same file as one process writes."""
    common = ["--model", tiny["base"], "--adapter", tiny["adapter"], "--both", "--max-new-tokens", "6"]
    common += ["--data", str(synthetic_release / "evaluation_set.json"), "--images", str(synthetic_release / "images")]
    common += ["--limit", "9", "--batch-size", "4"]
    single = tmp_path / "single.jsonl"
    assert cli(["infer", *common, "--output", str(single)]) == 0

    sharded = tmp_path / "sharded.jsonl"
    launch = [sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu", "--num_processes", "2"]
    launch += ["--num_machines", "1", "--mixed_precision", "no", "--dynamo_backend", "no"]
    env = {**os.environ, "CUDA_VISIBLE_DEVICES": "", "OMP_NUM_THREADS": "1"}
    proc = subprocess.run(
        [*launch, "-m", "lrv_hf.infer", *common, "--output", str(sharded)],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert json.loads(meta_path(sharded).read_text())["num_processes"] == 2
    assert sharded.read_text() == single.read_text()
    assert not list(tmp_path.glob("sharded.jsonl.part-*"))
