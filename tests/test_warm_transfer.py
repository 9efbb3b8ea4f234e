"""The warm transfer tool on a running call: hold music, the dial of the person, the outcome.

The real agent session, the real tool and the framework's real `WarmTransferTask` run
against the local stand-ins. Two things cannot run offline, and only those are replaced:

- The consultation leg: `WarmTransferTask._dial_human_agent` joins a second LiveKit room
  over WebRTC (`rtc.Room.connect`) and starts the briefing AgentSession there before it
  dials. That needs a LiveKit media server (the stand-in speaks only the Twirp server API)
  and a connected caller room (the token takes the agent's identity from it). Here it is
  replaced by `_dial_without_media_server`, which keeps the framework's own dial
  (`_originate_human_agent` -> CreateSIPParticipant) and returns a stand-in for the
  briefing session; the test then plays the briefed person (connect / decline).
- Publishing the hold-music track: `BackgroundAudioPlayer` publishes to the caller's room,
  which is not connected in the harness. Only `_publish_track` is replaced: the real player
  and mixer play the real hold-music file into `HoldLine`, in real time.

`test_a_task_that_cannot_start_does_not_leave_the_caller_on_hold` runs with nothing
replaced: that is exactly what happens in the harness without the two replacements.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from types import SimpleNamespace
from typing import Any, TypeVar

import numpy as np
import pytest
from livekit import api, rtc
from livekit.agents import ToolError, get_job_context
from livekit.agents.beta.workflows import WarmTransferTask
from livekit.agents.utils import http_context
from livekit.agents.voice.background_audio import BackgroundAudioPlayer

from telephony.call import framework_compat as compat
from telephony.call.call_limits import watch_call_limits
from telephony.devtools.standins.livekit_server import delay, sip_call_error, twirp_error
from telephony.devtools.standins.openai_server import reply, tool_call
from telephony.records.model import Outcome
from tests.harness import ROOM, RunningCall, running_call
from tools.warm_transfer import WarmTransfer, warm_transfer_call

WARM = {
    "TRANSFER_DESTINATIONS": "sales=tel:+16285551111",
    "WARM_TRANSFER": "true",
    "SIP_OUTBOUND_TRUNK_ID": "ST_out",
}
CONSULTATION_ROOM = f"{ROOM}-human-agent"  # the framework's name for the second room
HUMAN = "human-agent-sip"  # the framework's identity for the person dialed
TIMEOUT = 15
T = TypeVar("T")


def spoken(openai_server) -> list[str]:
    """Everything the agent said aloud, as the TTS received it."""
    return [r.input for r in openai_server.speech_requests]


async def finish(run: Any) -> None:
    """Await a turn in which the tool awaited the warm transfer.

    RunResult takes an AgentTask's outcome as the run's final output, so a failed transfer's
    ToolError, which the tool caught and answered, is raised again here. Only `session.run`
    does that; a phone call has no RunResult."""
    with contextlib.suppress(ToolError):
        await asyncio.wait_for(run, TIMEOUT)


async def eventually(check: Callable[[], T], timeout: float = TIMEOUT) -> T:
    async with asyncio.timeout(timeout):
        # Polls state the framework changes without an event to wait on.
        while not (value := check()):  # noqa: ASYNC110
            await asyncio.sleep(0.02)
    return value


@asynccontextmanager
async def warm_call(livekit_server, openai_server, env=WARM) -> AsyncIterator[RunningCall]:
    """A running call whose agent has the warm transfer tool.

    `job_ctx.api` (which the framework dials with) reads LIVEKIT_URL/_API_KEY/_API_SECRET,
    set to the stand-in by its fixture, and needs an http session, as in a worker."""
    async with (
        http_context.open(),
        running_call(livekit_server, openai_server, env=env) as call,
    ):
        # The harness's job room is never connected; give it the call's name.
        compat.set_room_name(get_job_context().room, ROOM)
        agent = call.session.current_agent
        await agent.update_tools([*agent.tools, warm_transfer_call])
        yield call


# --------------------------------------------------------------------------- offline legs


class ConsultationLine:
    """Stands in for the briefing AgentSession in the consultation room."""

    def __init__(self, room_name: str) -> None:
        room = rtc.Room()
        compat.set_room_name(room, room_name)
        self.room_io = SimpleNamespace(room=room)
        self.hung_up = False

    def shutdown(self, drain: bool = True) -> None:
        # The real session deletes the consultation room, which hangs up on the person.
        self.hung_up = True


async def _dial_without_media_server(self: WarmTransferTask) -> Any:
    """`WarmTransferTask._dial_human_agent` without joining the consultation room."""
    line = ConsultationLine(f"{self._caller_room.name}-human-agent")
    await self._originate_human_agent(
        room_name=line.room_io.room.name,
        identity=self._human_agent_identity,
        room=line.room_io.room,
    )
    return line


class HoldLine:
    """Where the hold-music track would be published: each frame the mixer sends, when."""

    def __init__(self) -> None:
        self.frames: list[tuple[float, rtc.AudioFrame]] = []

    async def capture_frame(self, frame: rtc.AudioFrame) -> None:
        self.frames.append((time.monotonic(), frame))
        await asyncio.sleep(frame.duration)  # a published track plays in real time

    async def aclose(self) -> None:
        pass

    def audible_seconds(self, start: float = 0.0, end: float = float("inf")) -> float:
        return sum(
            frame.duration
            for at, frame in self.frames
            if start <= at <= end and np.abs(np.frombuffer(frame.data, np.int16)).max() > 100
        )


@pytest.fixture
def hold_line(monkeypatch: pytest.MonkeyPatch) -> HoldLine:
    line = HoldLine()

    async def publish_to_hold_line(self: BackgroundAudioPlayer) -> None:
        await self._audio_source.aclose()
        self._audio_source = line  # type: ignore[assignment]

    monkeypatch.setattr(BackgroundAudioPlayer, "_publish_track", publish_to_hold_line)
    return line


@pytest.fixture
def offline_dial(monkeypatch: pytest.MonkeyPatch, hold_line: HoldLine) -> HoldLine:
    monkeypatch.setattr(WarmTransfer, "_dial_human_agent", _dial_without_media_server)
    return hold_line


# --------------------------------------------------------------------------- tests


@pytest.mark.parametrize(
    "dial_answer",
    [
        pytest.param(sip_call_error(486, "Busy Here"), id="busy-486"),
        pytest.param(sip_call_error(480, "Temporarily Unavailable"), id="no-answer-480"),
        pytest.param(sip_call_error(603, "Decline"), id="declined-603"),
    ],
)
async def test_person_unreachable_caller_gets_the_agent_back(
    livekit_server, openai_server, offline_dial, dial_answer
):
    hold_line = offline_dial
    # The phone rings for a while, then the dial fails.
    livekit_server.script("CreateSIPParticipant", delay(1.5, dial_answer))
    openai_server.script(
        tool_call("warm_transfer_call", {"destination": "sales"}),
        reply("I'm sorry, nobody in sales could take your call. Can I take a message?"),
        reply("Of course, go ahead."),
    )
    async with warm_call(livekit_server, openai_server) as call:
        await finish(call.session.run(user_input="Yes, put me through."))
        await eventually(lambda: "nobody in sales" in " ".join(spoken(openai_server)))
        await call.sink.wait_for_segments(len(call.sink.segments))

        (dial,) = livekit_server.calls("CreateSIPParticipant")
        hold_prompt = call.state.render("warm_transfer_hold")
        assert " ".join(spoken(openai_server)).endswith(
            f"{hold_prompt} I'm sorry, nobody in sales could take your call. Can I take a message?"
        )
        # The LLM was told the truth, and the caller heard it after the hold.
        assert "did not go through" in str(openai_server.chat_requests[-1].messages)
        hold_segment, fallback_segment = call.sink.segments[-2:]
        assert hold_segment.finished_at <= dial.received_at
        # Hold music played while the phone rang, and stopped before the agent spoke again.
        assert hold_line.audible_seconds(dial.received_at, dial.answered_at) >= 0.8
        assert all(at < fallback_segment.started_at for at, _ in hold_line.frames)
        assert all(f.sample_rate == 48000 for _, f in hold_line.frames)

        # No hang-up: the caller's room stays, the session goes on with the agent.
        assert livekit_server.calls("DeleteRoom") == []
        assert call.state.outcome is None
        assert type(call.session.current_agent).__name__ == "TelephonyAgent"
        await asyncio.wait_for(call.session.run(user_input="Yes, please."), TIMEOUT)
        assert spoken(openai_server)[-1] == "Of course, go ahead."
        assert call.session.output.audio_enabled and call.session.input.audio_enabled
    assert livekit_server.calls("MoveParticipant") == []


async def test_dial_reaches_the_server_with_trunk_number_room_and_identity(
    livekit_server, openai_server, offline_dial
):
    livekit_server.script("CreateSIPParticipant", sip_call_error(486, "Busy Here"))
    openai_server.script(
        tool_call("warm_transfer_call", {"destination": "Sales"}), reply("Nobody answered.")
    )
    async with warm_call(livekit_server, openai_server) as call:
        await finish(call.session.run(user_input="Yes please."))
        (dial,) = await livekit_server.wait_for("CreateSIPParticipant", timeout=TIMEOUT)

    request = dial.request
    assert request.sip_trunk_id == "ST_out"
    assert request.sip_call_to == "+16285551111"
    assert request.room_name == CONSULTATION_ROOM  # not the caller's room
    assert request.participant_identity == HUMAN
    assert request.wait_until_answered
    assert request.ringing_timeout.seconds == 30  # OUTBOUND_RING_TIMEOUT_SECONDS
    assert dial.claims.sip.call


async def test_person_answers_and_accepts_caller_is_moved_in(
    livekit_server, openai_server, offline_dial
):
    openai_server.script(tool_call("warm_transfer_call", {"destination": "sales"}))
    async with warm_call(livekit_server, openai_server) as call:
        run = asyncio.ensure_future(call.session.run(user_input="Yes, connect me."))
        await livekit_server.wait_for("CreateSIPParticipant", timeout=TIMEOUT)
        task = await eventually(lambda: _briefing(call))
        assert task.hold_music is not None and not task.hold_music.done()
        # What the briefing session tells the person: the call so far, and who is calling.
        briefing = str(task.instructions)
        assert "Assistant: Thank you for calling our company." in briefing
        assert "Caller: Yes, connect me." in briefing
        assert "on behalf of our company" in briefing and "through to sales" in briefing

        # The briefed person says "put them through": the briefing LLM calls this tool.
        await task.connect_to_caller()
        await asyncio.wait_for(run, TIMEOUT)
        await eventually(lambda: call.state.outcome is Outcome.TRANSFERRED)

        (move,) = livekit_server.calls("MoveParticipant")
        assert move.request.room == CONSULTATION_ROOM
        assert move.request.identity == HUMAN
        assert move.request.destination_room == ROOM
        assert call.state.ending.transferred_to == "tel:+16285551111"
        # The agent steps aside but stays: closing the session would delete the room.
        await asyncio.sleep(0.3)
        assert livekit_server.calls("DeleteRoom") == []
        assert not call.session.output.audio_enabled
        assert not call.session.input.audio_enabled
        # No reply after the tool: the LLM was asked once.
        assert len(openai_server.chat_requests) == 1


async def test_person_declines_after_the_briefing(livekit_server, openai_server, offline_dial):
    openai_server.script(
        tool_call("warm_transfer_call", {"destination": "sales"}),
        reply("Sales can't take the call right now. Can I help with anything else?"),
    )
    async with warm_call(livekit_server, openai_server) as call:
        run = asyncio.ensure_future(call.session.run(user_input="Yes."))
        task = await eventually(lambda: _briefing(call))
        line = task.consultation_session

        await task.decline_transfer(reason="in a meeting")
        await finish(run)
        await eventually(lambda: "Sales can't take" in " ".join(spoken(openai_server)))

        assert line.hung_up
        assert "did not go through" in str(openai_server.chat_requests[-1].messages)
        assert livekit_server.calls("MoveParticipant") == []
        assert livekit_server.calls("DeleteRoom") == []
        assert call.state.outcome is None


async def test_move_fails_off_livekit_cloud_caller_is_told(
    livekit_server, openai_server, offline_dial
):
    # MoveParticipant exists on LiveKit Cloud only; any error answer stands for its absence.
    livekit_server.script("MoveParticipant", twirp_error("unimplemented", "not supported"))
    openai_server.script(
        tool_call("warm_transfer_call", {"destination": "sales"}),
        reply("I'm sorry, I couldn't connect you. How else can I help?"),
    )
    async with warm_call(livekit_server, openai_server) as call:
        run = asyncio.ensure_future(call.session.run(user_input="Yes."))
        task = await eventually(lambda: _briefing(call))
        line = task.consultation_session

        with pytest.raises(api.TwirpError) as refused:
            await task.connect_to_caller()
        assert refused.value.code == "unimplemented"
        await finish(run)
        await eventually(lambda: "couldn't connect you" in " ".join(spoken(openai_server)))

        assert line.hung_up
        assert call.state.outcome is None
        assert livekit_server.calls("DeleteRoom") == []


async def test_caller_hangs_up_on_hold_the_person_is_hung_up_on(
    livekit_server, openai_server, offline_dial
):
    hold_line = offline_dial
    openai_server.script(tool_call("warm_transfer_call", {"destination": "sales"}))
    async with warm_call(livekit_server, openai_server) as call:
        run = asyncio.ensure_future(call.session.run(user_input="Yes."))
        task = await eventually(lambda: _briefing(call))
        line = task.consultation_session

        # What the room does when the caller's phone leg goes away.
        await call.session.aclose()
        await asyncio.wait_for(asyncio.gather(run, return_exceptions=True), TIMEOUT)

        assert line.hung_up
        assert task.hold_music is None
        assert call.state.outcome is None
        # The hold-music player is closed: nothing more reaches the (gone) caller's room.
        sent = len(hold_line.frames)
        await asyncio.sleep(0.5)
        assert len(hold_line.frames) == sent


async def test_silence_limit_does_not_hang_up_on_a_caller_on_hold(
    livekit_server, openai_server, offline_dial
):
    # The caller is silent on hold far longer than the silence limit allows.
    livekit_server.script("CreateSIPParticipant", delay(3.0, sip_call_error(480)))
    openai_server.script(
        tool_call("warm_transfer_call", {"destination": "sales"}),
        reply("Sorry, nobody picked up."),
    )
    env = {**WARM, "SILENCE_TIMEOUT_SECONDS": "1"}
    async with warm_call(livekit_server, openai_server, env=env) as call:
        watch_call_limits(call.session, call.state)
        await finish(call.session.run(user_input="Yes."))
        await eventually(lambda: "nobody picked up" in " ".join(spoken(openai_server)))

        hold_prompt = call.state.render("warm_transfer_hold")
        assert spoken(openai_server)[-2:] == [hold_prompt, "Sorry, nobody picked up."]
        assert livekit_server.calls("DeleteRoom") == []
        assert call.state.outcome is None


async def test_a_task_that_cannot_start_does_not_leave_the_caller_on_hold(
    livekit_server, openai_server
):
    # Nothing replaced: the hold-music track cannot be published to an unconnected room.
    openai_server.script(
        tool_call("warm_transfer_call", {"destination": "sales"}),
        reply("I'm sorry, I couldn't reach anyone."),
    )
    async with warm_call(livekit_server, openai_server) as call:
        await finish(call.session.run(user_input="Yes."))
        await eventually(lambda: "couldn't reach anyone" in " ".join(spoken(openai_server)))
        assert type(call.session.current_agent).__name__ == "TelephonyAgent"
        assert call.state.outcome is None
    assert livekit_server.calls("CreateSIPParticipant") == []


@pytest.mark.parametrize(
    ("env", "destination", "told"),
    [
        pytest.param(WARM, "+16285554321", "is not a transfer destination", id="made-up-number"),
        pytest.param(WARM, "billing", "You can only transfer to: sales", id="unlisted"),
        pytest.param(
            {**WARM, "TRANSFER_DESTINATIONS": "support=sip:support@pbx.example.com"},
            "support",
            "warm transfer can only call a phone number",
            id="sip-destination",
        ),
        pytest.param(
            {**WARM, "SIP_OUTBOUND_TRUNK_ID": ""}, "sales", "no outbound trunk", id="no-trunk"
        ),
        pytest.param(
            {**WARM, "WARM_TRANSFER": "false"}, "sales", "not set up", id="warm-transfer-off"
        ),
    ],
)
async def test_refused_destinations_dial_nothing(
    livekit_server, openai_server, hold_line, env, destination, told
):
    openai_server.script(
        tool_call("warm_transfer_call", {"destination": destination}),
        reply("I can't do that, but I can keep helping."),
    )
    async with warm_call(livekit_server, openai_server, env=env) as call:
        await asyncio.wait_for(call.session.run(user_input="Transfer me."), TIMEOUT)
        assert call.state.outcome is None
        assert livekit_server.calls("DeleteRoom") == []
    assert told in str(openai_server.chat_requests[-1].messages)
    assert livekit_server.calls("CreateSIPParticipant") == []
    # Neither the hold message nor hold music.
    assert all("Please hold" not in text for text in spoken(openai_server))
    assert hold_line.frames == []


def _briefing(call: RunningCall) -> WarmTransfer | None:
    """The warm transfer under way, once the person has answered and is being briefed."""
    task = call.session.current_agent
    if isinstance(task, WarmTransfer) and task.consultation_session is not None:
        return task
    return None
