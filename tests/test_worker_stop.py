"""A deploy never drops a call silently: stop signals, with the worker and its job process
as real processes.

The worker is agent.py's on a stand-in phone line (tests/worker_on_a_line.py: the product's
prewarm, job flow, record saving and CLI; the room and the caller stand in, inside the job
process), registered with the LiveKit stand-in, which assigns it one inbound call. The
caller says a line after each answer. Signals go where a supervisor sends them: systemd's
default (KillMode=control-group) and `kill -- -PGID` signal the whole process group, Docker
and Kubernetes the worker's PID only.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from telephony.devtools.standins.deepgram_server import DeepgramStandin
from telephony.devtools.standins.livekit_server import LiveKitServerStandin
from telephony.devtools.standins.openai_server import OpenAIStandin, reply
from telephony.devtools.standins.worker_server import WorkerServerStandin
from telephony.domain.settings import PROJECT_ROOT
from telephony.records.model import CallRecord, Outcome
from telephony.records.store import CallStore
from tests.test_worker_registration import WorkerRun, agent_start
from tests.worker_on_a_line import CALLER_LINES

pytestmark = pytest.mark.e2e

AGENT_NAME = "my-telephony-agent"
ROOM = "call-_+15105550101_stop"
ANSWER = "Sure, I can help with that."
# The shipped prompt has no placeholders: what the caller hears is the file's text.
GOODBYE = (PROJECT_ROOT / "prompts" / "shutdown_goodbye.txt").read_text().strip()
CALL_TIMEOUT = 90.0  # the call, its record and the worker's exit, on a loaded 2-core machine
LINE_TIMEOUT = 60.0
# The worker preloads and prewarms before it registers: ~10 s alone, 30 s and more on a
# machine busy with other test processes.
REGISTER_TIMEOUT = 90.0


@dataclass
class Line:
    """The stand-ins, the worker's settings, and where its call record and caller report go."""

    livekit: WorkerServerStandin
    server_api: LiveKitServerStandin
    openai: OpenAIStandin
    env: dict[str, str]
    records: Path
    report: Path

    def record(self) -> CallRecord:
        with CallStore.open(f"sqlite:///{self.records}") as store:
            (record,) = store.list()
        return record

    def heard(self) -> dict:
        return json.loads(self.report.read_text())


@pytest.fixture
async def line(tmp_path: Path) -> AsyncIterator[Line]:
    server_api = LiveKitServerStandin()
    async with (
        WorkerServerStandin(server_api=server_api) as livekit,
        OpenAIStandin(default_turn=reply(ANSWER)) as openai,
        DeepgramStandin() as deepgram,
    ):
        records, report = tmp_path / "calls.sqlite3", tmp_path / "caller.json"
        env = {
            "OPENAI_BASE_URL": openai.base_url,
            "DEEPGRAM_BASE_URL": deepgram.base_url,
            "TTS_MODEL": "tts-1",
            "GREETING_AUDIO_DIR": "off",
            "SILENCE_TIMEOUT_SECONDS": "0",
            "CALL_RECORDS_PATH": str(records),
            "LINE_CALLER_REPORT": str(report),
        }
        yield Line(livekit, server_api, openai, env, records, report)


@contextlib.asynccontextmanager
async def worker_with_a_call(line: Line, **env: str) -> AsyncIterator[WorkerRun]:
    """The worker, registered, with the call assigned and its first answer played."""
    async with agent_start(
        line.livekit, script="tests/worker_on_a_line.py", **line.env, **env
    ) as worker:
        await worker.registration(line.livekit, REGISTER_TIMEOUT)
        answer = await line.livekit.assign_job(AGENT_NAME, ROOM)
        assert answer.available, line.livekit.describe_workers()
        await logged(worker, "caller: answer 1 played")
        yield worker


async def logged(worker: WorkerRun, text: str) -> None:
    """Until a line of the worker's output (its job processes' included) contains `text`."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + LINE_TIMEOUT
    while not any(text in line for line in worker.output):
        if worker.proc.returncode is not None or loop.time() > deadline:
            pytest.fail(f"the worker never logged {text!r} (its output is below)")
        await asyncio.sleep(0.05)


async def exit_code(worker: WorkerRun) -> int:
    return await asyncio.wait_for(worker.proc.wait(), CALL_TIMEOUT)


def stop_process_group(worker: WorkerRun) -> None:
    """SIGTERM to the worker's process group (its forkserver and job processes too), as
    systemd's default KillMode=control-group and `kill -- -PGID` send it."""
    worker.log("test: SIGTERM to the process group")
    os.killpg(worker.proc.pid, signal.SIGTERM)


async def test_sigterm_to_the_process_group_lets_the_call_finish(line: Line):
    """The call goes on to its end (the caller says all 3 lines and hears every answer), its
    record is complete, and the worker exits 0."""
    async with worker_with_a_call(line, LINE_CALLER_TURNS="3") as worker:
        stop_process_group(worker)
        code = await exit_code(worker)

    assert code == 0
    record = line.record()
    assert record.outcome is Outcome.CALLER_HUNG_UP
    said_by_caller = [t.text for t in record.transcript if t.role == "user"]
    assert said_by_caller == list(CALLER_LINES[:3])
    answers = [t.text for t in record.transcript if t.role == "assistant"]
    assert answers[1:] == [ANSWER] * 3
    heard = line.heard()["heard"]
    assert len(heard) == 4  # the greeting and 3 answers, each played to its end
    assert all(s["done"] and not s["interrupted"] for s in heard)


@pytest.mark.parametrize("cut_by", ["second-signal", "drain-timeout"])
async def test_a_call_the_stopping_worker_must_cut_hears_a_goodbye_and_is_recorded(
    line: Line, cut_by: str
):
    """A second stop signal, or DRAIN_TIMEOUT_SECONDS running out after a SIGTERM to the
    worker's PID (Docker, Kubernetes): the caller hears the whole goodbye, the record says
    why the call ended, and the worker exits 0, as after any requested stop."""
    env = {"LINE_CALLER_TURNS": "50"}  # a call longer than the test
    if cut_by == "drain-timeout":
        env["DRAIN_TIMEOUT_SECONDS"] = "2"
    async with worker_with_a_call(line, **env) as worker:
        if cut_by == "second-signal":
            stop_process_group(worker)
            await logged(worker, "draining worker")  # the framework's: the first signal arrived
            await logged(worker, "caller: answer 2 played")  # the call went on after it
            stop_process_group(worker)
        else:
            worker.log("test: SIGTERM to the worker")
            worker.proc.send_signal(signal.SIGTERM)
        code = await exit_code(worker)

    assert code == 0
    record = line.record()
    assert (record.outcome, record.end_reason) == (Outcome.AGENT_ENDED, "worker-stopped")
    # The agent's last words are the whole goodbye (a caller's line said just before the cut
    # may be transcribed after it on a busy machine: it is theirs, not the agent's).
    last_said = [t for t in record.transcript if t.role == "assistant"][-1]
    assert last_said.text == GOODBYE
    assert not last_said.interrupted
    # Hung up: the room was deleted, which ends every SIP leg.
    assert [r.request.room for r in line.server_api.requests if r.method == "DeleteRoom"] == [ROOM]
    last_heard = line.heard()["heard"][-1]
    assert last_heard["done"] and not last_heard["interrupted"]
    assert last_heard["seconds"] == pytest.approx(line.openai.audio_duration_for(GOODBYE), abs=0.05)
