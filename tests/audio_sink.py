"""Moved to `telephony.bench.sink` (the benchmark captures the agent's audio with it); tests
keep importing RealTimeAudioSink from here."""

from telephony.bench.sink import *  # noqa: F403
