"""The fast way to test a conversation: the real agent (instructions, tools, prompts) in an
`AgentSession` with the LLM only, driven through the framework's testing API
(`session.run(user_input=...)`, `result.expect`, `mock_tools`), and a fake call control in
place of the LiveKit server. No audio and no room: a turn takes milliseconds.

The LLM is the OpenAI stand-in (a local server the real openai plugin talks to), scripted
per test. Tests that need audio timing or the LiveKit wire use tests/harness.py instead.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass, field

from livekit.agents import AgentSession

from telephony.call import models
from telephony.call.call_context import CallContext
from telephony.call.call_control import DialOutcome, DialResult, TransferResult
from telephony.call.call_state import CallState
from telephony.devtools.standins.openai_server import OpenAIStandin
from telephony.domain.dial_request import DialRequest
from telephony.domain.prompts import Prompts
from telephony.domain.settings import read_settings
from telephony.worker.session import TelephonyAgent, greet
from tests.harness import CALLER, ROOM, inbound_context

__all__ = ["CALLER", "Conversation", "FakeCallControl", "caller_context", "conversation"]

# Who is on the line by default: the same inbound caller as tests/harness.py's.
caller_context = inbound_context


@dataclass
class FakeCallControl:
    """What the call asks of the LiveKit server, recorded; it answers as a healthy one does
    unless a test sets `transfer_result` or `dial_result`."""

    room_name: str = ROOM
    transfer_result: TransferResult = field(default_factory=lambda: TransferResult(True))
    dial_result: DialResult | None = None
    transfers: list[tuple[str, str]] = field(default_factory=list)
    dials: list[str] = field(default_factory=list)
    rooms_deleted: int = 0
    _hang_up_task: asyncio.Task[bool] | None = None

    connected_to_server = True
    api = None

    @property
    def hang_up_task(self) -> asyncio.Task[bool] | None:
        return self._hang_up_task

    async def dial(
        self, *, phone_number: str, participant_identity: str, **_: object
    ) -> DialResult:
        self.dials.append(phone_number)
        return self.dial_result or DialResult(DialOutcome.ANSWERED, participant_identity)

    async def transfer(self, participant_identity: str, transfer_to: str) -> TransferResult:
        self.transfers.append((participant_identity, transfer_to))
        return self.transfer_result

    def hang_up(self) -> asyncio.Task[bool]:
        if self._hang_up_task is None:
            self.rooms_deleted += 1
            self._hang_up_task = asyncio.create_task(asyncio.sleep(0, result=True))
        return self._hang_up_task


@dataclass
class Conversation:
    session: AgentSession[CallState]
    state: CallState
    control: FakeCallControl


@asynccontextmanager
async def conversation(
    llm: OpenAIStandin,
    *,
    env: Mapping[str, str] | None = None,
    context: CallContext | None = None,
    dial_request: DialRequest | None = None,
) -> AsyncIterator[Conversation]:
    """A started session on one call (the inbound greeting already said, on a call we
    answered); closed on exit."""
    settings = read_settings(
        {"OPENAI_API_KEY": "test", "OPENAI_BASE_URL": llm.base_url, **(env or {})}
    )
    control = FakeCallControl()
    state = CallState(
        settings,
        Prompts.load(settings.prompts_dir),
        control,  # type: ignore[arg-type]
        context or caller_context(),
        dial_request=dial_request,
    )
    session = AgentSession[CallState](llm=models.build_llm(settings.models), userdata=state)
    await session.start(TelephonyAgent(state, greet))
    try:
        yield Conversation(session, state, control)
    finally:
        await session.aclose()
