"""The local spool: call records kept on disk while the store could not take them.

One JSON record per line in `unsaved-call-records.jsonl` beside CALL_RECORDS_PATH. The
worker appends to it when the database is down; `calls import-spool` loads it later, and a
campaign reads it before it calls anyone again, so a record waiting here still counts.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from telephony.domain.settings import Settings

SPOOL_NAME = "unsaved-call-records.jsonl"


def spool_path(settings: Settings) -> Path:
    return settings.call_records_path.parent / SPOOL_NAME


@dataclass(frozen=True)
class SpooledLine:
    """One line of a spool: the record's JSON object, or why the line is not one."""

    number: int
    record: dict[str, Any] | None
    problem: str = ""


def read_spool(path: Path) -> list[SpooledLine]:
    """Every non-blank line of the spool, in order; a line that is not a whole JSON object
    (cut short by a crash or a full disk, edited by hand) comes back with its problem."""
    if not path.is_file():
        return []
    lines: list[SpooledLine] = []
    with path.open("rb") as f:
        for number, raw in enumerate(f, start=1):
            if not raw.strip():
                continue
            try:
                data = json.loads(raw.decode("utf-8"))
            except (ValueError, RecursionError) as e:
                lines.append(SpooledLine(number, None, f"{type(e).__name__}: {e}"[:200]))
                continue
            if not isinstance(data, dict):
                lines.append(SpooledLine(number, None, "not a JSON object"))
                continue
            lines.append(SpooledLine(number, data))
    return lines


def append_to_spool(path: Path, record: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a", encoding="utf-8") as f:
        f.write(json.dumps(record) + "\n")
