"""Limits on a call: a caller who has gone quiet, and a call that has run too long.

Silence uses the framework's own away detection: `AgentSession(user_away_timeout=...)` sets
the user's state to "away" once caller and agent have both been silent that long. The timer
is paused while a tool runs or while the session waits for its participant, it restarts on
every agent or user turn, and RoomIO resets it on DTMF. So "silent" means exactly what the
framework means by it, with nothing of our own to keep in step. On the first "away" the
agent asks `still_there`; the caller stays "away" after that (the framework re-arms only
from "listening"), so once the question has played we reset the away timer ourselves: a
second "away" then means a second full silence, and the agent says `silence_goodbye` and
hangs up. Anything from the caller in between (speech, a turn, a key press) clears it.

The time limit is a plain timer from when the call was connected: when it runs out, the
agent finishes what it is saying, says `time_limit_goodbye` and hangs up.

Both give way to any other ending (a tool ended the call, the caller hung up) and stop
when the session closes.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Coroutine
from typing import Any

from livekit.agents import AgentSession
from livekit.agents.voice.events import (
    AgentStateChangedEvent,
    CloseEvent,
    ConversationItemAddedEvent,
    UserStateChangedEvent,
)

from telephony.call.call_state import CallState
from telephony.call.ending import end_call
from telephony.domain.settings import Settings
from telephony.records.model import Outcome

logger = logging.getLogger("telephony.call.call_limits")

SILENCE = "silence"
TIME_LIMIT = "time-limit"
# At the time limit, how long the agent may take to finish its turn before the goodbye is
# queued anyway (queued, so it still waits for the sentence being spoken).
WRAP_UP_GRACE_SECONDS = 30.0


def user_away_timeout(settings: Settings) -> float | None:
    """What to pass as `AgentSession(user_away_timeout=...)`: None turns away detection off
    (the framework's own default is 15 s, not off)."""
    return settings.silence_timeout_seconds or None


class CallLimits:
    """Watches one call's session; see `watch_call_limits`."""

    def __init__(self, session: AgentSession[CallState], state: CallState) -> None:
        self._session = session
        self._state = state
        self._silence_on = state.settings.silence_timeout_seconds > 0
        # The still-there question was asked and the caller has not been heard since.
        self._asked = False
        # We are moving the caller out of "away" ourselves (that is not the caller coming back).
        self._resetting = False
        self._stopped = False
        self._tasks: set[asyncio.Task[None]] = set()
        self._agent_state_changed = asyncio.Event()

        session.on("user_state_changed", self._on_user_state_changed)
        session.on("agent_state_changed", self._on_agent_state_changed)
        session.on("conversation_item_added", self._on_conversation_item_added)
        session.on("close", self._on_close)

        if self._silence_on and session.options.user_away_timeout != user_away_timeout(
            state.settings
        ):
            logger.warning(
                "SILENCE_TIMEOUT_SECONDS is %s but the session's user_away_timeout is %s: "
                "build the session with user_away_timeout=user_away_timeout(settings)",
                state.settings.silence_timeout_seconds,
                session.options.user_away_timeout,
            )
        if (limit := state.settings.max_call_duration_seconds) > 0:
            self._spawn(self._time_limit(limit), "call_limits.time_limit")

    # -- lifecycle

    @property
    def stopped(self) -> bool:
        return self._stopped

    def _stop(self) -> None:
        if self._stopped:
            return
        self._stopped = True
        self._session.off("user_state_changed", self._on_user_state_changed)
        self._session.off("agent_state_changed", self._on_agent_state_changed)
        self._session.off("conversation_item_added", self._on_conversation_item_added)
        self._session.off("close", self._on_close)
        for task in self._tasks:
            if task is not asyncio.current_task():
                task.cancel()

    async def aclose(self) -> None:
        """Stop watching (also done by itself when the session closes)."""
        self._stop()
        tasks = [t for t in self._tasks if t is not asyncio.current_task()]
        await asyncio.gather(*tasks, return_exceptions=True)

    def _on_close(self, _: CloseEvent) -> None:
        self._stop()

    def _spawn(self, coro: Coroutine[Any, Any, None], name: str) -> None:
        task = asyncio.create_task(coro, name=name)
        self._tasks.add(task)
        task.add_done_callback(self._task_done)

    def _task_done(self, task: asyncio.Task[None]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and (error := task.exception()) is not None:
            logger.error("call limit task %s failed", task.get_name(), exc_info=error)

    def _call_goes_on(self) -> bool:
        """Nobody has ended the call yet (a tool sets `ending`; a closed session stops us)."""
        return not self._stopped and not self._state.ending.claimed

    # -- silence

    def _on_user_state_changed(self, event: UserStateChangedEvent) -> None:
        if event.new_state == "away":
            if not self._silence_on or not self._call_goes_on():
                return
            if self._asked:
                logger.info("caller silent again after the still-there question: hanging up")
                self._spawn(self._end_call(SILENCE, "silence_goodbye"), "call_limits.silence")
            else:
                self._asked = True
                self._spawn(self._ask_still_there(), "call_limits.still_there")
        elif event.new_state == "speaking" or (event.old_state == "away" and not self._resetting):
            # The caller spoke (or pressed a key, or was transcribed): the silence is over.
            self._asked = False

    def _on_conversation_item_added(self, event: ConversationItemAddedEvent) -> None:
        if getattr(event.item, "role", None) == "user":
            self._asked = False

    async def _ask_still_there(self) -> None:
        logger.info("caller silent for %ss: asking if they are still there", self._timeout)
        try:
            # Interruptible: a caller who answers over the question is heard.
            question = self._session.say(self._state.render("still_there"))
        except RuntimeError:  # the session is closing
            return
        await question.wait_for_playout()
        if self._asked and self._call_goes_on() and self._session.user_state == "away":
            # Count the second silence from the end of the question.
            self._resetting = True
            try:
                self._session.reset_away_timer()
            finally:
                self._resetting = False

    @property
    def _timeout(self) -> float:
        return self._state.settings.silence_timeout_seconds

    # -- time limit

    async def _time_limit(self, seconds: float) -> None:
        await asyncio.sleep(seconds)
        if not self._call_goes_on():
            return
        logger.info("call reached its time limit of %ss: wrapping up", seconds)
        try:
            async with asyncio.timeout(WRAP_UP_GRACE_SECONDS):
                await self._agent_turn_finished()
        except TimeoutError:
            logger.warning("agent still busy %ss after the time limit", WRAP_UP_GRACE_SECONDS)
        # That turn may have ended the call itself (end_call, a transfer).
        await self._end_call(TIME_LIMIT, "time_limit_goodbye")

    async def _agent_turn_finished(self) -> None:
        """Until the agent has finished what it is saying or about to say: a reply being
        spoken or generated, a tool running and the reply that follows it."""
        while self._call_goes_on():
            speech = self._session.current_speech
            if speech is not None and not speech.done():
                await speech.wait_for_playout()
            elif self._session.agent_state in ("thinking", "speaking"):
                self._agent_state_changed.clear()
                await self._agent_state_changed.wait()
            else:
                return

    def _on_agent_state_changed(self, _: AgentStateChangedEvent) -> None:
        self._agent_state_changed.set()

    # -- ending

    async def _end_call(self, reason: str, prompt_name: str) -> None:
        """Say the goodbye in full, then hang up and close the session."""
        if not self._call_goes_on():
            return
        # Nothing may be said after the goodbye (a reply queued behind it is dropped).
        await end_call(
            self._session,
            self._state.ending,
            Outcome.AGENT_ENDED,
            reason,
            goodbye=self._state.render(prompt_name),
            drain=False,
        )


def watch_call_limits(session: AgentSession[CallState], state: CallState) -> CallLimits:
    """Enforce the silence timeout and the maximum call duration on this call.

    Call it once the call is connected (the duration counts from here), after
    `session.start`; the session must have been built with
    `user_away_timeout=user_away_timeout(settings)`. Stops by itself when the session closes;
    `aclose()` stops it earlier."""
    return CallLimits(session, state)
