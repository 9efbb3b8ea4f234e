"""`python -m telephony ...`: the operator's command line.

Each command group is a module here with `register(subparsers)`; to add one (`setup`,
`status`, `call`, `campaign`), write the module and list it in `COMMAND_GROUPS`
(`python -m telephony` adds the development tools' `bench` when they are installed):

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
import os
import sys
from collections.abc import Sequence
from types import ModuleType

from telephony.domain.env_files import load_env_files
from telephony.domain.settings import SettingsError
from telephony.operator.cli import call, calls, campaign, dnc, setup, status
from telephony.operator.cli.base import CliError, UsageError
from telephony.records.store import StoreError

PROG = "python -m telephony"
COMMAND_GROUPS: tuple[ModuleType, ...] = (calls, setup, status, call, campaign, dnc)


def build_parser(groups: Sequence[ModuleType] = COMMAND_GROUPS) -> argparse.ArgumentParser:
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


def main(argv: Sequence[str] | None = None, groups: Sequence[ModuleType] = COMMAND_GROUPS) -> int:
    """Run one command; return its exit code (0 ok, 1 failed, 2 bad usage or settings)."""
    parser = build_parser(groups)
    try:
        args = parser.parse_args(argv)
    except SystemExit as e:  # --help (0) or a usage error (2), already printed
        return e.code if isinstance(e.code, int) else (0 if e.code is None else 2)
    _mask_numbers_in_logs()
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


def run(groups: Sequence[ModuleType] = COMMAND_GROUPS) -> None:
    """The process entry point: read .env.local/.env (never over the environment), run."""
    load_env_files()
    try:
        code = main(groups=groups)
        sys.stdout.flush()
    except KeyboardInterrupt:
        code = 130
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


def _error(message: str) -> None:
    print(f"error: {message}", file=sys.stderr)
