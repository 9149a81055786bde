"""Shared fixtures: the synthetic release and the dataset built from it (built once per test session)."""

import os

import pytest


# nothing in the test suite may reach the network
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("MPLBACKEND", "Agg")


@pytest.fixture(scope="session")
def synthetic_release(tmp_path_factory):
    """A synthetic release in the release formats (images/, filter_cap.json, ..., vg_annotation.json, objects.json)."""
    from lrv_hf.data import write_synthetic_release

    path = tmp_path_factory.mktemp("release")
    write_synthetic_release(path, num_images=20, seed=0)
    return path


@pytest.fixture(scope="session")
def built_dataset(synthetic_release, tmp_path_factory):
    """The synthetic release built into a Hub-layout folder with `instructions` (train) and `evaluation` (test)."""
    from lrv_hf.data.export import build_dataset

    out = tmp_path_factory.mktemp("built")
    common = {"images_dir": synthetic_release / "images", "regions_file": synthetic_release / "vg_annotation.json"}
    build_dataset([synthetic_release / "filter_cap.json"], output_dir=out, **common)
    build_dataset(
        [synthetic_release / "evaluation_set.json"], output_dir=out, config_name="evaluation", split="test", **common
    )
    return out


# -- judge: a real OpenAI-compatible server on 127.0.0.1 (lrv_hf/testing/chat_server.py) ------------------------------
@pytest.fixture
def chat_server():
    """A started `ChatServer` (echo replies, no faults); program it with `.reply`, `.inject(...)`, `.latency`."""
    from lrv_hf.testing.chat_server import ChatServer

    with ChatServer() as server:
        yield server
