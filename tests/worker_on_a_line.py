"""agent.py's worker on a stand-in phone line, for tests that run it as a real process.

    python tests/worker_on_a_line.py start     # as `python agent.py start`, same settings

The worker, its forkserver and its job processes are the product's: agent.py's prewarm
(`setup_fnc`), its record saving (`on_session_end`), the job flow (`run_job` with agent.py's
wiring) and `worker_cli.run`. Only the room is a stand-in, inside the job process: the job's
room is a `BenchRoom` that the caller's SIP participant joins, the session speaks into a
real-time sink (the caller's ear), and a scripted caller says one line (a text turn) after
each answer has played, LINE_CALLER_TURNS lines in all (default 3), then hangs up.

The caller logs `caller: answer N played` (through the worker's log) after each answer, and
writes what it heard to the JSON file LINE_CALLER_REPORT when the call ends: every stretch
of the agent's audio (`heard`: seconds, interrupted) and every line the agent said (`said`).
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import logging
import os
import sys
import time
from pathlib import Path
from typing import Any

PROJECT_ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(PROJECT_ROOT))

from livekit import rtc  # noqa: E402
from livekit.agents import JobContext  # noqa: E402
from livekit.agents.voice.events import CloseReason  # noqa: E402

import agent  # noqa: E402
from telephony.devtools.bench.room import BenchRoom, phone_caller  # noqa: E402
from telephony.devtools.bench.sink import RealTimeAudioSink  # noqa: E402
from telephony.domain.settings import agent_name_from_env, worker_options  # noqa: E402
from telephony.worker import worker_cli  # noqa: E402
from telephony.worker.job import run_job  # noqa: E402
from telephony.worker.worker_cli import SupervisedServer  # noqa: E402

logger = logging.getLogger("tests.worker_on_a_line")

CALLER_LINES = (
    "Hi, I would like to book an appointment.",
    "Tuesday morning would be great.",
    "Can you tell me how long it takes?",
    "And do I need to bring anything?",
)
AUDIO_SPEED = 4.0  # the caller's ear plays 4x faster than real time: shorter tests
POLL = 0.05
TURN_TIMEOUT = 30.0

server = SupervisedServer(
    setup_fnc=agent.prewarm, preload_modules=agent.PRELOAD_MODULES, **worker_options()
)


@server.rtc_session(agent_name=agent_name_from_env(), on_session_end=agent.save_call_record)
async def entrypoint(ctx: JobContext) -> None:
    room = BenchRoom(ctx.job.room.name)
    # The job's room is the stand-in, connected (what fake_job_context does for a fake job).
    ctx._room = room  # type: ignore[attr-defined]
    ctx._connected = True  # type: ignore[attr-defined]
    line = CallerLine(room, RealTimeAudioSink(speed=AUDIO_SPEED))
    wiring = dataclasses.replace(agent.PHONE_WIRING, join_room=line.join_room)
    caller = asyncio.create_task(line.call())

    async def report() -> None:
        await line.hung_up(caller)

    ctx.add_shutdown_callback(report)
    await run_job(ctx, wiring)


@dataclasses.dataclass
class CallerLine:
    room: BenchRoom
    sink: RealTimeAudioSink
    session: Any = None
    said: list[dict[str, Any]] = dataclasses.field(default_factory=list)

    async def join_room(self, session: Any, telephony_agent: Any, ctx: Any, options: Any) -> None:
        self.session = session
        session.output.audio = self.sink
        session.on("conversation_item_added", self._item_added)
        await session.start(telephony_agent)

    def _item_added(self, event: Any) -> None:
        item = event.item
        if getattr(item, "role", None) == "assistant":
            self.said.append(
                {"text": item.text_content or "", "interrupted": bool(item.interrupted)}
            )

    async def call(self) -> None:
        """Join, listen to the greeting, say each line after the answer has played, hang up."""
        await asyncio.sleep(0.2)
        self.room.add_participant(phone_caller(0))
        await self._until(lambda: self.session is not None and self.sink.segments)
        await self._until(self._agent_done)
        turns = int(os.environ.get("LINE_CALLER_TURNS", "3"))
        for turn in range(turns):
            if self._line_down():
                return
            await self._say(CALLER_LINES[turn % len(CALLER_LINES)])
            if self._line_down():
                return
            logger.info("caller: answer %d played", turn + 1)
        logger.info("caller: hanging up")
        identity = phone_caller(0).identity
        self.room.remove_participant(identity, rtc.DisconnectReason.CLIENT_INITIATED)
        # What RoomIO does when the linked caller leaves (its close_on_disconnect).
        self.session._close_soon(reason=CloseReason.PARTICIPANT_DISCONNECTED)

    async def _say(self, text: str) -> None:
        """One line (a text turn), then until its answer has played."""
        answers = len(self.sink.segments)
        self.session.generate_reply(user_input=text)
        await self._until(lambda: len(self.sink.segments) > answers and self._agent_done())

    async def hung_up(self, caller: asyncio.Task[None]) -> None:
        """The job is ending: report what the caller heard."""
        caller.cancel()
        await self.sink.aclose()
        report = {
            "heard": [
                {"seconds": s.duration, "interrupted": s.interrupted, "done": bool(s.finished_at)}
                for s in self.sink.segments
            ],
            "said": self.said,
        }
        if path := os.environ.get("LINE_CALLER_REPORT"):
            await asyncio.to_thread(Path(path).write_text, json.dumps(report))

    def _agent_done(self) -> bool:
        played = all(s.finished_at is not None for s in self.sink.segments)
        return played and self.session.agent_state in ("listening", "idle")

    def _line_down(self) -> bool:
        if self.session is None:
            return False
        control = self.session.userdata.control
        return control.hang_up_task is not None

    async def _until(self, condition: Any) -> None:
        deadline = time.monotonic() + TURN_TIMEOUT
        while not condition():
            if self._line_down() or time.monotonic() > deadline:
                return
            await asyncio.sleep(POLL)


if __name__ == "__main__":
    worker_cli.run(server, sys.argv)
