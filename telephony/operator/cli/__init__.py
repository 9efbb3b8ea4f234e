"""`python -m telephony ...`: the operator's command line.

Each command group is a module here with `register(subparsers)`; to add one (`setup`,
`status`, `call`, `campaign`), write the module and list it in `COMMAND_GROUPS` with its
summary (it is imported only when its command runs; `python -m telephony` adds the development
tools' `bench` when they are installed). Import what a handler needs inside it, not at the top,
so that `--help` stays fast (tests/test_cli_startup.py checks what `--help` imports):

    # telephony/operator/cli/status.py
    def register(subparsers):
        add_command(subparsers, "status", summary="...", examples=[...], run=_status)

    def _status(args) -> int:
        ...
        return 0

A handler returns the exit code, raises CliError for a failure the user can fix
(`error: ...`, exit 1 or its own code) or UsageError for arguments that do not fit
together (usage, exit 2). SettingsError (exit 2) and StoreError (exit 1) are reported here
as one line each, never as a traceback.
"""

from __future__ import annotations

import argparse
import importlib
import os
import signal
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from typing import NoReturn, Protocol

from telephony.domain.env_files import load_env_files
from telephony.domain.settings import SettingsError
from telephony.operator.cli.base import CliError, UsageError, add_command

PROG = "python -m telephony"
# What a command that Ctrl-C stopped exits with (128 + SIGINT), never a traceback.
EXIT_INTERRUPTED = 130


class CommandGroup(Protocol):
    def register(self, subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
        """Add the group's command(s) to `subparsers`."""


@dataclass(frozen=True)
class LazyGroup:
    """A command group by module name and summaries: the module (and what it imports: the
    framework, SQLAlchemy, livekit-api) is imported only when one of its commands is chosen,
    so `--help` answers at once. `summaries` are those the module's parsers show
    (tests/test_cli_startup.py checks they agree)."""

    module: str
    summaries: dict[str, str]

    def register(self, subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
        for name, summary in self.summaries.items():
            add_command(subparsers, name, summary=summary)

    def load(self) -> CommandGroup:
        return importlib.import_module(self.module)  # type: ignore[return-value]


def _group(name: str, **summaries: str) -> LazyGroup:
    return LazyGroup(f"telephony.operator.cli.{name}", summaries)


COMMAND_GROUPS: tuple[LazyGroup, ...] = (
    _group(
        "calls",
        calls="Call records: list, show, export, stats; import the spool; retry webhooks.",
    ),
    _group(
        "setup",
        setup="Create or update the SIP trunks and the dispatch rule from the lk JSON files.",
    ),
    _group(
        "status",
        status="Check the settings and the LiveKit telephony setup; say what to fix.",
        doctor="The same as `status`.",
    ),
    _group("call", call="Place one outbound call: dispatch the agent to dial a number."),
    _group(
        "campaign",
        campaign="Call every number in a CSV file: limited, within calling hours, resumable.",
    ),
    _group(
        "dnc", dnc="The do-not-call list: numbers no call, campaign or dispatched job may dial."
    ),
    _group("web", web="Serve the call log in a browser: calls, one call's page, an overview."),
)


def chosen_groups(argv: Sequence[str], groups: Sequence[CommandGroup]) -> list[CommandGroup]:
    """`groups`, with the one whose command `argv` names loaded in full (the others stay
    one-line summaries; their parsers are not needed to parse this command line)."""
    command = next((a for a in argv if not a.startswith("-")), None)
    return [g.load() if isinstance(g, LazyGroup) and command in g.summaries else g for g in groups]


def build_parser(groups: Sequence[CommandGroup] = COMMAND_GROUPS) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=PROG,
        description=(
            "Operate the phone agent: set up and check telephony, place calls and "
            "campaigns, read call records."
        ),
        epilog=f"Run `{PROG} COMMAND --help` for a command's options and examples.",
    )
    subparsers = parser.add_subparsers(title="commands", metavar="COMMAND", required=True)
    for group in groups:
        group.register(subparsers)
    return parser


def main(argv: Sequence[str] | None = None, groups: Sequence[CommandGroup] = COMMAND_GROUPS) -> int:
    """Run one command; return its exit code (0 ok, 1 failed, 2 bad usage or settings)."""
    argv = sys.argv[1:] if argv is None else list(argv)
    parser = build_parser(chosen_groups(argv, groups))
    try:
        args = parser.parse_args(argv)
    except SystemExit as e:  # --help (0) or a usage error (2), already printed
        return e.code if isinstance(e.code, int) else (0 if e.code is None else 2)
    _mask_numbers_in_logs()
    # Only a command that opened the store can raise its error; imported once one runs.
    from telephony.records.store import StoreError

    try:
        return int(args.run(args))
    except UsageError as e:
        try:
            args._parser.error(str(e))
        except SystemExit as exit_:
            return exit_.code if isinstance(exit_.code, int) else 2
        return 2  # unreachable: error() always exits
    except SettingsError as e:
        _error("fix these settings (in .env.local or the environment):")
        for problem in e.problems:
            print(f"  - {problem}", file=sys.stderr)
        return 2
    except StoreError as e:
        _error(str(e))  # one sentence with the fix; never the password
        return 1
    except CliError as e:
        _error(str(e))
        return e.exit_code


def run(groups: Sequence[CommandGroup] = COMMAND_GROUPS) -> NoReturn:
    """The process entry point: read .env.local/.env (never over the environment), run."""
    try:
        load_env_files()
        code = main(groups=groups)
        sys.stdout.flush()
    except KeyboardInterrupt:
        interrupted()
    except BrokenPipeError:
        # `... | head` closed the pipe: stop quietly, and let Python not complain on exit.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        code = 1
    sys.exit(code)


def _mask_numbers_in_logs() -> None:
    """What a command logs (warnings, through Python's last-resort handler) is masked as the
    worker's logs are (MASK_PHONE_NUMBERS)."""
    from telephony.domain.log_masking import install_phone_masking
    from telephony.domain.settings import parse_settings

    install_phone_masking(parse_settings(deep_checks=False)[0].mask_phone_numbers)


def interrupted() -> NoReturn:
    """Ctrl-C: exit 130 quietly. A second Ctrl-C while exiting is ignored, so no traceback
    comes out of the clean-up either."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    sys.exit(EXIT_INTERRUPTED)


def _error(message: str) -> None:
    print(f"error: {message}", file=sys.stderr)
