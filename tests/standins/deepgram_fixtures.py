"""Pytest fixture for the Deepgram stand-in."""

from collections.abc import AsyncIterator

import pytest_asyncio

from tests.standins.deepgram_server import DeepgramStandin


@pytest_asyncio.fixture
async def deepgram_server() -> AsyncIterator[DeepgramStandin]:
    async with DeepgramStandin() as server:
        yield server
