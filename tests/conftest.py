"""Shared pytest fixtures: each capability adds its own in a small, clearly labelled block."""

import pytest


# -- judge: a real OpenAI-compatible server on 127.0.0.1 (tests/chat_server.py) -------------------------------------
@pytest.fixture
def chat_server():
    """A started `ChatServer` (echo replies, no faults); program it with `.reply`, `.inject(...)`, `.latency`."""
    from chat_server import ChatServer

    with ChatServer() as server:
        yield server
