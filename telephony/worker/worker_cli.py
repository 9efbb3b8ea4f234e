"""`python agent.py dev|start|console ...`: the framework's CLI, made fit for a supervisor.

The framework's CLI logs a failed worker ("worker failed": LiveKit unreachable after its
retries, credentials refused, the HTTP port taken) and then exits with status 0, so systemd,
Kubernetes or Docker never restart it. Here every failure ends the process non-zero, and the
settings (the `--url`/`--api-key`/`--api-secret` flags included) are checked before the
framework starts anything. A stop never drops a call silently and ends the process 0
(`SupervisedServer.drain`, telephony.worker.stopping).
"""

from __future__ import annotations

import functools
import os
import sys
from collections.abc import Mapping, Sequence
from typing import Any, NoReturn

from livekit.agents import cli
from livekit.agents.types import NOT_GIVEN, NotGivenOr
from livekit.agents.utils import is_given

from telephony.call.framework_compat import HealthCheckedServer, on_job_processes
from telephony.domain.settings import Settings
from telephony.domain.startup_checks import StartupCheck, check_startup
from telephony.records.recovery import RecordKeeper
from telephony.worker.stopping import drain_then_cut

WORKER_COMMANDS = ("dev", "start", "connect", "console")
# The framework's flags that stand in for a variable; they get the same checks.
FLAG_VARIABLES = {
    "--url": "LIVEKIT_URL",
    "--api-key": "LIVEKIT_API_KEY",
    "--api-secret": "LIVEKIT_API_SECRET",
}
# What a supervisor sees: 1 for settings to fix, 2 for a worker that failed while running.
EXIT_BAD_SETTINGS = 1
EXIT_WORKER_FAILED = 2
DEFAULT_DRAIN_TIMEOUT = Settings.drain_timeout_seconds


class SupervisedServer(HealthCheckedServer):
    """An AgentServer that remembers why it stopped, so the process can say so, that stops
    without dropping a call (telephony.worker.stopping), and whose health check also reports
    what `add_health_check` adds (see keep_call_records)."""

    failure: BaseException | None = None

    def __init__(self, *args: Any, drain_timeout: int = DEFAULT_DRAIN_TIMEOUT, **kwargs: Any):
        super().__init__(*args, drain_timeout=drain_timeout, **kwargs)
        self.drain_timeout_seconds = drain_timeout

    async def drain(self, timeout: NotGivenOr[int | None] = NOT_GIVEN) -> None:
        """The CLI's stop: drain, then cut the calls left with a goodbye, never os._exit."""
        limit = timeout if is_given(timeout) else self.drain_timeout_seconds
        await drain_then_cut(self, functools.partial(super().drain, None), limit)

    async def run(self, *args: Any, **kwargs: Any) -> None:
        try:
            await super().run(*args, **kwargs)
        except Exception as e:
            self.failure = e
            raise


def keep_call_records(server: SupervisedServer, settings: Settings) -> RecordKeeper:
    """In the worker process, once it has started: complete the record of every job process
    that exits without finishing it (kill -9, OOM), and of the jobs of a worker that died
    on this host; move records held in memory to disk; fail the health check (503, with
    the reason) while records wait in memory."""
    keeper = RecordKeeper(settings)
    keeper.take_over_dead_workers()
    on_job_processes(server, launched=keeper.job_started, closed=keeper.job_process_ended)
    server.add_health_check(keeper.problem)
    keeper.start()
    return keeper


def command_of(argv: Sequence[str]) -> str:
    return next((a for a in argv[1:] if not a.startswith("-")), "")


def flag_values(argv: Sequence[str]) -> dict[str, str]:
    """The LiveKit variables given as flags (`--url X` or `--url=X`), by variable name."""
    values: dict[str, str] = {}
    args = list(argv[1:])
    for i, arg in enumerate(args):
        flag, sep, value = arg.partition("=")
        if flag not in FLAG_VARIABLES:
            continue
        if not sep:
            value = args[i + 1] if i + 1 < len(args) else ""
        values[FLAG_VARIABLES[flag]] = value
    return values


def startup_check(
    argv: Sequence[str], environ: Mapping[str, str] | None = None
) -> StartupCheck | None:
    """The start-up check of this worker command (`status` runs the same one), or None for
    commands that need no settings (`--help`, `download-files`)."""
    command = command_of(argv)
    if command not in WORKER_COMMANDS or "--help" in argv:
        return None
    env = {**(os.environ if environ is None else environ), **flag_values(argv)}
    return check_startup(command, env)


def startup_problems(argv: Sequence[str], environ: Mapping[str, str] | None = None) -> list[str]:
    """Everything that stops this command from running, all at once."""
    check = startup_check(argv, environ)
    return check.problems if check else []


def console_audio_problem() -> str | None:
    """Why `console` cannot run here, or None. The framework's console imports sounddevice,
    which needs the PortAudio library (even with --text); without it, 50 lines of traceback."""
    try:
        import sounddevice  # noqa: F401  (a probe: imported only when `console` is asked for)
    except OSError as e:
        return (
            f"console mode needs the PortAudio library ({e}): install it with "
            "`sudo apt-get install libportaudio2` (Debian/Ubuntu) or `brew install portaudio` "
            "(macOS), then run the command again"
        )
    return None


def check_before_start(argv: Sequence[str]) -> None:
    """Exit with EXIT_BAD_SETTINGS on any start-up problem; print the warnings."""
    check = startup_check(argv)
    if check and check.problems:
        print("The agent cannot start; fix these settings (in .env.local or the environment):")
        for problem in check.problems:
            print(f"  - {problem}")
        sys.exit(EXIT_BAD_SETTINGS)
    console = command_of(argv) == "console" and "--help" not in argv
    if console and (problem := console_audio_problem()):
        print(f"The agent cannot start: {problem}", file=sys.stderr)
        sys.exit(EXIT_BAD_SETTINGS)
    for warning in check.warnings if check else []:
        print(f"warning: {warning}", file=sys.stderr)


def run(server: SupervisedServer, argv: Sequence[str]) -> NoReturn:
    """Check the settings, run the framework's CLI, exit non-zero on any failure."""
    check_before_start(argv)
    code: Any = 0
    try:
        cli.run_app(server)
    except SystemExit as e:
        code = e.code
    if server.failure is not None and code in (0, None):
        print(
            f"The agent stopped because the worker failed: {server.failure}",
            file=sys.stderr,
        )
        code = EXIT_WORKER_FAILED
    sys.exit(code)
