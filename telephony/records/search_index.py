"""Two side tables that keep the call-log web page fast on a big store.

- `call_latency`: one row per measured agent reply (end of speech -> first audio, in whole
  ms), so percentiles over thousands of calls are one GROUP BY, not a JSON parse per call.
- `call_text`: each call's transcript as one text, searchable by any substring: SQLite's FTS5
  with the trigram tokenizer, PostgreSQL's pg_trgm GIN index (both case-insensitive).

`CallStore.save` rewrites a record's rows in the same transaction as the record itself, and
migration 2 fills them for records saved before it.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

_metadata = sa.MetaData()
call_latency = sa.Table(
    "call_latency",
    _metadata,
    sa.Column("record_id", sa.Text, nullable=False),
    sa.Column("started_at", sa.Double, nullable=False),  # the call's, to filter without a join
    sa.Column("e2e_ms", sa.Integer, nullable=False),
    sa.Index("ix_call_latency_record_id", "record_id"),
    sa.Index("ix_call_latency_started_at", "started_at", "e2e_ms"),
)
call_text = sa.Table(
    "call_text",
    _metadata,
    sa.Column("record_id", sa.Text, nullable=False),
    sa.Column("body", sa.Text, nullable=False),
)

# The trigram index matches substrings of 3 characters or more; shorter ones scan.
TRIGRAM = 3


def transcript_body(record: Mapping[str, Any]) -> str:
    """What the search looks in: every spoken line of the transcript, one per line."""
    return "\n".join(str(turn.get("text", "")) for turn in record.get("transcript") or ())


def e2e_values_ms(record: Mapping[str, Any]) -> list[int]:
    """End of speech -> first audio of each measured reply, in whole milliseconds."""
    values = []
    for turn in record.get("latency") or ():
        value = turn.get("end_of_speech_to_first_audio")
        if isinstance(value, int | float) and value >= 0:
            values.append(round(value * 1000))
    return values


def index_record(conn: Connection, record: Mapping[str, Any]) -> None:
    """Replace one record's rows in both side tables (call inside the save's transaction)."""
    record_id = record["record_id"]
    conn.execute(sa.delete(call_latency).where(call_latency.c.record_id == record_id))
    values = e2e_values_ms(record)
    if values:
        started_at = float(record.get("started_at") or 0.0)
        conn.execute(
            sa.insert(call_latency),
            [{"record_id": record_id, "started_at": started_at, "e2e_ms": v} for v in values],
        )
    body = transcript_body(record)
    if conn.dialect.name == "sqlite":
        # An FTS5 table finds rows fast only by rowid: it borrows the calls row's rowid
        # (stable across upserts); record_id is stored too, so a search stays exact.
        rowid = conn.execute(
            sa.text("SELECT rowid FROM calls WHERE record_id = :id"), {"id": record_id}
        ).scalar_one()
        conn.execute(sa.text("DELETE FROM call_text WHERE rowid = :rowid"), {"rowid": rowid})
        conn.execute(
            sa.text("INSERT INTO call_text (rowid, record_id, body) VALUES (:rowid, :id, :body)"),
            {"rowid": rowid, "id": record_id, "body": body},
        )
    else:
        conn.execute(sa.delete(call_text).where(call_text.c.record_id == record_id))
        conn.execute(sa.insert(call_text).values(record_id=record_id, body=body))


def matching_text(text: str, dialect: str) -> sa.Select[tuple[str]]:
    """The record ids whose transcript contains `text`, ignoring case."""
    if dialect == "sqlite" and len(text) >= TRIGRAM:
        # A quoted FTS5 phrase: any substring for the trigram tokenizer; quotes doubled.
        phrase = '"' + text.replace('"', '""') + '"'
        return (
            sa.select(call_text.c.record_id)
            .where(sa.text("call_text MATCH :phrase"))
            .params(phrase=phrase)
        )
    if dialect == "sqlite":
        return sa.select(call_text.c.record_id).where(
            sa.func.instr(sa.func.lower(call_text.c.body), text.lower()) > 0
        )
    escaped = text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return sa.select(call_text.c.record_id).where(
        call_text.c.body.ilike(f"%{escaped}%", escape="\\")
    )


def percentile_of_counts(counts: Sequence[tuple[int, int]], p: float) -> float | None:
    """The p-th percentile of values given as (value, how many) sorted by value, with the
    same linear interpolation as `calls stats` (rank k = (n - 1) * p / 100)."""
    total = sum(n for _, n in counts)
    if total == 0:
        return None
    k = (total - 1) * p / 100
    low_rank = int(k)
    low = _value_at(counts, low_rank)
    high = _value_at(counts, min(low_rank + 1, total - 1))
    return low + (high - low) * (k - low_rank)


def _value_at(counts: Iterable[tuple[int, int]], rank: int) -> int:
    seen = 0
    for value, n in counts:
        seen += n
        if rank < seen:
            return value
    raise IndexError(rank)


# ------------------------------------------------------------------ migration 2


def create_tables(conn: Connection) -> None:
    """Migration 2's DDL, then the rows of every record already saved."""
    call_latency.create(conn)  # with its indexes
    if conn.dialect.name == "sqlite":
        conn.exec_driver_sql(
            "CREATE VIRTUAL TABLE call_text USING fts5(record_id UNINDEXED, body, "
            "tokenize='trigram')"
        )
    else:
        conn.exec_driver_sql("CREATE TABLE call_text (record_id TEXT PRIMARY KEY, body TEXT)")
        _trigram_index(conn)
    rows = conn.execute(sa.text("SELECT record FROM calls"))
    for (record,) in rows.all():
        if isinstance(record, str):  # SQLite hands back JSON text here
            record = json.loads(record)
        index_record(conn, record)


def _trigram_index(conn: Connection) -> None:
    """A GIN trigram index when pg_trgm can be had (trusted since PostgreSQL 13); without
    it the search still works, by a scan."""
    try:
        with conn.begin_nested():
            conn.exec_driver_sql("CREATE EXTENSION IF NOT EXISTS pg_trgm")
            conn.exec_driver_sql(
                "CREATE INDEX ix_call_text_body_trgm ON call_text USING gin (body gin_trgm_ops)"
            )
    except sa.exc.DBAPIError:
        pass
