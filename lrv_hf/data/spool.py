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
                   source TEXT NOT NULL, row INTEGER NOT NULL, reference_answer TEXT);
CREATE TABLE regions (image_id TEXT PRIMARY KEY, regions TEXT NOT NULL);
"""


class Spool:
    """Rows in; rows grouped by image (in image id order) out, exact duplicates dropped and counted."""

    def __init__(self, path: str | Path, readonly: bool = False):
        self.path = str(path)
        if readonly:  # a worker of a parallel build reads what the main process spooled
            self.db = sqlite3.connect(f"file:{self.path}?mode=ro", uri=True)
            self._indexed = True
        else:
            self.db = sqlite3.connect(self.path)
            self.db.executescript(
                "PRAGMA journal_mode=OFF; PRAGMA synchronous=OFF; PRAGMA cache_size=-16384;" + _SCHEMA
            )
            self._indexed = False

    def close(self):
        self.db.close()

    def add_rows(self, rows: Iterable[Instruction]):
        self.db.executemany(
            "INSERT INTO rows (image_id, question, answer, task, source, row, reference_answer) VALUES (?,?,?,?,?,?,?)",
            ((r.image_id, r.question, r.answer, r.task, r.source, r.row, r.reference_answer) for r in rows),
        )
        self.db.commit()
        self._indexed = False

    def _index(self):
        if not self._indexed:
            self.db.executescript(
                """DROP TABLE IF EXISTS images;
                CREATE TABLE images AS SELECT DISTINCT image_id FROM rows;
                CREATE UNIQUE INDEX images_id ON images (image_id);
                CREATE INDEX IF NOT EXISTS rows_image ON rows (image_id, seq);"""
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

    def drop_images(self, image_ids: list[str]):
        """Leave these images (missing or corrupt files) and their rows out of the build."""
        self.db.executemany("DELETE FROM rows WHERE image_id = ?", ((i,) for i in image_ids))
        self.db.executemany("DELETE FROM images WHERE image_id = ?", ((i,) for i in image_ids))
        self.db.commit()

    # a row asking the question of an earlier row about the same image with a different answer or task (the
    # release has one answer per question and image; exact repeats are duplicates, counted apart)
    _CONFLICTS = """FROM rows r JOIN rows f ON f.seq = (
            SELECT min(seq) FROM rows WHERE image_id = r.image_id AND question = r.question)
        WHERE NOT (f.answer IS r.answer AND f.task IS r.task)"""

    def conflicts(self, examples: int = 3) -> tuple[int, list[str]]:
        """Rows whose question repeats the first row of that question and image with a different answer or task."""
        self._index()
        count = self.db.execute("SELECT count(*) " + self._CONFLICTS).fetchone()[0]
        found = self.db.execute(
            "SELECT r.source, r.row, r.image_id, f.source, f.row " + self._CONFLICTS + " ORDER BY r.seq LIMIT ?",
            (examples,),
        ).fetchall()
        return count, [
            f"{source} row {row} (image {image_id}) asks the question of {first} row {first_row} with a different "
            "answer or task"
            for source, row, image_id, first, first_row in found
        ]

    def drop_conflicts(self):
        """Keep the first answer of each question on an image; leave out the rows that contradict it."""
        self.db.execute("DELETE FROM rows WHERE seq IN (SELECT r.seq " + self._CONFLICTS + ")")
        self.db.commit()

    def count_duplicates(self, examples: int = 3) -> tuple[int, list[str]]:
        """Rows that repeat an earlier row of the same image exactly (question, answer, task), and the first few."""
        self._index()
        distinct = self.db.execute(
            "SELECT count(*) FROM (SELECT DISTINCT image_id, question, answer, task FROM rows)"
        ).fetchone()[0]
        found = self.db.execute(
            """SELECT r.source, r.row, r.image_id FROM rows r WHERE EXISTS (
                   SELECT 1 FROM rows p WHERE p.image_id = r.image_id AND p.seq < r.seq AND p.question = r.question
                   AND p.answer IS r.answer AND p.task IS r.task)
               ORDER BY r.seq LIMIT ?""",
            (examples,),
        ).fetchall()
        return self.num_rows - distinct, [f"{source} row {row} (image {image_id})" for source, row, image_id in found]

    def shards(self, images_per_shard: int) -> list[tuple[str, str]]:
        """Contiguous image-id ranges `(first, last)` of about `images_per_shard` images, in id order."""
        ids = list(self.image_ids())
        return [(ids[i], ids[min(i + images_per_shard, len(ids)) - 1]) for i in range(0, len(ids), images_per_shard)]

    def grouped(self, first: str | None = None, last: str | None = None) -> Iterator[tuple[str, list, list | None]]:
        """`(image_id, [(question, answer, task, source, row, reference_answer), ...], regions or None)` per image, in
        id order.

        Limited to the ids from `first` to `last` when given (one shard of a parallel build).
        """
        self._index()
        # images come out in id order: an index scan, no sort of the rows and no regions dragged through one
        query = "SELECT image_id, question, answer, task, source, row, reference_answer FROM rows"
        bounds = ()
        if first is not None:
            query += " WHERE image_id BETWEEN ? AND ?"
            bounds = (first, last)
        lookup = self.db.cursor()
        for image_id, group in itertools.groupby(
            self.db.execute(query + " ORDER BY image_id, seq", bounds), key=lambda t: t[0]
        ):
            rows, seen = [], set()
            for _, question, answer, task, source, row, reference in group:
                if (question, answer, task) in seen:
                    continue  # counted by `count_duplicates`
                seen.add((question, answer, task))
                rows.append((question, answer, task, source, row, reference))
            found = lookup.execute("SELECT regions FROM regions WHERE image_id = ?", (image_id,)).fetchone()
            yield image_id, rows, (json.loads(found[0]) if found else None)
