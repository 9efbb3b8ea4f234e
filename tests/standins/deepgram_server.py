"""Moved to `telephony.bench.providers.deepgram_server` (the benchmark runs it too); tests
keep importing it from here."""

from telephony.bench.providers.deepgram_server import *  # noqa: F403
