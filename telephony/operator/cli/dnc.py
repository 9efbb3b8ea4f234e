"""`python -m telephony dnc add|remove|list|import|export`: the do-not-call list.

Numbers on the list are never dialled by any path: `call`, campaigns, and the worker itself
on a dispatched job (telephony.worker.dial_guard). Callees join it themselves by asking not
to be called again during a call (the opt_out tool, source `opt-out`).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import IO

from telephony.domain.csv_records import CsvFormatError, csv_records
from telephony.domain.phone_numbers import InvalidDestination, human_number
from telephony.domain.settings import read_settings
from telephony.domain.spreadsheet import SafeCsvWriter
from telephony.domain.terminal_text import printable
from telephony.operator.cli.base import (
    CliError,
    add_command,
    add_group,
    e164_arg,
    local_seconds,
    positive_int_arg,
    table,
    utc_iso,
)
from telephony.records.do_not_call import MAX_NOTE_CHARS, DoNotCallEntry, DoNotCallList
from telephony.records.store import CallStore, database_url

P = "python -m telephony dnc"
PHONE_COLUMN = "phone_number"
NOTE_COLUMN = "note"
MAX_IMPORT_BYTES = 20 * 10**6
MAX_IMPORT_ROWS = 100_000
EXPORT_COLUMNS = ("phone_number", "added_at", "source", "record_id", "note")


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    commands = add_group(
        subparsers,
        "dnc",
        summary="The do-not-call list: numbers no call, campaign or dispatched job may dial.",
        examples=[f"{P} add +15105550123", f"{P} list", f"{P} import blocked.csv"],
    )
    parser = add_command(
        commands,
        "add",
        summary="Add numbers to the list (source: operator).",
        examples=[f"{P} add +15105550123 '+44 20 7946 0000' --note 'asked by email'"],
        run=_add,
    )
    parser.add_argument("numbers", nargs="+", type=e164_arg, metavar="NUMBER")
    parser.add_argument("--note", default="", help=f"why (at most {MAX_NOTE_CHARS} characters)")
    parser = add_command(
        commands,
        "remove",
        summary="Remove numbers from the list (only when the person asked to be called again).",
        examples=[f"{P} remove +15105550123"],
        run=_remove,
    )
    parser.add_argument("numbers", nargs="+", type=e164_arg, metavar="NUMBER")
    parser = add_command(
        commands,
        "list",
        summary="List the numbers, newest first, with when, how and from which call.",
        examples=[f"{P} list", f"{P} list --limit 20"],
        run=_list,
    )
    parser.add_argument("--limit", type=positive_int_arg, metavar="N", help="at most N rows")
    parser = add_command(
        commands,
        "import",
        summary="Add every number of a CSV file (source: import); nothing is added if a row "
        "is bad.",
        details=(
            f"UTF-8 CSV, a header naming a {PHONE_COLUMN} column (optionally {NOTE_COLUMN});\n"
            f"at most {MAX_IMPORT_BYTES // 10**6} MB and {MAX_IMPORT_ROWS:,} rows. Numbers may be\n"
            "written with spaces, dashes or dots; a row whose number is not valid refuses the\n"
            "whole file, naming its line. Numbers already listed keep their first entry."
        ),
        examples=[f"{P} import blocked.csv"],
        run=_import,
    )
    parser.add_argument("file", type=Path)
    parser = add_command(
        commands,
        "export",
        summary="Write the list as CSV (spreadsheet-safe): " + ", ".join(EXPORT_COLUMNS) + ".",
        examples=[f"{P} export dnc.csv", f"{P} export -"],
        run=_export,
    )
    parser.add_argument("file", help="the CSV file to write, or - for standard output")


def _open() -> CallStore:
    settings = read_settings()
    return CallStore.open(database_url(settings.database_url, settings.call_records_path))


def _add(args: argparse.Namespace) -> int:
    if len(args.note) > MAX_NOTE_CHARS:
        raise CliError(f"--note has {len(args.note)} characters; at most {MAX_NOTE_CHARS}")
    now = time.time()
    entries = [DoNotCallEntry(n, now, "operator", note=args.note) for n in args.numbers]
    with _open() as store:
        new = DoNotCallList(store).add(entries)
    print(f"added {new} number(s); {len(set(args.numbers)) - new} already listed")
    return 0


def _remove(args: argparse.Namespace) -> int:
    with _open() as store:
        removed = DoNotCallList(store).remove(args.numbers)
    print(f"removed {removed} number(s); {len(set(args.numbers)) - removed} were not listed")
    return 0


def _list(args: argparse.Namespace) -> int:
    with _open() as store:
        dnc = DoNotCallList(store)
        entries, total = dnc.entries(limit=args.limit), dnc.count()
    rows = [
        [e.phone_number, local_seconds(e.added_at), e.source, e.record_id or "-", e.note]
        for e in entries
    ]
    if rows:
        print(table(["number", "added", "source", "call record", "note"], rows))
    print(
        f"{total} number(s) on the do-not-call list"
        + (f", {len(rows)} shown" if rows and len(rows) < total else "")
    )
    return 0


def read_import_file(path: Path) -> list[tuple[str, str]]:
    """(E.164 number, note) per row; CliError naming the file and line for anything wrong."""
    try:
        size = path.stat().st_size
        if size > MAX_IMPORT_BYTES:
            raise CliError(f"{path} has {size:,} bytes, over {MAX_IMPORT_BYTES:,}: split it")
        text = path.read_bytes().decode("utf-8").removeprefix("\ufeff")
    except OSError as e:
        raise CliError(f"cannot read {path}: {e.strerror or e}") from None
    except UnicodeDecodeError as e:
        raise CliError(
            f"{path} is not UTF-8 text (byte offset {e.start}): save it as UTF-8"
        ) from None
    rows: list[tuple[str, str]] = []
    try:
        records = csv_records(text, max_rows=MAX_IMPORT_ROWS, max_field_chars=MAX_NOTE_CHARS)
        first = next(records, None)
        if first is None:
            raise CliError(f"{path} is empty: write a header line with a {PHONE_COLUMN} column")
        header = [name.strip().lower() for name in first[1]]
        if header.count(PHONE_COLUMN) != 1:
            raise CliError(f"{path}: the header line must name one {PHONE_COLUMN} column")
        phone = header.index(PHONE_COLUMN)
        note = header.index(NOTE_COLUMN) if NOTE_COLUMN in header else None
        for line, record in records:
            cells = record + [""] * (len(header) - len(record))
            try:
                number = human_number(cells[phone], field=PHONE_COLUMN)
            except InvalidDestination as e:
                raise CliError(f"{path} line {line}: {e}; nothing was imported") from None
            rows.append((number, cells[note].strip() if note is not None else ""))
    except CsvFormatError as e:
        raise CliError(f"{path} {e}; nothing was imported") from None
    return rows


def _import(args: argparse.Namespace) -> int:
    rows = read_import_file(args.file)
    now = time.time()
    entries = [DoNotCallEntry(number, now, "import", note=note) for number, note in rows]
    with _open() as store:
        new = DoNotCallList(store).add(entries)
    print(
        printable(
            f"imported {args.file}: {len(rows)} row(s), {new} number(s) added, "
            f"{len(rows) - new} already listed"
        )
    )
    return 0


def _export(args: argparse.Namespace) -> int:
    with _open() as store:
        entries = DoNotCallList(store).entries()
    if args.file == "-":
        _write(sys.stdout, entries)
        return 0
    try:
        with Path(args.file).open("w", encoding="utf-8", newline="") as out:
            _write(out, entries)
    except OSError as e:
        raise CliError(f"cannot write {args.file}: {e.strerror or e}") from None
    print(printable(f"exported {len(entries)} number(s) to {args.file}"))
    return 0


def _write(out: IO[str], entries: list[DoNotCallEntry]) -> None:
    writer = SafeCsvWriter(out)  # a note a spreadsheet would run as a formula stays text
    writer.writerow(EXPORT_COLUMNS)
    for e in entries:
        writer.writerow([e.phone_number, utc_iso(e.added_at), e.source, e.record_id, e.note])
