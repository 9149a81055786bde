"""The split of dependencies: evaluation installs without the training stack and imports without it.

`pip install lrv-hf` gives data building, GAVIE, POPE and the judge; `[train]`, `[deepspeed]`, `[qlora]`, `[demo]` add
the rest. These tests block the extras' packages and import the core, so an eager import fails here, not for users.
"""

import subprocess
import sys
from pathlib import Path

import tomllib


ROOT = Path(__file__).resolve().parents[1]
EXTRAS_ONLY = ("torch", "transformers", "peft", "accelerate", "deepspeed", "bitsandbytes", "gradio", "spaces")

BLOCKED_IMPORT = """
import importlib.abc, sys
blocked = set(sys.argv[1].split(","))

class Blocker(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in blocked:
            raise ImportError(f"{name} belongs to an extra")

sys.meta_path.insert(0, Blocker())
import lrv_hf.data, lrv_hf.gavie, lrv_hf.judge, lrv_hf.pope
from lrv_hf.cli import build_parser
build_parser()  # every sub-command's flags, the train ones included
print("ok")
"""


def test_the_core_declares_none_of_the_training_stack():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    core = {dep.split(">")[0].split("=")[0].split("[")[0].strip().lower() for dep in project["dependencies"]}
    assert not core & set(EXTRAS_ONLY), core & set(EXTRAS_ONLY)
    extras = project["optional-dependencies"]
    declared = {dep.split(">")[0].split("[")[0].lower() for deps in extras.values() for dep in deps}
    assert {"torch", "transformers", "peft", "accelerate", "deepspeed", "bitsandbytes", "gradio"} <= declared


def test_evaluation_and_the_command_line_import_without_the_extras():
    done = subprocess.run(
        [sys.executable, "-c", BLOCKED_IMPORT, ",".join(EXTRAS_ONLY)], capture_output=True, text=True, cwd=ROOT
    )
    assert done.returncode == 0 and done.stdout.strip() == "ok", done.stderr[-2000:]
    # the blocker works: importing the training code does need the extras
    failed = subprocess.run(
        [sys.executable, "-c", BLOCKED_IMPORT.replace("build_parser()", "import lrv_hf.train.trainer"), "peft"],
        capture_output=True,
        text=True,
        cwd=ROOT,
    )
    assert failed.returncode == 1 and "peft belongs to an extra" in failed.stderr
