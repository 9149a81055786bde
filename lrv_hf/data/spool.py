"""An on-disk spool that groups streamed instruction rows by image, with regions attached, in constant memory.

Release files are not sorted by image and hold ~320k rows; grouping them in Python dicts makes memory grow with the
release. SQLite on a temporary file does the grouping, the de-duplication and the join with regions instead.
"""

import itertools
import json
import sqlite3
from collections.abc import Iterable, Iterator
from pathlib import Path

from .release import Instruction


_SCHEMA = """
CREATE TABLE rows (seq INTEGER PRIMARY KEY, image_id TEXT NOT NULL, question TEXT NOT NULL, answer TEXT, task TEXT,
                   source TEXT NOT NULL, row INTEGER NOT NULL);
CREATE UNIQUE INDEX rows_dedup ON rows (image_id, question, ifnull(answer, ''), ifnull(task, ''));
CREATE TABLE images (image_id TEXT PRIMARY KEY, first_seq INTEGER NOT NULL);
CREATE TABLE regions (image_id TEXT PRIMARY KEY, regions TEXT NOT NULL);
"""


class Spool:
    """Rows in, rows grouped by image (in order of first appearance) out; exact duplicate rows are dropped and counted."""

    def __init__(self, path: str | Path):
        self.db = sqlite3.connect(path)
        self.db.executescript("PRAGMA journal_mode=OFF; PRAGMA synchronous=OFF; PRAGMA cache_size=-65536;" + _SCHEMA)
        self.rows = 0
        self.duplicates = 0
        self.duplicate_examples: list[str] = []

    def close(self):
        self.db.close()

    def add_rows(self, rows: Iterable[Instruction], batch_size: int = 10_000):
        cursor = self.db.cursor()
        for batch in _batched(rows, batch_size):
            for r in batch:
                cursor.execute(
                    "INSERT OR IGNORE INTO rows (image_id, question, answer, task, source, row) VALUES (?,?,?,?,?,?)",
                    (r.image_id, r.question, r.answer, r.task, r.source, r.row),
                )
                if cursor.rowcount == 0:
                    self.duplicates += 1
                    if len(self.duplicate_examples) < 3:
                        self.duplicate_examples.append(f"{r.source} row {r.row} (image {r.image_id})")
                    continue
                self.rows += 1
                cursor.execute("INSERT OR IGNORE INTO images VALUES (?, ?)", (r.image_id, cursor.lastrowid))
            self.db.commit()

    def image_ids(self) -> Iterator[str]:
        for (image_id,) in self.db.execute("SELECT image_id FROM images ORDER BY first_seq"):
            yield image_id

    @property
    def num_images(self) -> int:
        return self.db.execute("SELECT count(*) FROM images").fetchone()[0]

    def add_regions(self, items: Iterable[tuple[str, list[dict]]]) -> int:
        """Keep the regions of the images that have rows; returns how many images got regions."""
        wanted = set(self.image_ids())
        kept = 0
        for image_id, regions in items:
            if image_id in wanted:
                self.db.execute("INSERT OR REPLACE INTO regions VALUES (?, ?)", (image_id, json.dumps(regions)))
                kept += 1
        self.db.commit()
        return kept

    def grouped(self) -> Iterator[tuple[str, list[tuple], list[dict] | None]]:
        """`(image_id, [(question, answer, task, source, row), ...], regions or None)` per image."""
        query = """
            SELECT r.image_id, r.question, r.answer, r.task, r.source, r.row, g.regions
            FROM rows r JOIN images i ON i.image_id = r.image_id LEFT JOIN regions g ON g.image_id = r.image_id
            ORDER BY i.first_seq, r.seq
        """
        for image_id, group in itertools.groupby(self.db.execute(query), key=lambda t: t[0]):
            group = list(group)
            regions = group[0][6]
            yield image_id, [t[1:6] for t in group], (json.loads(regions) if regions is not None else None)


def _batched(iterable, n):
    iterator = iter(iterable)
    while batch := list(itertools.islice(iterator, n)):
        yield batch
