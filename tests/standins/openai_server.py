"""Moved to `telephony.bench.providers.openai_server` (the benchmark runs it too); tests keep
importing it from here."""

from telephony.bench.providers.openai_server import *  # noqa: F403
