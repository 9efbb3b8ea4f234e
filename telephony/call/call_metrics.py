"""Prometheus series for calls, fed live from the session's events (README "Watching your calls").

Each turn is observed when the agent's reply enters the session's history (once it has
played), so the latency histograms move while the call is still up; the framework's own
OpenTelemetry histograms only flush at session end. The calls counted here live in the
job process; the worker's /metrics merges every process's series (multiprocess mode, see
telephony.worker.metrics_endpoint). Label values are bounded (telephony.records.metric_labels).
"""

from __future__ import annotations

from typing import Any

from livekit.agents import AgentSession, llm
from livekit.agents.voice.events import ConversationItemAddedEvent
from prometheus_client import Counter, Gauge, Histogram

from telephony.call.framework_compat import adapter_instances
from telephony.records.metric_labels import bounded, end_reason_label, provider_label
from telephony.records.model import CallRecord, TurnLatency

# Phone latency: a good reply starts 0.8-1.5 s after the caller stops; under 0.1 s and
# over 5 s are rare and only need to be seen, not resolved.
LATENCY_BUCKETS = (0.05, 0.1, 0.2, 0.3, 0.5, 0.75, 1.0, 1.25, 1.5, 2.0, 2.5, 3.0, 5.0, 10.0)

CALLS_STARTED = Counter(
    "telephony_calls_started_total", "Calls answered or dialled, by direction", ["direction"]
)
CALLS_ENDED = Counter(
    "telephony_calls_ended_total",
    "Calls (and rejected jobs) ended, by direction, outcome and end reason",
    ["direction", "outcome", "reason"],
)
# livesum: the sum over the processes still alive, so a job process that died mid-call
# stops counting once its files are swept (telephony.worker.metrics_endpoint).
CALLS_IN_PROGRESS = Gauge(
    "telephony_calls_in_progress",
    "Calls up now, by direction",
    ["direction"],
    multiprocess_mode="livesum",
)


def _turn_histogram(name: str, what: str) -> Histogram:
    return Histogram(f"telephony_turn_{name}_seconds", what, buckets=LATENCY_BUCKETS)


# (TurnLatency field, its histogram), one per stage of a reply.
TURN_LATENCY: tuple[tuple[str, Histogram], ...] = (
    (
        "end_of_speech_to_first_audio",
        _turn_histogram(
            "end_of_speech_to_first_audio", "Caller stopped speaking -> agent audio started"
        ),
    ),
    (
        "end_of_utterance_delay",
        _turn_histogram("end_of_turn_delay", "Caller stopped speaking -> end of turn decided"),
    ),
    (
        "transcription_delay",
        _turn_histogram("transcription_delay", "Caller stopped speaking -> final transcript"),
    ),
    ("llm_ttft", _turn_histogram("llm_ttft", "LLM time to first token")),
    ("tts_ttfb", _turn_histogram("tts_ttfb", "TTS time to first audio byte")),
)

PROVIDER_ERRORS = Counter(
    "telephony_provider_errors_total",
    "Failed provider requests (retried or not), by kind and provider",
    ["kind", "provider"],
)
PROVIDER_FALLBACKS = Counter(
    "telephony_provider_fallbacks_total",
    "A provider marked unavailable, so its adapter moved to the next one (kind, provider left)",
    ["kind", "provider"],
)
APOLOGIES = Counter(
    "telephony_apologies_played_total",
    "Calls ended with the apology because no provider could answer, by failed kind",
    ["kind"],
)


def call_started(direction: str) -> None:
    label = bounded("direction", direction)
    CALLS_STARTED.labels(direction=label).inc()
    CALLS_IN_PROGRESS.labels(direction=label).inc()


def call_ended(record: CallRecord, *, started: str | None) -> None:
    """`started`: the direction the call was counted under when it started, None if never."""
    if started is not None:
        CALLS_IN_PROGRESS.labels(direction=bounded("direction", started)).dec()
    CALLS_ENDED.labels(
        direction=bounded("direction", record.direction),
        outcome=bounded("outcome", record.outcome.value),
        reason=end_reason_label(record.end_reason),
    ).inc()


def observe_turn(latency: TurnLatency) -> None:
    for field, histogram in TURN_LATENCY:
        if (value := getattr(latency, field)) is not None and value >= 0:
            histogram.observe(value)


def apology_played(kind: str) -> None:
    APOLOGIES.labels(kind=bounded("kind", kind)).inc()


def watch_turns(session: AgentSession[Any], measure: Any) -> None:
    """Observe each agent reply's latency as it enters the history.

    `measure(reply, question)` turns a reply and the user message it answered (or None)
    into a TurnLatency: the recorder's own, so the record and the series agree."""
    last_user: list[llm.ChatMessage | None] = [None]

    def added(event: ConversationItemAddedEvent) -> None:
        item = event.item
        if not isinstance(item, llm.ChatMessage):
            return
        if item.role == "user":
            last_user[0] = item
        elif item.role == "assistant":
            observe_turn(measure(item, last_user[0]))
            last_user[0] = None

    session.on("conversation_item_added", added)


def watch_providers(session: AgentSession[Any]) -> None:
    """Count each provider's failed requests and each fallback its adapter makes."""
    for kind, model in (("stt", session.stt), ("llm", session.llm), ("tts", session.tts)):
        if model is None:
            continue
        for instance in adapter_instances(model):
            provider = provider_label(instance)
            errors = PROVIDER_ERRORS.labels(kind=kind, provider=provider)
            instance.on("error", lambda _e, c=errors: c.inc())
        model.on(f"{kind}_availability_changed", lambda e, k=kind: _availability(k, e))


def _availability(kind: str, event: Any) -> None:
    if not event.available:
        left = getattr(event, kind, None)
        PROVIDER_FALLBACKS.labels(kind=kind, provider=provider_label(left)).inc()
