"""Shared fixtures: local stand-ins for LiveKit's server API, OpenAI and Deepgram."""

import os
from pathlib import Path

import pytest

from telephony.settings import SETTING_NAMES
from tests.record_fixtures import record_store, record_store_url  # noqa: F401
from tests.standins.deepgram_fixtures import deepgram_server  # noqa: F401
from tests.standins.deepgram_server import DeepgramStandin
from tests.standins.fixtures import livekit_server  # noqa: F401
from tests.standins.openai_fixtures import openai_server  # noqa: F401


@pytest.fixture(autouse=True)
def _isolated_settings(
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    deepgram_server: DeepgramStandin,  # noqa: F811
) -> None:
    """Tests see only the settings they set: a developer's shell or .env.local must not
    leak in, no test may reach a real provider (Deepgram goes to its stand-in), and call
    records go to the test's own folder."""
    for name in (*SETTING_NAMES, "LIVEKIT_AGENT_NAME_OVERRIDE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("DEEPGRAM_BASE_URL", deepgram_server.base_url)
    monkeypatch.setenv("CALL_RECORDS_PATH", str(tmp_path / "records" / "calls.sqlite3"))
    monkeypatch.setenv("GREETING_AUDIO_DIR", str(tmp_path / "greeting-audio"))


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Tests marked `live` need real keys and a LiveKit project: opt in with RUN_LIVE_TESTS=1."""
    if os.environ.get("RUN_LIVE_TESTS") == "1":
        return
    skip = pytest.mark.skip(reason="live test: set RUN_LIVE_TESTS=1 and real keys to run it")
    for item in items:
        if "live" in item.keywords:
            item.add_marker(skip)
