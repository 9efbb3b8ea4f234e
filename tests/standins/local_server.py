"""Moved to `telephony.bench.providers.local_server` (the benchmark's stand-ins share it);
the test-only stand-ins keep importing it from here."""

from telephony.bench.providers.local_server import *  # noqa: F403
