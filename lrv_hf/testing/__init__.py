"""Importable helpers for tests, benchmarks and users trying things offline: a loopback OpenAI-compatible server
(scripted, or answering from a local model), scripted judge replies, tiny models built from configs (`tiny`), the
shipped tiny base that sees (`tiny_base`), the two quickstart adapters (`tiny_adapters`), a local Hub cache (`hub`).

Nothing heavy is imported here: each name loads its module on first use.
"""

import importlib


# name -> module under lrv_hf.testing
_MODULES = {
    "ChatServer": "chat_server",
    "ChatServerProcess": "chat_server",
    "Fault": "chat_server",
    "ListingServer": "model_server",
    "ModelServer": "model_server",
    "Record": "chat_server",
    "answers_in": "judge_replies",
    "echo_reply": "chat_server",
    "gavie_reply": "judge_replies",
    "scores_for": "judge_replies",
}

__all__ = sorted(_MODULES)


def __getattr__(name: str):
    if name not in _MODULES:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f".{_MODULES[name]}", __name__), name)
