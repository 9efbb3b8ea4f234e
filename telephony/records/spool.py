"""The local spool: call records kept on disk while the store could not take them.

One JSON record per line in `unsaved-call-records.jsonl` beside CALL_RECORDS_PATH. The
worker appends to it when the database is down; `calls import-spool` loads it later, and a
campaign reads it before it calls anyone again, so a record waiting here still counts.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from telephony.domain.settings import Settings

SPOOL_NAME = "unsaved-call-records.jsonl"


def spool_path(settings: Settings) -> Path:
    return settings.call_records_path.parent / SPOOL_NAME


@dataclass(frozen=True)
class SpooledLine:
    """One line of a spool: the record's JSON object, or why the line is not one (and its
    bytes, so they can be set aside)."""

    number: int
    record: dict[str, Any] | None
    problem: str = ""
    raw: bytes = b""


# How every record's JSON starts (CallRecord.to_dict: record_id is its first field).
_RECORD_START = b'{"record_id": '


def read_spool(path: Path) -> list[SpooledLine]:
    """Every non-blank line of the spool, in order; a line that is not a whole JSON object
    (cut short by a crash or a full disk, edited by hand) comes back with its problem.

    A spool written before appends were atomic may hold a torn line with the next record
    glued to its end: that record comes back whole, after the torn part."""
    if not path.is_file():
        return []
    lines: list[SpooledLine] = []
    with path.open("rb") as f:
        for number, raw in enumerate(f, start=1):
            if raw.strip():
                lines += _read_line(number, raw)
    return lines


def _read_line(number: int, raw: bytes) -> list[SpooledLine]:
    data, problem = _parse(raw)
    if data is not None:
        return [SpooledLine(number, data)]
    glued = raw.find(_RECORD_START, 1)
    while glued != -1:
        data, _ = _parse(raw[glued:])
        if data is not None:
            return [SpooledLine(number, None, problem, raw[:glued]), SpooledLine(number, data)]
        glued = raw.find(_RECORD_START, glued + 1)
    return [SpooledLine(number, None, problem, raw)]


def _parse(raw: bytes) -> tuple[dict[str, Any] | None, str]:
    try:
        data = json.loads(raw.decode("utf-8"))
    except (ValueError, RecursionError) as e:
        return None, f"{type(e).__name__}: {e}"[:200]
    if not isinstance(data, dict):
        return None, "not a JSON object"
    return data, ""


def append_to_spool(path: Path, record: dict[str, Any]) -> None:
    """Append one record as one whole line, or nothing at all; OSError if it cannot.

    Several job processes append at once, and the disk may fill or the process die
    mid-write: the line goes out in one write(2) on an O_APPEND descriptor under an
    exclusive lock, and a write that came up short (a full disk) is cut back off before
    the error is raised, so no reader ever sees half a line glued to the next record."""
    line = (json.dumps(record) + "\n").encode("utf-8")
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_APPEND | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        size = os.fstat(fd).st_size
        if size and os.pread(fd, 1, size - 1) != b"\n":
            # A tail torn by a crash outside this function: start a line of our own.
            line = b"\n" + line
        try:
            written = os.write(fd, line)
            if written != len(line):
                raise OSError(errno.ENOSPC, f"only {written} of {len(line)} bytes written")
            os.fsync(fd)
        except OSError:
            # Under the lock nobody else appended meanwhile: drop the partial line.
            with contextlib.suppress(OSError):
                os.ftruncate(fd, size)
            raise
    finally:
        os.close(fd)  # also releases the lock
