"""Shared fixtures: the local stand-ins for LiveKit's server API and for OpenAI."""

import pytest

from tests.standins.fixtures import livekit_server  # noqa: F401
from tests.standins.openai_fixtures import openai_server  # noqa: F401


@pytest.fixture(autouse=True)
def _no_ambient_provider_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    """Tests see only the settings they set: a developer's .env.local must not leak in."""
    for name in ("OPENAI_BASE_URL", "TRANSFER_DESTINATIONS", "SIP_OUTBOUND_TRUNK_ID"):
        monkeypatch.delenv(name, raising=False)
