"""A call that a stopping worker must cut: what the caller hears, and how it is recorded.

The worker's side (which calls, when) is tested with real processes in test_worker_stop.py;
here the job process's side runs in this process, on the real session against the stand-ins,
and the cut comes as a real signal to this process, as the worker sends it.
"""

from __future__ import annotations

import asyncio
import os
import signal
import threading
from collections.abc import Iterator

import pytest

from telephony.call import worker_stop
from telephony.call.worker_stop import (
    CUT_CALL_SIGNAL,
    cut_call_when_worker_stops,
    ignore_stop_signals,
)
from telephony.devtools.standins.openai_server import reply
from telephony.records.model import Outcome
from tests.harness import running_call

TIMEOUT = 15
NO_LIMITS = {"SILENCE_TIMEOUT_SECONDS": "0", "MAX_CALL_DURATION_SECONDS": "0"}
ANSWER = "We are open Monday to Friday from nine to five, and Saturdays until one. " * 3


@pytest.fixture
def cut_signal(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """This process listens for the cut signal as a job process does (and forgets after)."""
    monkeypatch.setattr(worker_stop, "_cut_requested", False)
    previous = worker_stop.listen_for_cut_signal()
    try:
        yield
    finally:
        signal.signal(CUT_CALL_SIGNAL, previous)


async def test_a_cut_call_stops_mid_reply_says_the_goodbye_hangs_up_and_says_why(
    cut_signal, livekit_server, openai_server
):
    openai_server.script(reply(ANSWER))
    async with running_call(livekit_server, openai_server, env=NO_LIMITS) as call:
        await asyncio.wait_for(call.sink.wait_for_segments(1), TIMEOUT)  # the greeting
        cut_call_when_worker_stops(call.session, call.state)
        answer_playing = asyncio.Event()
        call.sink.once("playback_started", lambda _: answer_playing.set())
        call.session.generate_reply(user_input="When are you open?")
        await asyncio.wait_for(answer_playing.wait(), TIMEOUT)  # the caller hears its start

        os.kill(os.getpid(), CUT_CALL_SIGNAL)  # what the stopping worker sends
        (delete,) = await livekit_server.wait_for("DeleteRoom", timeout=TIMEOUT)

        goodbye_text = call.state.render("shutdown_goodbye")
        _, answer, goodbye = call.sink.segments
        assert answer.interrupted  # the agent did not finish its long answer first
        assert not goodbye.interrupted
        assert goodbye.duration == pytest.approx(
            openai_server.audio_duration_for(goodbye_text), abs=0.05
        )
        assert delete.received_at >= goodbye.finished_at  # hung up after the last word
        assert call.state.outcome is Outcome.AGENT_ENDED
        assert call.state.ending.reason == "worker-stopped"


async def test_a_call_that_starts_after_the_cut_signal_is_cut_at_once(
    cut_signal, livekit_server, openai_server
):
    """A job process told to cut its call while the call was still being set up (the caller
    joining, the callee's phone ringing) cuts it as soon as it is connected."""
    os.kill(os.getpid(), CUT_CALL_SIGNAL)
    async with running_call(livekit_server, openai_server, env=NO_LIMITS) as call:
        cut_call_when_worker_stops(call.session, call.state)
        await livekit_server.wait_for("DeleteRoom", timeout=TIMEOUT)

        assert call.state.ending.reason == "worker-stopped"
        assert call.sink.segments[-1].duration == pytest.approx(
            openai_server.audio_duration_for(call.state.render("shutdown_goodbye")), abs=0.05
        )


def test_a_job_run_in_a_thread_of_the_worker_leaves_its_signals_alone():
    """`console` runs the job, and so the setup function, in a thread of the worker process:
    Ctrl+C must still stop it, and signal.signal would raise there."""
    before = [signal.getsignal(s) for s in (signal.SIGTERM, signal.SIGINT, CUT_CALL_SIGNAL)]
    errors: list[Exception] = []

    def setup_in_a_thread() -> None:
        try:
            ignore_stop_signals()
        except Exception as e:
            errors.append(e)

    thread = threading.Thread(target=setup_in_a_thread)
    thread.start()
    thread.join()
    assert errors == []
    after = [signal.getsignal(s) for s in (signal.SIGTERM, signal.SIGINT, CUT_CALL_SIGNAL)]
    assert after == before
