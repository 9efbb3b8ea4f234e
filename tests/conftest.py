"""Shared fixtures: local stand-ins for LiveKit's server API, OpenAI and Deepgram."""

import os
from pathlib import Path

import pytest

from telephony.domain.settings import SETTING_NAMES
from tests.record_fixtures import record_store, record_store_url  # noqa: F401
from tests.standins.deepgram_fixtures import NO_DEEPGRAM, deepgram_server  # noqa: F401
from tests.standins.fixtures import livekit_server  # noqa: F401
from tests.standins.openai_fixtures import openai_server  # noqa: F401

# The prompts tests run with: a copy of the shipped ones, so that editing a shipped prompt
# breaks no test (tests/test_prompts.py checks the shipped ones themselves).
TEST_PROMPTS = Path(__file__).parent / "fixtures" / "prompts"


@pytest.fixture(autouse=True)
def _isolated_settings(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, tmp_path_factory: pytest.TempPathFactory
) -> None:
    """Tests see only the settings they set: a developer's shell or .env.local must not
    leak in, no test may reach a real provider, and call records go to the test's own
    folder."""
    for name in (*SETTING_NAMES, "LIVEKIT_AGENT_NAME_OVERRIDE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("DEEPGRAM_BASE_URL", NO_DEEPGRAM)
    monkeypatch.setenv("PROMPTS_DIR", str(TEST_PROMPTS))
    monkeypatch.setenv("CALL_RECORDS_PATH", str(tmp_path / "records" / "calls.sqlite3"))
    monkeypatch.setenv("GREETING_AUDIO_DIR", str(tmp_path / "greeting-audio"))
    # Records held in memory (telephony.records.holding) go to a folder of the test's own
    # (not inside tmp_path, which some tests expect to find empty).
    monkeypatch.setenv("XDG_RUNTIME_DIR", str(tmp_path_factory.mktemp("runtime")))
    # Outbound tests run at any hour: only the tests of callee-local hours set a window.
    monkeypatch.setenv("CALLEE_CALLING_HOURS", "24/7")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Tests marked `live` need real keys and a LiveKit project: opt in with RUN_LIVE_TESTS=1."""
    if os.environ.get("RUN_LIVE_TESTS") == "1":
        return
    skip = pytest.mark.skip(reason="live test: set RUN_LIVE_TESTS=1 and real keys to run it")
    for item in items:
        if "live" in item.keywords:
            item.add_marker(skip)
