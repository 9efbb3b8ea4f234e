"""`status` reports exactly what the worker's start-up refuses: for each broken setup, the
problem lines of status's "settings" section are the lines `agent.py start` prints before it
exits 1, and its notes are the worker's warnings (one check, telephony.domain.startup_checks)."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from telephony.domain import startup_checks
from telephony.domain.settings import PROJECT_ROOT, SETTING_NAMES
from telephony.operator.cli import main
from telephony.worker.worker_cli import EXIT_BAD_SETTINGS, check_before_start
from tests.conftest import TEST_PROMPTS


def closed_port_url(scheme: str) -> str:
    """A local address nothing listens on: status's network checks fail fast, offline."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return f"{scheme}://127.0.0.1:{s.getsockname()[1]}"


def copy_prompts(folder: Path) -> Path:
    folder.mkdir()
    for source in TEST_PROMPTS.iterdir():
        (folder / source.name).write_bytes(source.read_bytes())
    return folder


# Each setup breaks one thing in a working configuration: (folder) -> variables to set.
Setup = Callable[[Path], dict[str, str]]


def prompt_missing(tmp: Path) -> dict[str, str]:
    prompts = copy_prompts(tmp / "prompts")
    (prompts / "voicemail.txt").unlink()
    return {"PROMPTS_DIR": str(prompts)}


def prompt_not_utf8(tmp: Path) -> dict[str, str]:
    prompts = copy_prompts(tmp / "prompts")
    (prompts / "inbound_greeting.txt").write_bytes("Grüß Gott".encode("latin-1"))
    return {"PROMPTS_DIR": str(prompts)}


def prompt_unknown_placeholder(tmp: Path) -> dict[str, str]:
    prompts = copy_prompts(tmp / "prompts")
    (prompts / "inbound_greeting.txt").write_text("Hi {first_name}!")
    return {"PROMPTS_DIR": str(prompts)}


def prompts_dir_missing(tmp: Path) -> dict[str, str]:
    return {"PROMPTS_DIR": str(tmp / "no-such-folder")}


def bad_schedule(tmp: Path) -> dict[str, str]:
    return {"BUSINESS_HOURS": "mon-fri 09:00-25:00"}


def bad_time_zone(tmp: Path) -> dict[str, str]:
    return {"BUSINESS_HOURS": "mon-fri 09:00-17:00", "BUSINESS_TIMEZONE": "Mars/Olympus"}


def bad_contacts_file(tmp: Path) -> dict[str, str]:
    (tmp / "contacts.csv").write_text("name,notes\nAda,no number column\n")
    return {"CONTACTS_FILE": str(tmp / "contacts.csv")}


def bad_keypad_menu(tmp: Path) -> dict[str, str]:
    (tmp / "menu.json").write_text('{"prompt": "Press 1.", "options": {"1": {"transfer": "x"}}}')
    return {"DTMF_MENU_FILE": str(tmp / "menu.json")}


def example_key(tmp: Path) -> dict[str, str]:
    return {"OPENAI_API_KEY": "your-openai-api-key"}


def misspelled_variable(tmp: Path) -> dict[str, str]:
    (tmp / ".env.local").write_text("GREETING_MODEE=generate\n")
    return {}


def nothing_broken(tmp: Path) -> dict[str, str]:
    return {}


def settings_section(out: str) -> tuple[list[str], list[str]]:
    """The problem and note lines of status's first section ("settings")."""
    section = out.split("settings\n", 1)[1].split("\nproviders\n", 1)[0].splitlines()
    problems = [line.split("problem  ", 1)[1] for line in section if "  problem  " in line]
    notes = [line.split("note     ", 1)[1] for line in section if "  note     " in line]
    return problems, notes


def worker_start_up(capsys: pytest.CaptureFixture[str]) -> tuple[int, list[str], list[str]]:
    """`agent.py start`'s own check, as a function: exit code, problems, warnings printed."""
    capsys.readouterr()
    try:
        check_before_start(["agent.py", "start"])
        code = 0
    except SystemExit as e:
        code = int(e.code or 0)
    out, err = capsys.readouterr()
    problems = [line[4:] for line in out.splitlines() if line.startswith("  - ")]
    warnings = [line[9:] for line in err.splitlines() if line.startswith("warning: ")]
    return code, problems, warnings


@pytest.mark.parametrize(
    ("setup", "expected"),
    [
        (prompt_missing, "voicemail.txt: missing"),
        (prompt_not_utf8, "inbound_greeting.txt: cannot be read ('utf-8' codec"),
        (prompt_unknown_placeholder, "unknown placeholder(s) {first_name}"),
        (prompts_dir_missing, "is not a folder"),
        (bad_schedule, "BUSINESS_HOURS"),
        (bad_time_zone, "Mars/Olympus"),
        (bad_contacts_file, "contacts.csv"),
        (bad_keypad_menu, "option '1' transfers to 'x'"),
        (example_key, "OPENAI_API_KEY"),
    ],
)
def test_status_reports_each_problem_the_worker_refuses_to_start_over(
    setup: Setup,
    expected: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
):
    healthy_env(monkeypatch, tmp_path)
    for name, value in setup(tmp_path).items():
        monkeypatch.setenv(name, value)

    code, worker_problems, worker_warnings = worker_start_up(capsys)
    status_code = main(["status", "--request-timeout", "5"])
    status_out = capsys.readouterr().out
    status_problems, status_notes = settings_section(status_out)

    assert code == EXIT_BAD_SETTINGS
    assert any(expected in p for p in worker_problems), worker_problems
    assert status_code == 1
    assert status_problems == worker_problems
    assert status_notes == worker_warnings
    assert "Traceback" not in status_out


def test_a_misspelled_variable_is_a_note_in_status_and_a_warning_of_the_worker(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
):
    healthy_env(monkeypatch, tmp_path)
    misspelled_variable(tmp_path)

    code, worker_problems, worker_warnings = worker_start_up(capsys)
    main(["status", "--request-timeout", "5"])
    status_problems, status_notes = settings_section(capsys.readouterr().out)

    assert (code, worker_problems) == (0, [])
    assert status_problems == []
    assert status_notes == worker_warnings
    assert "GREETING_MODEE" in status_notes[0] and "did you mean GREETING_MODE?" in status_notes[0]


def test_a_working_setup_passes_both(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
):
    healthy_env(monkeypatch, tmp_path)

    code, worker_problems, worker_warnings = worker_start_up(capsys)
    main(["status", "--request-timeout", "5"])
    out = capsys.readouterr().out

    assert (code, worker_problems, worker_warnings) == (0, [], [])
    assert settings_section(out) == ([], [])
    assert "ok       the worker would start" in out


def healthy_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """Every required setting set; the providers and LiveKit at local closed ports; the
    env files looked at for unknown names are this test's folder's."""
    monkeypatch.setenv("LIVEKIT_URL", closed_port_url("ws"))
    monkeypatch.setenv("LIVEKIT_API_KEY", "APItest")
    monkeypatch.setenv("LIVEKIT_API_SECRET", "test-secret-test-secret-test-secret")
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test")
    monkeypatch.setenv("OPENAI_BASE_URL", closed_port_url("http") + "/v1")
    monkeypatch.setenv("DEEPGRAM_API_KEY", "dg-test")
    monkeypatch.setenv("DEEPGRAM_BASE_URL", closed_port_url("http") + "/v1")
    monkeypatch.setattr(startup_checks, "PROJECT_ROOT", tmp_path)


@pytest.mark.e2e
def test_agent_start_and_status_as_processes_refuse_a_missing_prompt(tmp_path: Path):
    env = {k: v for k, v in os.environ.items() if k not in SETTING_NAMES}
    env |= dict.fromkeys(SETTING_NAMES, "")  # a developer's .env.local cannot fill them
    env |= {
        "LIVEKIT_URL": closed_port_url("ws"),
        "LIVEKIT_API_KEY": "APItest",
        "LIVEKIT_API_SECRET": "test-secret-test-secret-test-secret",
        "OPENAI_API_KEY": "sk-test",
        "OPENAI_BASE_URL": closed_port_url("http") + "/v1",
        "DEEPGRAM_API_KEY": "dg-test",
        "DEEPGRAM_BASE_URL": closed_port_url("http") + "/v1",
        **prompt_missing(tmp_path),
    }

    def run(*argv: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, *argv],
            cwd=PROJECT_ROOT,
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )

    worker = run("agent.py", "start")
    status = run("-m", "telephony", "status", "--request-timeout", "5")

    refused = [line[4:] for line in worker.stdout.splitlines() if line.startswith("  - ")]
    assert worker.returncode == EXIT_BAD_SETTINGS
    assert any("voicemail.txt: missing" in p for p in refused), worker.stdout
    assert status.returncode == 1
    assert settings_section(status.stdout)[0] == refused
