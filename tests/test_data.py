"""Release readers, the builder's Parquet output as `load_dataset` sees it, the views, and the synthetic release."""

import hashlib
import json
import subprocess
import sys
from pathlib import Path

import datasets
import pytest

from lrv_hf.data import chat_view, instruction_view, jsonstream, load_regions, read_instructions, read_regions
from lrv_hf.data.export import build_dataset
from lrv_hf.data.synth import COLORS, SHAPES, write_synthetic_release
from lrv_hf.errors import InputError


def write_json(path: Path, payload) -> Path:
    path.write_text(json.dumps(payload))
    return path


# --- streaming JSON -----------------------------------------------------------------------------------------------


def test_stream_matches_json_across_chunk_boundaries(tmp_path, monkeypatch):
    monkeypatch.setattr(jsonstream, "_CHUNK", 7)  # every element and number straddles a buffer boundary
    rows = [{"image_id": str(i), "question": "q" * i, "n": 1234567 * i} for i in range(40)]
    path = write_json(tmp_path / "a.json", {"meta": {"v": 1}, "annotations": rows})
    assert list(jsonstream.iter_records(path, list_key="annotations")) == rows
    assert list(jsonstream.iter_records(write_json(tmp_path / "b.json", rows), list_key="annotations")) == rows
    mapping = {str(i): [{"caption": "c", "bbox": [i, 2, 3, 4]}] for i in range(30)}
    assert dict(jsonstream.iter_items(write_json(tmp_path / "c.json", mapping))) == mapping


@pytest.mark.parametrize(
    "text", ['[\n {"a": 1},\n {"a": 2,,}\n]', '[{"a": 1}, {"a": 2}', '[{"a": 1}] x', '{"annotations": [1, 2 3]}']
)
def test_malformed_json_names_file_and_the_same_position_as_json(tmp_path, text):
    path = tmp_path / "bad.json"
    path.write_text(text)
    with pytest.raises(InputError, match=r"bad\.json: invalid JSON at line \d+ column \d+ \(char \d+\)") as info:
        list(jsonstream.iter_records(path, list_key="annotations"))
    try:
        json.loads(text)
    except json.JSONDecodeError as err:
        if "Extra data" not in err.msg:
            assert f"line {err.lineno} column {err.colno} (char {err.pos})" in str(info.value)


# --- readers ------------------------------------------------------------------------------------------------------


def test_every_instruction_shape_normalises(tmp_path):
    v1 = write_json(
        tmp_path / "filter_cap.json",
        {"annotations": [{"image_id": "1", "question": "Q?", "answer": "A.", "task": "negative"}]},
    )
    v2 = write_json(
        tmp_path / "filter_cap1.json", [{"image_id": 2, "question": "Q2", "answer": "A2", "task": "Counting"}]
    )
    chart = write_json(
        tmp_path / "chart_release_update.json",
        [{"image_id": "bar_17.png", "question": "Max?", "answer": "7", "task": "chart"}],
    )
    current = write_json(tmp_path / "evaluation_set.json", [{"image_id": "3", "question": "Is there a cat?"}])
    july = write_json(
        tmp_path / "eval_july.json", [{"image_id": "3", "instruction": "Is there a dog?", "answer_gt": "No."}]
    )

    (row,) = read_instructions(v1)
    assert (row.image_id, row.question, row.answer, row.task, row.polarity, row.source) == (
        "1",
        "Q?",
        "A.",
        "negative",
        "negative",
        "filter_cap.json",
    )
    (row,) = read_instructions(v2)
    assert (row.image_id, row.polarity) == ("2", "positive")  # int ids become strings
    (row,) = read_instructions(chart)
    assert row.image_id == "bar_17.png"
    (row,) = read_instructions(current)
    assert (row.question, row.answer, row.task, row.polarity) == ("Is there a cat?", None, None, None)
    (row,) = read_instructions(july)
    assert (row.question, row.answer, row.reference_answer) == ("Is there a dog?", None, "No.")


def test_both_region_shapes_normalise_to_caption_and_xywh(tmp_path):
    lrv = write_json(tmp_path / "vg_annotation.json", {"7": [{"caption": "a red ball", "bbox": [1, 2, 30, 40]}]})
    vg = write_json(
        tmp_path / "region_descriptions.json",
        [
            {
                "id": 7,
                "regions": [
                    {"region_id": 1, "image_id": 7, "phrase": "a red ball", "x": 1, "y": 2, "width": 30, "height": 40}
                ],
            }
        ],
    )
    expected = [("7", [{"caption": "a red ball", "bbox": [1, 2, 30, 40]}])]
    assert list(read_regions(lrv)) == expected
    assert list(read_regions(vg)) == expected
    assert load_regions(vg, image_ids={"8"}) == {}


# --- the built dataset --------------------------------------------------------------------------------------------


def test_load_dataset_returns_every_instruction_grouped_by_image(built_dataset, synthetic_release):
    released = json.loads((synthetic_release / "filter_cap.json").read_text())["annotations"]
    regions = json.loads((synthetic_release / "vg_annotation.json").read_text())
    ds = datasets.load_dataset(str(built_dataset), "instructions", split="train")
    assert isinstance(ds.features["image"], datasets.Image)
    assert len(ds) == len({r["image_id"] for r in released})  # one row per image: each image stored once
    rows = instruction_view(ds)
    assert sorted((r["image_id"], r["question"], r["answer"], r["task"]) for r in rows) == sorted(
        (r["image_id"], r["question"], r["answer"], r["task"]) for r in released
    )
    first = ds[0]
    assert first["image"].size == (128, 128)
    assert first["regions"] == regions[first["image_id"]]
    assert {p for r in ds for p in r["polarity"]} == {"positive", "negative"}
    assert all((t == "negative") == (p == "negative") for r in ds for t, p in zip(r["task"], r["polarity"]))


def test_evaluation_config_has_questions_without_answers(built_dataset, synthetic_release):
    released = json.loads((synthetic_release / "evaluation_set.json").read_text())
    ds = datasets.load_dataset(str(built_dataset), "evaluation", split="test")
    assert sum(len(q) for q in ds["question"]) == len(released)
    assert all(a is None for r in ds for a in r["answer"])
    assert len(chat_view(ds)) == 0  # nothing to train on


def test_card_lists_every_config_and_the_licence_note(built_dataset):
    from datasets.info import DatasetInfosDict
    from datasets.utils.metadata import MetadataConfigs
    from huggingface_hub import DatasetCard

    from lrv_hf.data.features import FEATURES

    card = DatasetCard.load(built_dataset / "README.md")
    # read back the way `load_dataset` and the Hub read it
    configs = MetadataConfigs.from_dataset_card_data(card.data)
    assert configs["instructions"]["data_files"] == [{"split": "train", "path": "instructions/train-*.parquet"}]
    assert configs["evaluation"]["data_files"] == [{"split": "test", "path": "evaluation/test-*.parquet"}]
    assert configs.get_default_config_name() == "instructions"
    infos = DatasetInfosDict.from_dataset_card_data(card.data)
    for name, split in [("instructions", "train"), ("evaluation", "test")]:
        assert infos[name].features == FEATURES
        loaded = datasets.load_dataset(str(built_dataset), name, split=split)
        assert infos[name].splits[split].num_examples == len(loaded) > 0
    assert card.data.license == "bsd-3-clause"
    assert "CC BY 4.0" in card.text and "@inproceedings{liu2023mitigating" in card.text


def test_build_is_deterministic(synthetic_release, tmp_path):
    def digest(out):
        build_dataset([synthetic_release / "filter_cap.json"], synthetic_release / "images", out)
        return hashlib.sha256((out / "instructions" / "train-00000-of-00001.parquet").read_bytes()).hexdigest()

    assert digest(tmp_path / "a") == digest(tmp_path / "b")


def test_chat_view_is_the_processor_shape(built_dataset):
    ds = datasets.load_dataset(str(built_dataset), "instructions", split="train")
    chat = chat_view(ds)
    assert len(chat) == sum(len(q) for q in ds["question"])
    user, assistant = chat[0]["messages"]
    assert user["role"] == "user" and [c["type"] for c in user["content"]] == ["image", "text"]
    assert user["content"][1]["text"] == ds[0]["question"][0]
    assert assistant == {"role": "assistant", "content": [{"type": "text", "text": ds[0]["answer"][0]}]}
    assert len(chat[0]["images"]) == 1
    multi = chat_view(ds, multi_turn=True)
    assert len(multi) == len(ds)
    assert [m["role"] for m in multi[0]["messages"]] == ["user", "assistant"] * len(ds[0]["question"])
    assert sum(c["type"] == "image" for m in multi[0]["messages"] for c in m["content"]) == 1


def test_july_evaluation_answer_gt_is_a_reference_answer_never_a_model_answer(tmp_path, synthetic_release):
    """The July-2023 evaluation set's `answer_gt` lands in `reference_answer`, as the card says; `answer` stays null
    there, so no view trains on it, and rows of other files carry no reference."""
    july = write_json(tmp_path / "eval_july.json", [
        {"image_id": "2400001", "instruction": "Is there a dog?", "answer_gt": "No, there is no dog."},
        {"image_id": "2400001", "instruction": "What color is the shape?"},
    ])  # fmt: skip
    build_dataset([july], synthetic_release / "images", tmp_path / "out", config_name="evaluation", split="test")
    ds = datasets.load_dataset(str(tmp_path / "out"), "evaluation", split="test")
    assert ds[0]["answer"] == [None, None]
    assert ds[0]["reference_answer"] == ["No, there is no dog.", None]
    assert instruction_view(ds)[0]["reference_answer"] == "No, there is no dog."
    assert len(chat_view(ds)) == 0  # nothing to train on
    card = (tmp_path / "out" / "README.md").read_text()
    assert "`reference_answer`: the July-2023 evaluation set's `answer_gt`" in card
    trained = tmp_path / "train"
    build_dataset([synthetic_release / "filter_cap.json"], synthetic_release / "images", trained)
    assert set(datasets.load_dataset(str(trained), "instructions", split="train")[0]["reference_answer"]) == {None}


def test_chart_images_are_found_by_file_name(tmp_path, synthetic_release):
    images = tmp_path / "charts"
    images.mkdir()
    (images / "bar_1.png").write_bytes((synthetic_release / "images" / "2400001.jpg").read_bytes())
    chart = write_json(
        tmp_path / "chart.json", [{"image_id": "bar_1.png", "question": "Q", "answer": "A", "task": "t"}]
    )
    build_dataset([chart], images, tmp_path / "out", config_name="chart")
    ds = datasets.load_dataset(str(tmp_path / "out"), "chart", split="train")
    assert ds[0]["image_id"] == "bar_1.png" and ds[0]["question"] == ["Q"]


# --- the synthetic release ----------------------------------------------------------------------------------------


def test_synthetic_release_is_deterministic_and_has_both_negative_kinds(tmp_path):
    def files(path, seed):
        write_synthetic_release(path, num_images=10, seed=seed)
        return {p.relative_to(path).as_posix(): p.read_bytes() for p in sorted(path.rglob("*")) if p.is_file()}

    assert files(tmp_path / "a", 1) == files(tmp_path / "b", 1)
    assert files(tmp_path / "a", 1) != files(tmp_path / "c", 2)
    objects = {str(o["image_id"]): o["objects"] for o in json.loads((tmp_path / "a" / "objects.json").read_text())}
    rows = json.loads((tmp_path / "a" / "filter_cap.json").read_text())["annotations"]
    rows += json.loads((tmp_path / "a" / "filter_cap_more.json").read_text())
    nonexistent = existent = 0
    for row in rows:
        if row["task"] != "negative":
            continue
        present = {o["names"][0]: o["attributes"][0] for o in objects[row["image_id"]]}
        words = row["question"].lower().replace("?", "").replace(".", "").split()
        # the colour stands before the shape ("the red ball") or after it ("Is the ball red?")
        around = [None, *words, None]
        mentioned = [
            (w, next((c for c in (around[i], around[i + 2]) if c in COLORS), None))
            for i, w in enumerate(words)
            if w in SHAPES
        ]
        target, color = mentioned[0]
        if target in present:  # an existing object with a wrong attribute
            assert color is not None and color != present[target], row
            existent += 1
        else:  # an object that is not there
            nonexistent += 1
    assert nonexistent > 0 and existent > 0
    assert {r["task"] for r in rows} - {"negative"}  # several positive tasks


# --- bad input ----------------------------------------------------------------------------------------------------


def run_cli(*args):
    from lrv_hf.cli import main

    return main(list(args))


@pytest.fixture
def release(tmp_path, synthetic_release):
    """A writable copy of two synthetic images and a helper to write an instruction file next to them."""
    images = tmp_path / "images"
    images.mkdir()
    for image_id in ("2400001", "2400002"):
        (images / f"{image_id}.jpg").write_bytes((synthetic_release / "images" / f"{image_id}.jpg").read_bytes())

    def build(rows, *extra, name="filter_cap.json"):
        path = tmp_path / name
        path.write_text(rows if isinstance(rows, str) else json.dumps(rows))
        return run_cli(
            "data",
            "build",
            "--instructions",
            str(path),
            "--images",
            str(images),
            "--output-dir",
            str(tmp_path / "out"),
            *extra,
        )

    build.images, build.out = images, tmp_path / "out"
    return build


def good(image_id="2400001", question="What is it?"):
    return {"image_id": image_id, "question": question, "answer": "A ball.", "task": "Object Detection"}


@pytest.mark.parametrize(
    "rows, message",
    [
        ('[{"image_id": "1", "question": }]', r"filter_cap\.json: invalid JSON at line 1 column 32 \(char 31\)"),
        ([good(), {"image_id": "2400001"}], r"filter_cap\.json: row 1: field `question` is missing"),
        ([good(), {"image_id": "2400001", "question": 5}], r"row 1: field `question` must be a string, got int"),
        ([good(), ["not", "an", "object"]], r"row 1: expected an object, got list"),
        ("", r"filter_cap\.json: the file is empty"),
        ("[]", r"filter_cap\.json: the file holds no rows"),
        (
            [good(), good("2400099")],
            r"1 image\(s\) missing for image_id 2400099; set (`on_bad_rows`|--on-bad-rows) to skip",
        ),
    ],
)
def test_bad_input_is_one_line_naming_the_file_and_row(release, capsys, rows, message):
    assert release(rows) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "Traceback" not in err
    assert __import__("re").search(message, err), err


@pytest.mark.parametrize("image_id", ["../escape", "/etc/passwd", "a/../../b", "..\\x", "C:evil"])
def test_ids_escaping_the_images_folder_are_refused_even_when_skipping(release, capsys, image_id):
    assert release([good(), good(image_id)], "--on-bad-rows", "skip") == 2
    assert "escapes the images folder; refused" in capsys.readouterr().err


def test_skip_counts_missing_and_corrupt_images_and_bad_rows(release, capsys):
    (release.images / "2400003.jpg").write_bytes(b"\xff\xd8 this is not a jpeg")
    rows = [good(), good("2400002"), good("2400099"), good("2400003"), {"image_id": "2400001"}]
    assert release(rows, "--on-bad-rows", "skip") == 0
    out = capsys.readouterr().out
    assert "skipped 1 (bad row)" in out and "skipped 1 (missing image)" in out and "skipped 1 (corrupt image)" in out
    ds = datasets.load_dataset(str(release.out), "instructions", split="train")
    assert sorted(ds["image_id"]) == ["2400001", "2400002"]
    report = json.loads((release.out / "build_report.json").read_text())["instructions/train"]
    assert report["rows"] == 2 and report["images"] == 2
    assert report["skipped"] == {"bad row": 1, "corrupt image": 1, "missing image": 1}
    card = (release.out / "README.md").read_text()
    assert "1 bad row, 1 corrupt image, 1 missing image" in card


def test_corrupt_image_is_an_error_naming_the_id(release, capsys):
    (release.images / "2400002.jpg").write_bytes(b"garbage")
    assert release([good(), good("2400002")]) == 2
    assert "corrupt image for image_id 2400002" in capsys.readouterr().err


def test_duplicates_are_dropped_and_reported(release, capsys):
    assert release([good(), good(), good(question="Other?")]) == 0
    assert "dropped 1 duplicate rows (first: filter_cap.json row 1 (image 2400001))" in capsys.readouterr().out
    ds = datasets.load_dataset(str(release.out), "instructions", split="train")
    assert ds[0]["question"] == ["What is it?", "Other?"]


def test_cli_error_has_no_traceback_in_a_real_process(tmp_path):
    missing = tmp_path / "nope.json"
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "lrv_hf.cli",
            "data",
            "build",
            "--instructions",
            str(missing),
            "--images",
            str(tmp_path),
            "--output-dir",
            str(tmp_path / "out"),
        ],
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 2
    assert proc.stderr.strip() == f"lrv-hf data: error: {missing}: no such file"


def test_a_symlink_out_of_the_images_folder_is_refused(release, capsys, tmp_path):
    secret = tmp_path / "secret.jpg"
    secret.write_bytes((release.images / "2400001.jpg").read_bytes())
    (release.images / "2400005.jpg").symlink_to(secret)
    assert release([good(), good("2400005")]) == 2
    assert "escapes the images folder" in capsys.readouterr().err


def test_builder_finds_each_config_in_a_release_folder(synthetic_release, tmp_path):
    from lrv_hf.data.builder import LRVInstruction

    counts = {}
    for name in ("instructions", "more", "evaluation"):
        builder = LRVInstruction(config_name=name, release_dir=str(synthetic_release), cache_dir=str(tmp_path))
        builder.download_and_prepare()
        ds = builder.as_dataset(split=builder.config.split)
        counts[name] = sum(len(q) for q in ds["question"])
        assert all(ds["regions"])  # vg_annotation.json in the folder is picked up
    assert counts["instructions"] == len(
        json.loads((synthetic_release / "filter_cap.json").read_text())["annotations"]
    )
    assert counts["more"] == len(json.loads((synthetic_release / "filter_cap_more.json").read_text()))
    assert counts["evaluation"] == len(json.loads((synthetic_release / "evaluation_set.json").read_text()))


def test_large_builds_are_sharded_and_load_as_one_split(synthetic_release, tmp_path):
    report = build_dataset(
        [synthetic_release / "filter_cap.json"],
        synthetic_release / "images",
        tmp_path,
        max_shard_size="20KB",
        writer_batch_size=4,
    )
    assert len(report["shards"]) > 1
    assert sorted(p.name for p in (tmp_path / "instructions").iterdir()) == [
        f"train-{i:05d}-of-{len(report['shards']):05d}.parquet" for i in range(len(report["shards"]))
    ]
    ds = datasets.load_dataset(str(tmp_path), "instructions", split="train")
    assert len(ds) == report["images"] and sum(len(q) for q in ds["question"]) == report["rows"]


def test_a_parallel_build_writes_the_same_rows(synthetic_release, tmp_path, monkeypatch):
    from lrv_hf.data import builder

    monkeypatch.setattr(builder, "IMAGES_PER_SHARD", 4)  # several shards for the two processes to share
    files = [synthetic_release / "filter_cap.json", synthetic_release / "filter_cap_more.json"]
    common = {"images_dir": synthetic_release / "images", "regions_file": synthetic_release / "vg_annotation.json"}
    serial = build_dataset(files, output_dir=tmp_path / "one", num_proc=1, **common)
    parallel = build_dataset(files, output_dir=tmp_path / "two", num_proc=2, **common)
    assert len(parallel["shards"]) == 2 and serial["rows"] == parallel["rows"]
    one = datasets.load_dataset(str(tmp_path / "one"), "instructions", split="train")
    two = datasets.load_dataset(str(tmp_path / "two"), "instructions", split="train")
    columns = ["image_id", "question", "answer", "task", "polarity", "source", "regions"]
    assert one.select_columns(columns).to_list() == two.select_columns(columns).to_list()
    assert [r["image"].tobytes() for r in one] == [r["image"].tobytes() for r in two]


# --- fault trials (issue 14): each reproduces a fault the trials found ---------------------------------------------


def one_line_error(capsys, pattern):
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "Traceback" not in err, err
    assert __import__("re").search(pattern, err), err
    return err


def test_a_truncated_jpeg_is_a_corrupt_image(release, capsys):
    data = (release.images / "2400002.jpg").read_bytes()
    (release.images / "2400002.jpg").write_bytes(data[: len(data) // 2])  # the header is intact: verify() passes
    assert release([good(), good("2400002")]) == 2
    one_line_error(capsys, r"2400002\.jpg: corrupt image for image_id 2400002 \(image file is truncated")
    assert release([good(), good("2400002")], "--on-bad-rows", "skip") == 0
    assert "skipped 1 (corrupt image)" in capsys.readouterr().out
    ds = datasets.load_dataset(str(release.out), "instructions", split="train")
    assert ds["image_id"] == ["2400001"]


@pytest.fixture
def bomb(release):
    """A 14000 x 14000 PNG (a few KB): over twice PIL's pixel limit, so opening it raises DecompressionBombError."""
    from PIL import Image

    Image.new("1", (14000, 14000)).save(release.images / "2400003.png")
    return "2400003.png"


def test_a_decompression_bomb_is_a_bad_image_error_or_skip(release, capsys, bomb):
    assert release([good(), good(bomb)]) == 2
    one_line_error(capsys, r"2400003\.png: image_id 2400003\.png has 14000x14000 pixels, over `max_image_pixels`")
    assert release([good(), good(bomb)], "--on-bad-rows", "skip") == 0
    assert "skipped 1 (image too large)" in capsys.readouterr().out


def test_max_image_pixels_sets_the_limit(release, tmp_path):
    rows = write_json(tmp_path / "rows.json", [good(), good("2400002")])  # two 128 x 128 images
    with pytest.raises(InputError, match=r"every row was skipped \(2 image too large\)"):
        build_dataset([rows], release.images, tmp_path / "a", max_image_pixels=128 * 128 - 1, on_bad_rows="skip")
    assert build_dataset([rows], release.images, tmp_path / "b", max_image_pixels=128 * 128)["images"] == 2
    with pytest.raises(ValueError, match="`max_image_pixels` must be a positive number of pixels"):
        build_dataset([rows], release.images, tmp_path / "c", max_image_pixels=0)


def rows_of(path):
    return sorted(
        (r["image_id"], q)
        for r in datasets.load_dataset(str(path), "instructions", split="train")
        for q in r["question"]
    )


def test_a_rebuild_is_what_a_warm_cache_loads(release, tmp_path):
    first = write_json(tmp_path / "a.json", [good()])
    build_dataset([first], release.images, release.out)
    cache = tmp_path / "cache"
    assert datasets.load_dataset(str(release.out), "instructions", split="train", cache_dir=str(cache))[
        "image_id"
    ] == ["2400001"]
    second = write_json(tmp_path / "b.json", [good("2400002", "Where?")])
    build_dataset([second], release.images, release.out)
    ds = datasets.load_dataset(str(release.out), "instructions", split="train", cache_dir=str(cache))
    assert (ds["image_id"], ds["question"]) == (["2400002"], [["Where?"]])


KILLED_BUILD = """
import os, signal, sys
from lrv_hf.data import builder, export

def die(*args, **kwargs):
    os.kill(os.getpid(), signal.SIGKILL)

if sys.argv[4] == "generate":  # the long part of a build: writing the Parquet
    builder._example = die
else:  # between the swap's two renames: the previous build has been moved aside, the new one not yet in place
    real = os.rename
    os.rename = lambda src, dst: (real(src, dst), die()) if str(dst).endswith("previous") else real(src, dst)
export.build_dataset([sys.argv[1]], sys.argv[2], sys.argv[3])
"""


@pytest.mark.parametrize("point", ["generate", "swap"])
def test_a_killed_rebuild_leaves_the_previous_build(release, tmp_path, point):
    build_dataset([write_json(tmp_path / "a.json", [good(), good("2400002")])], release.images, release.out)
    before = rows_of(release.out)
    files = {p: p.read_bytes() for p in sorted(release.out.rglob("*")) if p.is_file()}
    spools = tmp_path / "tmp"
    spools.mkdir()
    rebuild = write_json(tmp_path / "b.json", [good(question="Other?")])
    proc = subprocess.run(
        [sys.executable, "-c", KILLED_BUILD, str(rebuild), str(release.images), str(release.out), point],
        env={**__import__("os").environ, "TMPDIR": str(spools)},
        capture_output=True,
        text=True,
    )
    assert proc.returncode == -9, proc.stderr
    assert list(spools.iterdir()) == []  # the spool lives beside the output, not in the system temp folder
    if point == "generate":
        assert rows_of(release.out) == before
        assert {p: p.read_bytes() for p in files} == files
    # the next run puts the previous build back if a kill caught it mid-swap, and clears what the kill left
    with pytest.raises(InputError, match="the file holds no rows"):
        build_dataset([write_json(tmp_path / "c.json", [])], release.images, release.out)
    assert rows_of(release.out) == before
    assert sorted(p.name for p in release.out.iterdir()) == ["README.md", "build_report.json", "instructions"]
    build_dataset([rebuild], release.images, release.out)
    assert rows_of(release.out) == [("2400001", "Other?")]


def test_a_rebuild_of_one_split_keeps_the_other_splits(release, tmp_path):
    build_dataset([write_json(tmp_path / "a.json", [good()])], release.images, release.out, split="validation")
    build_dataset([write_json(tmp_path / "b.json", [good("2400002")])], release.images, release.out)
    build_dataset([write_json(tmp_path / "c.json", [good(question="Q3?")])], release.images, release.out)
    assert datasets.load_dataset(str(release.out), "instructions", split="validation")["image_id"] == ["2400001"]
    assert rows_of(release.out) == [("2400001", "Q3?")]


@pytest.mark.parametrize("text", ['{"instructions/train": {"rows": 3', "[1, 2]", '{"instructions/train": 3}'])
def test_a_corrupt_report_of_a_previous_build_is_one_line(release, capsys, text):
    release.out.mkdir()
    (release.out / "build_report.json").write_text(text)
    assert release([good()]) == 2
    one_line_error(capsys, r"build_report\.json: not a build report .*delete it")
    assert not (release.out / "instructions").exists()  # refused before building anything


TRICKY_JSON = (
    ' \n\t[ {\n "s" :\t"quote \\" backslash \\\\ slash \\/ \\b\\f\\n\\r\\t \\u00e9 \\ud83d\\ude00 end" ,'
    ' "unicode": "日本語 ✓ é" , "numbers" : [ 0 , -0 , 1e5 , -1.5E-3 , 123456789012345678901234567890 , 1.0e+2, 7 ] ,'
    ' "nested" : { "a" : [ [ ] , { } , [ { "b" : null } ] ] , "t" : true , "f" : false } , "" : "empty key" } ,\r\n'
    ' "bare string" , 3.25 , null , [ ] , { } , [ [ [ [ "deep" ] ] ] ] \n ] \n '
)


def test_the_stream_reader_accepts_every_valid_json_file(tmp_path, monkeypatch, synthetic_release):
    paths = sorted(Path(__file__).parent.joinpath("fixtures").glob("*.json")) + sorted(
        synthetic_release.glob("*.json")
    )
    tricky = tmp_path / "tricky.json"
    tricky.write_text(TRICKY_JSON, encoding="utf-8")
    as_object = tmp_path / "object.json"
    as_object.write_text('{ "meta" : { "v" : [1, "x"] } ,\n "annotations" :' + TRICKY_JSON + ', "z": 1 }')
    paths += [tricky, as_object]
    for chunk in (1, 2, 3, 5):
        monkeypatch.setattr(jsonstream, "_CHUNK", chunk)
        for path in paths:
            expected = json.loads(path.read_text(encoding="utf-8-sig"))
            if isinstance(expected, list):
                assert list(jsonstream.iter_records(path)) == expected, (chunk, path)
            else:
                assert dict(jsonstream.iter_items(path)) == expected, (chunk, path)
                for key, value in expected.items():
                    if isinstance(value, list):
                        assert list(jsonstream.iter_records(path, list_key=key)) == value, (chunk, path, key)


def test_a_long_string_across_the_default_chunk_boundary_is_valid(tmp_path):
    long = "x" * 200_000  # well over the 64 KB slack, starting before the 1 MiB boundary and ending after it
    rows = [
        {"image_id": "1", "question": "q" * (1024 * 1024 - 100_000), "answer": "a"},
        {"image_id": "2", "question": long},
    ]
    path = write_json(tmp_path / "long.json", rows)
    assert list(jsonstream.iter_records(path)) == rows


@pytest.mark.parametrize(
    "rows, message",
    [
        (
            [good(), good("x" * 300)],
            r"row 1: image_id 'x{20}.*' is too long for a file name \(304 bytes, at most 255\)",
        ),
        (
            '[{"image_id": "24\\ud800", "question": "Q?"}]',
            r"row 0: field `image_id` is not valid unicode \('24\\ud800': a lone",
        ),
        ('[{"image_id": "2400001", "question": "Q\\udfff"}]', r"row 0: field `question` is not valid unicode"),
        (
            '[{"image_id": "1", "question": ' + "[" * 10_000 + "]" * 10_000 + "}]",
            r"line 1 column 2 \(char 1\): nesting too deep",
        ),
        ('[{"image_id": "1", "n": 1' + "0" * 5000 + "}]", r"a number of more than 4300 digits"),
    ],
)
def test_more_bad_rows_are_one_line(release, capsys, rows, message):
    assert release(rows) == 2
    one_line_error(capsys, message)


def test_an_overlong_id_is_skippable(release, capsys):
    assert release([good(), good("x" * 300)], "--on-bad-rows", "skip") == 0
    assert "skipped 1 (bad row)" in capsys.readouterr().out


@pytest.mark.parametrize(
    "bbox, message",
    [
        ("[1, 2, Infinity, 4]", r"region 0: `bbox` must hold finite numbers, got \[1, 2, inf, 4\]"),
        ("[1, 2, NaN, 4]", r"region 0: `bbox` must hold finite numbers"),
        (
            "[1, 2, 1234567890123456789012345678901234567890, 4]",
            r"region 0: `bbox` \[1, 2, 1234567890.*\] out of range",
        ),
        ("[1, 2, 3e39, 4]", r"region 0: `bbox` .* out of range"),
    ],
)
def test_bad_boxes_are_one_line_in_build_and_gavie(release, capsys, tmp_path, bbox, message):
    regions = tmp_path / "vg_annotation.json"
    regions.write_text('{"2400001": [{"caption": "a ball", "bbox": ' + bbox + "}]}")
    assert release([good()], "--regions", str(regions)) == 2
    one_line_error(capsys, r"vg_annotation\.json: image 2400001: " + message)
    with pytest.raises(InputError, match=message):  # GAVIE reads its regions through the same reader
        load_regions(regions)


def test_a_lone_surrogate_in_a_caption_is_one_line(release, capsys, tmp_path):
    regions = tmp_path / "vg_annotation.json"
    regions.write_text('{"2400001": [{"caption": "a \\ud800 ball", "bbox": [1, 2, 3, 4]}]}')
    assert release([good()], "--regions", str(regions)) == 2
    one_line_error(capsys, r"image 2400001: region 0: field `caption` is not valid unicode")


def test_conflicting_duplicates_are_an_error_or_a_counted_skip(release, capsys):
    conflict = {**good(), "answer": "A cube."}
    rows = [good(), good("2400002"), conflict, good(), conflict]
    assert release(rows) == 2
    one_line_error(
        capsys,
        r"2 conflicting duplicate row\(s\): filter_cap\.json row 2 \(image 2400001\) asks the question of "
        r"filter_cap\.json row 0 with a different answer or task; set (`on_bad_rows`|--on-bad-rows) to skip",
    )
    assert release(rows, "--on-bad-rows", "skip") == 0
    out = capsys.readouterr().out
    assert "skipped 2 (conflicting duplicate)" in out and "dropped 1 duplicate rows" in out
    ds = datasets.load_dataset(str(release.out), "instructions", split="train")
    assert [a for r in ds for a in r["answer"]] == ["A ball.", "A ball."]  # the first answer of each question stays
    report = json.loads((release.out / "build_report.json").read_text())["instructions/train"]
    assert (report["rows"], report["duplicates"], report["skipped"]) == (2, 1, {"conflicting duplicate": 2})


def test_a_build_that_skipped_every_row_fails_with_the_reason(release, capsys):
    assert release([good("2400098"), good("2400099")], "--on-bad-rows", "skip") == 2
    one_line_error(capsys, r"nothing to build: every row was skipped \(2 missing image\); first: .*2400098")
    assert not release.out.joinpath("instructions").exists()
