"""When no provider can answer mid-call, the caller hears an apology, never silence.

A failed request is retried or handed to a fallback (telephony.call.provider_bounds); one
that still fails is an unrecoverable error event, and the framework itself would only close
the session on the fourth one in a row: the caller would sit in silence until then. Here
the first one ends the call the way the operator chose:
- by default, the apology (prompts/provider_failure.txt) is said in full, then the call
  hangs up: outcome `failed`;
- with PROVIDER_FAILURE_TRANSFER, prompts/provider_failure_transfer.txt is said, then the
  caller is transferred there (SIP REFER): outcome `transferred`; if the transfer fails,
  the call hangs up: outcome `failed`.
Either way the record (and so the webhook) has the reason `provider-error` and the error
of the provider that failed first, e.g. `llm: APIStatusError: ... overloaded`.

While a stalled provider's retry or fallback runs, the caller hears the holding line
(telephony.call.holding_line). The audio of both is synthesized once, early in the first
call, and kept with the greeting audio, so they play even when the TTS is the provider that
failed.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from livekit.agents import AgentSession
from livekit.agents import tts as tts_base
from livekit.agents.voice.events import ErrorEvent

from telephony.call import call_metrics
from telephony.call.call_state import CallState
from telephony.call.ending import end_call
from telephony.call.framework_compat import adapter_instances
from telephony.call.greeting_audio import CachedAudio
from telephony.call.holding_line import HoldingLine, holding_line_text
from telephony.call.prompt_audio import cache_prompt_audio, cached_prompt_audio, prompt_audio_key
from telephony.records.model import Outcome

logger = logging.getLogger("telephony.call.provider_faults")

PROVIDER_ERROR = "provider-error"
APOLOGY_PROMPT = "provider_failure"
TRANSFER_APOLOGY_PROMPT = "provider_failure_transfer"


def failure_transfer(state: CallState) -> str:
    """Where the caller goes when no provider can answer; "" hangs up."""
    return state.settings.provider_failure_transfer if state.context.is_phone_call else ""


def apology_text(state: CallState) -> str:
    return state.render(TRANSFER_APOLOGY_PROMPT if failure_transfer(state) else APOLOGY_PROMPT)


def apology_key(state: CallState) -> str:
    return prompt_audio_key(state, apology_text(state))


def cached_apology(state: CallState) -> CachedAudio | None:
    return cached_prompt_audio(state, apology_text(state))


async def cache_failure_lines(state: CallState, tts: tts_base.TTS | None) -> None:
    """Synthesize the holding line and the apology once, while the providers work, for the
    calls that need them (the holding line first: it is the first one a failing turn says)."""
    lines = {"holding line": holding_line_text(state), "apology": apology_text(state)}
    await cache_prompt_audio(state, tts, lines)


class _ProviderErrors:
    """The latest error of each provider behind the session's adapters: an adapter reports
    only that all its providers failed, the record should say why."""

    def __init__(self, session: AgentSession[Any]) -> None:
        self.latest: dict[str, str] = {}
        for model in (session.stt, session.llm, session.tts):
            for instance in adapter_instances(model):
                instance.on("error", self._note)
                inner = getattr(instance, "inner", None)  # a bound TTS's plugin
                if inner is not None:
                    inner.on("error", self._note)

    def _note(self, error: Any) -> None:
        self.latest[_kind(error)] = _describe(error)

    def why(self, error: Any) -> str:
        kind = _kind(error)
        return f"{kind}: {self.latest.get(kind) or _describe(error)}"


def _kind(error: Any) -> str:
    """The kind of provider ("llm", "stt" or "tts") from the framework's error event."""
    return getattr(error, "type", "provider_error").removesuffix("_error")


def _describe(error: Any) -> str:
    """The provider's own exception carried by an error event, e.g. "APIStatusError: ..."."""
    cause = getattr(error, "error", error)
    return f"{type(cause).__name__}: {cause}"


def apologize_on_provider_failure(session: AgentSession[CallState], state: CallState) -> None:
    """End the call with the apology on the first provider error the retries did not cover."""
    tasks: set[asyncio.Task[None]] = set()
    errors = _ProviderErrors(session)
    failed = asyncio.Event()  # set once: later errors of the same outage change nothing

    def on_error(event: ErrorEvent) -> None:
        error = event.error
        if getattr(error, "recoverable", True) or state.ending.claimed or failed.is_set():
            return
        failed.set()
        call_metrics.apology_played(_kind(error))
        why = errors.why(error)[:500]
        logger.error("%s: no provider could answer; apologizing, then ending the call", why)
        start(_end_for_provider_failure(session, state, why), "provider-apology")

    def start(coro: Any, name: str) -> None:
        task = asyncio.create_task(coro, name=name)
        tasks.add(task)
        task.add_done_callback(tasks.discard)

    session.on("error", on_error)
    state.holding_line = HoldingLine(session, state)
    if state.greeting_audio is not None:
        start(cache_failure_lines(state, session.tts), "cache-failure-lines")
    session.once("close", lambda _: [t.cancel() for t in list(tasks)])


async def _end_for_provider_failure(
    session: AgentSession[CallState], state: CallState, error: str
) -> None:
    text = apology_text(state)
    cached = cached_apology(state)
    uri = failure_transfer(state)
    if uri:
        try:
            ready = {"audio": cached.frames()} if cached is not None else {}
            await session.say(text, allow_interruptions=False, **ready)
        except RuntimeError:  # the session is closing: the caller hung up
            return
        if state.ending.claimed:
            return
        result = await state.control.transfer(state.context.participant_identity, uri)
        if result.ok:
            logger.info("the caller was transferred after the provider failure")
            await end_call(
                session,
                state.ending,
                Outcome.TRANSFERRED,
                PROVIDER_ERROR,
                error=error,
                transferred_to=uri,
            )
            return
        logger.error("the transfer after the provider failure failed: %s", result.detail)
        error = f"{error}; then the transfer failed: {result.detail}"[:500]
        await end_call(session, state.ending, Outcome.FAILED, PROVIDER_ERROR, error=error)
        return
    await end_call(
        session,
        state.ending,
        Outcome.FAILED,
        PROVIDER_ERROR,
        goodbye=text,
        goodbye_audio=cached.frames() if cached is not None else None,
        error=error,
    )
