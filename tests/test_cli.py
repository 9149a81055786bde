"""The library/CLI boundary: library errors name parameters (the CLI maps them to flags), no library module imports a
CLI module, and Ctrl-C stops a command with exit 130 and one line saying what was kept."""

import argparse
import ast
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from lrv_hf.cli import flag_message
from lrv_hf.cli import main as cli
from lrv_hf.errors import InputError


FLAG = re.compile(r"(?<![\w-])--[a-z]")
PACKAGE = Path(__file__).resolve().parent.parent / "lrv_hf"
# modules whose errors still name flags, to be fixed by the helper who owns them; the list only ever shrinks
PENDING: set[str] = set()  # library modules allowed to name a flag while they are being fixed (none now)


def library_modules() -> list[Path]:
    """Every module of the package except the command-line ones (`cli.py`, `__main__.py`)."""
    return [p for p in sorted(PACKAGE.rglob("*.py")) if p.name not in ("cli.py", "__main__.py")]


def flags_in_raises(source: str) -> list[tuple[int, str]]:
    """`(line, text)` of every string in a `raise` statement's message that names a `--flag`."""
    hits = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Raise) and node.exc is not None:
            for part in ast.walk(node.exc):
                if isinstance(part, ast.Constant) and isinstance(part.value, str) and FLAG.search(part.value):
                    hits.append((node.lineno, part.value))
    return hits


def test_the_flag_scan_finds_flags_and_only_flags():
    assert flags_in_raises('raise InputError(f"{path}: needs --images (a folder)")') == [
        (1, ": needs --images (a folder)")
    ]
    assert flags_in_raises('raise InputError(f"`x`: pass `--batch` to halve it")') == [
        (1, "`x`: pass `--batch` to halve it")
    ]
    assert flags_in_raises('raise InputError("needs `images`; a -- b; x--y")') == []
    assert flags_in_raises('print("--images")') == []


def test_library_errors_never_name_a_flag():
    found = {}
    for path in library_modules():
        hits = flags_in_raises(path.read_text())
        if hits:
            found[path.relative_to(PACKAGE).as_posix()] = hits
    assert set(found) <= PENDING, {k: v for k, v in found.items() if k not in PENDING}
    fixed = PENDING - set(found)
    assert not fixed, f"no flag left in {fixed}: drop them from PENDING"


def test_no_library_module_imports_a_cli_module():
    offenders = []
    for path in library_modules():
        for node in ast.walk(ast.parse(path.read_text())):
            names = []
            if isinstance(node, ast.ImportFrom):
                names = [f"{node.module or ''}.{alias.name}" for alias in node.names] + [node.module or ""]
            elif isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            if any(name == "cli" or name.endswith(".cli") or ".cli." in name for name in names):
                offenders.append(f"{path.relative_to(PACKAGE)}:{node.lineno}")
    assert offenders == []


def test_flag_message_maps_only_the_named_parameters():
    parser = argparse.ArgumentParser()
    parser.add_argument("--images")
    parser.add_argument("--batch-size", type=int)
    parser.add_argument("--model")
    err = InputError("field `model` is bad; `batch_size` must be at least 1; `images` too", ("batch_size", "images"))
    assert flag_message(err, parser) == "field `model` is bad; --batch-size must be at least 1; --images too"
    assert flag_message(InputError("`images` is missing"), parser) == "`images` is missing"  # no parameter named


def test_gavie_and_pope_library_errors_name_the_parameter_and_the_cli_the_flag(tmp_path, capsys):
    from lrv_hf.gavie import pack
    from lrv_hf.pope import score_files

    with pytest.raises(InputError, match="`answers_per_prompt` must be >= 1") as caught:
        pack([], answers_per_prompt=0)
    assert caught.value.parameter == "answers_per_prompt"
    with pytest.raises(InputError, match="`unknown_as` must be one of yes, wrong, exclude"):
        score_files(tmp_path / "probes.jsonl", [tmp_path / "p.jsonl"], tmp_path, unknown_as="maybe")

    predictions, regions = tmp_path / "p.jsonl", tmp_path / "regions.json"
    predictions.write_text('{"image_id": "1", "question": "q", "answer": "a"}\n')
    regions.write_text('{"1": [{"caption": "a dog", "bbox": [1, 2, 3, 4]}]}')
    argv = ["gavie", "--predictions", str(predictions), "--regions", str(regions), "--judge-model", "m"]
    argv += ["--output-dir", str(tmp_path / "o"), "--answers-per-prompt", "0", "--dry-run"]
    assert cli(argv) == 2
    assert capsys.readouterr().err.strip() == "lrv-hf gavie: error: --answers-per-prompt must be >= 1, got 0"


def test_quickstart_config_errors_name_the_field_and_the_cli_the_flag(capsys):
    from lrv_hf.quickstart import QuickstartConfig

    with pytest.raises(ValueError, match="`num_images` must be at least 5"):
        QuickstartConfig(num_images=2)
    assert cli(["quickstart", "--num-images", "2"]) == 2
    assert capsys.readouterr().err.strip() == (
        "lrv-hf quickstart: error: --num-images must be at least 5 (a fifth are held out), got 2"
    )


@pytest.mark.slow
def test_ctrl_c_during_quickstart_training_stops_cleanly_keeping_finished_steps(tmp_path):
    """A real SIGINT while the quickstart trains: exit 130, one line naming what was kept, no traceback."""
    out = tmp_path / "qs"
    argv = [sys.executable, "-m", "lrv_hf.cli", "quickstart", "--output-dir", str(out), "--num-images", "10"]
    argv += ["--max-steps", "400", "--max-new-tokens", "4"]
    env = {**os.environ, "OPENAI_API_KEY": "", "OMP_NUM_THREADS": "1"}
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    try:
        for line in proc.stdout:  # wait until training has started
            if line.startswith("[train] tiny/lora-cpu"):
                break
        time.sleep(8)  # the base loads and the first of 1500 steps run: the signal lands inside training
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 130, err[-2000:]
    assert "Traceback" not in err
    last = err.strip().splitlines()[-1]
    assert last == (
        "lrv-hf quickstart: interrupted; the finished steps (data, adapter checkpoints, answers written so far, "
        f"judge replies) are kept in {out}; rerun the same command to resume"
    )
    assert (out / "data" / "evaluation" / "build_report.json").is_file()  # the finished data step is kept


def test_one_citation_in_every_card(built_dataset):
    """The dataset card and builder, a model card and the GAVIE metric (module and card) all cite LRV with one string."""
    import evaluate

    import lrv_hf
    from lrv_hf.data.builder import LRVInstruction
    from lrv_hf.data.card import dataset_card
    from lrv_hf.train.card import model_card

    bibtex = lrv_hf.CITATION
    assert bibtex.startswith("@inproceedings{liu2023mitigating,") and "2306.14565" in bibtex
    assert bibtex in str(dataset_card(built_dataset, "org/lrv-instruction"))
    assert LRVInstruction(config_name="instructions", release_dir=str(built_dataset))._info().citation == bibtex
    assert bibtex in str(model_card("org/base", "abc123", "tiny/lora-cpu", {"lora_r": 8}, {"dataset": "org/lrv"}))
    assert evaluate.load(str(PACKAGE.parent / "metrics" / "gavie")).citation == bibtex
    assert bibtex in (PACKAGE.parent / "metrics" / "gavie" / "README.md").read_text()
