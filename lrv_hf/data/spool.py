"""An on-disk spool that groups streamed instruction rows by image, with regions attached, in constant memory.

Release files are not sorted by image and hold ~320k rows; grouping them in Python dicts makes memory grow with the
release. SQLite on a temporary file does the grouping and the join with regions instead; exact duplicates are
dropped per image while reading the groups back (a group is small, so that needs no global index).
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
CREATE TABLE regions (image_id TEXT PRIMARY KEY, regions TEXT NOT NULL);
"""


class Spool:
    """Rows in; rows grouped by image (in image id order) out, exact duplicates dropped and counted."""

    def __init__(self, path: str | Path):
        self.db = sqlite3.connect(path)
        self.db.executescript("PRAGMA journal_mode=OFF; PRAGMA synchronous=OFF; PRAGMA cache_size=-16384;" + _SCHEMA)
        self.duplicates = 0
        self.duplicate_examples: list[str] = []
        self._indexed = False

    def close(self):
        self.db.close()

    def add_rows(self, rows: Iterable[Instruction]):
        self.db.executemany(
            "INSERT INTO rows (image_id, question, answer, task, source, row) VALUES (?,?,?,?,?,?)",
            ((r.image_id, r.question, r.answer, r.task, r.source, r.row) for r in rows),
        )
        self.db.commit()
        self._indexed = False

    def _index(self):
        if not self._indexed:
            self.db.executescript(
                """DROP TABLE IF EXISTS images;
                CREATE TABLE images AS SELECT DISTINCT image_id FROM rows;
                CREATE UNIQUE INDEX images_id ON images (image_id);"""
            )
            self._indexed = True

    def image_ids(self) -> Iterator[str]:
        self._index()
        yield from (image_id for (image_id,) in self.db.execute("SELECT image_id FROM images ORDER BY image_id"))

    @property
    def num_images(self) -> int:
        self._index()
        return self.db.execute("SELECT count(*) FROM images").fetchone()[0]

    @property
    def num_rows(self) -> int:
        return self.db.execute("SELECT count(*) FROM rows").fetchone()[0]

    def add_regions(self, items: Iterable[tuple[str, list[dict]]]) -> int:
        """Keep the regions of the images that have rows; returns how many images got regions."""
        wanted = set(self.image_ids())
        self.db.executemany(
            "INSERT OR REPLACE INTO regions VALUES (?, ?)",
            ((image_id, json.dumps(regions)) for image_id, regions in items if image_id in wanted),
        )
        self.db.commit()
        return self.db.execute("SELECT count(*) FROM regions").fetchone()[0]

    def grouped(self) -> Iterator[tuple[str, list[tuple], list[dict] | None]]:
        """`(image_id, [(question, answer, task, source, row), ...], regions or None)` per image."""
        self._index()
        # images come out in id order: an index scan, no sort of the rows and no regions dragged through one
        self.db.execute("CREATE INDEX IF NOT EXISTS rows_image ON rows (image_id, seq)")
        query = "SELECT image_id, question, answer, task, source, row FROM rows ORDER BY image_id, seq"
        lookup = self.db.cursor()
        for image_id, group in itertools.groupby(self.db.execute(query), key=lambda t: t[0]):
            rows, seen = [], set()
            for _, question, answer, task, source, row in group:
                if (question, answer, task) in seen:
                    self.duplicates += 1
                    if len(self.duplicate_examples) < 3:
                        self.duplicate_examples.append(f"{source} row {row} (image {image_id})")
                    continue
                seen.add((question, answer, task))
                rows.append((question, answer, task, source, row))
            found = lookup.execute("SELECT regions FROM regions WHERE image_id = ?", (image_id,)).fetchone()
            yield image_id, rows, (json.loads(found[0]) if found else None)
