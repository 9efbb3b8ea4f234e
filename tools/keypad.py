"""Collect a number the caller types on their phone keypad (an account number, a PIN...).

The framework's `GetDtmfTask` does the collecting: it takes over the conversation, asks
for the number, gathers the keys (or the digits the caller says instead), optionally
reads them back for confirmation, and hands back to the agent. While it runs, the keypad
menu (`telephony.call.keypad`) leaves the keys alone.
"""

from __future__ import annotations

import asyncio
import contextvars
import logging

from livekit.agents import AgentSession, RunContext, ToolError, function_tool
from livekit.agents.beta.workflows import GetDtmfTask

from telephony.call.call_state import CallState
from telephony.call.keypad import key_presses

logger = logging.getLogger("tools.keypad")

MAX_DIGITS = 32
# Seconds after the last key press before the number counts as finished (or # ends it).
DIGIT_TIMEOUT_SECONDS = 5.0
# Give up after this long with no key pressed and nobody speaking.
NO_INPUT_TIMEOUT_SECONDS = 20.0


@function_tool
async def collect_keypad_digits(
    context: RunContext[CallState], what: str, num_digits: int, read_back: bool = False
) -> str:
    """Ask the caller to type a number on their phone keypad (an account number, a date of
    birth, a PIN, an order number...) and get the digits they typed. Use it when you need a
    number exactly, when it is private, or when the caller offers to type it.

    Args:
        what: What to ask for, in a few words, e.g. "your account number" or "your date of
            birth as eight digits, day month year".
        num_digits: How many digits the number has (not counting the final pound key).
        read_back: True to read the digits back to the caller and wait for them to confirm.
    """
    state = context.userdata
    if not state.context.is_phone_call:
        return "This caller is not on a phone line, so they have no keypad. Ask them to say it."
    if not 1 <= num_digits <= MAX_DIGITS:
        return f"num_digits must be between 1 and {MAX_DIGITS}. Call again with the right length."

    session = context.session
    task = GetDtmfTask(
        num_digits=num_digits,
        ask_for_confirmation=read_back,
        dtmf_input_timeout=DIGIT_TIMEOUT_SECONDS,
        chat_ctx=session.current_agent.chat_ctx.copy(
            exclude_function_call=True, exclude_instructions=True
        ),
        extra_instructions=(
            f"Ask the caller, in one short sentence, to type {what} on their phone keypad "
            f"({num_digits} digits) and then press the pound key."
        ),
    )
    watch = _GiveUpWhenIdle(session, task, NO_INPUT_TIMEOUT_SECONDS)
    try:
        result = await task
    except ToolError as e:
        logger.info("keypad entry not completed: %s", e)
        return (
            f"The caller did not finish typing {what} ({e}). Ask whether they want to try "
            "again, or to say it instead."
        )
    finally:
        watch.close()
    digits = result.user_input.replace(" ", "")
    # The digits may be private (a PIN, an account number): they are not logged.
    logger.info("keypad entry collected (%d keys)", len(digits))
    return f"The caller entered {what}: {digits}"


class _GiveUpWhenIdle:
    """End the task when nothing happens for `seconds`: no key, nobody speaking.

    GetDtmfTask waits forever for a first key; a caller who does nothing must not leave
    the agent stuck in it."""

    def __init__(self, session: AgentSession[CallState], task: GetDtmfTask, seconds: float):
        self._session = session
        self._task = task
        self._seconds = seconds
        self._loop = asyncio.get_running_loop()
        self._timer: asyncio.TimerHandle | None = None
        self._unsubscribe = key_presses(self._activity)
        session.on("user_state_changed", self._activity)
        session.on("agent_state_changed", self._activity)
        self._restart()

    def close(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
        self._unsubscribe()
        self._session.off("user_state_changed", self._activity)
        self._session.off("agent_state_changed", self._activity)

    def _activity(self, _ev: object) -> None:
        self._restart()

    def _restart(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
        # A fresh context: the timeout is not the outcome of the tool's own speech.
        self._timer = self._loop.call_later(
            self._seconds, self._give_up, context=contextvars.Context()
        )

    def _give_up(self) -> None:
        if self._task.done():
            return
        busy = self._session.user_state == "speaking" or self._session.agent_state in (
            "speaking",
            "thinking",
        )
        if busy:
            self._restart()
            return
        self._task.complete(
            ToolError(f"no key was pressed for {self._seconds:g} seconds; the keypad timed out")
        )
