"""`lrv_hf.infer` / `lrv-hf infer`: batched == one-by-one, base vs adapter from one base, resume, sharding, refusals."""

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
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
    generation = {name: meta["settings"][name] for name in ("max_new_tokens", "do_sample", "num_beams")}
    assert generation == {"max_new_tokens": 8, "do_sample": False, "num_beams": 1} and meta["batch_size"] == 4
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
    with pytest.raises(InputError, match="max_new_tokens=8, this run asks for 4"):
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


# -- faults of resumed and concurrent runs (issue 14, item 12) --------------------------------------------------------
@pytest.fixture
def answered(tiny, synthetic_release, tmp_path):
    """An output of 4 base answers on a release file, and the arguments that made it."""
    kwargs = {"images": str(synthetic_release / "images"), "settings": SETTINGS, "limit": 4}
    args = (tiny["base"], str(synthetic_release / "evaluation_set.json"), str(tmp_path / "out.jsonl"))
    run_inference(*args, **kwargs)
    return args, kwargs


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"dtype": "bfloat16"}, "was made with dtype=auto, this run asks for bfloat16"),
        ({"images": "copy"}, "was made with images={images}, this run asks for {copy}"),
        (
            {"settings": GenerationSettings(max_new_tokens=9, batch_size=4)},
            "was made with max_new_tokens=8, this run asks for 9",
        ),
        (
            {"settings": GenerationSettings(8, 4, do_sample=True)},
            "was made with do_sample=false, this run asks for true",
        ),
        ({"adapter": "adapter"}, "was made with adapter=null, this run asks for {adapter}"),
    ],
)
def test_resume_with_settings_that_change_answers_stops_naming_the_difference(tiny, answered, change, message):
    """Found in the trial: a rerun with other `images` or `dtype` appended its answers to those of the first set-up
    and rewrote the meta. Every setting that changes answers must match; nothing is written otherwise."""
    (model, data, output), kwargs = answered
    before = (Path(output).read_bytes(), meta_path(output).read_bytes())
    images = Path(kwargs["images"]).absolute()
    copy = images.parent / "images-copy"
    if not copy.exists():
        shutil.copytree(images, copy)  # a folder of the same names: the trial's mix went unnoticed exactly so
    change = {k: str(copy) if v == "copy" else tiny[v] if v == "adapter" else v for k, v in change.items()}
    message = message.format(images=images, copy=copy, adapter=tiny["adapter"])
    with pytest.raises(InputError, match=re.escape(f"output {output} {message}; use another output or delete it")):
        run_inference(model, data, output, **{**kwargs, **change})
    assert (Path(output).read_bytes(), meta_path(output).read_bytes()) == before


def test_resume_with_other_batch_size_or_limit_continues(answered):
    """Settings that change only how fast or how much is answered may differ on resume."""
    (model, data, output), kwargs = answered
    first = Path(output).read_text()
    result = run_inference(model, data, output, **{**kwargs, "limit": 6, "settings": GenerationSettings(8, 1)})
    assert (result.written, result.skipped) == (2, 4)
    assert Path(output).read_text().startswith(first) and len(read_rows(output)) == 6
    assert json.loads(meta_path(output).read_text())["rows"] == 6


def test_a_malformed_line_in_the_middle_stops_the_resume_with_its_line_number(answered):
    """Found in the trial: one bad line in the middle silently deleted every later row. Only a last line cut by a
    kill (no newline) is repaired; anything else stops with the line number and leaves the file as it is."""
    (model, data, output), kwargs = answered
    lines = Path(output).read_text().splitlines(keepends=True)
    lines[1] = lines[1][:15] + "\n"
    Path(output).write_text("".join(lines))
    with pytest.raises(InputError, match=re.escape(f"{output}: line 2: not valid JSON")):
        run_inference(model, data, output, **{**kwargs, "limit": 6})
    assert Path(output).read_text() == "".join(lines)


@pytest.mark.parametrize(
    ("meta", "message"),
    [
        (None, "output {output} has rows but no record of the settings that made them ({meta})"),
        ('{"settings": {"model"', "{meta}: cannot be read (not valid JSON"),
        ('{"model": "m", "generation": {}}', "{meta}: records no settings (written by an older lrv-hf)"),
    ],
)
def test_an_output_without_a_readable_settings_record_is_not_resumed(answered, meta, message):
    (model, data, output), kwargs = answered
    if meta is None:
        meta_path(output).unlink()
    else:
        meta_path(output).write_text(meta)
    message = message.format(output=output, meta=meta_path(output))
    with pytest.raises(InputError, match=re.escape(message)) as caught:
        run_inference(model, data, output, **kwargs)
    assert caught.value.parameter == "output" and len(str(caught.value).splitlines()) == 1


def _start_infer(tiny, synthetic_release, output, limit=12) -> subprocess.Popen:
    argv = [sys.executable, "-m", "lrv_hf.infer", "--model", tiny["base"], "--output", str(output)]
    argv += ["--data", str(synthetic_release / "evaluation_set.json"), "--images", str(synthetic_release / "images")]
    argv += ["--max-new-tokens", "8", "--batch-size", "4", "--limit", str(limit)]
    env = {**os.environ, "CUDA_VISIBLE_DEVICES": "", "OMP_NUM_THREADS": "1"}
    return subprocess.Popen(argv, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _wait_for_lock(lock: Path, proc: subprocess.Popen) -> None:
    """Until `proc` has taken the lock (its pid is written only once it holds it)."""
    deadline = time.monotonic() + 120
    while not (lock.is_file() and lock.read_text().strip() == str(proc.pid)):
        assert proc.poll() is None, proc.stderr.read()[-3000:]
        assert time.monotonic() < deadline, f"{lock} was never taken"
        time.sleep(0.01)


@pytest.mark.slow
def test_a_second_run_on_the_same_output_stops_at_once_naming_the_holder(tiny, synthetic_release, tmp_path):
    """Found in the trial: two runs on one output both appended (90 duplicate rows). The second now stops with one
    line naming the lock and the pid holding it, and the first finishes with every row once."""
    output = tmp_path / "out.jsonl"
    lock = Path(f"{output}.lock")
    first = _start_infer(tiny, synthetic_release, output)
    try:
        _wait_for_lock(lock, first)
        os.kill(first.pid, signal.SIGSTOP)  # the holder, frozen while it holds the lock
        second = _start_infer(tiny, synthetic_release, output)
        _, err = second.communicate(timeout=120)
        os.kill(first.pid, signal.SIGCONT)
        assert second.returncode == 2
        line = f"lrv_hf.infer: error: {lock}: another run (pid {first.pid}) is writing {output}"
        assert err.strip().startswith(line) and len(err.strip().splitlines()) == 1, err
        assert first.wait(timeout=300) == 0, first.stderr.read()[-3000:]
    finally:
        if first.poll() is None:
            os.kill(first.pid, signal.SIGCONT)
            first.kill()
    keys = [(r["image_id"], r["question"]) for r in read_rows(output)]
    assert len(keys) == 12 and len(set(keys)) == 12
    assert not lock.exists()  # released and removed by a run that ends


@pytest.mark.slow
def test_the_lock_of_a_killed_run_is_taken_over(tiny, synthetic_release, tmp_path):
    """SIGKILL leaves `<output>.lock` with a dead pid; the next run takes it over and completes the output."""
    output = tmp_path / "out.jsonl"
    lock = Path(f"{output}.lock")
    killed = _start_infer(tiny, synthetic_release, output)
    _wait_for_lock(lock, killed)
    killed.kill()
    killed.wait()
    assert lock.read_text().strip() == str(killed.pid)
    rerun = _start_infer(tiny, synthetic_release, output)
    _, err = rerun.communicate(timeout=300)
    assert rerun.returncode == 0, err[-3000:]
    assert f"taking over {lock} from pid {killed.pid}" in err
    reference = tmp_path / "reference.jsonl"
    run_inference(
        tiny["base"],
        str(synthetic_release / "evaluation_set.json"),
        str(reference),
        images=str(synthetic_release / "images"),
        settings=GenerationSettings(max_new_tokens=8, batch_size=4),
        limit=12,
    )
    assert output.read_text() == reference.read_text() and not lock.exists()
