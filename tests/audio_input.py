"""Moved to `telephony.bench.caller` (the benchmark's callers are made the same way); tests
keep importing CallerAudio and its script items from here."""

from telephony.bench.caller import *  # noqa: F403
