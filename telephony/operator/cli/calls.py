"""`python -m telephony calls ...`: list, show, export and summarize call records; load the
spool of records saved while the database was down; retry webhook deliveries.

Phone numbers are shown in full: this is the operator's own database, read by the operator
(MASK_PHONE_NUMBERS is about logs, which travel further).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

from telephony.domain.settings import Settings, read_settings
from telephony.domain.spreadsheet import SafeCsvWriter
from telephony.domain.terminal_text import printable, printable_json
from telephony.operator import call_facts
from telephony.operator.cli.base import (
    CliError,
    UsageError,
    add_command,
    add_group,
    add_request_timeout,
    e164_arg,
    fields,
    local_minutes,
    local_seconds,
    milliseconds,
    minutes_seconds,
    positive_int_arg,
    since_arg,
    table,
    until_arg,
    utc_iso,
)
from telephony.operator.cli.metrics import (
    LATENCY_COLUMNS,
    PERCENTILE_DEFINITION,
    STATS_LATENCIES,
    CallStats,
    call_stats,
    measured,
    percentile,
)
from telephony.records.model import CallRecord, Outcome
from telephony.records.spool import SpooledLine, read_spool, spool_path

if TYPE_CHECKING:  # imported where used: `--help` loads no SQLAlchemy or aiohttp
    from telephony.records.store import CallStore, DeliveryState

DIRECTIONS = ("inbound", "outbound", "web")
OUTCOMES = tuple(o.value for o in Outcome)
P = "python -m telephony calls"

ANSWER_RATE_DEFINITION = (
    "answer rate = answered calls (the far end connected: a person or a voicemail machine) "
    "/ calls that tried to connect (every call except jobs rejected for bad metadata, "
    "which never dialed)"
)

CSV_COLUMNS = (
    "record_id",
    "call_id",
    "job_id",
    "room",
    "direction",
    "remote_number",
    "local_number",
    "trunk_id",
    "agent_name",
    "started_at",
    "answered_at",
    "ended_at",
    "duration_seconds",
    "talk_seconds",
    "outcome",
    "transfer_to",
    "sip_status_code",
    "sip_status",
    "error",
    "turns",
    "tool_calls",
    "llm_ttft_p50_ms",
    "e2e_p50_ms",
    "llm_prompt_tokens",
    "llm_completion_tokens",
    "tts_characters",
    "stt_audio_seconds",
)


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    commands = add_group(
        subparsers,
        "calls",
        summary="Call records: list, show, export, stats; import the spool; retry webhooks.",
        examples=[f"{P} list", f"{P} show SCL_abc123", f"{P} stats --since 2024-05-01"],
    )

    parser = add_command(
        commands,
        "list",
        summary="List calls, newest first.",
        details="Times are local. Phone numbers are shown in full (your own records).",
        examples=[
            f"{P} list",
            f"{P} list --outcome no-answer --direction outbound --since 2024-05-01",
            f"{P} list --number +15105550123 --limit 10",
            f"{P} list --since 2024-05-01T09:00 --until 2024-05-01T17:00 --json",
            f"{P} list --active",
        ],
        run=_list,
    )
    _add_filters(parser, limit_default=50)
    parser.add_argument(
        "--active",
        action="store_true",
        help="only the calls up now (outcome in-progress; the duration is so far)",
    )
    parser.add_argument("--json", action="store_true", help="print the records as a JSON array")

    parser = add_command(
        commands,
        "show",
        summary="Show one call: details, transcript, tool calls, latency, usage, webhook.",
        details=f"Latency in milliseconds; {PERCENTILE_DEFINITION}.",
        examples=[f"{P} show SCL_abc123", f"{P} show AJ_xyz --json"],
        run=_show,
    )
    parser.add_argument("id", help="the record id, SIP call id (SCL_...) or job id (AJ_...)")
    parser.add_argument("--json", action="store_true", help="print the record as JSON")

    parser = add_command(
        commands,
        "export",
        summary="Export calls as CSV (one row per call) or JSON lines (whole records).",
        details=(
            "CSV times are ISO 8601 in UTC; latency columns are per-call medians in ms.\n"
            "JSON lines: one record per line, the same JSON as the webhook and `show --json`."
        ),
        examples=[
            f"{P} export --format csv --output calls.csv",
            f"{P} export --format jsonl --since 2024-05-01 > may.jsonl",
        ],
        run=_export,
    )
    parser.add_argument("--format", required=True, choices=("csv", "jsonl"))
    parser.add_argument("--output", metavar="FILE", type=Path, help="write here (default stdout)")
    _add_filters(parser, limit_default=None)

    parser = add_command(
        commands,
        "stats",
        summary="Summarize calls: outcomes, answer rate, durations, latency percentiles.",
        details=(
            f"{ANSWER_RATE_DEFINITION}.\nLatency over all agent turns; {PERCENTILE_DEFINITION}."
        ),
        examples=[f"{P} stats", f"{P} stats --since 2024-05-01 --direction outbound"],
        run=_stats,
    )
    _add_filters(parser, limit_default=None, only=("since", "until", "direction", "number"))
    parser.add_argument("--json", action="store_true", help="print the numbers as JSON")

    parser = add_command(
        commands,
        "import-spool",
        summary="Load records the agent could not save (database down) into the database.",
        details=(
            "Every whole record is imported; records already in the database are left as\n"
            "they are (an in-progress one is completed), so importing twice is safe. The\n"
            "file is then renamed to <name>.imported-<timestamp> and kept. Lines that are\n"
            "not a call record are listed by line number and set aside in\n"
            "<name>.unreadable-<timestamp>. Exit 0: all imported; 3: all whole records\n"
            "imported, some lines set aside; 1: nothing imported (database unreachable)."
        ),
        examples=[f"{P} import-spool", f"{P} import-spool --file /backup/unsaved.jsonl"],
        run=_import_spool,
    )
    parser.add_argument(
        "--file",
        type=Path,
        help="the spool to load (default: unsaved-call-records.jsonl next to CALL_RECORDS_PATH)",
    )

    parser = add_command(
        commands,
        "deliver",
        summary="Send every queued webhook delivery now (needs CALL_WEBHOOK_URL).",
        details=(
            "The same delivery the worker runs every minute, for every queued record, now:\n"
            "records waiting out a retry delay are brought forward. Each is POSTed (up to 3\n"
            "tries), then marked delivered, or failed and due again after a growing delay\n"
            "(30 s ... 6 h); a receiver's 410 Gone stops that record's delivery for good.\n"
            "Exit 1 if any delivery failed or was refused."
        ),
        examples=[f"{P} deliver", f"{P} deliver --limit 200"],
        run=_deliver,
    )
    parser.add_argument(
        "--limit",
        type=positive_int_arg,
        metavar="N",
        help="at most N records (default: all that are due)",
    )
    add_request_timeout(parser)


def _add_filters(
    parser: argparse.ArgumentParser,
    *,
    limit_default: int | None,
    only: tuple[str, ...] = ("outcome", "direction", "since", "until", "number", "limit"),
) -> None:
    if "outcome" in only:
        parser.add_argument(
            "--outcome", choices=OUTCOMES, metavar="OUTCOME", help=", ".join(OUTCOMES)
        )
    if "direction" in only:
        parser.add_argument("--direction", choices=DIRECTIONS)
    if "since" in only:
        parser.add_argument(
            "--since",
            type=since_arg,
            metavar="DATE",
            help="calls started at or after: YYYY-MM-DD or YYYY-MM-DDTHH:MM[+offset] "
            "(local time without an offset)",
        )
    if "until" in only:
        parser.add_argument(
            "--until",
            type=until_arg,
            metavar="DATE",
            help="calls started before this time; a date alone includes that whole day",
        )
    if "number" in only:
        parser.add_argument(
            "--number", type=e164_arg, metavar="+E164", help="the remote or the local number"
        )
    if "limit" in only:
        default = str(limit_default) if limit_default else "all"
        parser.add_argument(
            "--limit",
            type=positive_int_arg,
            default=limit_default,
            metavar="N",
            help=f"at most N calls, the newest (default {default})",
        )


def _filters(args: argparse.Namespace) -> dict[str, Any]:
    names = ("outcome", "direction", "since", "until", "number")
    chosen = {name: getattr(args, name, None) for name in names}
    since, until = chosen["since"], chosen["until"]
    if since is not None and until is not None and since >= until:
        raise UsageError("--since must be earlier than --until")
    return chosen


@contextmanager
def _open_store(settings: Settings | None = None) -> Iterator[tuple[Settings, CallStore]]:
    from telephony.records.store import CallStore, database_url

    settings = settings or read_settings()
    with CallStore.open(database_url(settings.database_url, settings.call_records_path)) as store:
        yield settings, store


def _nothing_found(store: CallStore) -> None:
    if store.count() == 0:
        print(f"no calls recorded yet (database: {store.url})")
    else:
        print("no calls match these filters")


# ------------------------------------------------------------------ list


def _list(args: argparse.Namespace) -> int:
    filters = _filters(args)
    if args.active:
        if filters["outcome"] not in (None, Outcome.IN_PROGRESS.value):
            raise UsageError("--active lists the calls in progress: drop --outcome")
        filters["outcome"] = Outcome.IN_PROGRESS.value
    with _open_store() as (_, store):
        records = store.list(**filters, limit=args.limit + 1)
        more = len(records) > args.limit
        records = records[: args.limit]
        if args.json:
            _print_json([r.to_dict() for r in records])
            return 0
        if not records and args.active:
            print("no calls in progress")
            return 0
        if not records:
            _nothing_found(store)
            return 0
    now = time.time()
    headers = ("started", "direction", "remote number", "outcome", "duration", "SIP", "call id")
    rows = [
        (
            local_minutes(r.started_at),
            r.direction or "-",
            r.remote_number or "-",
            r.outcome.value,
            minutes_seconds(_so_far(r, now)),
            str(r.sip_status_code) if r.sip_status_code is not None else "-",
            r.call_id or r.record_id,
        )
        for r in records
    ]
    print(table(headers, rows, right=(4, 5)))
    if more:
        print(f"(the newest {args.limit} shown; more match: raise --limit or narrow the filters)")
    return 0


def _so_far(record: CallRecord, now: float) -> float:
    """A call's duration; for one still in progress, from its start until now."""
    if record.outcome is Outcome.IN_PROGRESS:
        return max(0.0, now - record.started_at)
    return record.duration_seconds


# ------------------------------------------------------------------ show


def _show(args: argparse.Namespace) -> int:
    with _open_store() as (_, store):
        record = store.get(args.id)
        if record is None:
            raise CliError(f"no call with id {args.id}")
        try:
            delivery: DeliveryState | None = store.delivery_state(record.record_id)
        except KeyError:  # deleted in between
            delivery = None
    if args.json:
        _print_json(record.to_dict())
        return 0
    print(describe(record, delivery))
    return 0


def describe(record: CallRecord, delivery: DeliveryState | None) -> str:
    """Everything about one call, for a person to read."""
    sections = [
        f"Call {printable(record.call_id or record.record_id)}\n{fields(_header(record))}",
        _transcript(record),
        _tool_calls(record),
        _latency(record),
        "Usage\n" + fields(call_facts.usage(record)),
        "Webhook delivery\n  " + call_facts.delivery(delivery, printable),
    ]
    return "\n\n".join(sections)


def _header(r: CallRecord) -> list[tuple[str, str]]:
    def at(ts: float | None) -> str:
        if ts is None:
            return "-"
        return f"{local_seconds(ts)} (+{minutes_seconds(ts - r.started_at)})"

    pairs = [
        ("record id", r.record_id),
        ("call id", r.call_id or "-"),
        ("job id", r.job_id or "-"),
        ("room", r.room or "-"),
        ("direction", r.direction or "-"),
        ("remote number", r.remote_number or "-"),
        ("local number", r.local_number or "-"),
        ("trunk", r.trunk_id or "-"),
        ("agent", r.agent_name or "-"),
        ("job metadata", r.job_metadata or "-"),
        ("started", local_seconds(r.started_at)),
        ("answered", at(r.answered_at) if r.answered_at is not None else "not answered"),
        ("ended", at(r.ended_at)),
        ("duration", call_facts.duration(r)),
        ("outcome", r.outcome.value),
    ]
    if r.transfer_to:
        pairs.append(("transferred to", r.transfer_to))
    if r.sip_status_code is not None or r.sip_status:
        status = " ".join(p for p in (str(r.sip_status_code or ""), r.sip_status) if p)
        pairs.append(("SIP status", status))
    if r.error:
        pairs.append(("error", r.error))
    return pairs


def _transcript(r: CallRecord) -> str:
    if not r.transcript:
        return "Transcript: none"
    rows = []
    for turn in r.transcript:
        text = printable(turn.text, newlines=True) + (" [interrupted]" if turn.interrupted else "")
        rows.append((minutes_seconds(turn.at - r.started_at), printable(turn.role), text))
    width = max(len(role) for _, role, _ in rows)
    lines = [f"Transcript ({len(rows)} turns; [interrupted]: cut off by the other side)"]
    for offset, role, text in rows:
        first, *rest = text.splitlines() or [""]
        prefix = f"  {offset:>5}  {role.ljust(width)}  "
        lines.append(prefix + first)
        lines.extend(" " * len(prefix) + more for more in rest)
    return "\n".join(lines)


def _tool_calls(r: CallRecord) -> str:
    if not r.tool_calls:
        return "Tool calls: none"
    lines = [f"Tool calls ({len(r.tool_calls)})"]
    for call in r.tool_calls:
        flag = "  [error]" if call.is_error else ""
        name, arguments, output = (printable(t) for t in (call.name, call.arguments, call.output))
        lines.append(f"  {minutes_seconds(call.at - r.started_at):>5}  {name}{flag}")
        lines.append(f"         arguments: {arguments or '-'}")
        lines.append(f"         output:    {output or '-'}")
    return "\n".join(lines)


def _latency(r: CallRecord) -> str:
    if not r.latency:
        return "Latency: no agent turns measured"
    headers = ("at", *(label for _, label in LATENCY_COLUMNS))
    rows = [
        (
            minutes_seconds(turn.at - r.started_at),
            *(milliseconds(getattr(turn, name)) for name, _ in LATENCY_COLUMNS),
        )
        for turn in r.latency
    ]
    for p in (50, 90):
        rows.append(
            (
                f"p{p}",
                *(milliseconds(percentile(measured(r.latency, n), p)) for n, _ in LATENCY_COLUMNS),
            )
        )
    body = table(headers, rows, right=range(1, len(headers)))
    indented = "\n".join("  " + line for line in body.splitlines())
    return f"Latency per agent turn (ms; '-': not measured)\n{indented}"


# ------------------------------------------------------------------ export


def _export(args: argparse.Namespace) -> int:
    filters = _filters(args)
    with _open_store() as (_, store):
        records = store.list(**filters, limit=args.limit)
    if args.output is None:
        _write_export(sys.stdout, records, args.format, terminal=sys.stdout.isatty())
        print(f"exported {len(records)} calls", file=sys.stderr)
        return 0
    try:
        with args.output.open("w", encoding="utf-8", newline="") as out:
            _write_export(out, records, args.format)
    except OSError as e:
        raise CliError(f"cannot write {args.output}: {e.strerror or e}") from e
    print(f"exported {len(records)} calls to {args.output}")
    return 0


def _write_export(
    out: IO[str], records: list[CallRecord], fmt: str, *, terminal: bool = False
) -> None:
    """`terminal`: CSV cells are shown with escaped control characters, as elsewhere on a
    terminal (a file gets them as they are)."""
    if fmt == "jsonl":
        for record in records:
            # The same JSON, with bidi and C1 controls escaped (json.dumps leaves them raw).
            out.write(printable_json(json.dumps(record.to_dict(), ensure_ascii=False)) + "\n")
        return
    writer = SafeCsvWriter(out)  # formulas in transcripts, names, metadata stay text
    writer.writerow(CSV_COLUMNS)
    for record in records:
        row = csv_row(record)
        cells = [row[column] for column in CSV_COLUMNS]
        writer.writerow(printable(c) if terminal and isinstance(c, str) else c for c in cells)


def csv_row(r: CallRecord) -> dict[str, Any]:
    def ms(name: str) -> str:
        value = percentile(measured(r.latency, name), 50)
        return "" if value is None else milliseconds(value)

    return {
        "record_id": r.record_id,
        "call_id": r.call_id,
        "job_id": r.job_id,
        "room": r.room,
        "direction": r.direction,
        "remote_number": r.remote_number,
        "local_number": r.local_number,
        "trunk_id": r.trunk_id,
        "agent_name": r.agent_name,
        "started_at": utc_iso(r.started_at),
        "answered_at": utc_iso(r.answered_at),
        "ended_at": utc_iso(r.ended_at),
        "duration_seconds": round(r.duration_seconds, 3),
        "talk_seconds": "" if r.talk_seconds is None else round(r.talk_seconds, 3),
        "outcome": r.outcome.value,
        "transfer_to": r.transfer_to,
        "sip_status_code": "" if r.sip_status_code is None else r.sip_status_code,
        "sip_status": r.sip_status,
        "error": r.error,
        "turns": len(r.transcript),
        "tool_calls": len(r.tool_calls),
        "llm_ttft_p50_ms": ms("llm_ttft"),
        "e2e_p50_ms": ms("end_of_speech_to_first_audio"),
        "llm_prompt_tokens": r.usage.llm_prompt_tokens,
        "llm_completion_tokens": r.usage.llm_completion_tokens,
        "tts_characters": r.usage.tts_characters,
        "stt_audio_seconds": round(r.usage.stt_audio_seconds, 3),
    }


# ------------------------------------------------------------------ stats


def _stats(args: argparse.Namespace) -> int:
    filters = _filters(args)
    with _open_store() as (_, store):
        records = store.list(**filters, limit=None)
        if not records and not args.json:
            _nothing_found(store)
            return 0
    stats = call_stats(records)
    if args.json:
        _print_json(stats_json(stats))
    else:
        print(describe_stats(stats))
    return 0


def stats_json(s: CallStats) -> dict[str, Any]:
    def ms(value: float | None) -> float | None:
        return None if value is None else round(value * 1000, 1)

    return {
        "total": s.total,
        "by_outcome": s.by_outcome,
        "answered": s.answered,
        "tried_to_connect": s.tried_to_connect,
        "answer_rate": None if s.answer_rate is None else round(s.answer_rate, 4),
        "mean_duration_seconds": s.mean_duration_seconds,
        "mean_talk_seconds": s.mean_talk_seconds,
        "latency_ms": {
            name: {"p50": ms(v.p50), "p90": ms(v.p90), "turns": v.turns}
            for name, v in s.latency.items()
        },
    }


def describe_stats(s: CallStats) -> str:
    outcomes = table(
        ("outcome", "calls"),
        [*((o, str(n)) for o, n in s.by_outcome.items()), ("total", str(s.total))],
        right=(1,),
    )
    if s.answer_rate is None:
        rate = "answer rate: - (no call tried to connect)"
    else:
        rate = (
            f"answer rate: {s.answer_rate:.1%} "
            f"({s.answered} answered of {s.tried_to_connect} that tried to connect)"
        )
    durations = fields(
        [
            ("mean duration (answered calls)", minutes_seconds(s.mean_duration_seconds)),
            ("mean talk time (answered calls)", minutes_seconds(s.mean_talk_seconds)),
        ],
        indent="",
    )
    latency = table(
        ("latency (ms, all turns)", "p50", "p90", "turns"),
        [
            (label, milliseconds(v.p50), milliseconds(v.p90), str(v.turns))
            for name, label in STATS_LATENCIES
            for v in [s.latency[name]]
        ],
        right=(1, 2, 3),
    )
    return "\n\n".join([outcomes, f"{rate}\n{durations}", latency])


# ------------------------------------------------------------------ import-spool


def _import_spool(args: argparse.Namespace) -> int:
    settings = read_settings()
    source: Path = args.file or spool_path(settings)
    if args.file is not None and not source.is_file():
        raise CliError(f"no file at {source}")
    if not source.is_file() or source.stat().st_size == 0:
        print(f"nothing to import: no spool at {source}")
        return 0
    with _open_store(settings) as (_, store):
        # Move it aside first: the agent appends to the spool by name, so records it saves
        # from now on start a new file instead of landing in one being imported.
        archive = _archive_name(source, "imported")
        try:
            source.rename(archive)
        except OSError as e:
            raise CliError(f"cannot rename {source} to {archive}: {e.strerror or e}") from e
        try:
            imported, existing, bad = _load_lines(store, archive, bool(settings.webhook_url))
        except BaseException:
            _put_back(archive, source)
            raise
    already = f" ({existing} already in the database, left as they were)" if existing else ""
    print(f"imported {imported} call record(s) from {source}{already}")
    print(f"the file is kept as {archive}")
    if not bad:
        return 0
    for line in bad:
        print(f"line {line.number}: not a call record ({line.problem})", file=sys.stderr)
    aside = _set_aside(source, bad)
    print(
        f"warning: {len(bad)} unreadable line(s) set aside in {aside}; every whole record "
        f"was imported. Fix them there and run `{P} import-spool --file {aside}`",
        file=sys.stderr,
    )
    return EXIT_LINES_SET_ASIDE


# import-spool's exit status when every whole record was imported but some lines were not
# records (torn by a crash, edited by hand): they wait in a file of their own.
EXIT_LINES_SET_ASIDE = 3


def _load_lines(
    store: CallStore, path: Path, queue_webhook: bool
) -> tuple[int, int, list[SpooledLine]]:
    """Import every whole record of the spool; return (imported, already stored, the lines
    that are not records). A record spooled twice (in progress, then finished) counts once."""
    imported = existing = 0
    bad: list[SpooledLine] = []
    latest: dict[str, CallRecord] = {}
    for line in read_spool(path):
        try:
            if line.record is None:
                raise ValueError(line.problem)
            record = _parse_record(line.record)
        except (ValueError, TypeError, AttributeError) as e:
            problem = line.problem or f"{type(e).__name__}: {e}"[:200]
            raw = line.raw or (json.dumps(line.record) + "\n").encode()
            bad.append(SpooledLine(line.number, None, problem, raw))
            continue
        known = latest.get(record.record_id)
        if known is None or known.outcome is Outcome.IN_PROGRESS:
            latest[record.record_id] = record  # the finished version wins
    for record in latest.values():
        stored = store.get(record.record_id)
        finishes = stored is not None and stored.outcome is Outcome.IN_PROGRESS
        if stored is not None and not (finishes and record.outcome is not Outcome.IN_PROGRESS):
            existing += 1  # saved since, or imported before: leave its delivery alone
            continue
        finished = record.outcome is not Outcome.IN_PROGRESS
        store.save(record, queue_webhook=queue_webhook and finished)
        imported += 1
    return imported, existing, bad


def _parse_record(data: dict[str, Any]) -> CallRecord:
    """One spool line's object as a record; ValueError/TypeError if it is not one a store
    can take (hand edits)."""
    record = CallRecord.from_dict(data)
    if not record.record_id or not isinstance(record.record_id, str):
        raise ValueError("no record_id")
    numbers = {"started_at": record.started_at, "ended_at": record.ended_at}
    if record.answered_at is not None:
        numbers["answered_at"] = record.answered_at
    for name, value in numbers.items():
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise TypeError(f"{name} is not a number")
    code = record.sip_status_code
    if code is not None and (isinstance(code, bool) or not isinstance(code, int)):
        raise TypeError("sip_status_code is not a whole number")
    texts = ("call_id", "job_id", "room", "direction", "remote_number", "local_number")
    for name in (*texts, "agent_name"):
        if not isinstance(getattr(record, name), str):
            raise TypeError(f"{name} is not text")
    return record


def _archive_name(source: Path, kind: str) -> Path:
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    candidate = source.with_name(f"{source.name}.{kind}-{stamp}")
    n = 1
    while candidate.exists():
        n += 1
        candidate = source.with_name(f"{source.name}.{kind}-{stamp}-{n}")
    return candidate


def _set_aside(source: Path, bad: list[SpooledLine]) -> Path:
    """The unreadable lines, each on a line of its own, in a file beside the spool."""
    aside = _archive_name(source, "unreadable")
    with aside.open("wb") as f:
        for line in bad:
            f.write(line.raw if line.raw.endswith(b"\n") else line.raw + b"\n")
    return aside


def _put_back(archive: Path, source: Path) -> None:
    """Import failed part-way: return every line to the spool (saving is idempotent)."""
    if not source.exists():
        archive.rename(source)
        return
    with source.open("a", encoding="utf-8") as spool:  # the agent spooled more meanwhile
        spool.write(archive.read_text(encoding="utf-8"))
    archive.unlink()


# ------------------------------------------------------------------ deliver


DELIVERY_BATCH = 50


def _deliver(args: argparse.Namespace) -> int:
    settings = read_settings()
    if not settings.webhook_url:
        raise CliError(
            "CALL_WEBHOOK_URL is not set: set it and CALL_WEBHOOK_SECRET "
            "(in .env.local or the environment) to deliver call records to your webhook",
            exit_code=2,
        )
    with _open_store(settings) as (_, store):
        from telephony.records.webhook import deliver_pending

        store.make_pending_due(now=time.time())
        delivered, failed, gone = asyncio.run(
            _deliver_due(
                deliver_pending, store, settings, limit=args.limit, timeout=args.request_timeout
            )
        )
    if delivered + failed + gone == 0:
        print("nothing to deliver: no queued webhook delivery is due")
        return 0
    print(
        f"delivered {delivered}, failed {failed}" + (f", refused (410 Gone) {gone}" if gone else "")
    )
    if failed:
        print(
            "failed deliveries stay queued and are retried later (see `calls show ID`)",
            file=sys.stderr,
        )
    if gone:
        print(
            "the receiver answered 410 Gone: those records are never sent again "
            "(the reason is in `calls show ID`)",
            file=sys.stderr,
        )
    return 1 if failed or gone else 0


async def _deliver_due(
    deliver_pending: Any,
    store: CallStore,
    settings: Settings,
    *,
    limit: int | None,
    timeout: float,
) -> tuple[int, int, int]:
    """(delivered, failed, gone): batches until nothing more is due (or `limit` records
    were tried). Each claimed record ends delivered, gone or due again later, so this ends."""
    delivered = failed = gone = 0
    while limit is None or delivered + failed + gone < limit:
        tried = delivered + failed + gone
        batch = DELIVERY_BATCH if limit is None else min(DELIVERY_BATCH, limit - tried)
        report = await deliver_pending(
            store, settings.webhook_url, settings.webhook_secret, limit=batch, timeout=timeout
        )
        delivered += report.delivered
        failed += report.failed
        gone += report.gone
        if report.delivered + report.failed + report.gone < batch:
            break
    return delivered, failed, gone


# ------------------------------------------------------------------ helpers


def _print_json(data: Any) -> None:
    print(printable_json(json.dumps(data, indent=2, ensure_ascii=False)))
