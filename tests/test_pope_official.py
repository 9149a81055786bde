"""POPE on the files everyone uses: POPE's own `coco_pope_<split>.json` and the Hub's `lmms-lab/POPE` Parquet, read
as probes, scored per split with numbers worked out here, answered by `lrv-hf infer`, and scored from the CLI."""

import io
import json
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from PIL import Image

from lrv_hf.cli import main
from lrv_hf.errors import InputError
from lrv_hf.infer.inputs import benchmark_of, read_items
from lrv_hf.pope import read_predictions, read_probes, score_predictions


IMAGES = {"COCO_val2014_000000000001": "red", "COCO_val2014_000000000002": "blue"}
# (split, image, object, label): two images, one positive and one negative each, per split; positives are shared
PROBES = [
    ("random", "COCO_val2014_000000000001", "a dog", "yes"),
    ("random", "COCO_val2014_000000000001", "a cat", "no"),
    ("random", "COCO_val2014_000000000002", "a car", "yes"),
    ("random", "COCO_val2014_000000000002", "a zebra", "no"),
    ("adversarial", "COCO_val2014_000000000001", "a dog", "yes"),
    ("adversarial", "COCO_val2014_000000000001", "a leash", "no"),
    ("adversarial", "COCO_val2014_000000000002", "a car", "yes"),
    ("adversarial", "COCO_val2014_000000000002", "a truck", "no"),
]
ANSWERS = {
    # random: TP, TN, FN, and a description POPE reads as "yes" (FP, unknown)
    ("random", "a dog"): "Yes, there is a dog.",
    ("random", "a cat"): "No.",
    ("random", "a car"): "There is not a car, only a bus.",
    ("random", "a zebra"): "I see a striped pattern.",
    # adversarial: a model that says yes to everything
    ("adversarial", "a dog"): "Yes, there is a dog.",
    ("adversarial", "a leash"): "Yes, there is a leash.",
    ("adversarial", "a car"): "Yes",
    ("adversarial", "a truck"): "Yes, a truck.",
}


def question(obj: str) -> str:
    return f"Is there {obj} in the image?"


def jpeg(color: str) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (16, 16), color).save(buffer, format="JPEG")
    return buffer.getvalue()


def write_pope_files(folder: Path) -> list[Path]:
    """POPE's `output/coco/coco_pope_<split>.json`: JSON lines, each file numbered from 0."""
    folder.mkdir(parents=True, exist_ok=True)
    files = []
    for split in ("random", "adversarial"):
        rows = [p for p in PROBES if p[0] == split]
        path = folder / f"coco_pope_{split}.json"
        path.write_text("".join(json.dumps({"question_id": k, "image": f"{image}.jpg", "image_id": int(image[-3:]),
                                            "text": question(obj), "label": label}) + "\n"
                                for k, (_, image, obj, label) in enumerate(rows)))  # fmt: skip
        files.append(path)
    return files


def write_hub_parquet(folder: Path) -> Path:
    """lmms-lab/POPE's `data/test-*.parquet`: every row embeds its image; each category numbered from 1."""
    folder.mkdir(parents=True, exist_ok=True)
    numbers = {"random": 0, "adversarial": 0}
    records = []
    for index, (split, image, obj, label) in enumerate(PROBES):
        numbers[split] += 1
        records.append({"id": str(index), "question_id": str(numbers[split]), "question": question(obj),
                         "answer": label, "image_source": image,
                         "image": {"bytes": jpeg(IMAGES[image]), "path": None}, "category": split})  # fmt: skip
    path = folder / "test-00000-of-00001.parquet"
    pq.write_table(pa.Table.from_pylist(records), path)
    return path


def write_predictions(path: Path, probes: list[dict], model: str = "m") -> Path:
    """The rows `lrv-hf infer` writes for these probes (question_id kept), with the answers above."""
    objects = {question(p[2]): p[2] for p in PROBES}
    rows = [{"image_id": p["image_id"], "question": p["question"], "question_id": p["question_id"], "model": model,
             "answer": ANSWERS[(p["strategy"], objects[p["question"]])]} for p in probes]  # fmt: skip
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


# worked out by hand from ANSWERS with POPE's rule (first sentence; a word No/no/not -> no, else yes):
# random: dog TP, cat TN, "There is not a car" FN, "I see a striped pattern" FP and unknown
RANDOM = {"accuracy": 0.5, "precision": 0.5, "recall": 0.5, "f1": 0.5, "yes_ratio": 0.5, "n": 4, "unknown": 1,
          "tp": 1, "fp": 1, "tn": 1, "fn": 1, "missing": 0}  # fmt: skip
# adversarial: all "yes": TP 2, FP 2; precision 2/4, recall 2/2, F1 2 * 0.5 * 1 / 1.5; the *answers'* yes-ratio is
# 4/4 = 1.0 (the labels' ratio, which some harnesses print by mistake, would be 0.5)
ADVERSARIAL = {"accuracy": 0.5, "precision": 0.5, "recall": 1.0, "f1": pytest.approx(2 / 3), "yes_ratio": 1.0,
               "n": 4, "unknown": 0, "tp": 2, "fp": 2, "tn": 0, "fn": 0, "missing": 0}  # fmt: skip


def test_pope_files_read_as_probes_split_by_their_names(tmp_path):
    probes = read_probes(write_pope_files(tmp_path))
    assert [(p["strategy"], p["question_id"]) for p in probes[:2]] == [
        ("random", "coco_pope_random/0"),
        ("random", "coco_pope_random/1"),
    ]
    assert probes[4] == {"image_id": "COCO_val2014_000000000001", "question": "Is there a dog in the image?",
                         "label": "yes", "strategy": "adversarial", "question_id": "coco_pope_adversarial/0"}  # fmt: skip


def test_hub_parquet_as_a_file_a_folder_and_through_datasets(tmp_path):
    from lrv_hf.pope.sources import _read_hub

    file = write_hub_parquet(tmp_path / "POPE" / "data")
    from_file = read_probes(file)
    assert from_file == read_probes(file.parent)
    assert [(p["strategy"], p["question_id"], p["label"]) for p in from_file[3:5]] == [
        ("random", "random/4", "no"),
        ("adversarial", "adversarial/1", "yes"),
    ]
    # the same call a Hub id makes, on a local copy of the repo's layout; images kept once per image
    from_hub = _read_hub(str(tmp_path / "POPE"), with_images=True)
    assert [{k: v for k, v in p.items() if k != "image"} for p in from_hub] == from_file
    assert [p["image_id"] for p in from_hub if "image" in p] == list(IMAGES)
    with pytest.raises(InputError, match="^lrv-test/no-such-pope: cannot load the Hub dataset"):
        read_probes("lrv-test/no-such-pope")


@pytest.mark.parametrize("source", ["files", "hub"])
def test_scores_per_split_worked_out_by_hand(source, tmp_path):
    probes_source = write_pope_files(tmp_path) if source == "files" else write_hub_parquet(tmp_path / "hub")
    probes = read_probes(probes_source)
    predictions = write_predictions(tmp_path / "m.jsonl", probes)
    summary, rows = score_predictions(probes, read_predictions([predictions]))
    assert summary["models"]["m"] == {"random": RANDOM, "adversarial": ADVERSARIAL}
    assert [r["predicted"] for r in rows[:4]] == ["yes", "no", "no", "yes"]
    assert [r["unknown"] for r in rows[:4]] == [False, False, False, True]
    # leaving out the unknown description leaves 3 random answers: TP 1, TN 1, FN 1
    excluded, _ = score_predictions(probes, read_predictions([predictions]), unknown_as="exclude")
    assert excluded["models"]["m"]["random"]["n"] == 3 and excluded["models"]["m"]["random"]["accuracy"] == 2 / 3


def test_answers_to_one_source_score_against_the_other(tmp_path):
    """Hub ids count from 1, file ids from 0: predictions made on POPE's files join the Hub's probes on image and
    question, never on a question id that names another question there."""
    files = write_pope_files(tmp_path / "files")
    predictions = write_predictions(tmp_path / "m.jsonl", read_probes(files))
    hub = read_probes(write_hub_parquet(tmp_path / "hub"))
    summary, rows = score_predictions(hub, read_predictions([predictions]))
    assert summary["models"]["m"] == {"random": RANDOM, "adversarial": ADVERSARIAL}
    assert rows[1]["question_id"] == "random/2" and rows[1]["answer"] == "No."


def test_a_split_given_twice_is_refused(tmp_path):
    files = write_pope_files(tmp_path)
    with pytest.raises(InputError, match=r"coco_pope_random.json: line 1: the random probe .* is already in"):
        read_probes([files[0], files[0]])
    bad = tmp_path / "bad_pope_popular.json"
    bad.write_text('{"question_id": 0, "image": "x.jpg", "text": "Is there a dog in the image?", "label": "maybe"}\n')
    with pytest.raises(InputError, match=r"bad_pope_popular.json: line 1: field `label` must be 'yes' or 'no'"):
        read_probes(bad)


def test_cli_scores_pope_files_and_the_hub_copy_offline(tmp_path, capsys):
    files = write_pope_files(tmp_path / "files")
    predictions = write_predictions(tmp_path / "m.jsonl", read_probes(files))
    argv = ["pope", "score", "--probes", *map(str, files), "--predictions", str(predictions)]
    assert main([*argv, "--output-dir", str(tmp_path / "out")]) == 0
    out = capsys.readouterr().out
    assert "m                        random        0.500  0.500  0.500  0.500  0.500      4     1" in out
    assert "m                        adversarial   0.500  0.500  1.000  0.667  1.000      4     0" in out
    summary = json.loads((tmp_path / "out" / "summary.json").read_text())
    assert summary["models"]["m"]["adversarial"]["yes_ratio"] == 1.0
    scored = [json.loads(line) for line in (tmp_path / "out" / "scores.jsonl").read_text().splitlines()]
    assert [r["question_id"] for r in scored[:2]] == ["coco_pope_random/0", "coco_pope_random/1"]
    hub = write_hub_parquet(tmp_path / "hub")
    assert main(["pope", "score", "--probes", str(hub), "--predictions", str(predictions),
                 "--output-dir", str(tmp_path / "out-hub")]) == 0  # fmt: skip
    assert json.loads((tmp_path / "out-hub" / "summary.json").read_text())["models"] == summary["models"]
    assert main(["pope", "score", "--probes", str(tmp_path / "none.json"), "--predictions", str(predictions),
                 "--output-dir", str(tmp_path / "o")]) == 2  # fmt: skip
    assert capsys.readouterr().err == f"lrv-hf pope: error: {tmp_path / 'none.json'}: no such file\n"


# -- inference reads the benchmarks' sources ---------------------------------------------------------------------
def write_images(folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for image, color in IMAGES.items():
        (folder / f"{image}.jpg").write_bytes(jpeg(color))
    return folder


def test_infer_reads_pope_files_with_an_images_folder_and_parquet_with_its_images(tmp_path):
    files = write_pope_files(tmp_path / "files")
    assert benchmark_of(str(files[0])) == "pope"
    with pytest.raises(InputError, match="POPE's files name COCO images; give `images`") as err:
        read_items(str(files[0]))
    assert err.value.parameter == "images"
    items, load = read_items(str(files[0]), images=str(write_images(tmp_path / "val2014")))
    assert [(i.image_id, i.question_id) for i in items[2:4]] == [
        ("COCO_val2014_000000000002", "coco_pope_random/2"),
        ("COCO_val2014_000000000002", "coco_pope_random/3"),
    ]
    assert load(items[2].image_key).getpixel((8, 8))[2] > 200  # the blue image

    hub = write_hub_parquet(tmp_path / "POPE" / "data")
    assert benchmark_of(str(hub)) == benchmark_of(str(hub.parent)) == "pope"
    items, load = read_items(str(hub.parent))
    assert [i.question_id for i in items] == [p["question_id"] for p in read_probes(hub)]
    assert load(items[6].image_key).getpixel((8, 8))[2] > 200 and load(items[0].image_key).getpixel((8, 8))[0] > 200
    with pytest.raises(InputError, match="carries its images; leave `images` unset"):
        read_items(str(hub), images=str(tmp_path))
    # a Hub id is loaded once and told apart by its columns (the same `load_dataset` call, on a local copy)
    from lrv_hf.infer.inputs import _hub_dataset

    kind, dataset = _hub_dataset(str(hub.parent.parent))
    assert kind == "pope" and dataset.num_rows == 8
    assert benchmark_of("lrv-test/no-such-benchmark") == "hub"
    with pytest.raises(InputError, match="^lrv-test/no-such-benchmark: cannot load the Hub dataset") as err:
        read_items("lrv-test/no-such-benchmark")
    assert err.value.parameter == "data"


def test_infer_reads_mme_parquet_and_release_folder_keeping_question_ids(tmp_path):
    from test_mme import ITEMS, write_parquet, write_release

    for data in (write_parquet(tmp_path / "parquet"), write_release(tmp_path / "release")):
        assert benchmark_of(str(data)) == "mme"
        items, load = read_items(str(data))
        assert sorted((i.question_id, i.question) for i in items) == sorted((q, text) for q, text, *_ in ITEMS)
        assert all(i.image_id == i.question_id for i in items)  # `count/000000006040.jpg`: never an images-folder path
        assert load(items[0].image_key).size == (8, 8)


def test_lrv_hf_infer_answers_a_pope_file_and_pope_score_reads_it(tmp_path, capsys):
    """End to end, offline: a tiny model answers POPE's file; the rows keep POPE's ids; the scorer joins on them."""
    from lrv_hf.testing.hub import save_base

    base = save_base(tmp_path / "base")
    files = write_pope_files(tmp_path / "files")
    output = tmp_path / "predictions.jsonl"
    assert main(["infer", "--model", str(base), "--data", str(files[0]), "--images",
                 str(write_images(tmp_path / "val2014")), "--output", str(output), "--max-new-tokens", "3"]) == 0  # fmt: skip
    rows = [json.loads(line) for line in output.read_text().splitlines()]
    assert [r["question_id"] for r in rows] == [f"coco_pope_random/{k}" for k in range(4)]
    assert main(["pope", "score", "--probes", str(files[0]), "--predictions", str(output),
                 "--output-dir", str(tmp_path / "out")]) == 0  # fmt: skip
    metrics = json.loads((tmp_path / "out" / "summary.json").read_text())["models"][str(base)]["random"]
    assert metrics["n"] == 4 and metrics["missing"] == 0
    scored = [json.loads(line) for line in (tmp_path / "out" / "scores.jsonl").read_text().splitlines()]
    assert metrics["yes_ratio"] == [r["predicted"] for r in scored].count("yes") / 4  # of the model's answers
