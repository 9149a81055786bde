"""The output of an inference run: the lock that lets one run write it, and its settings record `<output>.meta.json`.

A resumed run must ask for every setting that made the rows already there, so one file never mixes two set-ups.
"""

import glob
import json
import logging
import os
from pathlib import Path

from ..errors import InputError


logger = logging.getLogger(__name__)


def meta_path(output: str | Path) -> Path:
    return Path(f"{output}.meta.json")


def lock_path(output: str | Path) -> Path:
    return Path(f"{output}.lock")


class OutputLock:
    """`with OutputLock(output):` one run writes `output` at a time; another stops at once naming the holder's pid.

    An OS lock (`flock`) on `<output>.lock`, which holds the holder's pid: the kernel drops it when the holder dies,
    so the lock file a killed run leaves behind is taken over by the next run. A run that ends removes the file.
    """

    def __init__(self, output: str | Path):
        self.output = Path(output)
        self.path = lock_path(output)
        self.fd = None

    def __enter__(self) -> "OutputLock":
        import fcntl

        while True:
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                holder = _pid_in(fd) or "unknown"
                os.close(fd)
                raise InputError(
                    f"{self.path}: another run (pid {holder}) is writing {self.output}; "
                    "wait for it to end or choose another `output`",
                    "output",
                ) from None
            # the holder that just ended removed the file we opened: lock the one now at the path instead
            try:
                current = os.stat(self.path).st_ino == os.fstat(fd).st_ino
            except FileNotFoundError:
                current = False
            if current:
                break
            os.close(fd)
        stale = _pid_in(fd)
        if stale:
            logger.warning("taking over %s from pid %s, which ended without releasing it", self.path, stale)
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        self.fd = fd
        return self

    def __exit__(self, *exc) -> None:
        # removed while still held, so no other run can lock a file that is about to vanish
        self.path.unlink(missing_ok=True)
        os.close(self.fd)
        self.fd = None


def _pid_in(fd: int) -> str:
    return os.pread(fd, 32, 0).decode("ascii", "replace").strip()


def has_rows(output: Path) -> bool:
    """Whether `output` or a part of a sharded run holds anything a resume would keep."""
    parts = output.parent.glob(f"{glob.escape(output.name)}.part-*-of-*")
    return (output.is_file() and output.stat().st_size > 0) or any(p.stat().st_size > 0 for p in parts)


def record_settings(output: Path, settings: dict, run: dict) -> None:
    """Write `<output>.meta.json` for a new output, or stop unless the rows already there were made with `settings`.

    `settings` holds everything that changes an answer (model, adapter, data, images, dtype, generation, endpoint,
    ...); every key must match on resume. `run` holds what only changes how fast or how much is answered (batch
    size, processes, rows): recorded, never checked.
    """
    path = meta_path(output)
    if not has_rows(output):  # nothing to mix with: a record left by a run that wrote nothing is replaced
        write_meta(path, {"settings": settings, **run})
        return
    if not path.is_file():
        raise InputError(
            f"output {output} has rows but no record of the settings that made them ({path}); "
            "use another output or delete it",
            "output",
        )
    try:
        old = json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as err:
        raise InputError(
            f"{path}: cannot be read (not valid JSON: {err}); delete it and {output} to start over", "output"
        ) from None
    if not isinstance(old, dict) or not isinstance(old.get("settings"), dict):
        raise InputError(
            f"{path}: records no settings (written by an older lrv-hf); use another output or delete {output}",
            "output",
        )
    differences = [
        f"{name}={_shown(old['settings'].get(name))}, this run asks for {_shown(settings.get(name))}"
        for name in sorted(old["settings"].keys() | settings.keys())
        if old["settings"].get(name) != settings.get(name)
    ]
    if differences:
        raise InputError(
            f"output {output} was made with {'; with '.join(differences)}; use another output or delete it", "output"
        )


def _shown(value) -> str:
    return value if isinstance(value, str) else json.dumps(value)


def write_meta(path: Path, meta: dict) -> None:
    """Replace the record whole (written beside, then renamed), so a kill never leaves half of it."""
    tmp = Path(f"{path}.tmp")
    tmp.write_text(json.dumps(meta, indent=2) + "\n", encoding="utf-8")
    os.replace(tmp, path)
