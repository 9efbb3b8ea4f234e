"""The Deepgram stand-in for tests: the fixture, and the one a call starts for itself."""

import os
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack

import pytest
import pytest_asyncio

from telephony.devtools.standins.deepgram_server import DeepgramStandin

# Where Deepgram requests go unless a test starts the stand-in (`deepgram_server`): a
# local port nothing listens on, so no test can reach the real service.
NO_DEEPGRAM = "http://127.0.0.1:9/v1"


@pytest_asyncio.fixture
async def deepgram_server(monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[DeepgramStandin]:
    """A running stand-in, with DEEPGRAM_BASE_URL pointing at it."""
    async with DeepgramStandin() as server:
        monkeypatch.setenv("DEEPGRAM_BASE_URL", server.base_url)
        yield server


async def deepgram_for_the_call(stack: AsyncExitStack) -> str:
    """The Deepgram root a call's STT connects to at its start: the test's own stand-in if it
    started one, else one started now for as long as `stack` (a dead STT is a provider
    failure: the call would end with the apology)."""
    url = os.environ.get("DEEPGRAM_BASE_URL", NO_DEEPGRAM)
    if url != NO_DEEPGRAM:
        return url
    return (await stack.enter_async_context(DeepgramStandin())).base_url
