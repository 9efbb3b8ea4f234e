"""Pytest fixture for the Deepgram stand-in."""

from collections.abc import AsyncIterator

import pytest
import pytest_asyncio

from telephony.devtools.standins.deepgram_server import DeepgramStandin


@pytest_asyncio.fixture
async def deepgram_server(monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[DeepgramStandin]:
    """A running stand-in, with DEEPGRAM_BASE_URL pointing at it."""
    async with DeepgramStandin() as server:
        monkeypatch.setenv("DEEPGRAM_BASE_URL", server.base_url)
        yield server
