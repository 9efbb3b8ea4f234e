"""The values a metric label may take: a short fixed list each, never a number, room or id.

Every label value of the product's Prometheus series goes through `bounded`: a value not on
its list becomes "other", so no caller, error text or misconfiguration can grow the number
of series (each one costs the scraper memory for as long as it keeps the data).
"""

from __future__ import annotations

from telephony.records.model import Outcome

OTHER = "other"
NONE = "none"

ALLOWED: dict[str, frozenset[str]] = {
    "direction": frozenset({"inbound", "outbound", "web", NONE}),
    "outcome": frozenset(o.value for o in Outcome),
    # Why the agent ended the call (CallRecord.end_reason), reduced by `end_reason_label`.
    "reason": frozenset(
        {
            NONE,
            "silence",
            "time-limit",
            "provider-error",
            "machine-unavailable",
            "error",
            "no-caller",
            "outside-calling-hours",
            "dial-failed",
            "rejected",
            "shutdown",
        }
    ),
    # The plugin package that serves a model (livekit.plugins.<provider>).
    "provider": frozenset(
        {"openai", "deepgram", "cartesia", "elevenlabs", "google", "azure", "groq", "silero"}
    ),
    "kind": frozenset({"stt", "llm", "tts"}),
}


def bounded(label: str, value: str) -> str:
    """`value` if it is on the label's list, else "other" ("none" for an empty value)."""
    if not value:
        return NONE
    return value if value in ALLOWED[label] else OTHER


def end_reason_label(reason: str) -> str:
    """The end reason without its details: "dial failed: busy" -> "dial-failed",
    "rejected: <why>" -> "rejected", "no caller" -> "no-caller"."""
    head = reason.split(":", 1)[0].strip().lower().replace(" ", "-")
    return bounded("reason", head)


def provider_label(model: object) -> str:
    """The provider of a model object by its plugin package (livekit.plugins.openai.llm ->
    "openai"); the model's own `provider` is a host name (any URL), so it is not used."""
    model = getattr(model, "inner", model)  # a wrapper around the plugin (first_audio_bound)
    parts = type(model).__module__.split(".")
    if parts[:2] == ["livekit", "plugins"] and len(parts) > 2:
        return bounded("provider", parts[2])
    return OTHER
