"""The call-log web page's index: narrow side tables that answer its filters and totals on
a big store without reading the wide `calls` rows (each holds a whole record as JSON).

- `call_index`: one row per call with what the list filters and sums on; numbers are kept
  as reversed digits, so "ends with 0123" is an index range scan.
- `call_latency`: one row per measured agent reply (end of speech -> first audio, whole
  ms) with the call's filter columns, so percentiles are one GROUP BY.
- `call_text`: the transcript as one text, searchable by any substring: SQLite FTS5 with the
  trigram tokenizer, PostgreSQL pg_trgm's GIN index (both ignore case).

`CallStore.save` rewrites a record's rows in the same transaction as the record itself;
migration 2 creates the tables and fills them for the records saved before it.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

IN_PROGRESS = "in-progress"
# The trigram index finds substrings of 3 characters or more; shorter ones scan.
TRIGRAM = 3

_metadata = sa.MetaData()
call_index = sa.Table(
    "call_index",
    _metadata,
    sa.Column("record_id", sa.Text, primary_key=True),
    sa.Column("started_at", sa.Double, nullable=False),
    sa.Column("direction", sa.Text, nullable=False),
    sa.Column("outcome", sa.Text, nullable=False),
    sa.Column("duration_seconds", sa.Double, nullable=False),
    sa.Column("remote_rev", sa.Text, nullable=False),  # digits, last first
    sa.Column("local_rev", sa.Text, nullable=False),
    # Covering indexes: the list's filters and sums read the index alone, never the table.
    sa.Index("ix_call_index_started_at", "started_at", "outcome", "direction", "duration_seconds"),
    sa.Index("ix_call_index_direction", "direction", "started_at", "outcome", "duration_seconds"),
    sa.Index("ix_call_index_outcome", "outcome", "started_at", "direction", "duration_seconds"),
    sa.Index("ix_call_index_remote_rev", "remote_rev"),
    sa.Index("ix_call_index_local_rev", "local_rev"),
)
call_latency = sa.Table(
    "call_latency",
    _metadata,
    sa.Column("record_id", sa.Text, nullable=False),
    sa.Column("started_at", sa.Double, nullable=False),
    sa.Column("direction", sa.Text, nullable=False),
    sa.Column("outcome", sa.Text, nullable=False),
    sa.Column("e2e_ms", sa.Integer, nullable=False),
    sa.Index("ix_call_latency_record_id", "record_id"),
    # Covering too: a date range seeks the first; otherwise the second streams the values
    # in order, so GROUP BY e2e_ms needs no sort.
    sa.Index("ix_call_latency_started_at", "started_at", "outcome", "direction", "e2e_ms"),
    sa.Index("ix_call_latency_e2e", "e2e_ms", "outcome", "direction", "started_at"),
)
call_text = sa.Table(
    "call_text",
    _metadata,
    sa.Column("record_id", sa.Text, nullable=False),
    sa.Column("body", sa.Text, nullable=False),
)
# SQLite's call_text is an FTS5 table, written by rowid (never created from this).
call_text_fts = sa.Table(
    "call_text",
    sa.MetaData(),
    sa.Column("rowid", sa.Integer, primary_key=True),
    sa.Column("record_id", sa.Text),
    sa.Column("body", sa.Text),
)


@dataclass(frozen=True)
class CallFilter:
    """What the web page's list narrows to; None (or empty) means any."""

    since: float | None = None  # started_at >= since
    until: float | None = None  # started_at < until
    direction: str | None = None
    outcome: str | None = None  # None: every finished call (in-progress ones are apart)
    # '+E164': the remote or local number exactly; digits alone: a number ending with them.
    number: str | None = None
    text: str | None = None  # in the transcript, any case


@dataclass(frozen=True)
class CallTotals:
    calls: int
    by_outcome: dict[str, int]
    duration_seconds: float
    replies_measured: int  # agent replies with an end-of-speech-to-first-audio time
    e2e_p50: float | None  # seconds
    e2e_p90: float | None


@dataclass(frozen=True)
class DayTotals:
    day: int  # days since 1970-01-01 in the zone `utc_offset` seconds east of UTC
    by_outcome: dict[str, int]
    e2e_p50: float | None
    e2e_p90: float | None


# ------------------------------------------------------------------ writing


def index_record(conn: Connection, record: Mapping[str, Any]) -> None:
    """Replace one record's rows in the three tables (inside the save's transaction)."""
    index_records(conn, [record])


def index_records(conn: Connection, records: Sequence[Mapping[str, Any]]) -> None:
    """Replace these records' rows in the three tables, a few statements for them all."""
    if not records:
        return
    ids = [r["record_id"] for r in records]
    sqlite = conn.dialect.name == "sqlite"
    if sqlite:
        # FTS5 finds rows fast only by rowid: each text borrows its call_index row's rowid
        # (record_id is stored too, so a search stays exact whatever happens to rowids).
        old = sa.select(sa.literal_column("rowid")).where(call_index.c.record_id.in_(ids))
        conn.execute(sa.delete(call_text_fts).where(call_text_fts.c.rowid.in_(old)))
    else:
        conn.execute(sa.delete(call_text).where(call_text.c.record_id.in_(ids)))
    conn.execute(sa.delete(call_index).where(call_index.c.record_id.in_(ids)))
    conn.execute(sa.delete(call_latency).where(call_latency.c.record_id.in_(ids)))
    conn.execute(sa.insert(call_index), [_index_row(r) for r in records])
    latencies = [
        {**_facts(r), "record_id": r["record_id"], "started_at": _started(r), "e2e_ms": v}
        for r in records
        for v in e2e_values_ms(r)
    ]
    if latencies:
        conn.execute(sa.insert(call_latency), latencies)
    texts = [{"record_id": r["record_id"], "body": transcript_body(r)} for r in records]
    if sqlite:
        rowids = dict(
            conn.execute(
                sa.select(call_index.c.record_id, sa.literal_column("rowid")).where(
                    call_index.c.record_id.in_(ids)
                )
            ).all()
        )
        texts = [{**t, "rowid": rowids[t["record_id"]]} for t in texts]
        conn.execute(sa.insert(call_text_fts), texts)
    else:
        conn.execute(sa.insert(call_text), texts)


def _started(record: Mapping[str, Any]) -> float:
    return float(record.get("started_at") or 0.0)


def _facts(record: Mapping[str, Any]) -> dict[str, str]:
    return {
        "direction": str(record.get("direction") or ""),
        "outcome": str(record.get("outcome") or ""),
    }


def _index_row(record: Mapping[str, Any]) -> dict[str, Any]:
    started_at = _started(record)
    return {
        "record_id": record["record_id"],
        "started_at": started_at,
        "duration_seconds": max(0.0, float(record.get("ended_at") or 0.0) - started_at),
        "remote_rev": reversed_digits(str(record.get("remote_number") or "")),
        "local_rev": reversed_digits(str(record.get("local_number") or "")),
        **_facts(record),
    }


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


def reversed_digits(number: str) -> str:
    return "".join(ch for ch in reversed(number) if ch.isdigit())


# ------------------------------------------------------------------ reading


def browse(
    conn: Connection, where: CallFilter, *, offset: int, limit: int
) -> tuple[list[str], CallTotals]:
    """One page's record ids (newest first) and the totals of every matching call; the
    number and text filters are looked up once for both."""
    found = _found_once(conn, where)
    return page_ids(conn, where, offset=offset, limit=limit, found=found), totals(
        conn, where, found=found
    )


def page_ids(
    conn: Connection, where: CallFilter, *, offset: int, limit: int, found: Any = None
) -> list[str]:
    """The record ids of one page of matching calls, newest first."""
    ci = call_index.c
    stmt = (
        sa.select(ci.record_id)
        .where(*_conditions(conn, where, call_index, found))
        .order_by(ci.started_at.desc(), ci.record_id)
        .offset(max(0, offset))
        .limit(max(0, limit))
    )
    return list(conn.execute(stmt).scalars())


def totals(conn: Connection, where: CallFilter, *, found: Any = None) -> CallTotals:
    ci = call_index.c
    rows = conn.execute(
        sa.select(ci.outcome, sa.func.count(), sa.func.sum(ci.duration_seconds))
        .where(*_conditions(conn, where, call_index, found))
        .group_by(ci.outcome)
    ).all()
    counts = _latency_counts(conn, where, found)
    return CallTotals(
        calls=sum(n for _, n, _ in rows),
        by_outcome={outcome: n for outcome, n, _ in rows},
        duration_seconds=float(sum(total or 0.0 for _, _, total in rows)),
        replies_measured=sum(n for _, n in counts),
        e2e_p50=_seconds(percentile_of_counts(counts, 50)),
        e2e_p90=_seconds(percentile_of_counts(counts, 90)),
    )


def per_day(conn: Connection, *, since: float, until: float, utc_offset: float) -> list[DayTotals]:
    """Calls by outcome and reply latency p50/p90 for each day with calls, oldest first."""
    ci, lat = call_index.c, call_latency.c
    day = _day(conn, ci.started_at, utc_offset)
    outcomes = conn.execute(
        sa.select(day, ci.outcome, sa.func.count())
        .where(ci.started_at >= since, ci.started_at < until)
        .group_by(day, ci.outcome)
    ).all()
    lat_day = _day(conn, lat.started_at, utc_offset)
    latencies = conn.execute(
        sa.select(lat_day, lat.e2e_ms, sa.func.count())
        .where(lat.started_at >= since, lat.started_at < until)
        .group_by(lat_day, lat.e2e_ms)
        .order_by(lat_day, lat.e2e_ms)
    ).all()
    days: dict[int, dict[str, int]] = {}
    for d, outcome, n in outcomes:
        days.setdefault(int(d), {})[outcome] = n
    hist: dict[int, list[tuple[int, int]]] = {}
    for d, value, n in latencies:
        hist.setdefault(int(d), []).append((int(value), int(n)))
    return [
        DayTotals(
            day=d,
            by_outcome=days.get(d, {}),
            e2e_p50=_seconds(percentile_of_counts(hist.get(d, []), 50)),
            e2e_p90=_seconds(percentile_of_counts(hist.get(d, []), 90)),
        )
        for d in sorted(days.keys() | hist.keys())
    ]


def _conditions(
    conn: Connection, where: CallFilter, table: sa.Table = call_index, found: Any = None
) -> list[Any]:
    """The filter on `table`'s columns (call_index, or call_latency for its own);
    `found`: the number and text filters' record ids, if already looked up."""
    t = table.c
    conditions: list[Any] = [_common(t, where)]
    if where.number or where.text:
        conditions.append(t.record_id.in_(_found(conn, where) if found is None else found))
    return conditions


# The most record ids a looked-up filter passes on as a list; more go as a subquery.
MAX_FOUND_IDS = 5000


def _found_once(conn: Connection, where: CallFilter) -> Any:
    """The number and text filters' record ids, looked up once per page (a trigram search
    costs tens of ms): a list when short, else the subquery itself."""
    if not (where.number or where.text):
        return None
    ids = list(conn.execute(_found(conn, where).limit(MAX_FOUND_IDS + 1)).scalars())
    return ids if len(ids) <= MAX_FOUND_IDS else _found(conn, where)


def _common(t: Any, where: CallFilter) -> Any:
    parts = [t.outcome == where.outcome if where.outcome else t.outcome != IN_PROGRESS]
    if where.direction:
        parts.append(t.direction == where.direction)
    if where.since is not None:
        parts.append(t.started_at >= where.since)
    if where.until is not None:
        parts.append(t.started_at < where.until)
    return sa.and_(*parts)


def _found(conn: Connection, where: CallFilter) -> sa.Select[Any]:
    """The record ids matching the number and text filters (both selective)."""
    ci = call_index.c
    parts = []
    if where.number:
        digits = reversed_digits(where.number)
        if where.number.startswith("+"):  # the whole number
            parts.append(sa.or_(ci.remote_rev == digits, ci.local_rev == digits))
        else:  # its last digits: a range on the reversed digits, which the index serves
            high = digits[:-1] + chr(ord(digits[-1]) + 1)
            parts.append(
                sa.or_(
                    sa.and_(ci.remote_rev >= digits, ci.remote_rev < high),
                    sa.and_(ci.local_rev >= digits, ci.local_rev < high),
                )
            )
    if where.text:
        parts.append(ci.record_id.in_(_matching_text(where.text, conn.dialect.name)))
    return sa.select(ci.record_id).where(*parts)


def _matching_text(text: str, dialect: str) -> sa.Select[Any]:
    """The record ids whose transcript contains `text`, ignoring case."""
    tc = call_text.c
    if dialect == "sqlite" and len(text) >= TRIGRAM:
        # A quoted FTS5 phrase: any substring for the trigram tokenizer; quotes doubled.
        phrase = '"' + text.replace('"', '""') + '"'
        return sa.select(tc.record_id).where(
            sa.text("call_text MATCH :phrase").bindparams(phrase=phrase)
        )
    if dialect == "sqlite":
        return sa.select(tc.record_id).where(
            sa.func.instr(sa.func.lower(tc.body), text.lower()) > 0
        )
    escaped = text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return sa.select(tc.record_id).where(tc.body.ilike(f"%{escaped}%", escape="\\"))


def _latency_counts(conn: Connection, where: CallFilter, found: Any) -> list[tuple[int, int]]:
    """(end of speech -> first audio in ms, how many replies) over the matching calls."""
    lat = call_latency.c
    stmt = (
        sa.select(lat.e2e_ms, sa.func.count())
        .where(*_conditions(conn, where, call_latency, found))
        .group_by(lat.e2e_ms)
        .order_by(lat.e2e_ms)
    )
    return [(int(v), int(n)) for v, n in conn.execute(stmt).all()]


def _day(conn: Connection, column: Any, utc_offset: float) -> Any:
    shifted = (column + utc_offset) / 86400
    if conn.dialect.name == "sqlite":
        return sa.cast(shifted, sa.Integer)  # truncates: the same as floor after 1970
    return sa.cast(sa.func.floor(shifted), sa.Integer)


def _seconds(ms: float | None) -> float | None:
    return None if ms is None else ms / 1000


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
    call_index.create(conn)  # with their indexes
    call_latency.create(conn)
    if conn.dialect.name == "sqlite":
        conn.exec_driver_sql(
            "CREATE VIRTUAL TABLE call_text USING fts5(record_id UNINDEXED, body, "
            "tokenize='trigram')"
        )
    else:
        conn.exec_driver_sql("CREATE TABLE call_text (record_id TEXT PRIMARY KEY, body TEXT)")
        _trigram_index(conn)
    rows = conn.execute(sa.text("SELECT record FROM calls")).scalars().all()
    records = [json.loads(r) if isinstance(r, str) else r for r in rows]
    for first in range(0, len(records), 500):
        index_records(conn, records[first : first + 500])


def _trigram_index(conn: Connection) -> None:
    """A GIN trigram index when pg_trgm can be had (a trusted extension since PostgreSQL
    13); without it the search still works, by a scan."""
    try:
        with conn.begin_nested():
            conn.exec_driver_sql("CREATE EXTENSION IF NOT EXISTS pg_trgm")
            conn.exec_driver_sql(
                "CREATE INDEX ix_call_text_body_trgm ON call_text USING gin (body gin_trgm_ops)"
            )
    except sa.exc.DBAPIError:
        pass
