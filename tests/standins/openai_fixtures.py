"""Pytest fixtures for the OpenAI stand-in.

Load them with ``pytest_plugins = ("tests.standins.openai_fixtures",)`` in a test module or
the top-level conftest.py.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest_asyncio

from telephony.devtools.standins.openai_server import OpenAIStandin


@pytest_asyncio.fixture
async def openai_server() -> AsyncIterator[OpenAIStandin]:
    """A started stand-in on 127.0.0.1; its plugin clients are closed on teardown."""
    async with OpenAIStandin() as server:
        yield server
