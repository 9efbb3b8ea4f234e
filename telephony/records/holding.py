"""The last place a call record can wait: a spool in memory, when the store and the spool
on disk both refused it (the database down and the data disk full).

It lives on a memory-backed filesystem ($XDG_RUNTIME_DIR, else /dev/shm), so a full data
disk does not touch it, and it outlives the job process that wrote it: the worker process
moves its records to the store or the spool as soon as one takes them, and reports them
meanwhile (`python -m telephony status`, the worker's health check). It does not outlive
a reboot. Same format as the spool: one whole JSON record per line, mode 0600.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from telephony.domain.settings import Settings
from telephony.records.spool import SpooledLine, read_spool, spool_path


def memory_folder() -> Path:
    """$XDG_RUNTIME_DIR, else /dev/shm (both memory-backed on Linux), else the temp folder."""
    candidates = (os.environ.get("XDG_RUNTIME_DIR", ""), "/dev/shm")
    return next(
        (Path(d) for d in candidates if d and Path(d).is_dir()), Path(tempfile.gettempdir())
    )


def spool_key(settings: Settings) -> str:
    """Names this host's files for one spool (so one records database), in every process."""
    spool = str(spool_path(settings).expanduser().absolute())
    return hashlib.sha256(spool.encode()).hexdigest()[:16]


def holding_path(settings: Settings) -> Path:
    """One file per spool, the same in every process of a host."""
    return memory_folder() / f"telephony-held-call-records-{spool_key(settings)}.jsonl"


def held_records(path: Path) -> list[dict[str, Any]]:
    return [line.record for line in read_spool(path) if line.record is not None]


def move_held_records(path: Path, place: Callable[[dict[str, Any]], bool]) -> tuple[int, int]:
    """Offer each held record to `place` (True: it is stored or spooled now), under the
    file's lock so no append is lost meanwhile; keep the rest. Returns (moved, left)."""
    if not path.is_file():
        return 0, 0
    with _locked(path) as fd:
        lines = read_spool(path)
        kept: list[SpooledLine] = []
        moved = 0
        for index, line in enumerate(lines):
            if line.record is None:
                continue  # not a record (cannot happen with atomic appends)
            if place(line.record):
                moved += 1
            else:
                kept.append(line)
                kept += [rest for rest in lines[index + 1 :] if rest.record is not None]
                break  # the store and the spool refuse: try again later, in order
        if moved:
            # Rewritten, never removed: an appender may be waiting for the lock on this file.
            _rewrite(fd, kept)
    return moved, len(kept)


@contextlib.contextmanager
def _locked(path: Path) -> Iterator[int]:
    fd = os.open(path, os.O_RDWR)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)  # the appenders' lock (spool.append_to_spool)
        yield fd
    finally:
        os.close(fd)


def _rewrite(fd: int, kept: list[SpooledLine]) -> None:
    data = b"".join((json.dumps(line.record) + "\n").encode() for line in kept)
    os.ftruncate(fd, 0)
    os.lseek(fd, 0, os.SEEK_SET)
    os.write(fd, data)
