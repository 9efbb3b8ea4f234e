"""Versioned schema migrations for the call records database, applied in order on open.

Each migration is a function of Alembic's `Operations`, so the same code builds the schema
on SQLite and PostgreSQL (use `op.batch_alter_table` for ALTERs: SQLite needs batch mode).
Each runs in its own transaction together with its row in `schema_version`, so a crash
mid-way leaves the database at the previous version, never half-migrated.

Never edit a released migration: append a new one with the next version number.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import sqlalchemy as sa
from alembic.migration import MigrationContext
from alembic.operations import Operations
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.engine import Connection, Engine

from telephony.records import call_index

# Execution option: transactions on a connection carrying it take the database's write lock
# up front (store.py's SQLite `begin` hook emits BEGIN IMMEDIATE for them).
WRITE_LOCK = "call_store_write_lock"

# Key of the PostgreSQL advisory lock that serializes migrations across processes and hosts.
_PG_MIGRATION_LOCK = 0x43414C4C5354  # "CALLST"


@dataclass(frozen=True)
class Migration:
    version: int
    description: str
    upgrade: Callable[[Operations], None]


class SchemaError(Exception):
    """The database's schema cannot be used by this program (one clear sentence)."""


_metadata = sa.MetaData()
schema_version = sa.Table(
    "schema_version",
    _metadata,
    sa.Column("version", sa.Integer, primary_key=True, autoincrement=False),
    sa.Column("description", sa.Text, nullable=False),
    sa.Column("applied_at", sa.Double, nullable=False),
)


def _v1_calls_with_outbox(op: Operations) -> None:
    """The calls table: filterable columns, the whole record as JSON, the webhook outbox."""
    op.create_table(
        "calls",
        sa.Column("record_id", sa.Text, primary_key=True),
        sa.Column("call_id", sa.Text, nullable=False, server_default=""),
        sa.Column("job_id", sa.Text, nullable=False, server_default=""),
        sa.Column("room", sa.Text, nullable=False, server_default=""),
        sa.Column("direction", sa.Text, nullable=False, server_default=""),
        sa.Column("remote_number", sa.Text, nullable=False, server_default=""),
        sa.Column("local_number", sa.Text, nullable=False, server_default=""),
        sa.Column("agent_name", sa.Text, nullable=False, server_default=""),
        sa.Column("outcome", sa.Text, nullable=False),
        sa.Column("started_at", sa.Double, nullable=False),
        sa.Column("answered_at", sa.Double, nullable=True),
        sa.Column("ended_at", sa.Double, nullable=False),
        sa.Column("duration_seconds", sa.Double, nullable=False),
        sa.Column("sip_status_code", sa.Integer, nullable=True),
        sa.Column("record", sa.JSON().with_variant(JSONB(), "postgresql"), nullable=False),
        sa.Column("delivery_status", sa.Text, nullable=False, server_default="none"),
        sa.Column("delivery_attempts", sa.Integer, nullable=False, server_default="0"),
        sa.Column("delivery_last_error", sa.Text, nullable=False, server_default=""),
        sa.Column("delivery_next_attempt_at", sa.Double, nullable=True),
        sa.Column("delivery_claimed_until", sa.Double, nullable=True),
        sa.Column("delivered_at", sa.Double, nullable=True),
    )
    for name, columns in (
        ("ix_calls_call_id", ["call_id"]),
        ("ix_calls_job_id", ["job_id"]),
        ("ix_calls_started_at", ["started_at"]),
        ("ix_calls_outcome_started_at", ["outcome", "started_at"]),
        ("ix_calls_direction_started_at", ["direction", "started_at"]),
        ("ix_calls_remote_number", ["remote_number"]),
        ("ix_calls_local_number", ["local_number"]),
        ("ix_calls_agent_name", ["agent_name"]),
        # What the outbox poller scans: pending rows by due time.
        ("ix_calls_delivery_due", ["delivery_status", "delivery_next_attempt_at"]),
    ):
        op.create_index(name, "calls", columns)


def _v2_web_page_index(op: Operations) -> None:
    """The web page's side tables (per-reply latency, transcript search), filled from the
    records already saved; call_index.py says why they exist."""
    call_index.create_tables(op.get_bind())


def _v3_do_not_call(op: Operations) -> None:
    """The do-not-call list: one row per E.164 number, with when, why and from which call."""
    op.create_table(
        "do_not_call",
        sa.Column("phone_number", sa.Text, primary_key=True),
        sa.Column("added_at", sa.Double, nullable=False),
        # operator, opt-out or import
        sa.Column("source", sa.Text, nullable=False),
        # The call record of the call the callee opted out on; "" otherwise.
        sa.Column("record_id", sa.Text, nullable=False, server_default=""),
        sa.Column("note", sa.Text, nullable=False, server_default=""),
    )


MIGRATIONS: tuple[Migration, ...] = (
    Migration(1, "calls table with webhook outbox", _v1_calls_with_outbox),
    Migration(2, "web page: call index, per-reply latency, transcript search", _v2_web_page_index),
    Migration(3, "do-not-call list", _v3_do_not_call),
)


def current_version(conn: Connection) -> int:
    """The highest applied migration; 0 for a database this program never touched."""
    if not sa.inspect(conn).has_table(schema_version.name):
        return 0
    return int(conn.execute(sa.select(sa.func.max(schema_version.c.version))).scalar() or 0)


def migrate(engine: Engine, migrations: Sequence[Migration] = MIGRATIONS) -> int:
    """Apply every migration the database lacks, in order; return the resulting version.

    Safe when several processes open the same database at once: each migration runs under
    the database's write lock and re-reads the version first, so a process that waited
    finds the work done and skips it.
    """
    _check_order(migrations)
    target = migrations[-1].version if migrations else 0
    with engine.connect() as conn:
        # Fast path without the write lock: an up-to-date database is the common case.
        if current_version(conn) == target:
            return target
    writer = engine.execution_options(**{WRITE_LOCK: True})
    while True:
        with writer.begin() as conn:
            _lock_for_migration(conn)
            schema_version.create(conn, checkfirst=True)
            version = current_version(conn)
            if version > target:
                raise SchemaError(
                    f"the call records database is at schema version {version}, newer than "
                    f"this program knows ({target}): upgrade the program"
                )
            pending = [m for m in migrations if m.version > version]
            if not pending:
                return version
            _apply(conn, pending[0])


def _apply(conn: Connection, migration: Migration) -> None:
    migration.upgrade(Operations(MigrationContext.configure(connection=conn)))
    conn.execute(
        sa.insert(schema_version).values(
            version=migration.version,
            description=migration.description,
            applied_at=time.time(),
        )
    )


def _lock_for_migration(conn: Connection) -> None:
    """Serialize migrators. SQLite already holds its write lock (BEGIN IMMEDIATE);
    PostgreSQL row locks cannot cover a table that does not exist yet, so take an
    advisory lock, released at commit."""
    if conn.dialect.name == "postgresql":
        conn.execute(sa.select(sa.func.pg_advisory_xact_lock(_PG_MIGRATION_LOCK)))


def _check_order(migrations: Sequence[Migration]) -> None:
    versions = [m.version for m in migrations]
    if versions != list(range(1, len(versions) + 1)):
        raise ValueError(f"migration versions must be 1, 2, 3, ... in order; got {versions}")
