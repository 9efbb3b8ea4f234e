"""Pytest fixtures for the LiveKit server stand-in."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
import pytest_asyncio

from telephony.devtools.standins.livekit_server import LiveKitServerStandin


@pytest_asyncio.fixture
async def livekit_server(monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[LiveKitServerStandin]:
    """A running stand-in, with LIVEKIT_URL / _API_KEY / _API_SECRET pointing at it."""
    async with LiveKitServerStandin() as server:
        monkeypatch.setenv("LIVEKIT_URL", server.ws_url)
        monkeypatch.setenv("LIVEKIT_API_KEY", server.api_key)
        monkeypatch.setenv("LIVEKIT_API_SECRET", server.api_secret)
        # LiveKitAPI() prefers an ambient LIVEKIT_TOKEN over the key and secret.
        monkeypatch.delenv("LIVEKIT_TOKEN", raising=False)
        yield server
