"""Durable call records in SQLite or PostgreSQL, with a webhook outbox.

One code path for both engines through SQLAlchemy Core; the only per-engine parts are how
a connection is set up (SQLite: WAL and a busy timeout; PostgreSQL: a pre-pinged pool) and
how a writer takes its lock (SQLite: BEGIN IMMEDIATE; PostgreSQL: row locks, SKIP LOCKED).

The outbox delivers at least once: a worker claims due records under a lease, posts them
and marks them delivered; a worker that dies mid-way lets its lease expire and another
worker delivers again. Webhook receivers should de-duplicate on `record_id`.
"""

from __future__ import annotations

import re
import sqlite3
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, replace
from pathlib import Path
from types import TracebackType
from typing import Any, Literal

import sqlalchemy as sa
from sqlalchemy import event, exc
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import URL, Connection, Engine, make_url

from telephony.records import call_index
from telephony.records import migrations as schema
from telephony.records.call_index import CallFilter, CallTotals, DayTotals
from telephony.records.migrations import WRITE_LOCK, Migration, SchemaError
from telephony.records.model import CallRecord, Outcome, abandoned

SQLITE_BUSY_TIMEOUT_SECONDS = 30.0
PG_CONNECT_TIMEOUT_SECONDS = 10

# "gone": the receiver answered 410 Gone; never sent again (last_error keeps its reason).
DeliveryStatus = Literal["none", "pending", "delivered", "gone"]


class StoreError(Exception):
    """The call records database cannot be used; the message is one sentence with the fix."""


@dataclass(frozen=True)
class DeliveryState:
    status: DeliveryStatus
    attempts: int
    last_error: str
    next_attempt_at: float | None
    delivered_at: float | None


# The columns queries use; migrations.py owns how the schema got there.
_metadata = sa.MetaData()
calls = sa.Table(
    "calls",
    _metadata,
    sa.Column("record_id", sa.Text, primary_key=True),
    sa.Column("call_id", sa.Text, nullable=False),
    sa.Column("job_id", sa.Text, nullable=False),
    sa.Column("room", sa.Text, nullable=False),
    sa.Column("direction", sa.Text, nullable=False),
    sa.Column("remote_number", sa.Text, nullable=False),
    sa.Column("local_number", sa.Text, nullable=False),
    sa.Column("agent_name", sa.Text, nullable=False),
    sa.Column("outcome", sa.Text, nullable=False),
    sa.Column("started_at", sa.Double, nullable=False),
    sa.Column("answered_at", sa.Double),
    sa.Column("ended_at", sa.Double, nullable=False),
    sa.Column("duration_seconds", sa.Double, nullable=False),
    sa.Column("sip_status_code", sa.Integer),
    sa.Column("record", sa.JSON().with_variant(postgresql.JSONB(), "postgresql"), nullable=False),
    sa.Column("delivery_status", sa.Text, nullable=False, server_default="none"),
    sa.Column("delivery_attempts", sa.Integer, nullable=False, server_default="0"),
    sa.Column("delivery_last_error", sa.Text, nullable=False, server_default=""),
    sa.Column("delivery_next_attempt_at", sa.Double),
    sa.Column("delivery_claimed_until", sa.Double),
    sa.Column("delivered_at", sa.Double),
)

# Both dialects' INSERT constructs share the ON CONFLICT DO UPDATE API; Core has no neutral one.
_UPSERT_INSERTS = {"sqlite": sqlite.insert, "postgresql": postgresql.insert}


# ------------------------------------------------------------------ URLs


def database_url(setting_database_url: str, records_path: Path) -> str:
    """The SQLAlchemy URL for DATABASE_URL, or a SQLite file at `records_path` when unset."""
    raw = setting_database_url.strip()
    if not raw:
        path = records_path.expanduser().absolute()
        _create_folder(path.parent)
        return f"sqlite:///{path}"
    scheme, sep, rest = raw.partition("://")
    scheme = scheme.lower()
    if sep and scheme in ("postgres", "postgresql"):
        return f"postgresql+psycopg://{rest}"
    if sep and (scheme.startswith("postgresql+") or scheme == "sqlite"):
        return raw
    raise StoreError(
        f"DATABASE_URL={mask_url(raw)!r} is not a supported database: use "
        "postgresql://user:password@host:5432/dbname or sqlite:////path/to/calls.db"
    )


def mask_url(url: str) -> str:
    """The URL fit for messages and logs: password hidden, no query, no driver name."""
    try:
        parsed = make_url(url)
    except exc.ArgumentError:
        # Not a URL SQLAlchemy understands: still hide anything between ':' and '@'.
        return re.sub(r"(://[^:/@]*):[^@/]*@", r"\1:***@", url).split("?", 1)[0]
    shown = parsed.set(drivername=parsed.get_backend_name(), query={})
    return shown.render_as_string(hide_password=True)


def _create_folder(folder: Path) -> None:
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise StoreError(
            f"cannot create the folder {folder} for the call records database "
            f"({e.strerror or e}): check the records path or set DATABASE_URL"
        ) from e


# ------------------------------------------------------------------ engines


def _create_engine(url: URL) -> Engine:
    if url.get_backend_name() == "sqlite":
        engine = sa.create_engine(url, connect_args={"timeout": SQLITE_BUSY_TIMEOUT_SECONDS})
        event.listen(engine, "connect", _sqlite_on_connect)
        event.listen(engine, "begin", _sqlite_begin)
        return engine
    connect_args: dict[str, Any] = {}
    if "connect_timeout" not in url.query:
        # An unreachable host should fail in seconds, not hang a worker for minutes.
        connect_args["connect_timeout"] = PG_CONNECT_TIMEOUT_SECONDS
    return sa.create_engine(
        url,
        pool_pre_ping=True,  # a server restart or idle-timeout must not fail the next call
        pool_size=5,
        max_overflow=5,
        pool_recycle=1800,
        connect_args=connect_args,
    )


def _sqlite_on_connect(dbapi_connection: Any, _record: Any) -> None:
    # We emit BEGIN ourselves (see _sqlite_begin); sqlite3's own handling would autocommit
    # DDL (migrations must be atomic) and never BEGIN before a SELECT.
    dbapi_connection.isolation_level = None
    cursor = dbapi_connection.cursor()
    try:
        # Busy timeout first: switching to WAL itself waits for other connections.
        cursor.execute(f"PRAGMA busy_timeout = {int(SQLITE_BUSY_TIMEOUT_SECONDS * 1000)}")
        _switch_to_wal(cursor)
    finally:
        cursor.close()


def _switch_to_wal(cursor: Any) -> None:
    """WAL: readers never block the writer nor the writer them, across processes too.

    The switch needs the database to itself for a moment, and SQLite reports "locked" at
    once (no busy handler) while another process is opening or switching a new database,
    so wait and retry for as long as the busy timeout."""
    deadline = time.monotonic() + SQLITE_BUSY_TIMEOUT_SECONDS
    while True:
        try:
            cursor.execute("PRAGMA journal_mode = WAL")
            return
        except sqlite3.OperationalError as e:
            if "locked" not in str(e) or time.monotonic() > deadline:
                raise
            time.sleep(0.02)


def _sqlite_begin(conn: Connection) -> None:
    # Writers take the write lock up front: a deferred transaction that reads and then
    # writes fails at once with SQLITE_BUSY if another writer got in between (the busy
    # timeout does not apply to that upgrade), while BEGIN IMMEDIATE simply waits its turn.
    immediate = conn.get_execution_options().get(WRITE_LOCK, False)
    conn.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")


# ------------------------------------------------------------------ errors

_KNOWN_REASONS = (
    ("connection refused", "connection refused"),
    ("timeout expired", "connection timed out"),
    ("could not translate host name", "unknown host name"),
    ("name or service not known", "unknown host name"),
    ("password authentication failed", "password authentication failed"),
    ("no password supplied", "the server asks for a password"),
    ("unable to open database file", "unable to open the database file"),
    ("database is locked", "the database stayed locked by another process"),
    ("file is not a database", "the file is not a database"),
)


def _reason(error: exc.DBAPIError, password: str) -> str:
    """A short reason from a driver error, with the password scrubbed just in case."""
    text = str(error.orig or error).strip()
    lowered = text.lower()
    for needle, reason in _KNOWN_REASONS:
        if needle in lowered:
            return reason
    first_line = text.splitlines()[0] if text else type(error.orig).__name__
    # libpq: 'connection to server at "h", port 5432 failed: FATAL:  database "x" does not exist'
    reason = first_line.rsplit("failed: ", 1)[-1].replace("FATAL:", "").strip()
    if password:
        reason = reason.replace(password, "***")
    return reason[:200]


# ------------------------------------------------------------------ the store


class CallStore:
    """Call records in one database; safe to share across threads, processes and hosts."""

    def __init__(self, engine: Engine, url: str) -> None:
        """Use `CallStore.open`: it also checks the connection and migrates the schema."""
        self._engine = engine
        self._writer = engine.execution_options(**{WRITE_LOCK: True})
        self._upsert_insert = _UPSERT_INSERTS[engine.dialect.name]
        self._password = make_url(url).password or ""
        self.url = mask_url(url)  # for messages and logs: no password

    @classmethod
    def open(cls, url: str, *, migrations: Sequence[Migration] | None = None) -> CallStore:
        """Connect, and create or migrate the schema on first use; raise StoreError."""
        parsed = _parse_url(url)
        if parsed.get_backend_name() not in _UPSERT_INSERTS:
            raise StoreError(
                f"{mask_url(url)} is not a supported database: use postgresql:// or sqlite:///"
            )
        if parsed.get_backend_name() == "sqlite" and parsed.database not in (None, "", ":memory:"):
            _create_folder(Path(parsed.database).expanduser().absolute().parent)
        try:
            engine = _create_engine(parsed)
        except (exc.ArgumentError, ImportError) as e:
            raise StoreError(f"cannot use the database URL {mask_url(url)} ({e})") from e
        store = cls(engine, parsed.render_as_string(hide_password=False))
        try:
            with store._connection():
                pass  # a clear "cannot reach" error before anything else
            with store._errors():
                schema.migrate(engine, schema.MIGRATIONS if migrations is None else migrations)
        except BaseException:
            engine.dispose()
            raise
        return store

    # -------------------------------------------------------------- records

    def save(
        self, record: CallRecord, *, queue_webhook: bool = False, over_finished: bool = True
    ) -> None:
        """Insert or update the record (one row per record_id), in one transaction.

        queue_webhook=True (re)queues it for webhook delivery now, as a fresh delivery;
        otherwise its delivery state is left as it was. An `in-progress` record (written as
        the call starts) never replaces a finished one, whichever write lands last; nor does
        any record with over_finished=False.
        """
        with self._transaction(write=True) as conn:
            self._save_in(
                conn,
                [record],
                queue_webhook=queue_webhook,
                guarded=not over_finished or record.outcome is Outcome.IN_PROGRESS,
            )

    def save_many(self, records: Sequence[CallRecord]) -> None:
        """Save these records in one transaction, a few statements for them all (imports,
        benchmarks); their webhook deliveries are left as they were."""
        if records:
            with self._transaction(write=True) as conn:
                self._save_in(conn, records, queue_webhook=False)

    def _save_in(
        self,
        conn: Connection,
        records: Sequence[CallRecord],
        *,
        queue_webhook: bool,
        guarded: bool = False,
    ) -> None:
        """`guarded`: a record replaces only an `in-progress` one (or none), never a finished
        one; the web page's side tables are written for the rows actually written."""
        rows = [_row(record) for record in records]
        outbox = _fresh_delivery(time.time()) if queue_webhook else {}
        stmt = self._upsert_insert(calls)
        changed = {name: stmt.excluded[name] for name in rows[0] if name != "record_id"}
        stmt = stmt.on_conflict_do_update(
            index_elements=[calls.c.record_id],
            set_={**changed, **outbox},
            where=calls.c.outcome == str(Outcome.IN_PROGRESS) if guarded else None,
        )
        if guarded:
            written = {
                record_id
                for row in rows
                for record_id in conn.execute(
                    stmt.returning(calls.c.record_id), {**row, **outbox}
                ).scalars()
            }
            rows = [row for row in rows if row["record_id"] in written]
        else:
            conn.execute(stmt, [{**row, **outbox} for row in rows])
        # The web page's side tables, in the same transaction as the records.
        call_index.index_records(conn, [row["record"] for row in rows])

    def complete_in_progress(
        self, job_ids: Sequence[str], *, ended_at: float, end_reason: str, queue_webhook: bool
    ) -> list[CallRecord]:
        """Finish the records of these jobs still `in-progress` (their job process died):
        outcome `failed`, this end reason and time. Returns the records it finished; a record
        its job saved meanwhile is left alone."""
        if not job_ids:
            return []
        c = calls.c
        stale = (
            sa.select(c.record)
            .where(c.job_id.in_(list(job_ids)), c.outcome == str(Outcome.IN_PROGRESS))
            .with_for_update()
        )
        finished = []
        outbox = _fresh_delivery(time.time()) if queue_webhook else {}
        with self._transaction(write=True) as conn:
            for data in conn.execute(stale).scalars().all():
                record = abandoned(CallRecord.from_dict(data), ended_at, end_reason)
                values = {k: v for k, v in _row(record).items() if k != "record_id"}
                conn.execute(
                    sa.update(calls)
                    .where(c.record_id == record.record_id)
                    .values(**values, **outbox)
                )
                finished.append(record)
            call_index.index_records(conn, [record.to_dict() for record in finished])
        return finished

    def get(self, key: str) -> CallRecord | None:
        """The record with this record_id, else the newest with this SIP call_id or job_id."""
        if not key:
            return None  # many records have an empty call_id or job_id
        c = calls.c
        stmt = (
            sa.select(c.record)
            .where(sa.or_(c.record_id == key, c.call_id == key, c.job_id == key))
            .order_by(sa.case((c.record_id == key, 0), else_=1), c.started_at.desc())
            .limit(1)
        )
        with self._transaction() as conn:
            data = conn.execute(stmt).scalar()
        return None if data is None else CallRecord.from_dict(data)

    def list(
        self,
        *,
        outcome: str | None = None,
        direction: str | None = None,
        since: float | None = None,
        until: float | None = None,
        number: str | None = None,
        limit: int | None = 100,
    ) -> list[CallRecord]:
        """Records newest first (by started_at). `since` <= started_at < `until`;
        `number` matches remote_number or local_number exactly (E.164); limit None: all."""
        if limit is not None and limit < 0:
            raise ValueError(f"limit must be 0 or more, or None for all; got {limit}")
        c = calls.c
        conditions: list[sa.ColumnElement[bool]] = []
        if outcome is not None:
            conditions.append(c.outcome == str(outcome))
        if direction is not None:
            conditions.append(c.direction == direction)
        if since is not None:
            conditions.append(c.started_at >= since)
        if until is not None:
            conditions.append(c.started_at < until)
        if number is not None:
            conditions.append(sa.or_(c.remote_number == number, c.local_number == number))
        stmt = sa.select(c.record).where(*conditions).order_by(c.started_at.desc(), c.record_id)
        if limit is not None:
            stmt = stmt.limit(limit)
        with self._transaction() as conn:
            return [CallRecord.from_dict(data) for data in conn.execute(stmt).scalars()]

    # -------------------------------------------------------------- the web page

    def browse(
        self, where: CallFilter, *, offset: int = 0, limit: int = 50
    ) -> tuple[list[CallRecord], CallTotals]:
        """One page of the matching calls, newest first, and the totals of them all, in one
        transaction (filtered on call_index.py's narrow tables; only the page's records are
        read whole)."""
        with self._transaction() as conn:
            ids, totals = call_index.browse(conn, where, offset=offset, limit=limit)
            return self._records(conn, ids), totals

    def page(self, where: CallFilter, *, offset: int = 0, limit: int = 50) -> list[CallRecord]:
        """One page of the matching calls, newest first."""
        with self._transaction() as conn:
            return self._records(conn, call_index.page_ids(conn, where, offset=offset, limit=limit))

    def in_progress(self, where: CallFilter, *, limit: int = 50) -> list[CallRecord]:
        """Calls up now (outcome in-progress) that match the other filters, newest first."""
        return self.page(replace(where, outcome=call_index.IN_PROGRESS), limit=limit)

    def totals(self, where: CallFilter) -> CallTotals:
        """Counts by outcome, summed duration and reply-latency percentiles of the matching
        calls, computed in the database."""
        with self._transaction() as conn:
            return call_index.totals(conn, where)

    @staticmethod
    def _records(conn: Connection, ids: list[str]) -> list[CallRecord]:
        """These records whole, in this order."""
        if not ids:
            return []
        rows = conn.execute(
            sa.select(calls.c.record_id, calls.c.record).where(calls.c.record_id.in_(ids))
        )
        found = {record_id: data for record_id, data in rows}
        return [CallRecord.from_dict(found[i]) for i in ids if i in found]

    def per_day(self, *, since: float, until: float, utc_offset: float) -> list[DayTotals]:
        """Calls by outcome and reply latency p50/p90 per day, oldest first; days start at
        midnight in a zone `utc_offset` seconds east of UTC."""
        with self._transaction() as conn:
            return call_index.per_day(conn, since=since, until=until, utc_offset=utc_offset)

    def count(self) -> int:
        with self._transaction() as conn:
            return int(conn.execute(sa.select(sa.func.count()).select_from(calls)).scalar_one())

    def schema_version(self) -> int:
        """The highest migration applied to this database."""
        with self._transaction() as conn:
            return schema.current_version(conn)

    # -------------------------------------------------------------- webhook outbox

    def claim_deliveries(
        self, *, now: float, limit: int = 50, lease_seconds: float = 60.0
    ) -> list[CallRecord]:
        """Claim up to `limit` due records (pending, next attempt <= now, no live lease)
        for delivery until now + lease_seconds; no other claimer gets them meanwhile."""
        if limit <= 0:
            return []
        c = calls.c
        due = (
            sa.select(c.record_id, c.record)
            .where(
                c.delivery_status == "pending",
                c.delivery_next_attempt_at <= now,
                sa.or_(c.delivery_claimed_until.is_(None), c.delivery_claimed_until <= now),
            )
            .order_by(c.delivery_next_attempt_at, c.record_id)
            .limit(limit)
            # PostgreSQL: lock the rows, skip those another claimer holds. SQLite ignores
            # this; its claimer already holds the database's write lock (BEGIN IMMEDIATE).
            .with_for_update(skip_locked=True)
        )
        with self._transaction(write=True) as conn:
            rows = conn.execute(due).all()
            if rows:
                conn.execute(
                    sa.update(calls)
                    .where(c.record_id.in_([row.record_id for row in rows]))
                    .values(delivery_claimed_until=now + lease_seconds)
                )
        return [CallRecord.from_dict(row.record) for row in rows]

    def make_pending_due(self, *, now: float) -> int:
        """Bring every pending delivery that is waiting out a retry delay forward to now
        (an operator's "retry now"); leased ones are left to their claimer. Returns how many."""
        c = calls.c
        stmt = (
            sa.update(calls)
            .where(
                c.delivery_status == "pending",
                c.delivery_next_attempt_at > now,
                sa.or_(c.delivery_claimed_until.is_(None), c.delivery_claimed_until <= now),
            )
            .values(delivery_next_attempt_at=now)
        )
        with self._transaction(write=True) as conn:
            return conn.execute(stmt).rowcount

    def mark_delivered(self, record_id: str, *, at: float) -> None:
        self._update_delivery(
            record_id,
            delivery_status="delivered",
            delivered_at=at,
            delivery_last_error="",
            delivery_next_attempt_at=None,
            delivery_claimed_until=None,
        )

    def mark_delivery_failed(self, record_id: str, *, error: str, retry_at: float | None) -> None:
        """Count a failed attempt; the record stays pending (nothing is lost) and becomes
        claimable again at `retry_at` (None: at once). Clears the lease."""
        self._update_delivery(
            record_id,
            delivery_status="pending",
            delivery_attempts=calls.c.delivery_attempts + 1,
            delivery_last_error=error,
            delivery_next_attempt_at=time.time() if retry_at is None else retry_at,
            delivery_claimed_until=None,
        )

    def mark_delivery_gone(self, record_id: str, *, error: str) -> None:
        """The receiver said it will never take this record (410 Gone): count the attempt,
        keep the reason, and never claim it again (only a fresh queue_webhook save would)."""
        self._update_delivery(
            record_id,
            delivery_status="gone",
            delivery_attempts=calls.c.delivery_attempts + 1,
            delivery_last_error=error,
            delivery_next_attempt_at=None,
            delivery_claimed_until=None,
        )

    def delivery_state(self, record_id: str) -> DeliveryState:
        c = calls.c
        stmt = sa.select(
            c.delivery_status,
            c.delivery_attempts,
            c.delivery_last_error,
            c.delivery_next_attempt_at,
            c.delivered_at,
        ).where(c.record_id == record_id)
        with self._transaction() as conn:
            row = conn.execute(stmt).one_or_none()
        if row is None:
            raise KeyError(f"no call record {record_id!r}")
        return DeliveryState(
            status=row.delivery_status,
            attempts=row.delivery_attempts,
            last_error=row.delivery_last_error,
            next_attempt_at=row.delivery_next_attempt_at,
            delivered_at=row.delivered_at,
        )

    def _update_delivery(self, record_id: str, **values: Any) -> None:
        stmt = sa.update(calls).where(calls.c.record_id == record_id).values(**values)
        with self._transaction(write=True) as conn:
            if conn.execute(stmt).rowcount == 0:
                raise KeyError(f"no call record {record_id!r}")

    # -------------------------------------------------------------- lifecycle

    def close(self) -> None:
        self._engine.dispose()

    def __enter__(self) -> CallStore:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc_value: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"CallStore({self.url!r})"

    # -------------------------------------------------------------- connections

    @contextmanager
    def _connection(self, *, write: bool = False) -> Iterator[Connection]:
        """A pooled connection; failing to get one is a "cannot reach" StoreError."""
        try:
            conn = (self._writer if write else self._engine).connect()
        except exc.DBAPIError as e:
            raise StoreError(self._unreachable(e)) from e
        try:
            yield conn
        finally:
            conn.close()

    @contextmanager
    def _transaction(self, *, write: bool = False) -> Iterator[Connection]:
        """One transaction: commit on success, roll back on error. `write` takes the write
        lock at BEGIN on SQLite, so writers queue (busy timeout) instead of failing."""
        with self._connection(write=write) as conn, self._errors(), conn.begin():
            yield conn

    @contextmanager
    def _errors(self) -> Iterator[None]:
        try:
            yield
        except exc.DBAPIError as e:
            if e.connection_invalidated:
                raise StoreError(self._unreachable(e)) from e
            raise StoreError(
                f"the call records database at {self.url} failed "
                f"({_reason(e, self._password)}): check DATABASE_URL and the server"
            ) from e
        except SchemaError as e:
            raise StoreError(str(e)) from e

    def _unreachable(self, error: exc.DBAPIError) -> str:
        reason = _reason(error, self._password)
        if self._engine.dialect.name == "sqlite":
            return (
                f"cannot open the call records database at {self.url} ({reason}): "
                "check DATABASE_URL and that its folder is writable"
            )
        return (
            f"cannot reach the call records database at {self.url} ({reason}): check DATABASE_URL"
        )


def _parse_url(url: str) -> URL:
    try:
        return make_url(url)
    except exc.ArgumentError as e:
        raise StoreError(
            f"{mask_url(url)!r} is not a database URL: use "
            "postgresql://user:password@host:5432/dbname or sqlite:////path/to/calls.db"
        ) from e


def _row(record: CallRecord) -> dict[str, Any]:
    """The record's indexed columns plus its whole JSON form."""
    return {
        "record_id": record.record_id,
        "call_id": record.call_id,
        "job_id": record.job_id,
        "room": record.room,
        "direction": record.direction,
        "remote_number": record.remote_number,
        "local_number": record.local_number,
        "agent_name": record.agent_name,
        "outcome": str(record.outcome),
        "started_at": record.started_at,
        "answered_at": record.answered_at,
        "ended_at": record.ended_at,
        "duration_seconds": record.duration_seconds,
        "sip_status_code": record.sip_status_code,
        "record": record.to_dict(),
    }


def _fresh_delivery(now: float) -> dict[str, Any]:
    return {
        "delivery_status": "pending",
        "delivery_attempts": 0,
        "delivery_last_error": "",
        "delivery_next_attempt_at": now,
        "delivery_claimed_until": None,
        "delivered_at": None,
    }
