"""The do-not-call list: numbers nobody may dial, kept in the call records database.

Numbers are stored in E.164 (`+15105550123`), one row each, with when and how they were
added (`operator`, `opt-out` during a call, `import` from a file) and, for an opt-out, the
record id of the call it happened on. Every dial path asks `listed` first (telephony.worker,
`python -m telephony call`, campaigns): a number on the list is never dialled.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Literal

import sqlalchemy as sa

from telephony.domain.settings import Settings
from telephony.records.store import CallStore
from telephony.records.stores import open_store

Source = Literal["operator", "opt-out", "import"]
SOURCES: tuple[Source, ...] = ("operator", "opt-out", "import")
MAX_NOTE_CHARS = 200
# Numbers asked about per query (an IN list; PostgreSQL and SQLite both take this many).
_CHUNK = 500

_metadata = sa.MetaData()
do_not_call = sa.Table(
    "do_not_call",
    _metadata,
    sa.Column("phone_number", sa.Text, primary_key=True),
    sa.Column("added_at", sa.Double, nullable=False),
    sa.Column("source", sa.Text, nullable=False),
    sa.Column("record_id", sa.Text, nullable=False),
    sa.Column("note", sa.Text, nullable=False),
)


@dataclass(frozen=True)
class DoNotCallEntry:
    phone_number: str  # E.164
    added_at: float  # unix time
    source: Source
    record_id: str = ""  # the call the callee opted out on
    note: str = ""


class DoNotCallList:
    """The list in one CallStore's database; raises StoreError when it cannot be used."""

    def __init__(self, store: CallStore) -> None:
        self._store = store

    def add(self, entries: Iterable[DoNotCallEntry]) -> int:
        """Add the numbers not listed yet (a listed number keeps its first entry: when it
        was first asked for); return how many were new."""
        new = 0
        with self._store._transaction(write=True) as conn:
            for entry in entries:
                values = {
                    "phone_number": entry.phone_number,
                    "added_at": entry.added_at,
                    "source": entry.source,
                    "record_id": entry.record_id,
                    "note": entry.note[:MAX_NOTE_CHARS],
                }
                stmt = self._store._upsert_insert(do_not_call).values(**values)
                stmt = stmt.on_conflict_do_nothing(
                    index_elements=[do_not_call.c.phone_number]
                ).returning(do_not_call.c.phone_number)
                # RETURNING, not rowcount: the PostgreSQL driver reports -1 for this form.
                new += len(conn.execute(stmt).all())
        return new

    def remove(self, numbers: Iterable[str]) -> int:
        """Remove the numbers; return how many were listed."""
        wanted = list(numbers)
        removed = 0
        with self._store._transaction(write=True) as conn:
            for chunk in _chunks(wanted):
                stmt = sa.delete(do_not_call).where(do_not_call.c.phone_number.in_(chunk))
                removed += conn.execute(stmt).rowcount
        return removed

    def listed(self, numbers: Iterable[str]) -> set[str]:
        """Which of these numbers are on the list."""
        wanted = sorted(set(numbers))
        found: set[str] = set()
        with self._store._transaction() as conn:
            for chunk in _chunks(wanted):
                column = do_not_call.c.phone_number
                found.update(conn.execute(sa.select(column).where(column.in_(chunk))).scalars())
        return found

    def entries(self, *, limit: int | None = None) -> list[DoNotCallEntry]:
        """The list, newest first."""
        c = do_not_call.c
        stmt = sa.select(do_not_call).order_by(c.added_at.desc(), c.phone_number)
        if limit is not None:
            stmt = stmt.limit(limit)
        with self._store._transaction() as conn:
            return [
                DoNotCallEntry(
                    phone_number=row.phone_number,
                    added_at=row.added_at,
                    source=row.source,
                    record_id=row.record_id,
                    note=row.note,
                )
                for row in conn.execute(stmt)
            ]

    def count(self) -> int:
        with self._store._transaction() as conn:
            stmt = sa.select(sa.func.count()).select_from(do_not_call)
            return int(conn.execute(stmt).scalar_one())


def _chunks(items: Sequence[str]) -> Iterable[Sequence[str]]:
    for start in range(0, len(items), _CHUNK):
        yield items[start : start + _CHUNK]


def listed_in_store(settings: Settings, numbers: Iterable[str]) -> set[str]:
    """Which numbers the do-not-call list of the settings' store holds (blocking; raises
    StoreError when the list cannot be read: callers must then not dial)."""
    return DoNotCallList(open_store(settings)).listed(numbers)


def add_opt_out(settings: Settings, number: str, record_id: str, at: float) -> bool:
    """Note a callee's opt-out during a call; True if the number was not listed yet."""
    entry = DoNotCallEntry(number, at, "opt-out", record_id=record_id)
    return DoNotCallList(open_store(settings)).add([entry]) == 1
