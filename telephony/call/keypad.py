"""The phone keypad (DTMF) on a call: the keypad menu, and key presses reaching the agent.

How key presses arrive (LiveKit Agents 1.8.9)
---------------------------------------------
LiveKit SIP turns each key the caller presses into a SIP DTMF packet, and `rtc.Room` emits
it as the *room* event "sip_dtmf_received" with an `rtc.SipDTMF(code, digit, participant)`.
Nothing turns it into user input or a session event: RoomIO listens only to reset the
user-away timer for its linked participant, and the framework's `GetDtmfTask` subscribes
to the job's room (`get_job_context().room`) itself. `key_presses` below is this project's
one subscription point, on that same room.

What a key press does (`attach_keypad`)
---------------------------------------
- a key in the menu is carried out at once: its text is said, or the caller is transferred
  (the announcement plays in full, then the SIP REFER goes out, as when the agent transfers);
- any other key (every key when there is no menu) is told to the LLM as user input,
  "[The caller pressed 5 on the keypad]", so it can answer. Keys typed in a row are sent
  together ("[The caller typed 1234# on the keypad]") once the caller pauses or presses #
  (a menu key pressed in the middle of such a number counts as part of it);
- while the `collect_keypad_digits` tool is collecting a number, its `GetDtmfTask` owns
  the keypad and the keys do nothing else.
Only the call's own participant (`CallContext.participant_identity`) is listened to.

The menu file's format: `telephony.domain.keypad_menu`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Coroutine
from typing import Any

from livekit import rtc
from livekit.agents import AgentSession, get_job_context
from livekit.agents.beta.workflows import GetDtmfTask

from telephony.call.call_state import CallState
from telephony.call.transfer import announce_and_transfer, transfer_problem
from telephony.domain.keypad_menu import KEY_GAP_SECONDS, DtmfMenu

logger = logging.getLogger("telephony.call.keypad")

# SIP DTMF codes for the keys that are not digits, in case a packet carries no digit.
_CODE_KEYS = {10: "*", 11: "#", 12: "A", 13: "B", 14: "C", 15: "D"}


# ---------------------------------------------------------------- key presses on a call


def key_presses(
    on_key: Callable[[rtc.SipDTMF], None], room: rtc.Room | None = None
) -> Callable[[], None]:
    """Call `on_key` for every SIP key press in the call's room; returns the unsubscribe.

    The one place that knows how LiveKit delivers key presses: the room event
    "sip_dtmf_received", on the job's room unless `room` is given (the same room the
    framework's GetDtmfTask listens to)."""
    if room is None:
        room = get_job_context().room
    room.on("sip_dtmf_received", on_key)
    return lambda: room.off("sip_dtmf_received", on_key)


def key_of(ev: rtc.SipDTMF) -> str:
    """The key pressed: '0'-'9', '*', '#' (or 'A'-'D' from special phones)."""
    return (ev.digit or _CODE_KEYS.get(ev.code, "")).strip().upper()


def attach_keypad(
    session: AgentSession[CallState],
    state: CallState,
    menu: DtmfMenu | None,
    *,
    room: rtc.Room | None = None,
    key_gap_seconds: float = KEY_GAP_SECONDS,
) -> None:
    """Act on the caller's key presses for as long as the session runs (see the module
    docstring). Call once per call, after the session has started; it detaches itself
    when the session closes."""
    keypad = _Keypad(session, state, menu, key_gap_seconds)
    unsubscribe = key_presses(keypad.on_key, room)

    def _detach(_ev: object) -> None:
        unsubscribe()
        keypad.close()

    session.once("close", _detach)


def pressed_text(keys: str) -> str:
    """How key presses are told to the LLM, as the caller's input."""
    if len(keys) == 1:
        return f"[The caller pressed {keys} on the keypad]"
    return f"[The caller typed {keys} on the keypad]"


class _Keypad:
    def __init__(
        self,
        session: AgentSession[CallState],
        state: CallState,
        menu: DtmfMenu | None,
        key_gap_seconds: float,
    ) -> None:
        self._session = session
        self._state = state
        self._menu = menu
        self._gap = key_gap_seconds
        self._typed = ""  # keys not in the menu, waiting to be sent together
        self._flush_timer: asyncio.TimerHandle | None = None
        self._transferring = False
        self._tasks: set[asyncio.Task[None]] = set()

    def on_key(self, ev: rtc.SipDTMF) -> None:
        if ev.participant is None or ev.participant.identity != (
            self._state.context.participant_identity
        ):
            return  # only the caller's own keys count
        key = key_of(ev)
        if not key or self._ignoring_keys():
            return
        option = self._menu.options.get(key) if self._menu else None
        if option is not None and not self._typed:
            logger.info("keypad menu: caller pressed %s", key)
            self._interrupt()
            if option.say:
                self._spawn(self._say(key, option.say))
            else:
                self._transfer(key, option.transfer)
            return
        # Not a menu choice (or part of a number being typed): the LLM hears it.
        self._typed += key
        if self._flush_timer is not None:
            self._flush_timer.cancel()
        if key == "#":
            self._flush()
        else:
            self._flush_timer = asyncio.get_running_loop().call_later(self._gap, self._flush)

    def close(self) -> None:
        if self._flush_timer is not None:
            self._flush_timer.cancel()
        for task in self._tasks:
            task.cancel()

    def _ignoring_keys(self) -> bool:
        """Keys do nothing here while collect_keypad_digits runs (its GetDtmfTask has the
        keypad), during a transfer, once the call is ending, or when the session is not
        running."""
        if self._transferring or self._state.ending.claimed:
            return True
        try:
            return isinstance(self._session.current_agent, GetDtmfTask)
        except RuntimeError:  # the session is not running
            return True

    def _flush(self) -> None:
        keys, self._typed, self._flush_timer = self._typed, "", None
        if not keys or self._ignoring_keys():
            return
        logger.info("keypad: %d key(s) told to the agent", len(keys))
        self._interrupt()
        self._guard(lambda: self._session.generate_reply(user_input=pressed_text(keys)))

    async def _say(self, key: str, text: str) -> None:
        await self._note(pressed_text(key))
        self._guard(lambda: self._session.say(text))

    def _transfer(self, key: str, destination: str) -> None:
        if problem := transfer_problem(self._state, destination):
            # e.g. "default" on a call without its own transfer_to: the LLM explains.
            logger.warning("keypad menu key %s: cannot transfer to %r", key, destination)
            self._guard(
                lambda: self._session.generate_reply(
                    user_input=pressed_text(key),
                    instructions=(
                        f"The caller pressed {key} on the keypad, which should transfer them "
                        f"to {destination!r}, but it cannot be done: {problem}"
                    ),
                )
            )
            return
        # Set at once: a second key press must not start a second transfer.
        self._transferring = True
        self._spawn(self._announce_and_transfer(key, destination))

    async def _announce_and_transfer(self, key: str, destination: str) -> None:
        try:
            await self._note(pressed_text(key))
            failed = await announce_and_transfer(self._session, destination)
        except BaseException:
            self._transferring = False
            raise
        if failed:  # the caller is still here: the LLM tells them
            self._transferring = False
            self._guard(lambda: self._session.generate_reply(instructions=failed))

    async def _note(self, text: str) -> None:
        """Put the key press in the conversation, so the LLM knows why the agent spoke."""
        agent = self._session.current_agent
        chat_ctx = agent.chat_ctx.copy()
        chat_ctx.add_message(role="user", content=text)
        await agent.update_chat_ctx(chat_ctx)

    def _interrupt(self) -> None:
        """The caller acted: stop what the agent is saying (unless it may not be cut off)."""
        with contextlib.suppress(RuntimeError):
            self._session.interrupt()

    def _guard(self, act: Callable[[], object]) -> None:
        try:
            act()
        except RuntimeError as e:  # the session is closing
            logger.info("keypad: key press ignored (%s)", e)

    def _spawn(self, coro: Coroutine[Any, Any, None]) -> None:
        task = asyncio.create_task(self._run(coro), name="keypad")
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _run(self, coro: Coroutine[Any, Any, None]) -> None:
        try:
            await coro
        except asyncio.CancelledError:
            raise
        except RuntimeError as e:  # the session closed under us
            logger.info("keypad: key press not carried out (%s)", e)
        except Exception:
            logger.exception("keypad: key press failed")
