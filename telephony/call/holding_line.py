"""A short holding line ("One moment, please.") while a stalled provider is retried.

A stalled LLM or TTS costs the caller its bound (telephony.call.provider_bounds: 2 s for the
LLM's first token, 1.2 s for the TTS's first audio) before the retry or the fallback even
starts, and the turn's own wait comes on top: 4 s of silence before the apology, ~3 s before
a fallback's answer. So when a reply has nothing to say yet and
- an attempt of the LLM or the TTS reaches its bound (the first bound), or
- SILENCE_BEFORE_HOLDING_SECONDS have passed since the caller stopped speaking (a request
  that started late, or a quick error followed by a stalled retry),
the caller hears prompts/holding_line.txt, and the answer, or the apology if every attempt
fails, follows it. A reply with text and audio by then gets nothing, nor does an error that
comes at once (a 5xx): its retry is quicker than the line.

The line is part of the reply (the framework plays one speech at a time, so a `session.say`
would wait behind the stalled reply):
- the LLM is slow: the reply's text starts with the line, as a segment of its own
  (`llm_node`), said from its cached audio (`tts_node`), else by the TTS; the chat context
  and the record's transcript show it, as the agent said it;
- the TTS is slow: the segment's audio starts with the line's cached audio (`tts_node`).
It plays at most once per caller turn. Its audio is synthesized at the start of the first
call and kept like the apology's (telephony.call.prompt_audio), so it plays when the TTS is
the provider that stalled; a slow TTS with no cached line gets nothing.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import time
from collections.abc import AsyncIterable, AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any, TypeVar

from livekit import rtc
from livekit.agents import AgentSession, APITimeoutError, FlushSentinel
from livekit.agents.voice.events import (
    AgentStateChangedEvent,
    ConversationItemAddedEvent,
    UserStateChangedEvent,
)

from telephony.call.call_state import CallState
from telephony.call.framework_compat import adapter_instances, serving, vad_min_silence
from telephony.call.prompt_audio import cached_prompt_audio

logger = logging.getLogger("telephony.call.holding_line")

HOLDING_LINE_PROMPT = "holding_line"
# After this much silence since the caller's last word the line plays even before a bound
# ran out: with the audio's way out (~0.1 s) it reaches the caller within 3 s. A healthy
# reply's first audio comes 0.7-1.9 s after the caller's last word.
SILENCE_BEFORE_HOLDING_SECONDS = 2.4

T = TypeVar("T")


def holding_line_text(state: CallState) -> str:
    return state.render(HOLDING_LINE_PROMPT)


class HoldingLine:
    """One call's holding line: what the caller's turn and the providers' attempts did."""

    def __init__(self, session: AgentSession[Any], state: CallState) -> None:
        self._state = state
        self._vad_silence = vad_min_silence(session.vad) or 0.0
        self._turns_by_message = session.vad is None
        # The reply's audio rate (the TTS adapter's): the cached line is resampled to it.
        self._sample_rate = session.tts.sample_rate if session.tts is not None else None
        # time.time() of the caller's last word, while their turn has no answer audio yet
        self.speech_ended_at: float | None = None
        self.held_this_turn = False
        self.timeouts = 0  # attempts of the LLM or the TTS that reached their bound
        self._segment_made = False  # llm_node made the line a segment: tts_node says it
        self._changed = asyncio.Event()  # set (and replaced) whenever the above change
        session.on("user_state_changed", self._on_user_state)
        session.on("agent_state_changed", self._on_agent_state)
        session.on("conversation_item_added", self._on_item_added)
        seen: set[int] = set()  # an LLM alone is its own second attempt: listen once
        for model in (session.llm, session.tts):
            for instance in adapter_instances(model) if model is not None else []:
                if id(instance) not in seen:
                    seen.add(id(instance))
                    instance.on("error", functools.partial(self._on_attempt_error, model, instance))

    # -- the agent's nodes ----------------------------------------------------------------

    async def llm_node(self, chunks: AsyncIterable[Any]) -> AsyncIterator[Any]:
        """The reply's text (the LLM's chunks), starting with the line when it is slow."""
        async with _Relay(chunks) as relay, self._turn() as turn:
            if await self._silent_too_long(relay.first) and turn.claim():
                logger.info("the LLM is slow to answer: saying the holding line")
                self._segment_made = True
                # The space keeps the line and the answer apart in the reply's text.
                yield holding_line_text(self._state) + " "
                yield FlushSentinel()
            async for chunk in relay:
                yield chunk

    async def tts_node(
        self,
        text: AsyncIterable[str],
        synthesize: Callable[[AsyncIterable[str]], AsyncIterable[rtc.AudioFrame]],
    ) -> AsyncIterator[rtc.AudioFrame]:
        """A segment's audio: the line's cached audio for the segment llm_node made of it;
        else `synthesize(text)`, starting with the line's cached audio when it is slow."""
        if self._segment_made:
            self._segment_made = False
            said = "".join([chunk async for chunk in text])
            audio = self._cached_audio()
            if audio is not None and said.strip() == holding_line_text(self._state):
                async for frame in audio:
                    yield frame
                return
            text = _replay(said)
        async with _Relay(synthesize(text)) as relay, self._turn() as turn:
            if (
                await self._silent_too_long(relay.first)
                and (audio := self._cached_audio()) is not None
                and turn.claim()
            ):
                logger.info("the TTS is slow to answer: playing the holding line")
                async for frame in audio:
                    yield frame
            async for frame in relay:
                yield frame

    # -- when -----------------------------------------------------------------------------

    async def _silent_too_long(self, first: asyncio.Future[Any]) -> bool:
        """Wait until the reply's first output (False) or a reason to hold (True)."""
        timeouts_before = self.timeouts
        while not first.done():
            if self.timeouts > timeouts_before:
                return True
            wait: float | None = None
            if self.speech_ended_at is not None:
                wait = self.speech_ended_at + SILENCE_BEFORE_HOLDING_SECONDS - time.time()
                if wait <= 0:
                    return True
            changed = asyncio.ensure_future(self._changed.wait())
            try:
                await asyncio.wait({first, changed}, timeout=wait, return_when="FIRST_COMPLETED")
            finally:
                changed.cancel()
        return False

    @contextlib.asynccontextmanager
    async def _turn(self) -> AsyncIterator[_Claim]:
        """The line's claim for one reply: once per turn, and given back when the reply is
        dropped (a reply prepared while the caller was still speaking): unheard."""
        claim = _Claim(self)
        try:
            yield claim
        except (asyncio.CancelledError, GeneratorExit):
            if claim.claimed:
                self.held_this_turn = False
            raise

    def _cached_audio(self) -> AsyncIterator[rtc.AudioFrame] | None:
        audio = cached_prompt_audio(self._state, holding_line_text(self._state))
        if audio is None:
            logger.warning("a provider is slow to answer and the holding line is not cached")
            return None
        return _at_rate(audio.frames(), self._sample_rate)

    def _notify(self) -> None:
        self._changed.set()
        self._changed = asyncio.Event()

    def _on_user_state(self, event: UserStateChangedEvent) -> None:
        if event.new_state == "speaking":  # a new turn
            self.speech_ended_at = None
            self.held_this_turn = False
        elif event.new_state == "listening" and event.old_state == "speaking":
            # The VAD reports the end of speech after its silence: the last word was before.
            self.speech_ended_at = event.created_at - self._vad_silence
        self._notify()

    def _on_item_added(self, event: ConversationItemAddedEvent) -> None:
        # Without a VAD (typed input) a turn starts with the caller's message. With one it
        # starts when they speak: their message comes at the commit, which may follow the
        # line of a reply prepared early.
        if self._turns_by_message and getattr(event.item, "role", None) == "user":
            self.held_this_turn = False

    def _on_agent_state(self, event: AgentStateChangedEvent) -> None:
        if event.new_state == "speaking":  # the turn has its answer (or the line)
            self.speech_ended_at = None

    def _on_attempt_error(self, model: Any, instance: Any, error: Any) -> None:
        # A provider already left for its fallback is only probed in the background (the
        # adapter's recovery): its timeouts say nothing about the reply being prepared.
        if not serving(model, instance):
            return
        if isinstance(getattr(error, "error", None), APITimeoutError):
            self.timeouts += 1
            self._notify()


class _Claim:
    def __init__(self, line: HoldingLine) -> None:
        self._line = line
        self.claimed = False

    def claim(self) -> bool:
        """True once per turn: the line may be said now."""
        if self._line.held_this_turn:
            return False
        self._line.held_this_turn = self.claimed = True
        return True


@dataclass
class _End:
    error: BaseException | None = None


class _Relay(AsyncIterator[T]):
    """A node's output read by a task of its own, so the reader can wait on it with a
    timeout and yield meanwhile; `first` is done once there is something (or the end)."""

    def __init__(self, source: AsyncIterable[T]) -> None:
        self._source = source
        self._queue: asyncio.Queue[T | _End] = asyncio.Queue()
        self.first: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._task: asyncio.Task[None] | None = None

    async def __aenter__(self) -> _Relay[T]:
        self._task = asyncio.create_task(self._read(), name="holding-line-relay")
        return self

    async def __aexit__(self, *_: object) -> None:
        if self._task is not None and not self._task.done():
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)

    async def _read(self) -> None:
        try:
            async for item in self._source:
                self._put(item)
            self._put(_End())
        except Exception as e:  # raised to the reader, as the node itself would
            self._put(_End(e))

    def _put(self, item: T | _End) -> None:
        self._queue.put_nowait(item)
        if not self.first.done():
            self.first.set_result(None)

    def __aiter__(self) -> _Relay[T]:
        return self

    async def __anext__(self) -> T:
        item = await self._queue.get()
        if isinstance(item, _End):
            self._queue.put_nowait(item)  # the end stays the end
            if item.error is not None:
                raise item.error
            raise StopAsyncIteration
        return item


async def _replay(text: str) -> AsyncIterator[str]:
    yield text


async def _at_rate(
    frames: AsyncIterator[rtc.AudioFrame], rate: int | None
) -> AsyncIterator[rtc.AudioFrame]:
    """`frames` at `rate`: the framework resamples a reply by its first frame's rate only,
    and the cached line may be at another (a fallback TTS added since it was cached)."""
    resampler: rtc.AudioResampler | None = None
    async for frame in frames:
        if rate is None or frame.sample_rate == rate:
            yield frame
            continue
        if resampler is None:
            resampler = rtc.AudioResampler(frame.sample_rate, rate, num_channels=frame.num_channels)
        for out in resampler.push(frame):
            yield out
    if resampler is not None:
        for out in resampler.flush():
            yield out
