"""Operator commands against a server that accepts connections and never answers: each gives
up after its request timeout with one line naming the server, and exits non-zero."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from telephony.operator import provisioning
from telephony.operator.cli import main

SECONDS = "1"  # --request-timeout: short, and far from the 100-200 s the commands used to hang
BOUND = 10.0  # what each command may take in all, start-up included


@pytest.fixture
def silent_server() -> Iterator[str]:
    """http://127.0.0.1:PORT: accepts every connection, reads nothing, answers nothing."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(64)
    held: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        listener.settimeout(0.1)
        while not stop.is_set():
            try:
                held.append(listener.accept()[0])
            except TimeoutError:
                continue

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{listener.getsockname()[1]}"
    stop.set()
    thread.join()
    for conn in held:
        conn.close()
    listener.close()


@pytest.fixture(autouse=True)
def _settings(silent_server: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("LIVEKIT_URL", silent_server)
    monkeypatch.setenv("LIVEKIT_API_KEY", "APIoperator")
    monkeypatch.setenv("LIVEKIT_API_SECRET", "a-long-enough-secret-for-the-test-token")
    monkeypatch.setenv("OPENAI_API_KEY", "sk-operator")
    monkeypatch.setenv("DEEPGRAM_API_KEY", "dg-operator")
    monkeypatch.setenv("SIP_OUTBOUND_TRUNK_ID", "ST_outbound")
    # setup refuses the shipped example values; give it a filled-in inbound trunk only.
    inbound = tmp_path / "inbound-trunk.json"
    inbound.write_text('{"trunk": {"name": "in", "numbers": ["+14155552671"]}}')
    monkeypatch.setitem(provisioning.DEFAULT_FILES, provisioning.INBOUND, inbound)
    for kind in (provisioning.OUTBOUND, provisioning.RULE):
        monkeypatch.setitem(provisioning.DEFAULT_FILES, kind, tmp_path / "absent.json")


def run_timed(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, float]:
    started = time.monotonic()
    code = main([*argv, "--request-timeout", SECONDS])
    captured = capsys.readouterr()
    return code, captured.out + captured.err, time.monotonic() - started


@pytest.mark.parametrize(
    "argv",
    [("status",), ("setup",), ("setup", "--dry-run"), ("call", "+14155552671")],
)
def test_a_command_gives_up_on_a_silent_livekit_with_one_line(
    capsys: pytest.CaptureFixture[str], silent_server: str, argv: tuple[str, ...]
):
    code, output, took = run_timed(capsys, *argv)

    assert code != 0, output
    assert took < BOUND, output
    assert f"LiveKit at {silent_server} did not answer within 1 s" in output
    assert "Traceback" not in output


def test_a_campaign_stops_on_a_silent_livekit(
    capsys: pytest.CaptureFixture[str], silent_server: str, tmp_path: Path
):
    numbers = tmp_path / "numbers.csv"
    numbers.write_text("phone_number\n+14155552671\n+14155552672\n")

    code, output, took = run_timed(capsys, "campaign", str(numbers))

    assert code != 0, output
    assert took < BOUND, output
    assert f"LiveKit at {silent_server} did not answer within 1 s" in output
    assert "nothing more was dispatched" in output
