"""The judge's persistent reply cache: one SQLite file in WAL mode, written one reply at a time.

A reply is stored the moment it arrives, so a run killed at any point resumes without paying for it again. The key
hashes the judge model, the sampling parameters and the exact messages; no credential ever reaches this file.
"""

import hashlib
import json
import sqlite3
import threading
import time
from dataclasses import dataclass
from pathlib import Path


SCHEMA = """
CREATE TABLE IF NOT EXISTS replies (
    key TEXT PRIMARY KEY,
    model TEXT NOT NULL,
    request TEXT NOT NULL,
    text TEXT NOT NULL,
    prompt_tokens INTEGER NOT NULL,
    completion_tokens INTEGER NOT NULL,
    via_batch INTEGER NOT NULL DEFAULT 0,
    created REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS batches (
    batch_id TEXT PRIMARY KEY,
    model TEXT NOT NULL,
    input_file_id TEXT NOT NULL,
    keys TEXT NOT NULL,
    status TEXT NOT NULL,
    created REAL NOT NULL
);
"""


def cache_key(payload: dict) -> str:
    """sha256 of the canonical JSON of everything that determines a reply (model, sampling, messages, sample)."""
    return hashlib.sha256(json.dumps(payload, sort_keys=True, ensure_ascii=False).encode()).hexdigest()


@dataclass
class CachedReply:
    text: str
    prompt_tokens: int
    completion_tokens: int
    via_batch: bool


class JudgeCache:
    """SQLite store of judge replies (and of Batch API jobs in flight, so a resumed run re-attaches to them).

    Args:
        path (`str` or `Path`, *optional*):
            The database file; created with its parent folder. `None` keeps the cache in memory for this process.
    """

    def __init__(self, path: str | Path | None = None):
        self.path = Path(path) if path is not None else None
        if self.path is not None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        # one connection shared by the event loop and the sync wrappers; the lock serialises them
        self._conn = sqlite3.connect(str(self.path) if self.path else ":memory:", check_same_thread=False)
        self._lock = threading.Lock()
        with self._lock:
            if self.path is not None:
                self._conn.execute("PRAGMA journal_mode=WAL")
                # WAL + NORMAL survives a killed process (only a power cut can lose the last commits)
                self._conn.execute("PRAGMA synchronous=NORMAL")
            self._conn.executescript(SCHEMA)
            self._conn.commit()

    def get_many(self, keys: list[str]) -> dict[str, CachedReply]:
        found = {}
        with self._lock:
            for start in range(0, len(keys), 500):
                chunk = keys[start : start + 500]
                rows = self._conn.execute(
                    "SELECT key, text, prompt_tokens, completion_tokens, via_batch FROM replies WHERE key IN "
                    f"({','.join('?' * len(chunk))})",
                    chunk,
                ).fetchall()
                for key, text, prompt_tokens, completion_tokens, via_batch in rows:
                    found[key] = CachedReply(text, prompt_tokens, completion_tokens, bool(via_batch))
        return found

    def put(self, key: str, model: str, request: dict, reply: CachedReply):
        with self._lock:
            self._conn.execute(
                "INSERT OR REPLACE INTO replies VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (key, model, json.dumps(request, ensure_ascii=False), reply.text, reply.prompt_tokens,
                 reply.completion_tokens, int(reply.via_batch), time.time()),
            )  # fmt: skip
            self._conn.commit()

    def mean_completion_tokens(self, model: str) -> float | None:
        """The mean completion length of this model's cached replies: a better cost estimate than a guess."""
        with self._lock:
            (mean,) = self._conn.execute(
                "SELECT AVG(completion_tokens) FROM replies WHERE model = ?", (model,)
            ).fetchone()
        return mean

    def __len__(self) -> int:
        with self._lock:
            return self._conn.execute("SELECT COUNT(*) FROM replies").fetchone()[0]

    # -- Batch API bookkeeping ---------------------------------------------------------------------------------------
    def add_batch(self, batch_id: str, model: str, input_file_id: str, keys: list[str]):
        with self._lock:
            self._conn.execute(
                "INSERT OR REPLACE INTO batches VALUES (?, ?, ?, ?, ?, ?)",
                (batch_id, model, input_file_id, json.dumps(keys), "submitted", time.time()),
            )
            self._conn.commit()

    def open_batches(self, model: str) -> list[tuple[str, list[str]]]:
        """Batches submitted for `model` and not yet collected: `(batch_id, keys)`."""
        with self._lock:
            rows = self._conn.execute(
                "SELECT batch_id, keys FROM batches WHERE model = ? AND status = 'submitted' ORDER BY created",
                (model,),
            ).fetchall()
        return [(batch_id, json.loads(keys)) for batch_id, keys in rows]

    def close_batch(self, batch_id: str, status: str):
        with self._lock:
            self._conn.execute("UPDATE batches SET status = ? WHERE batch_id = ?", (status, batch_id))
            self._conn.commit()

    def close(self):
        with self._lock:
            self._conn.close()
