"""`python -m telephony` starts light and stops cleanly: `--help` (the whole list, or one
command's) imports none of the heavy libraries a command needs only when it runs, and Ctrl-C
at any moment (imports included) exits 130 with no traceback."""

from __future__ import annotations

import argparse
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from telephony.__main__ import commands
from telephony.domain.settings import PROJECT_ROOT, SETTING_NAMES
from telephony.operator import campaign as campaign_runner
from telephony.operator.cli import LazyGroup, build_parser
from telephony.operator.cli import campaign as campaign_command

# What only a running command needs: the framework, the providers' SDK, the store, HTTP.
HEAVY = ("livekit.agents", "livekit.api", "openai", "sqlalchemy", "alembic", "aiohttp", "numpy")


def test_each_listed_summary_is_the_commands_own():
    """The one-line summaries `--help` shows without importing a command are its parser's."""
    for group in commands():
        assert isinstance(group, LazyGroup)
        full = build_parser([group.load()])
        [subparsers] = [a for a in full._actions if isinstance(a, argparse._SubParsersAction)]
        shown = {c.dest: c.help for c in subparsers._choices_actions}
        assert shown == group.summaries, group.module


def test_the_campaign_help_names_the_runners_columns():
    assert campaign_command.PHONE_COLUMN == campaign_runner.PHONE_COLUMN
    assert campaign_command.RESULT_COLUMNS == campaign_runner.RESULT_COLUMNS


def clean_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in SETTING_NAMES}
    return env | dict.fromkeys(SETTING_NAMES, "") | extra


def imported_by(*argv: str) -> set[str]:
    """The modules `python -m telephony ARGV` imported (python -X importtime lists each)."""
    result = subprocess.run(
        [sys.executable, "-X", "importtime", "-m", "telephony", *argv],
        cwd=PROJECT_ROOT,
        env=clean_env(),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert "usage: python -m telephony" in result.stdout
    lines = [line for line in result.stderr.splitlines() if line.startswith("import time:")]
    return {line.rsplit("|", 1)[1].strip() for line in lines}


@pytest.mark.e2e
@pytest.mark.parametrize(
    "argv",
    [
        ["--help"],
        ["calls", "--help"],
        ["calls", "list", "--help"],
        ["calls", "export", "--help"],
        ["call", "--help"],
        ["campaign", "--help"],
        ["status", "--help"],
        ["doctor", "--help"],
        ["setup", "--help"],
    ],
    ids=" ".join,
)
def test_help_imports_no_heavy_library(argv: list[str]):
    heavy = {m for m in imported_by(*argv) if m.startswith(HEAVY)}
    assert heavy == set()


@pytest.fixture
def silent_server() -> Iterator[socket.socket]:
    """A local server that accepts connections and never answers."""
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen(8)
        yield server


def start(argv: list[str], env: dict[str, str], *python_flags: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, *python_flags, "-m", "telephony", *argv],
        cwd=PROJECT_ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def interrupt(process: subprocess.Popen[str]) -> tuple[int, str]:
    assert process.poll() is None, "the command ended before it could be interrupted"
    process.send_signal(signal.SIGINT)
    _, err = process.communicate(timeout=60)
    return process.returncode, err


@pytest.mark.e2e
@pytest.mark.parametrize("after_seconds", [0.0, 0.1, 0.3, 0.5])
def test_ctrl_c_while_the_command_line_loads_exits_130_without_a_traceback(
    after_seconds: float, tmp_path: Path
):
    """`calls list` imports for its first second or so (the command line, then the store and
    SQLAlchemy). The signal is sent that long after its first module was imported (-X
    importtime reports each import as it ends). Not covered: the few milliseconds before,
    while Python itself starts and runpy finds telephony/__main__.py."""
    env = clean_env(CALL_RECORDS_PATH=str(tmp_path / "calls.sqlite3"))
    process = start(["calls", "list"], env, "-X", "importtime")
    assert process.stderr is not None
    while "| telephony." not in process.stderr.readline():
        pass
    time.sleep(after_seconds)

    code, err = interrupt(process)

    assert code == 130
    assert "Traceback" not in err and "KeyboardInterrupt" not in err


@pytest.mark.e2e
def test_ctrl_c_while_a_command_runs_exits_130_without_a_traceback(
    silent_server: socket.socket,
):
    """`status` waiting on a provider that never answers: inside its event loop."""
    url = f"http://127.0.0.1:{silent_server.getsockname()[1]}/v1"
    env = clean_env(
        OPENAI_API_KEY="sk-test",
        DEEPGRAM_API_KEY="dg-test",
        OPENAI_BASE_URL=url,
        DEEPGRAM_BASE_URL=url,
    )
    process = start(["status", "--request-timeout", "600"], env)
    silent_server.settimeout(120)
    connection, _ = silent_server.accept()  # the request is out: the command is waiting
    with connection:
        time.sleep(0.2)
        code, err = interrupt(process)

    assert (code, err) == (130, "")
