"""`python agent.py ...` as a user runs it: help and download-files need no settings; the
worker commands refuse to start, listing every missing or bad setting, one line each."""

import os
import subprocess
import sys

import pytest

from telephony.domain.settings import PROJECT_ROOT, SETTING_NAMES

# Each test starts the worker as a process: slow, run with `pytest -m e2e`.
pytestmark = pytest.mark.e2e


def run_agent(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    # Every setting present but empty: a developer's shell and .env.local (which never
    # override a variable already set) cannot leak in; only what the test passes counts.
    clean = os.environ | dict.fromkeys(SETTING_NAMES, "") | (env or {})
    return subprocess.run(
        [sys.executable, "agent.py", *args],
        cwd=PROJECT_ROOT,
        env=clean,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_help_needs_no_settings():
    result = run_agent("--help")
    assert result.returncode == 0, result.stderr
    for command in ("dev", "start", "console", "download-files"):
        assert command in result.stdout


def test_dev_without_settings_lists_what_is_missing_and_fails():
    result = run_agent("dev")
    assert result.returncode == 1
    lines = [line.strip() for line in result.stdout.splitlines() if line.strip().startswith("- ")]
    assert [line.split()[1] for line in lines] == [
        "LIVEKIT_URL",
        "LIVEKIT_API_KEY",
        "LIVEKIT_API_SECRET",
        "OPENAI_API_KEY",
        "DEEPGRAM_API_KEY",
    ]
    assert "Traceback" not in result.stdout + result.stderr


def test_bad_values_and_missing_ones_are_reported_together():
    result = run_agent(
        "start",
        env={
            "LIVEKIT_URL": "my-project.livekit.cloud",
            "OUTBOUND_RING_TIMEOUT_SECONDS": "forever",
            "OPENAI_API_KEY": "sk-x",
            "DEEPGRAM_API_KEY": "dg-x",
        },
    )
    assert result.returncode == 1
    assert "LIVEKIT_URL='my-project.livekit.cloud' must start with wss://" in result.stdout
    assert "OUTBOUND_RING_TIMEOUT_SECONDS='forever'" in result.stdout
    assert "LIVEKIT_API_KEY is not set" in result.stdout
    assert "sk-x" not in result.stdout  # secrets are never echoed


def test_broken_prompt_stops_the_worker_before_any_call(tmp_path):
    prompts = tmp_path / "prompts"
    prompts.mkdir()
    for source in (PROJECT_ROOT / "prompts").iterdir():
        (prompts / source.name).write_text(source.read_text())
    (prompts / "inbound_greeting.txt").write_text("Hi {first_name}!")
    result = run_agent("console", env={"PROMPTS_DIR": str(prompts)})
    assert result.returncode == 1
    assert "unknown placeholder(s) {first_name}" in result.stdout


def test_download_files_needs_no_settings():
    result = run_agent("download-files")
    assert result.returncode == 0, result.stdout + result.stderr


def test_a_bad_url_flag_gets_the_same_check_as_the_variable():
    keys = {
        "LIVEKIT_API_KEY": "APIkey",
        "LIVEKIT_API_SECRET": "secret",
        "OPENAI_API_KEY": "sk-x",
        "DEEPGRAM_API_KEY": "dg-x",
    }
    for flag in (["--url", "my-project.livekit.cloud"], ["--url=my-project.livekit.cloud"]):
        result = run_agent("start", *flag, env=keys)
        assert result.returncode == 1, result.stdout + result.stderr
        problems = [line for line in result.stdout.splitlines() if line.startswith("  - ")]
        assert problems == [
            "  - LIVEKIT_URL='my-project.livekit.cloud' must start with wss:// (or ws://, "
            "https://, http://), e.g. wss://my-project.livekit.cloud"
        ]
        assert "Traceback" not in result.stdout + result.stderr


def test_placeholder_flags_are_refused_like_placeholder_variables():
    result = run_agent(
        "start",
        "--api-key",
        "your-livekit-api-key",
        env={"LIVEKIT_URL": "wss://acme.livekit.cloud", "LIVEKIT_API_SECRET": "s"}
        | {"OPENAI_API_KEY": "sk-x", "DEEPGRAM_API_KEY": "dg-x"},
    )
    assert result.returncode == 1
    assert "LIVEKIT_API_KEY is still the example value 'your-livekit-api-key'" in result.stdout


def test_console_without_portaudio_says_what_to_install(tmp_path):
    # sounddevice as it fails where the PortAudio library is missing (Debian without
    # libportaudio2), whether or not this machine has it.
    (tmp_path / "sounddevice.py").write_text("raise OSError('PortAudio library not found')\n")
    keys = {"OPENAI_API_KEY": "sk-x", "DEEPGRAM_API_KEY": "dg-x", "PYTHONPATH": str(tmp_path)}
    for args in (["console"], ["console", "--text"]):
        result = run_agent(*args, env=keys)
        assert result.returncode == 1
        output = result.stdout + result.stderr
        assert "Traceback" not in output
        [line] = [line for line in output.splitlines() if line.strip()]
        assert "PortAudio" in line and "apt-get install libportaudio2" in line
