"""`python -m telephony campaign FILE.csv`: call every number of a CSV file, within limits,
resumably. The scheduling lives in telephony/operator/campaign.py; this wires the real LiveKit
dispatcher, the call records store, the clock and the console to it."""

from __future__ import annotations

import argparse
import asyncio
import shutil
import sys
from collections.abc import Collection
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, TextIO

from telephony.domain.business_hours import Schedule, calling_schedule
from telephony.domain.callee_hours import CalleeHours, callee_hours, next_call_time
from telephony.domain.settings import Settings, read_settings
from telephony.domain.terminal_text import printable
from telephony.operator.cli.base import (
    CliError,
    UsageError,
    add_command,
    add_request_timeout,
    local_seconds,
    number_arg,
    positive_seconds_arg,
    seconds_arg,
    whole_number_arg,
)
from telephony.records.spool import SPOOL_NAME, spool_path

if TYPE_CHECKING:  # imported where used: `--help` loads neither livekit-api nor SQLAlchemy
    from telephony.operator.campaign import (
        CampaignFile,
        CampaignOptions,
        CampaignRow,
        CampaignState,
        NoRecordsComing,
        Progress,
    )
    from telephony.records.store import CallStore

# For the help text, without importing the campaign's dispatch machinery: the input's number
# column and the columns the results add (telephony.operator.campaign's PHONE_COLUMN and
# RESULT_COLUMNS; tests/test_cli_startup.py checks they agree).
PHONE_COLUMN = "phone_number"
RESULT_COLUMNS = ("outcome", "attempts", "last_room", "sip_status", "record_id", "error")

P = "python -m telephony campaign"
SKIPPED_SHOWN = 20  # skipped rows listed (--list-skipped lists them all)
PLAN_ROWS_SHOWN = 20
PROGRESS_EVERY_SECONDS = 30.0  # progress lines when the output is not a terminal


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = add_command(
        subparsers,
        "campaign",
        summary="Call every number in a CSV file: limited, within calling hours, resumable.",
        details=(
            f"The CSV (UTF-8) has a header line with a {PHONE_COLUMN} column (E.164); every other\n"
            "column is passed to the agent as the call's context. Rows without a valid number,\n"
            "and numbers already on an earlier row, are listed and skipped.\n"
            "\n"
            "At most --concurrency calls are in progress at once (from the dispatch until the\n"
            "call's record is saved, or --call-timeout: outcome 'unknown'), at most --rate\n"
            "dispatches leave per second, and only within OUTBOUND_CALLING_HOURS (else it waits\n"
            "for the next opening; --ignore-hours dials anyway, with force), and only within\n"
            "each callee's own CALLEE_CALLING_HOURS (from the number's time zones; a row waits\n"
            "for its window, --dry-run shows when). Numbers on the do-not-call list are never\n"
            "dialled (outcome do-not-call; checked before each dispatch). busy and no-answer\n"
            "are retried up to --max-attempts, --retry-after x the attempts made after the last\n"
            "outcome; every other outcome is final.\n"
            "\n"
            "Resumable: every step is written to a state file (default FILE.campaign.jsonl)\n"
            "before it happens. Stop it (Ctrl-C, exit 130) and run the same command again: rows\n"
            "with an outcome are skipped and calls that were in progress are looked up by room,\n"
            "never dialed twice. A call's record is looked for in the store and in the\n"
            f"worker's spool ({SPOOL_NAME}); a call with none is waited\n"
            "for while LiveKit shows someone in its room, then ends 'unknown': never\n"
            "redialed, unless --retry-unknown and no record or LiveKit room shows it was\n"
            "placed. Results (default FILE.results.csv): the input columns plus\n"
            f"{', '.join(RESULT_COLUMNS)}; outcome is empty until final.\n"
            "\n"
            "Exit 0 when every row has a final outcome (whatever it is), 1 when dispatching had\n"
            "to stop (LiveKit refused or failed: run again to resume), 2 for an unusable file\n"
            "or options (no valid row, not UTF-8, a malformed CSV row, over 20 MB or 100,000\n"
            "rows, no phone_number column), 130 on Ctrl-C."
        ),
        examples=[
            f"{P} contacts.csv --dry-run",
            f"{P} contacts.csv",
            f"{P} contacts.csv --concurrency 5 --rate 2 --results out/contacts-results.csv",
            f"{P} contacts.csv --max-attempts 1 --ignore-hours",
        ],
        run=_campaign,
    )
    add_request_timeout(parser)
    parser.add_argument("file", type=Path, help=f"the CSV file: a {PHONE_COLUMN} column and more")
    parser.add_argument(
        "--concurrency",
        type=whole_number_arg(1, 1000),
        default=2,
        metavar="N",
        help="calls in progress at once (default 2)",
    )
    parser.add_argument(
        "--rate",
        type=number_arg(0, 1000, unit="dispatches per second", above=True),
        default=1.0,
        metavar="CPS",
        help="dispatches per second at most (default 1.0)",
    )
    parser.add_argument(
        "--max-attempts",
        type=whole_number_arg(1, 100),
        default=3,
        metavar="N",
        help="attempts per number when busy or not answered (default 3)",
    )
    parser.add_argument(
        "--retry-after",
        type=seconds_arg,
        default=300.0,
        metavar="SECONDS",
        help="wait before a retry, times the attempts made (default 300: 5 min, then 10)",
    )
    parser.add_argument(
        "--results",
        type=Path,
        metavar="FILE",
        help="the results CSV (default: FILE.results.csv next to the input)",
    )
    parser.add_argument(
        "--state",
        type=Path,
        metavar="FILE",
        help="the state file that makes it resumable (default: FILE.campaign.jsonl)",
    )
    parser.add_argument(
        "--call-timeout",
        type=positive_seconds_arg,
        metavar="SECONDS",
        help="no record this long after the dispatch: outcome unknown (default: ring "
        "timeout + MAX_CALL_DURATION_SECONDS, or 10 min when unlimited, + 1 min)",
    )
    parser.add_argument(
        "--poll-interval",
        type=number_arg(0, 3600, unit="seconds", above=True),
        default=1.0,
        metavar="SECONDS",
        help="how often to look for the records of calls in progress (default 1)",
    )
    parser.add_argument(
        "--dry-run",
        action="store_true",
        help="check the file and print the plan; dispatch nothing",
    )
    parser.add_argument(
        "--list-skipped",
        action="store_true",
        help=f"list every skipped row (default: the first {SKIPPED_SHOWN} and a count)",
    )
    parser.add_argument(
        "--retry-unknown",
        action="store_true",
        help="call again the numbers whose earlier call ended 'unknown' (no call record "
        "came) and that no channel shows were called: no record in the store or the spool, "
        "nobody in the call's LiveKit room, no worker seen taking it; the others stay "
        "'unknown', so that nobody is called twice",
    )
    parser.add_argument(
        "--ignore-hours",
        action="store_true",
        help="call outside OUTBOUND_CALLING_HOURS too (the agent is told force=true)",
    )


def default_results_path(source: Path) -> Path:
    return source.with_name(f"{source.stem}.results.csv")


def default_state_path(source: Path) -> Path:
    return source.with_name(f"{source.stem}.campaign.jsonl")


# ------------------------------------------------------------------ the command


def _campaign(args: argparse.Namespace) -> int:
    from telephony.operator.campaign import (
        CampaignFileError,
        CampaignOptions,
        CampaignState,
        CampaignStateError,
        CampaignStopped,
        NoRecordsComing,
        plan_counts,
        read_campaign_file,
    )
    from telephony.operator.outbound_dispatch import default_call_timeout, require_livekit_settings
    from telephony.records.store import CallStore, database_url

    source: Path = args.file
    results_path: Path = args.results or default_results_path(source)
    state_path: Path = args.state or default_state_path(source)
    paths = {"the input": source, "--results": results_path, "--state": state_path}
    if len({p.expanduser().absolute() for p in paths.values()}) < len(paths):
        raise UsageError("the input file, --results and --state must be three different files")
    for option, path in (("--results", results_path), ("--state", state_path)):
        if not path.absolute().parent.is_dir():
            raise UsageError(f"{option} {path}: the folder {path.parent} does not exist")
    try:
        campaign = read_campaign_file(source)
    except CampaignFileError as e:
        raise CliError(str(e), exit_code=2) from None
    settings = read_settings()
    options = CampaignOptions(
        concurrency=args.concurrency,
        rate=args.rate,
        max_attempts=args.max_attempts,
        retry_after=args.retry_after,
        call_timeout=args.call_timeout or default_call_timeout(settings),
        poll_interval=args.poll_interval,
        ignore_hours=args.ignore_hours,
        retry_unknown=args.retry_unknown,
    )
    schedule = calling_schedule(settings)
    local_hours = callee_hours(settings)
    _print_skipped(campaign, limit=None if args.list_skipped else SKIPPED_SHOWN)
    if not campaign.rows:
        problem = "every row was skipped" if campaign.skipped else "it has no rows"
        raise CliError(f"nothing to call in {source}: {problem}", exit_code=2)
    if args.dry_run:
        listed, dnc_problem = _listed_for_plan(settings, campaign)
        rows = _print_plan(campaign, options, schedule, state_path, results_path)
        _print_times(rows, options, schedule, local_hours, listed, dnc_problem)
        print("\ndry run: nothing was dispatched")
        return 0

    require_livekit_settings(settings)
    try:
        state = CampaignState.open(state_path, source=source)
    except CampaignStateError as e:
        raise CliError(str(e)) from None
    reporter = ConsoleReporter(sys.stdout)
    url = database_url(settings.database_url, settings.call_records_path)
    with state, CallStore.open(url) as store:
        plan = plan_counts(
            campaign, state, options.max_attempts, retry_unknown=options.retry_unknown
        )
        print(
            f"campaign {source}: {len(campaign.rows)} numbers: {len(plan['done'])} done, "
            f"{len(plan['in progress'])} in progress, {len(plan['retry'])} to retry, "
            f"{len(plan['call'])} to call" + _unknown_text(plan)
        )
        print(f"results: {results_path}  state: {state_path}", flush=True)
        try:
            progress = asyncio.run(
                _run(
                    campaign,
                    state,
                    options,
                    settings,
                    schedule,
                    local_hours,
                    store,
                    reporter,
                    results_path,
                    request_timeout=args.request_timeout,
                )
            )
        except KeyboardInterrupt:
            reporter.close()
            print(
                f"stopped (Ctrl-C): calls in progress go on; run the same command again to "
                f"resume (state: {state_path})",
                file=sys.stderr,
            )
            return 130
        except NoRecordsComing as e:
            reporter.close()
            raise CliError(no_records_advice(e, settings)) from None
        except CampaignStopped as e:
            reporter.close()
            raise CliError(
                f"{e}\nnothing more was dispatched; the state is saved: run the same command "
                "again to resume"
            ) from None
        finally:
            reporter.close()
    print(f"campaign finished: {progress.describe()}")
    print(f"results: {results_path}")
    return 0


def no_records_advice(stop: NoRecordsComing, settings: Settings) -> str:
    """The likely causes of calls ending with no record, most likely first by what LiveKit
    showed, and what to do; following it never calls anyone twice."""
    from telephony.operator.campaign import NOT_TAKEN, TAKEN

    spool = (
        "the worker cannot reach the call records store (DATABASE_URL), so it keeps its "
        f"records in its spool ({spool_path(settings)} here; {SPOOL_NAME} beside "
        "CALL_RECORDS_PATH where the worker runs): once the store is reachable, run "
        "`python -m telephony calls import-spool` on the worker's machine"
    )
    worker = (
        f"no worker is running under the agent name '{settings.agent_name}' "
        "(LIVEKIT_AGENT_NAME), so nobody answers the dispatches: start one (`python agent.py "
        "start`) and check `python -m telephony status`"
    )
    taken = stop.evidence.get(TAKEN, 0)
    not_taken = stop.evidence.get(NOT_TAKEN, 0)
    total = sum(stop.evidence.values())
    # A worker took calls but no record came: its records go elsewhere (the spool). No
    # worker took any: nobody is running. Unclear: the spool first, as it costs a redial.
    causes = [worker, spool] if not_taken == total else [spool, worker]
    if taken:
        causes[0] = f"{causes[0]} (LiveKit showed a worker taking {taken} of these calls)"
    lines = [f"{stop}. Likely causes, most likely first:"]
    lines += [f"  {i}. {cause}" for i, cause in enumerate(causes, start=1)]
    lines.append(
        "Then run the same command again: it takes the outcomes from the store and the spool. "
        "--retry-unknown calls a number again only if no record and no LiveKit room shows it "
        f"was called ({not_taken} of these {total} call(s) are known never to have been "
        "placed); the others stay 'unknown', so nobody is called twice"
    )
    return "\n".join(lines)


async def _run(
    campaign: CampaignFile,
    state: CampaignState,
    options: CampaignOptions,
    settings: Settings,
    schedule: Schedule | None,
    local_hours: CalleeHours | None,
    store: CallStore,
    reporter: ConsoleReporter,
    results_path: Path,
    *,
    request_timeout: float,
) -> Progress:
    from telephony.operator.campaign import CampaignRunner
    from telephony.operator.outbound_dispatch import LiveKitDispatcher, RecordFinder
    from telephony.records.do_not_call import DoNotCallList

    finder = RecordFinder(store, spool_path(settings))
    dnc = DoNotCallList(store)

    async def listed(numbers: Collection[str]) -> set[str]:
        return await asyncio.to_thread(dnc.listed, numbers)

    async with LiveKitDispatcher(settings, timeout=request_timeout) as dispatcher:
        runner = CampaignRunner(
            campaign,
            state,
            options,
            dispatch=dispatcher.dispatch,
            lookup=finder.find,
            livekit=dispatcher,
            spool_problem=finder.spool_problem,
            schedule=schedule,
            callee_hours=local_hours,
            do_not_call=listed,
            reporter=reporter,
            results_path=results_path,
        )
        return await runner.run()


# ------------------------------------------------------------------ output


class ConsoleReporter:
    """Progress as one updating line on a terminal; plain lines every so often otherwise."""

    def __init__(
        self, out: TextIO, *, tty: bool | None = None, every: float = PROGRESS_EVERY_SECONDS
    ) -> None:
        self.out = out
        self.tty = out.isatty() if tty is None else tty
        self.every = every
        self._shown = ""  # the progress line on screen (terminal) or last printed
        self._on_screen = False
        self._printed_at: float | None = None

    def note(self, text: str) -> None:
        self._clear()
        print(printable(text), file=self.out, flush=True)  # may quote a row or a record
        if self.tty and self._shown:
            self._draw(self._shown)

    def progress(self, progress: Progress, now: float) -> None:
        text = progress.describe()
        if self.tty:
            if text != self._shown or not self._on_screen:
                self._draw(text)
            return
        finished = progress.done == progress.total
        due = self._printed_at is None or now - self._printed_at >= self.every
        if text != self._shown and (due or finished):
            print(text, file=self.out, flush=True)
            self._shown, self._printed_at = text, now

    def close(self) -> None:
        if self.tty and self._on_screen:
            self.out.write("\n")
            self.out.flush()
            self._on_screen = False

    def _draw(self, text: str) -> None:
        width = shutil.get_terminal_size().columns - 1
        shown = text if len(text) <= width else text[: max(0, width - 1)] + "…"
        self.out.write(f"\r\x1b[K{shown}")
        self.out.flush()
        self._shown, self._on_screen = text, True

    def _clear(self) -> None:
        if self.tty and self._on_screen:
            self.out.write("\r\x1b[K")
            self._on_screen = False


def _print_skipped(campaign: CampaignFile, *, limit: int | None) -> None:
    skipped = campaign.skipped
    if not skipped:
        return
    print(f"{campaign.path}: {len(skipped)} row(s) skipped:", file=sys.stderr)
    for row in skipped[:limit]:
        print(f"  line {row.line}: {printable(row.reason)}", file=sys.stderr)
    if limit is not None and len(skipped) > limit:
        more = len(skipped) - limit
        print(
            f"  ... and {more} more (`{P} {campaign.path} --dry-run --list-skipped` lists "
            "them all)",
            file=sys.stderr,
        )


def _print_plan(
    campaign: CampaignFile,
    options: CampaignOptions,
    schedule: Schedule | None,
    state_path: Path,
    results_path: Path,
) -> list[CampaignRow]:
    """Print the plan; return the rows a run would call (new ones and retries)."""
    from telephony.operator.campaign import (
        ASSUMED_CALL_SECONDS,
        CampaignState,
        CampaignStateError,
        estimated_seconds,
        plan_counts,
    )

    try:
        state = CampaignState.read(state_path)
    except CampaignStateError as e:
        raise CliError(str(e)) from None
    plan = plan_counts(campaign, state, options.max_attempts, retry_unknown=options.retry_unknown)
    calls = len(plan["call"]) + len(plan["retry"])
    print(
        f"{campaign.path}: {len(campaign.rows)} number(s), {len(campaign.skipped)} row(s) skipped"
    )
    if state_path.exists():
        print(
            f"state: {state_path}: {len(plan['done'])} done, {len(plan['in progress'])} in "
            f"progress, {len(plan['retry'])} to retry, {len(plan['call'])} not called yet"
            + _unknown_text(plan)
        )
    else:
        print(f"state: {state_path} (new campaign)")
    print(f"calling window: {_window(schedule, options)}")
    retries = ", ".join(f"{options.retry_after * n:g} s" for n in range(1, options.max_attempts))
    print(
        f"limits: {options.concurrency} call(s) at once, at most {options.rate:g} dispatch(es) "
        f"per second, up to {options.max_attempts} attempt(s) for busy and no-answer"
        + (f" (retries after {retries})" if retries else "")
    )
    if calls:
        print(
            f"estimated time: {_duration(estimated_seconds(calls, options))} for {calls} "
            f"call(s) (assuming {ASSUMED_CALL_SECONDS / 60:g} min per call; retries and "
            "closed hours add to it)"
        )
    elif plan["in progress"]:
        print("nothing new to call: a run would wait for the calls still in progress")
    else:
        print("nothing left to call: every number has a final outcome")
    print(f"results: {results_path}")
    return plan["call"] + plan["retry"]


def _listed_for_plan(settings: Settings, campaign: CampaignFile) -> tuple[set[str], str]:
    """The rows' numbers on the do-not-call list, or a problem when it cannot be read."""
    from telephony.records.do_not_call import DoNotCallList
    from telephony.records.store import CallStore, StoreError, database_url

    try:
        url = database_url(settings.database_url, settings.call_records_path)
        with CallStore.open(url) as store:
            return DoNotCallList(store).listed(r.phone_number for r in campaign.rows), ""
    except StoreError as e:
        return set(), str(e)


def _print_times(
    rows: list[CampaignRow],
    options: CampaignOptions,
    schedule: Schedule | None,
    local_hours: CalleeHours | None,
    listed: set[str],
    dnc_problem: str,
) -> None:
    """Each row still to call, and when it would be called (both windows open)."""
    if dnc_problem:
        print(f"do-not-call list: not checked ({dnc_problem}); a run checks each number")
    else:
        print(f"do-not-call list: {len(listed & {r.phone_number for r in rows})} of these listed")
    if local_hours is not None and not options.ignore_hours:
        print(f"callee calling hours: {local_hours.text} in each callee's time zone")
    if not rows:
        return
    now = datetime.now(UTC)
    print(f"\nto call ({len(rows)}):")
    for row in rows[:PLAN_ROWS_SHOWN]:
        context = printable(", ".join(f"{k}={v}" for k, v in row.context.items()))
        when = _when(row, now, options, schedule, local_hours, listed)
        print(
            f"  line {row.line}: {row.phone_number}  {when}" + (f"  {context}" if context else "")
        )
    if len(rows) > PLAN_ROWS_SHOWN:
        print(f"  ... and {len(rows) - PLAN_ROWS_SHOWN} more")


def _when(
    row: CampaignRow,
    now: datetime,
    options: CampaignOptions,
    schedule: Schedule | None,
    local_hours: CalleeHours | None,
    listed: set[str],
) -> str:
    if row.phone_number in listed:
        return "never: on the do-not-call list"
    if options.ignore_hours:
        return "now (--ignore-hours)"
    when = next_call_time(row.phone_number, now, operator=schedule, callee=local_hours)
    zone = local_hours.describe(row.phone_number) if local_hours else ""
    if when is None:
        return f"never within 14 days ({zone or 'OUTBOUND_CALLING_HOURS'})"
    at = "now" if when == now else local_seconds(when.timestamp())
    return f"calls {at}" + (f" ({zone})" if zone else "")


def _unknown_text(plan: dict[str, list[CampaignRow]]) -> str:
    if not plan["unknown"]:
        return ""
    return (
        f", {len(plan['unknown'])} unknown to check (--retry-unknown calls one again only if "
        "no record and no LiveKit room shows it was called)"
    )


def _window(schedule: Schedule | None, options: CampaignOptions) -> str:
    if options.ignore_hours:
        return "ignored (--ignore-hours: calls are placed at any time, with force)"
    if schedule is None:
        return "always open (OUTBOUND_CALLING_HOURS / BUSINESS_HOURS not set)"
    now = datetime.now(UTC)
    if schedule.is_open(now):
        return f"{schedule.describe()}: open now"
    opening = schedule.next_opening(now)
    if opening is None:
        return f"{schedule.describe()}: closed, and not open in the next 14 days"
    return f"{schedule.describe()}: closed now, opens {local_seconds(opening.timestamp())}"


def _duration(seconds: float) -> str:
    minutes = round(seconds / 60)
    if minutes < 1:
        return "under a minute"
    if minutes < 120:
        return f"about {minutes} min"
    return f"about {minutes // 60} h {minutes % 60:02d} min"
