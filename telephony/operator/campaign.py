"""Outbound calling campaigns: call every number of a CSV file once, within limits.

The scheduling is here, as plain async code with its clock, its dispatcher and its record
lookup passed in (`python -m telephony campaign` wires the real ones; tests pass fakes):

- at most `concurrency` calls in progress at once: a call is in progress from its dispatch
  until its record appears (in the call records store or the worker's local spool), or
  `call_timeout` passes with no record and nobody in its LiveKit room (`unknown`);
- at most `rate` dispatches per second, measured where the server receives them: the next
  request leaves 1/rate after the previous one was *answered*, so whatever the network
  does, two requests cannot arrive closer than 1/rate;
- only within the calling window (`calling_schedule`), unless told to ignore it, and only
  within each callee's own window (CALLEE_CALLING_HOURS in the zones of the number): a row
  waits for its window while rows whose window is open are called;
- never a number on the do-not-call list, asked just before each dispatch (the list changes
  during a campaign: a callee opts out): such a row ends `do-not-call`, never dialled;
- retries only for `busy` and `no-answer`, up to `max_attempts`, `retry_after * attempts`
  after the last outcome; every other outcome is final.

Crash safety: a journal (JSON lines, appended and fsynced) records each step, and the
"dispatching" line is on disk *before* the request is sent. A restart replays it: a number
with a final outcome is done; one whose last attempt was (or may have been) sent is waited
for by its room, never dialed again blindly; a torn last line (a crash mid-write) was never
acknowledged, so its request was never sent, and it is dropped.

Nobody is called twice, whatever the operator does next: an outcome is never taken from one
channel alone. A call's record is looked for in the store and in the spool (where the worker
keeps records the store would not take); LiveKit's view of its room (someone in it, a worker
given its job) is watched while it is in progress and asked again before it ends `unknown`.
`--retry-unknown` calls a number again only when every channel says its call was never
placed (see `_requeue_unknown`).
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import math
import os
import time
from collections import Counter, deque
from collections.abc import Awaitable, Callable, Collection, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any, Protocol

from telephony.domain.bounded_json import MAX_FILE_BYTES, loads_bounded
from telephony.domain.business_hours import Schedule
from telephony.domain.callee_hours import CalleeHours, callee_time_zones, next_call_time
from telephony.domain.csv_records import CsvFormatError, csv_records
from telephony.domain.dial_request import InvalidMetadata
from telephony.domain.phone_numbers import InvalidDestination, normalize_number, require_e164
from telephony.domain.spreadsheet import SafeCsvWriter
from telephony.operator.outbound_dispatch import (
    CallResult,
    DispatchError,
    LiveKitUnavailable,
    RoomView,
    dial_metadata,
    new_room_name,
    span_text,
)
from telephony.records.model import Outcome
from telephony.records.spool import SPOOL_NAME
from telephony.records.store import StoreError

try:  # POSIX: one run per state file at a time
    import fcntl
except ImportError:  # pragma: no cover - Windows
    fcntl = None  # type: ignore[assignment]

PHONE_COLUMN = "phone_number"
# Bounds on the input file (a larger list is split into several campaigns).
MAX_CAMPAIGN_BYTES = 20 * 10**6
MAX_CAMPAIGN_ROWS = 100_000
ROW_NOTES_SHOWN = 10  # per-row problems printed during a run before only counting them
# Outcomes a campaign adds to the call records' own.
UNKNOWN = "unknown"  # no record within the call timeout: never dialed again automatically
DISPATCH_FAILED = "dispatch-failed"  # LiveKit refused the dispatch: nothing was called
DO_NOT_CALL = Outcome.DO_NOT_CALL.value  # on the do-not-call list: never dialled
RETRY_OUTCOMES = frozenset({Outcome.BUSY.value, Outcome.NO_ANSWER.value})
RESULT_COLUMNS = ("outcome", "attempts", "last_room", "sip_status", "record_id", "error")
STATE_FORMAT_VERSION = 1
# What LiveKit showed of an `unknown` call's room when it ended so (the journal keeps it):
TAKEN = "taken"  # a worker took its job / someone was in the room: a call may have been placed
NOT_TAKEN = "not-taken"  # the room existed, empty, its job never given; the room was deleted
NO_ROOM = "no-room"  # LiveKit no longer had the room: nobody in a call there now
UNCHECKED = "unchecked"  # LiveKit could not be asked
# How often LiveKit is asked about the rooms of calls in progress (one ListRooms request):
# often enough to see a worker's agent in a room during any call longer than this.
LIVEKIT_CHECK_INTERVAL = 5.0
# At most this long between two looks at the clock (progress lines, the calling window).
MAX_SLEEP_SECONDS = 60.0
RESULTS_WRITE_INTERVAL = 1.0


class CampaignFileError(Exception):
    """The CSV file cannot be used at all; the message says what to fix."""


class CampaignStateError(Exception):
    """The state file cannot be used (locked by another run, unreadable, not ours)."""


class NoRecordsComing(Exception):
    """The first calls of a run all ended with no call record (in the store or the spool):
    most likely no worker is running under the agent name, or its records go somewhere this
    campaign cannot see; every further call would end `unknown` too. `evidence` counts what
    LiveKit showed of those calls (TAKEN, NOT_TAKEN, NO_ROOM, UNCHECKED)."""

    def __init__(self, message: str, evidence: Mapping[str, int]) -> None:
        super().__init__(message)
        self.evidence = dict(evidence)


class CampaignStopped(Exception):
    """The campaign stopped dispatching (LiveKit refused or failed); state is saved."""


# ------------------------------------------------------------------ the CSV file


@dataclass(frozen=True)
class CampaignRow:
    line: int  # where the row starts in the file, 1 = the header
    phone_number: str  # E.164
    values: tuple[str, ...]  # the row as written, one per header column
    context: Mapping[str, str]  # the other non-empty columns, for the agent


@dataclass(frozen=True)
class SkippedRow:
    line: int
    reason: str


@dataclass(frozen=True)
class CampaignFile:
    path: Path
    columns: tuple[str, ...]
    rows: tuple[CampaignRow, ...]
    skipped: tuple[SkippedRow, ...]


def read_campaign_file(path: Path) -> CampaignFile:
    """Read and check a campaign CSV: a header with a `phone_number` column, one row per call.

    Raises CampaignFileError when the file cannot be used at all (unreadable, over
    MAX_CAMPAIGN_BYTES or MAX_CAMPAIGN_ROWS, not UTF-8, a malformed CSV record, empty, no
    phone_number column). Bad rows (no number, not E.164, a number already on an
    earlier row, more fields than the header) are returned in `skipped` with the reason.
    """
    try:
        size = path.stat().st_size
        if size > MAX_CAMPAIGN_BYTES:
            raise CampaignFileError(
                f"{path} has {size:,} bytes, over the {MAX_CAMPAIGN_BYTES:,} a campaign file "
                "may have: split it into several campaigns"
            )
        raw = path.read_bytes()
    except OSError as e:
        raise CampaignFileError(f"cannot read {path}: {e.strerror or e}") from None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as e:
        line = raw[: e.start].count(b"\n") + 1
        raise CampaignFileError(
            f"{path} is not UTF-8 text: byte 0x{raw[e.start]:02X} at offset {e.start} "
            f"(line {line}) is not valid UTF-8; save the file as UTF-8 "
            "(in Excel: 'CSV UTF-8 (Comma delimited)')"
        ) from None
    records = _csv_records(path, text.removeprefix("\ufeff"))
    first = next(records, None)
    if first is None:
        raise CampaignFileError(
            f"{path} is empty: write a header line with a {PHONE_COLUMN} column, "
            "then one line per number to call"
        )
    _, header = first
    columns = tuple(name.strip() for name in header)
    phone_index = _phone_column(path, columns)

    rows: list[CampaignRow] = []
    skipped: list[SkippedRow] = []
    first_line: dict[str, int] = {}
    for line, record in records:
        if len(record) > len(columns):
            if any(cell.strip() for cell in record[len(columns) :]):
                skipped.append(
                    SkippedRow(
                        line,
                        f"{len(record)} fields but the header has {len(columns)} "
                        "(a value with a comma must be in double quotes)",
                    )
                )
                continue
            record = record[: len(columns)]
        values = tuple(record) + ("",) * (len(columns) - len(record))
        number = normalize_number(values[phone_index])
        if not number:
            skipped.append(SkippedRow(line, f"no {PHONE_COLUMN}"))
            continue
        try:
            require_e164(number, field=PHONE_COLUMN)
        except InvalidDestination as e:
            hint = ""
            if number.isdigit():
                hint = " (spreadsheets drop the leading '+': format the column as text)"
            skipped.append(SkippedRow(line, f"{e}{hint}"))
            continue
        if number in first_line:
            skipped.append(
                SkippedRow(
                    line,
                    f"{number} is already on line {first_line[number]} "
                    "(each number is called once)",
                )
            )
            continue
        context = {
            name: value.strip()
            for i, (name, value) in enumerate(zip(columns, values, strict=True))
            if i != phone_index and name and value.strip()
        }
        try:
            dial_metadata(number, context=context)  # what the agent would accept
        except InvalidMetadata as e:
            skipped.append(SkippedRow(line, str(e)))
            continue
        first_line[number] = line
        rows.append(CampaignRow(line, number, values, context))
    return CampaignFile(path, columns, tuple(rows), tuple(skipped))


def _csv_records(path: Path, text: str) -> Iterator[tuple[int, list[str]]]:
    """(the line a record starts on, its fields), skipping blank lines; a malformed record
    (a stray quote, a value over lines) refuses the whole file: its rows cannot be told
    apart, so none is called rather than two merged into one."""
    records = csv_records(text, max_rows=MAX_CAMPAIGN_ROWS)
    while True:
        try:
            yield next(records)
        except StopIteration:
            return
        except CsvFormatError as e:
            raise CampaignFileError(f"{path} {e}; fix the file (nothing was called)") from None


def _phone_column(path: Path, columns: tuple[str, ...]) -> int:
    named = [name for name in columns if name]
    for name in set(named):
        if named.count(name) > 1:
            raise CampaignFileError(f"{path}: the header names the column {name!r} twice")
    reserved = sorted(set(named) & set(RESULT_COLUMNS))
    if reserved:
        raise CampaignFileError(
            f"{path}: the column(s) {', '.join(reserved)} would clash with the results "
            f"columns ({', '.join(RESULT_COLUMNS)}); rename them"
        )
    matches = [i for i, name in enumerate(columns) if name.lower() == PHONE_COLUMN]
    if not matches:
        found = ", ".join(repr(name) for name in columns) or "nothing"
        raise CampaignFileError(
            f"{path} has no {PHONE_COLUMN} column (the header line has {found}): the first "
            f"line must name the columns, one of them {PHONE_COLUMN}"
        )
    if len(matches) > 1:
        raise CampaignFileError(f"{path}: the header has more than one {PHONE_COLUMN} column")
    return matches[0]


# ------------------------------------------------------------------ the state journal


@dataclass
class Attempt:
    number: int  # 1, 2, ...
    room: str
    started_at: float  # when the dispatch was decided (written before it was sent)
    dispatch_id: str = ""  # set once LiveKit confirmed the dispatch
    outcome: str = ""  # "" while in progress
    finished_at: float | None = None
    record_id: str = ""
    sip_status: str = ""
    error: str = ""
    evidence: str = ""  # for `unknown`: what LiveKit showed then (TAKEN, NOT_TAKEN...)
    seen_taken: bool = False  # LiveKit showed someone in its room / a record said under way


@dataclass
class RowProgress:
    attempts: list[Attempt] = field(default_factory=list)

    @property
    def last(self) -> Attempt | None:
        return self.attempts[-1] if self.attempts else None

    def find(self, room: str) -> Attempt | None:
        return next((a for a in self.attempts if a.room == room), None)


class CampaignState:
    """A campaign's journal: one JSON object per line, appended and fsynced.

        Lines (`at` is unix time):
            {"event": "campaign", "version": 1, "file": "...", "created_at": ...}
            {"event": "dispatching", "number": "+1...", "line": 3, "attempt": 1,
             "room": "outbound-...", "at": ...}
            {"event": "dispatched", "number": ..., "room": ..., "dispatch_id": "AD_...", "at": ...}
            {"event": "not-sent", "number": ..., "room": ..., "error": "...", "at": ...}
            {"event": "seen", "number": ..., "room": ..., "at": ...}
            {"event": "outcome", "number": ..., "room": ..., "outcome": "busy", "record_id": ...,
             "sip_status": "486 Busy Here", "error": "", "at": ...[, "evidence": "taken"]}
            {"event": "refused", "number": ..., "line": 3, "outcome": "do-not-call",
             "error": "...", "at": ...}

    "refused": the row was never dispatched and never will be (on the do-not-call list, or no
    time when the callee may be called); it counts as an attempt without a room.

        "seen": LiveKit showed someone in the room (or a record said the call was under way), so
        a call may have been placed: such an attempt is never followed by a blind redial.

        An attempt is in progress from its "dispatching" line until its "outcome" line; a
        "not-sent" line withdraws it (the request certainly never reached LiveKit). A later
        "outcome" for the same room replaces an earlier one (an `unknown` found after all).
    """

    def __init__(self, path: Path, rows: dict[str, RowProgress], file: IO[bytes] | None) -> None:
        self.path = path
        self.rows = rows
        self._file = file

    # -------------------------------------------------------------- opening

    @classmethod
    def read(cls, path: Path) -> CampaignState:
        """The journal's contents, read only (for --dry-run); empty when there is none."""
        if not path.exists():
            return cls(path, {}, None)
        rows, _ = _replay(path, _read_bytes(path))
        return cls(path, rows, None)

    @classmethod
    def open(cls, path: Path, *, source: Path) -> CampaignState:
        """Open (or start) the journal for writing: locked against a second run, a torn
        last line removed."""
        try:
            file = path.open("a+b")
        except OSError as e:
            raise CampaignStateError(f"cannot open {path}: {e.strerror or e}") from None
        try:
            _lock(file, path)
            file.seek(0)
            data = file.read()
            rows, complete = _replay(path, data)
            if complete < len(data):
                # A write cut short by a crash: never fsynced, so nothing was sent after it.
                file.truncate(complete)
                os.fsync(file.fileno())
            state = cls(path, rows, file)
            if complete == 0:
                state._append(
                    {
                        "event": "campaign",
                        "version": STATE_FORMAT_VERSION,
                        "file": str(source),
                        "created_at": time.time(),
                    }
                )
                _fsync_folder(path.parent)
        except BaseException:
            file.close()
            raise
        return state

    def close(self) -> None:
        if self._file is not None:
            self._file.close()  # also releases the lock
            self._file = None

    def __enter__(self) -> CampaignState:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()

    # -------------------------------------------------------------- writing

    def dispatching(self, number: str, line: int, attempt: int, room: str, at: float) -> None:
        """Durably note a dispatch about to be sent (call before sending it)."""
        self._write(
            {
                "event": "dispatching",
                "number": number,
                "line": line,
                "attempt": attempt,
                "room": room,
                "at": at,
            }
        )

    def dispatched(self, number: str, room: str, dispatch_id: str, at: float) -> None:
        event = {"event": "dispatched", "number": number, "room": room}
        self._write(event | {"dispatch_id": dispatch_id, "at": at})

    def seen(self, number: str, room: str, at: float) -> None:
        self._write({"event": "seen", "number": number, "room": room, "at": at})

    def not_sent(self, number: str, room: str, error: str, at: float) -> None:
        self._write({"event": "not-sent", "number": number, "room": room, "error": error, "at": at})

    def finished(
        self,
        number: str,
        room: str,
        outcome: str,
        at: float,
        *,
        result: CallResult | None = None,
        error: str = "",
        evidence: str = "",
    ) -> None:
        event = {
            "event": "outcome",
            "number": number,
            "room": room,
            "outcome": outcome,
            "record_id": result.record_id if result else "",
            "sip_status": result.sip if result else "",
            "error": (result.error if result else "") or error,
            "at": at,
        }
        self._write(event | ({"evidence": evidence} if evidence else {}))

    def refused(self, number: str, line: int, outcome: str, error: str, at: float) -> None:
        """The row is final without a dispatch (do-not-call, never within its hours)."""
        event = {"event": "refused", "number": number, "line": line, "outcome": outcome}
        self._write(event | {"error": error, "at": at})

    def _write(self, event: dict[str, Any]) -> None:
        self._append(event)
        _apply(self.rows, event)

    def _append(self, event: dict[str, Any]) -> None:
        if self._file is None:
            raise CampaignStateError(f"{self.path} is open read-only")
        self._file.write(json.dumps(event, ensure_ascii=False).encode() + b"\n")
        self._file.flush()
        os.fsync(self._file.fileno())


def _read_bytes(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except OSError as e:
        raise CampaignStateError(f"cannot read {path}: {e.strerror or e}") from None


def _lock(file: IO[bytes], path: Path) -> None:
    if fcntl is None:  # pragma: no cover
        return
    try:
        fcntl.flock(file.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        raise CampaignStateError(
            f"another campaign run is using {path}: let it finish or stop it (Ctrl-C) first"
        ) from None


def _fsync_folder(folder: Path) -> None:
    """Make a new file's name durable too (POSIX; a no-op where folders cannot be opened)."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:  # pragma: no cover
        return
    try:
        with contextlib.suppress(OSError):
            os.fsync(fd)
    finally:
        os.close(fd)


def _replay(path: Path, data: bytes) -> tuple[dict[str, RowProgress], int]:
    """The rows' progress and the length of the complete lines (a torn tail excluded)."""
    complete = data.rfind(b"\n") + 1
    rows: dict[str, RowProgress] = {}
    for number, raw in enumerate(data[:complete].splitlines(), start=1):
        if not raw.strip():
            continue
        try:
            event = loads_bounded(raw.decode("utf-8"), max_chars=MAX_FILE_BYTES)
            if not isinstance(event, dict):
                raise ValueError("not an object")
            if number == 1:
                if event.get("event") != "campaign":
                    raise ValueError("the first line is not a campaign header")
                if event.get("version") != STATE_FORMAT_VERSION:
                    raise CampaignStateError(
                        f"{path} is a version {event.get('version')} campaign state; "
                        f"this program reads version {STATE_FORMAT_VERSION}"
                    )
                continue
            _apply(rows, event)
        except (ValueError, KeyError, TypeError) as e:
            raise CampaignStateError(
                f"{path} line {number} is not a campaign state line ({e}); is it a campaign "
                "state file? (it records who was called: never delete it during a campaign)"
            ) from None
    return rows, complete


def _apply(rows: dict[str, RowProgress], event: Mapping[str, Any]) -> None:
    kind = event["event"]
    if kind == "campaign":
        return
    progress = rows.setdefault(str(event["number"]), RowProgress())
    if kind == "refused":
        at = float(event["at"])
        refusal = Attempt(0, "", at, outcome=str(event["outcome"]), finished_at=at)
        refusal.error = str(event.get("error", ""))
        progress.attempts.append(refusal)
        return
    room = str(event["room"])
    if kind == "dispatching":
        progress.attempts.append(Attempt(int(event["attempt"]), room, float(event["at"])))
        return
    attempt = progress.find(room)
    if attempt is None:
        raise ValueError(f"{kind} for room {room}, which was never dispatched")
    if kind == "dispatched":
        attempt.dispatch_id = str(event["dispatch_id"])
    elif kind == "not-sent":
        progress.attempts.remove(attempt)
    elif kind == "seen":
        attempt.seen_taken = True
    elif kind == "outcome":
        attempt.outcome = str(event["outcome"])
        attempt.finished_at = float(event["at"])
        attempt.record_id = str(event.get("record_id", ""))
        attempt.sip_status = str(event.get("sip_status", ""))
        attempt.error = str(event.get("error", ""))
        attempt.evidence = str(event.get("evidence", ""))
    else:
        raise ValueError(f"unknown event {kind!r}")


# ------------------------------------------------------------------ running


@dataclass(frozen=True)
class CampaignOptions:
    concurrency: int = 2
    rate: float = 1.0  # dispatches per second
    max_attempts: int = 3
    retry_after: float = 300.0  # seconds; the n-th retry waits retry_after * n
    call_timeout: float = 900.0  # no record this long after the dispatch: `unknown`
    poll_interval: float = 1.0  # how often to look for the records of calls in progress
    ignore_hours: bool = False  # dispatch outside the calling window, with force=true
    # Call the rows that ended `unknown` again (an operator's decision, once the cause,
    # e.g. no worker running, is fixed); otherwise `unknown` is final.
    retry_unknown: bool = False

    def __post_init__(self) -> None:
        if self.concurrency < 1 or self.max_attempts < 1:
            raise ValueError("concurrency and max_attempts must be 1 or more")
        if not (self.rate > 0 and math.isfinite(self.rate)):
            raise ValueError("rate must be a positive number")
        if self.retry_after < 0 or self.call_timeout <= 0 or self.poll_interval <= 0:
            raise ValueError("retry_after must be >= 0, call_timeout and poll_interval > 0")


class Clock(Protocol):
    def time(self) -> float:
        """Unix time now."""
        ...

    async def sleep(self, seconds: float) -> None: ...


class SystemClock:
    def time(self) -> float:
        return time.time()

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(seconds)


# numbers -> those on the do-not-call list; raises StoreError when it cannot be read.
DoNotCallCheck = Callable[[Collection[str]], Awaitable[Collection[str]]]
# (room, metadata JSON) -> dispatch id; raises DispatchError when nothing was created.
Dispatch = Callable[[str, str], Awaitable[str]]
# (rooms, the earliest dispatch time among them) -> the records found, by room (in-progress
# ones included). Raises StoreError when the store cannot be read; the error's `found`, if
# any, holds what the other places (the spool) had.
Lookup = Callable[[Collection[str], float], Awaitable[Mapping[str, CallResult]]]


class LiveKitView(Protocol):
    """LiveKit's side of the calls (LiveKitDispatcher); raises LiveKitUnavailable."""

    async def rooms(self, rooms: Collection[str], *, jobs: bool = False) -> dict[str, RoomView]:
        """What LiveKit knows of each room now."""
        ...

    async def retire(self, room: str) -> None:
        """Delete the room and its dispatch, so that no worker can take it any more."""
        ...


@dataclass(frozen=True)
class Progress:
    total: int
    finished: Mapping[str, int]  # final outcome -> rows
    in_progress: int
    waiting_retry: int
    not_called: int

    @property
    def done(self) -> int:
        return sum(self.finished.values())

    def describe(self) -> str:
        outcomes = ", ".join(f"{o} {n}" for o, n in sorted(self.finished.items()))
        text = f"{self.done}/{self.total} done"
        if outcomes:
            text += f" ({outcomes})"
        return (
            f"{text}; {self.in_progress} in progress, {self.waiting_retry} waiting to retry, "
            f"{self.not_called} not called yet"
        )


class Reporter(Protocol):
    def note(self, text: str) -> None:
        """A line worth keeping (waiting for the calling window, a refused dispatch...)."""
        ...

    def progress(self, progress: Progress, now: float) -> None:
        """The counts changed, or time passed; show them as often as fits."""
        ...


class SilentReporter:
    def note(self, text: str) -> None:
        pass

    def progress(self, progress: Progress, now: float) -> None:
        pass


def is_final(progress: RowProgress | None, max_attempts: int) -> bool:
    last = progress.last if progress else None
    if progress is None or last is None or not last.outcome:
        return False
    return last.outcome not in RETRY_OUTCOMES or len(progress.attempts) >= max_attempts


class CampaignRunner:
    """Calls every row of a campaign once (plus retries); `run` returns when every row has
    a final outcome, raises CampaignStopped when dispatching had to stop, and can be
    cancelled at any await (Ctrl-C) without losing or repeating a call."""

    def __init__(
        self,
        campaign: CampaignFile,
        state: CampaignState,
        options: CampaignOptions,
        *,
        dispatch: Dispatch,
        lookup: Lookup,
        livekit: LiveKitView | None = None,
        spool_problem: Callable[[], str] | None = None,
        clock: Clock | None = None,
        schedule: Schedule | None = None,
        callee_hours: CalleeHours | None = None,
        do_not_call: DoNotCallCheck | None = None,
        reporter: Reporter | None = None,
        results_path: Path | None = None,
    ) -> None:
        self.campaign = campaign
        self.state = state
        self.options = options
        self._dispatch = dispatch
        self._lookup = lookup
        # Without a view of LiveKit (tests' fakes), `unknown` is never redialed.
        self._livekit = livekit
        self._spool_problem = spool_problem or (lambda: "")
        self.clock = clock or SystemClock()
        self.schedule = None if options.ignore_hours else schedule
        self.callee_hours = None if options.ignore_hours else callee_hours
        self._do_not_call = do_not_call
        # Callee zones -> when their window was last found to open (a cache: many rows
        # share a zone, and the loop asks about every waiting row).
        self._window_opens: dict[tuple[str, ...], float] = {}
        self.reporter = reporter or SilentReporter()
        self.results_path = results_path

        self._rows = {row.phone_number: row for row in campaign.rows}
        self._fresh: deque[CampaignRow] = deque()  # never dispatched, in file order
        self._retries: dict[str, float] = {}  # number -> when its next attempt is due
        self._pending: dict[str, CampaignRow] = {}  # room -> row, calls in progress
        self._finished: Counter[str] = Counter()  # final outcome -> rows
        self._next_send = -math.inf  # no dispatch may leave before this
        self._next_poll = -math.inf
        self._announced_opening: float | None = None
        self._store_failing = False
        self._livekit_failing = False
        self._next_livekit_check = -math.inf
        self._livekit_wait: dict[str, float] = {}  # room -> next look (someone was in it)
        self._spool_noted = False
        self._recheck_complete = False  # the run's first look at `unknown` rows read all
        self._under_way: set[str] = set()  # `unknown` rooms whose record says in progress
        self._results_written_at = -math.inf
        self._results_dirty = True
        self._results_failing = False
        # Records found in this run: none while calls time out means nobody answers the jobs.
        self._records_this_run = 0
        # Per-row problems shown so far (the rest are counted in the results file).
        self._row_notes = 0
        for row in campaign.rows:
            self._place(row)

    # -------------------------------------------------------------- public

    def progress(self) -> Progress:
        return Progress(
            total=len(self.campaign.rows),
            finished=dict(self._finished),
            in_progress=len(self._pending),
            waiting_retry=len(self._retries),
            not_called=len(self._fresh),
        )

    async def run(self) -> Progress:
        try:
            await self._recheck_unknown()
            if self.options.retry_unknown:
                await self._requeue_unknown()
            await self._loop()
        except BaseException:
            self.write_results(force=True)  # what is known so far, on the way out
            raise
        if not self.write_results(force=True):
            raise CampaignStopped(
                f"every number has an outcome, but the results could not be written to "
                f"{self.results_path}; fix that and run again: nothing more will be dialed"
            )
        return self.progress()

    def write_results(self, *, force: bool = False) -> bool:
        """Rewrite the results file (atomically) if rows changed since the last time (at
        most once a second unless forced). False if it could not be written: the journal
        has every outcome, so the next write (or run) catches up."""
        if self.results_path is None or not self._results_dirty:
            return True
        now = self.clock.time()
        if not force and now - self._results_written_at < RESULTS_WRITE_INTERVAL:
            return True
        self._results_written_at = now
        try:
            write_results(self.results_path, self.campaign, self.state, self.options.max_attempts)
        except OSError as e:
            if not self._results_failing:
                self.reporter.note(f"cannot write {self.results_path} ({e.strerror or e})")
            self._results_failing = True
            return False
        self._results_dirty = self._results_failing = False
        return True

    # -------------------------------------------------------------- bookkeeping

    def _place(self, row: CampaignRow) -> None:
        """File the row by its progress in the journal (at start, after an outcome)."""
        progress = self.state.rows.get(row.phone_number)
        last = progress.last if progress else None
        if progress is None or last is None:
            self._fresh.append(row)
        elif not last.outcome:
            self._pending[last.room] = row
        elif is_final(progress, self.options.max_attempts):
            self._finished[last.outcome] += 1
        else:
            assert last.finished_at is not None
            delay = self.options.retry_after * len(progress.attempts)
            self._retries[row.phone_number] = last.finished_at + delay

    async def _recheck_unknown(self) -> None:
        """Rows that ended `unknown` in an earlier run: their record may have come since
        (to the store or the spool)."""
        unknown: dict[str, tuple[CampaignRow, Attempt]] = {}
        for row in self.campaign.rows:
            progress = self.state.rows.get(row.phone_number)
            last = progress.last if progress else None
            if last is not None and last.outcome == UNKNOWN:
                unknown[last.room] = (row, last)
        if not unknown:
            return
        since = min(attempt.started_at for _, attempt in unknown.values())
        found, problem = await self._look(list(unknown), since)
        self._recheck_complete = not problem
        if problem:
            self.reporter.note(f"cannot read the call records to recheck unknown calls ({problem})")
        now = self.clock.time()
        for room, result in found.items():
            row, _ = unknown[room]
            if result.in_progress:  # a record says the call is under way: not final yet
                self._under_way.add(room)
                continue
            self._finished[UNKNOWN] -= 1
            self._finished += Counter()  # drop zero counts
            self.state.finished(row.phone_number, room, result.outcome, now, result=result)
            self._place(row)
            self._results_dirty = True
        self._note_spooled(found.values())

    async def _requeue_unknown(self) -> None:
        """--retry-unknown: call a row that is still `unknown` after the recheck again only
        when every channel says its call was never placed: no record in the store (read
        whole) or the spool (every line readable), and LiveKit, asked now, has nobody in its
        room, and neither now nor earlier showed a worker taking it. A room LiveKit still
        has is deleted first (with its dispatch), so that no worker can take the old job
        after the new one. Anything else keeps the row `unknown`: it may have been called."""
        candidates: dict[str, CampaignRow] = {}
        for row in self.campaign.rows:
            progress = self.state.rows.get(row.phone_number)
            last = progress.last if progress else None
            if last is not None and last.outcome == UNKNOWN:
                candidates[last.room] = row
        if not candidates:
            return
        blocker = ""
        if not self._recheck_complete:
            blocker = "the call records store could not be read"
        elif problem := self._spool_problem():
            blocker = problem
        elif self._livekit is None:
            blocker = "LiveKit cannot be asked about their rooms"
        views: Mapping[str, RoomView] = {}
        if not blocker:
            assert self._livekit is not None
            try:
                views = await self._livekit.rooms(list(candidates), jobs=True)
            except LiveKitUnavailable as e:
                blocker = str(e)
        if blocker:
            self.reporter.note(
                f"--retry-unknown: {len(candidates)} unknown number(s) not called again: "
                f"{blocker}; whether they were called cannot be known now"
            )
            return
        kept: Counter[str] = Counter()  # why numbers stay `unknown`
        for room, row in candidates.items():
            reason = await self._keep_unknown(room, row, views[room])
            if reason:
                kept[reason] += 1
                continue
            self._finished[UNKNOWN] -= 1
            self._finished += Counter()  # drop zero counts
            self._retries[row.phone_number] = -math.inf
            self._results_dirty = True
        again = len(candidates) - kept.total()
        parts = [f"calling {again} unknown number(s) again: no channel shows they were called"]
        parts += [f"{count} kept unknown: {reason}" for reason, count in kept.items()]
        self.reporter.note("--retry-unknown: " + "; ".join(parts))

    async def _keep_unknown(self, room: str, row: CampaignRow, view: RoomView) -> str:
        """Why an `unknown` call may have been placed ('' when nothing says so); an empty
        room whose job no worker took is deleted first, so none can take it later."""
        attempt = self._attempt(room, row)
        if room in self._under_way:
            return "their record says the call is under way"
        if view.taken or attempt.seen_taken or attempt.evidence == TAKEN:
            return (
                "a worker took their calls (LiveKit showed it), so they may have been called; "
                f"their records are probably in the worker's spool ({SPOOL_NAME}): run "
                "`python -m telephony calls import-spool` where the worker runs, then run "
                "this command again"
            )
        if view.exists:
            assert self._livekit is not None
            try:
                await self._livekit.retire(room)
            except LiveKitUnavailable as e:
                return f"their LiveKit room could not be deleted ({e})"
        return ""

    async def _look(
        self, rooms: Collection[str], since: float
    ) -> tuple[dict[str, CallResult], str]:
        """The records found for these rooms, and why the look was incomplete ('' if not):
        what the spool had still counts when the store cannot be read."""
        try:
            return dict(await self._lookup(rooms, since)), ""
        except StoreError as e:
            return dict(getattr(e, "found", {})), str(e)

    def _note_spooled(self, results: Collection[CallResult]) -> None:
        if self._spool_noted or not any(r.source == "spool" for r in results):
            return
        self._spool_noted = True
        self.reporter.note(
            f"call records are being read from the worker's spool ({SPOOL_NAME}): the worker "
            "cannot reach the call records store; once it can, load them with "
            "`python -m telephony calls import-spool`"
        )

    def _note_row(self, text: str) -> None:
        """A per-row problem: the first few on the console, then only a count at the end
        (10,000 bad rows must not print 10,000 lines; the results file has each one)."""
        self._row_notes += 1
        if self._row_notes <= ROW_NOTES_SHOWN:
            self.reporter.note(text)
        elif self._row_notes == ROW_NOTES_SHOWN + 1:
            self.reporter.note(
                "more rows fail the same way: not shown, see the results file for each one"
            )

    # -------------------------------------------------------------- the loop

    async def _loop(self) -> None:
        options = self.options
        while True:
            now = self.clock.time()
            if self._pending and now >= self._next_poll:
                await self._poll()
                now = self.clock.time()
                self._next_poll = now + options.poll_interval
            if not (self._pending or self._retries or self._fresh):
                self.reporter.progress(self.progress(), now)
                return
            wake: list[float] = []
            if self._pending:
                wake.append(self._next_poll)
            if len(self._pending) < options.concurrency:
                row, due = self._next_row(now)
                if row is not None:
                    if due > now:
                        wake.append(due)
                    elif (opening := self._closed_until(now)) is not None:
                        wake.append(opening)
                    elif now < self._next_send:
                        wake.append(self._next_send)
                    else:
                        await self._send(row)
                        self.write_results()
                        continue
            self.reporter.progress(self.progress(), now)
            self.write_results()
            until = min(wake, default=now + MAX_SLEEP_SECONDS)
            await self.clock.sleep(min(max(0.0, until - now), MAX_SLEEP_SECONDS))

    def _next_row(self, now: float) -> tuple[CampaignRow | None, float]:
        """The row to call next and when it is due: a due retry first, then a new row, else
        the earliest a row becomes due (its retry delay, its callee's window). A row whose
        callee's window never opens is refused here (final `outside-hours`)."""
        earliest: tuple[CampaignRow | None, float] = (None, math.inf)
        never: list[CampaignRow] = []
        retries = sorted(self._retries.items(), key=lambda item: item[1])
        # Lazily: the first new row is usually callable, and there may be 100,000 of them.
        candidates = itertools.chain(
            ((self._rows[n], due) for n, due in retries), ((row, now) for row in self._fresh)
        )
        for row, due in candidates:
            when = self._callee_window(row, max(due, now))
            if when == math.inf:
                never.append(row)
            elif when <= now:
                earliest = (row, when)
                break
            elif when < earliest[1]:
                earliest = (row, when)
        for row in never:
            self._refuse(row, Outcome.OUTSIDE_HOURS.value, self._never_reason(row))
        return earliest

    def _callee_window(self, row: CampaignRow, at: float) -> float:
        """When the callee's own window is open at or after `at` (inf: not within 14 days,
        or the number's zone is unknown)."""
        hours = self.callee_hours
        if hours is None:
            return at
        zones = callee_time_zones(row.phone_number)
        opens = self._window_opens.get(zones)
        if opens is not None and opens > at:
            return opens
        moment = datetime.fromtimestamp(at, UTC)
        found = next_call_time(row.phone_number, moment, callee=hours)
        opens = math.inf if found is None else found.timestamp()
        self._window_opens[zones] = opens
        return opens

    def _never_reason(self, row: CampaignRow) -> str:
        assert self.callee_hours is not None
        return (
            f"never within the callee's calling hours in the next 14 days "
            f"({self.callee_hours.describe(row.phone_number)}): not dialled"
        )

    def _refuse(self, row: CampaignRow, outcome: str, error: str) -> None:
        """Final without a dispatch: journaled, counted, never dialled."""
        number = row.phone_number
        self.state.refused(number, row.line, outcome, error, self.clock.time())
        if self._retries.pop(number, None) is None:
            self._fresh.remove(row)
        self._place(row)
        self._results_dirty = True
        self._note_row(f"line {row.line}: {number}: {error}")

    def _closed_until(self, now: float) -> float | None:
        """None when calls may be placed now; else when the calling window opens."""
        if self.schedule is None:
            return None
        at = datetime.fromtimestamp(now, UTC)
        if self.schedule.is_open(at):
            self._announced_opening = None
            return None
        opening = self.schedule.next_opening(at)
        if opening is None:
            raise CampaignStopped(
                f"the calling hours ({self.schedule.describe()}) do not open in the next "
                "14 days: check OUTBOUND_CALLING_HOURS and BUSINESS_HOLIDAYS_FILE, or use "
                "--ignore-hours"
            )
        when = opening.timestamp()
        if self._announced_opening != when:
            self._announced_opening = when
            local = datetime.fromtimestamp(when).astimezone().isoformat(" ", "minutes")
            self.reporter.note(
                f"outside the calling hours ({self.schedule.describe()}): "
                f"waiting until {local} ({span_text(when - now)})"
            )
        return when

    async def _send(self, row: CampaignRow) -> None:
        number = row.phone_number
        if await self._listed(number):
            self._refuse(
                row, DO_NOT_CALL, "on the do-not-call list (`python -m telephony dnc list`)"
            )
            return
        progress = self.state.rows.get(number)
        attempt = len(progress.attempts) + 1 if progress else 1
        room = new_room_name()
        metadata = dial_metadata(number, context=row.context, force=self.options.ignore_hours)
        # On disk before the request leaves: a crash from here on never dials it again.
        self.state.dispatching(number, row.line, attempt, room, self.clock.time())
        if self._retries.pop(number, None) is None:
            self._fresh.remove(row)
        self._pending[room] = row
        try:
            dispatch_id = await self._dispatch(room, metadata)
        except DispatchError as e:
            self._next_send = self.clock.time() + 1.0 / self.options.rate
            del self._pending[room]
            if e.stop:
                self.state.not_sent(number, room, str(e), self.clock.time())
                raise CampaignStopped(str(e)) from e
            self.state.finished(number, room, DISPATCH_FAILED, self.clock.time(), error=str(e))
            self._place(row)
            self._results_dirty = True
            self._note_row(f"line {row.line}: {number}: {e}")
            return
        except Exception as e:
            raise CampaignStopped(
                f"the dispatch for {number} (line {row.line}, room {room}) failed "
                f"({type(e).__name__}: {e}); whether it was placed is unknown, so it stays "
                "in progress: the next run waits for its record and never dials it again"
            ) from e
        self._next_send = self.clock.time() + 1.0 / self.options.rate
        self.state.dispatched(number, room, dispatch_id, self.clock.time())

    async def _listed(self, number: str) -> bool:
        """Whether the do-not-call list holds the number; a list that cannot be read stops
        the campaign (nothing is dialled blind)."""
        if self._do_not_call is None:
            return False
        try:
            return number in await self._do_not_call([number])
        except StoreError as e:
            raise CampaignStopped(f"cannot read the do-not-call list ({e})") from e

    async def _poll(self) -> None:
        pending = dict(self._pending)
        since = min(self._started_at(room, row) for room, row in pending.items())
        found, problem = await self._look(list(pending), since)
        if problem and not self._store_failing:
            self.reporter.note(f"cannot read the call records ({problem}); retrying")
        elif self._store_failing and not problem:
            self.reporter.note("the call records can be read again")
        self._store_failing = bool(problem)
        self._note_spooled(found.values())
        now = self.clock.time()
        self._records_this_run += len(found)
        await self._watch_livekit(pending, found, now)
        timed_out: list[str] = []
        for room, row in pending.items():
            result = found.get(room)
            if result is not None and not result.in_progress:
                self.state.finished(row.phone_number, room, result.outcome, now, result=result)
                del self._pending[room]
                self._place(row)
                self._results_dirty = True
            elif problem:
                continue  # no time-outs while we cannot look everywhere
            elif now - self._started_at(room, row) >= self.options.call_timeout and (
                now >= self._livekit_wait.get(room, -math.inf)
            ):
                timed_out.append(room)
        if timed_out:
            await self._time_out(timed_out, found, now)

    async def _watch_livekit(
        self, pending: Mapping[str, CampaignRow], found: Mapping[str, CallResult], now: float
    ) -> None:
        """Note (once per call, in the journal) that its call may have been placed: a
        record says it is under way, or LiveKit shows someone in its room. Asked every
        LIVEKIT_CHECK_INTERVAL, so a worker's agent is seen in any call longer than that."""
        for room, result in found.items():
            if result.in_progress:
                self._mark_taken(room, pending[room], now)
        unseen = [room for room, row in pending.items() if not self._attempt(room, row).seen_taken]
        if self._livekit is None or not unseen or now < self._next_livekit_check:
            return
        self._next_livekit_check = now + LIVEKIT_CHECK_INTERVAL
        try:
            views = await self._livekit.rooms(unseen)
        except LiveKitUnavailable as e:
            if not self._livekit_failing:
                self.reporter.note(f"cannot ask LiveKit about the calls' rooms ({e}); retrying")
            self._livekit_failing = True
            return
        self._livekit_failing = False
        for room, view in views.items():
            if view.taken:
                self._mark_taken(room, pending[room], now)

    async def _time_out(
        self, rooms: list[str], found: Mapping[str, CallResult], now: float
    ) -> None:
        """Calls past their timeout with no final record: one LiveKit still shows someone
        in waits on (it is under way); the rest end `unknown`, with what LiveKit showed."""
        views: Mapping[str, RoomView] | None = None
        if self._livekit is not None:
            try:
                views = await self._livekit.rooms(rooms, jobs=True)
            except LiveKitUnavailable as e:
                self.reporter.note(f"cannot ask LiveKit about timed-out calls ({e})")
        ended: list[tuple[str, str]] = []
        for room in rooms:
            row = self._pending[room]
            view = views.get(room) if views is not None else None
            if view is not None and view.participants:
                self._mark_taken(room, row, now)
                self._livekit_wait[room] = now + LIVEKIT_CHECK_INTERVAL
                continue  # someone is in its room: the call is still going on
            ended.append((room, await self._evidence(room, row, view, room in found)))
        if ended and not self._records_this_run:
            self._stop_without_records(ended, now)
        for room, evidence in ended:
            self._end_unknown(room, evidence, now)

    async def _evidence(
        self, room: str, row: CampaignRow, view: RoomView | None, has_record: bool
    ) -> str:
        """What LiveKit says of a call that ends `unknown`; an empty room whose job no worker
        took is deleted, so that none can take it later (its number was then never called)."""
        if self._attempt(room, row).seen_taken or has_record or (view and view.taken):
            return TAKEN
        if view is None:
            return UNCHECKED
        if not view.exists:
            return NO_ROOM
        assert self._livekit is not None
        try:
            await self._livekit.retire(room)
        except LiveKitUnavailable:
            return UNCHECKED
        return NOT_TAKEN

    def _end_unknown(self, room: str, evidence: str, now: float) -> None:
        row = self._pending.pop(room)
        self._livekit_wait.pop(room, None)
        error = f"no call record within {span_text(self.options.call_timeout)}"
        if evidence == TAKEN:
            error += " (a worker took the call: it may have been placed)"
        elif evidence == NOT_TAKEN:
            error += " (no worker took the call: it was never placed)"
        self.state.finished(row.phone_number, room, UNKNOWN, now, error=error, evidence=evidence)
        self._place(row)
        self._results_dirty = True

    def _stop_without_records(self, ended: list[tuple[str, str]], now: float) -> None:
        """The first calls of this run found no record in their whole call timeout: stop
        before every other number ends `unknown` the same way. The calls that timed out end
        `unknown` (never dialed again unless every channel shows they were not placed:
        --retry-unknown); the rest stay in progress, and the next run waits for them."""
        for room, evidence in ended:
            self._end_unknown(room, evidence, now)
        raise NoRecordsComing(
            f"no call record came for the first {len(ended)} call(s) of this run within "
            f"{span_text(self.options.call_timeout)}",
            Counter(evidence for _, evidence in ended),
        )

    def _mark_taken(self, room: str, row: CampaignRow, now: float) -> None:
        if not self._attempt(room, row).seen_taken:
            self.state.seen(row.phone_number, room, now)

    def _attempt(self, room: str, row: CampaignRow) -> Attempt:
        attempt = self.state.rows[row.phone_number].find(room)
        assert attempt is not None
        return attempt

    def _started_at(self, room: str, row: CampaignRow) -> float:
        attempt = self.state.rows[row.phone_number].find(room)
        assert attempt is not None
        return attempt.started_at


# ------------------------------------------------------------------ results


def result_cells(progress: RowProgress | None, max_attempts: int) -> dict[str, str]:
    """The results columns of one row; `outcome` stays empty until it is final."""
    last = progress.last if progress else None
    if progress is None or last is None:
        return dict.fromkeys(RESULT_COLUMNS, "")
    return {
        "outcome": last.outcome if is_final(progress, max_attempts) else "",
        "attempts": str(sum(1 for a in progress.attempts if a.room)),
        "last_room": last.room,
        "sip_status": last.sip_status,
        "record_id": last.record_id,
        "error": last.error,
    }


def write_results(
    path: Path, campaign: CampaignFile, state: CampaignState, max_attempts: int
) -> None:
    """The input columns plus the results columns, one line per valid row; replaced
    atomically, so a reader never sees half a file."""
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        with temporary.open("w", encoding="utf-8", newline="") as out:
            writer = SafeCsvWriter(out)  # no cell a spreadsheet would run as a formula
            writer.writerow([*campaign.columns, *RESULT_COLUMNS])
            for row in campaign.rows:
                cells = result_cells(state.rows.get(row.phone_number), max_attempts)
                writer.writerow([*row.values, *(cells[c] for c in RESULT_COLUMNS)])
            out.flush()
            os.fsync(out.fileno())
        os.replace(temporary, path)
    except BaseException:
        with contextlib.suppress(OSError):
            temporary.unlink()
        raise


# ------------------------------------------------------------------ the plan (--dry-run)


ASSUMED_CALL_SECONDS = 120.0


def estimated_seconds(calls: int, options: CampaignOptions) -> float:
    """Rough time to place `calls` calls: limited by the rate or by the calls in progress
    (assuming ASSUMED_CALL_SECONDS each); retries and closed hours not counted."""
    if calls <= 0:
        return 0.0
    by_rate = calls / options.rate
    by_concurrency = math.ceil(calls / options.concurrency) * ASSUMED_CALL_SECONDS
    return max(by_rate, by_concurrency)


def plan_counts(
    campaign: CampaignFile, state: CampaignState, max_attempts: int, *, retry_unknown: bool = False
) -> dict[str, list[CampaignRow]]:
    """Valid rows by what a run would do with them: 'done', 'in progress', 'retry', 'call',
    and with retry_unknown 'unknown' (called again only if no channel shows they were)."""
    plan: dict[str, list[CampaignRow]] = {
        "done": [],
        "in progress": [],
        "retry": [],
        "call": [],
        "unknown": [],
    }
    for row in campaign.rows:
        progress = state.rows.get(row.phone_number)
        last = progress.last if progress else None
        if last is None:
            plan["call"].append(row)
        elif not last.outcome:
            plan["in progress"].append(row)
        elif retry_unknown and last.outcome == UNKNOWN:
            plan["unknown"].append(row)
        elif is_final(progress, max_attempts):
            plan["done"].append(row)
        else:
            plan["retry"].append(row)
    return plan
