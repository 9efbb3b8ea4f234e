"""The shipped `.env.example`, copied to `.env.local` as the README says, works as a user
expects: empty values mean the defaults (for the libraries too), placeholders never pass for
real values, and a misspelled variable is pointed out."""

from __future__ import annotations

import asyncio
import os
import re
from pathlib import Path

import pytest
from dotenv import dotenv_values
from livekit.plugins import openai

from telephony.call import models
from telephony.call.framework_compat import openai_client, plugin_endpoint
from telephony.devtools.standins.openai_server import reply
from telephony.domain.env_files import load_env_files, unknown_variables
from telephony.domain.settings import PROJECT_ROOT, SETTING_NAMES, read_settings
from telephony.worker.worker_cli import startup_problems
from tests.flow import job
from tests.participants import INBOUND_SIP_ATTRIBUTES, make_participant

# What a user fills in after `cp .env.example .env.local`: the five required values only.
USER_KEYS = {
    "LIVEKIT_URL": "wss://acme-phone.livekit.cloud",
    "LIVEKIT_API_KEY": "APIacme123",
    "LIVEKIT_API_SECRET": "acme-livekit-secret",
    "OPENAI_API_KEY": "sk-acme-openai",
    "DEEPGRAM_API_KEY": "acme-deepgram-key",
}


def copy_env_example(root: Path, filled_in: dict[str, str]) -> Path:
    """`.env.example` copied as is to `root/.env.local`, with only `filled_in` edited."""
    lines = []
    for line in (PROJECT_ROOT / ".env.example").read_text().splitlines():
        name = line.split("=", 1)[0]
        lines.append(f"{name}={filled_in[name]}" if name in filled_in else line)
    path = root / ".env.local"
    path.write_text("\n".join(lines) + "\n")
    return path


@pytest.fixture
def clean_environ() -> dict[str, str]:
    """The process environment without any setting (as on a new machine)."""
    return {k: v for k, v in os.environ.items() if k not in SETTING_NAMES}


def test_env_example_copied_as_is_points_every_model_at_the_real_providers(
    tmp_path: Path, clean_environ: dict[str, str]
):
    copy_env_example(tmp_path, USER_KEYS)

    load_env_files(tmp_path, clean_environ)
    call_models = models.build_models(read_settings(clean_environ).models)

    assert plugin_endpoint(call_models.llm) == "https://api.openai.com/v1/"
    assert plugin_endpoint(call_models.tts) == "https://api.openai.com/v1/"
    assert plugin_endpoint(call_models.stt) == "https://api.deepgram.com/v1/listen"
    assert read_settings(clean_environ).missing_for("start") == []


def test_env_example_with_deepgram_speech_points_the_tts_at_deepgram(
    tmp_path: Path, clean_environ: dict[str, str]
):
    copy_env_example(tmp_path, {**USER_KEYS, "TTS_PROVIDER": "deepgram"})

    load_env_files(tmp_path, clean_environ)
    call_models = models.build_models(read_settings(clean_environ).models)

    assert plugin_endpoint(call_models.tts) == "https://api.deepgram.com/v1/speak"
    assert plugin_endpoint(call_models.llm) == "https://api.openai.com/v1/"


def test_a_variable_blanked_in_the_environment_means_the_default_not_the_files_value(
    tmp_path: Path,
):
    # How tests and supervisors keep a developer's .env.local out (tests/test_cli.py).
    copy_env_example(tmp_path, {**USER_KEYS, "OPENAI_BASE_URL": "https://llm.acme.test/v1"})
    environ = {"OPENAI_BASE_URL": ""}

    load_env_files(tmp_path, environ)

    assert "OPENAI_BASE_URL" not in environ
    assert read_settings(environ).models.openai_base_url == "https://api.openai.com/v1"


def test_an_empty_library_variable_never_reaches_the_library(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    # The OpenAI SDK reads OPENAI_BASE_URL itself when a client is built without base_url:
    # python-dotenv would have set it to "" from `OPENAI_BASE_URL=`, and every request failed.
    copy_env_example(tmp_path, USER_KEYS)
    monkeypatch.delenv("OPENAI_BASE_URL", raising=False)
    monkeypatch.setenv("OPENAI_ORG_ID", "")  # empty in the real environment: default too

    load_env_files(tmp_path)

    assert "OPENAI_BASE_URL" not in os.environ and "OPENAI_ORG_ID" not in os.environ
    client = openai_client(openai.LLM(api_key="x"))
    assert str(client.base_url) == "https://api.openai.com/v1/"
    assert client.organization is None


def test_a_variable_already_set_wins_over_the_files(tmp_path: Path):
    copy_env_example(tmp_path, {**USER_KEYS, "COMPANY_NAME": "From the file"})
    environ = {"COMPANY_NAME": "From the shell"}

    load_env_files(tmp_path, environ)

    assert environ["COMPANY_NAME"] == "From the shell"
    assert environ["OPENAI_API_KEY"] == USER_KEYS["OPENAI_API_KEY"]


def test_the_shipped_placeholders_are_refused_naming_each_variable(
    tmp_path: Path, clean_environ: dict[str, str]
):
    copy_env_example(tmp_path, {})  # copied, nothing filled in
    load_env_files(tmp_path, clean_environ)

    problems = startup_problems(["agent.py", "start"], clean_environ)

    refused = [p.split()[0] for p in problems if "is still the example value" in p]
    assert refused == [
        "LIVEKIT_URL",
        "LIVEKIT_API_KEY",
        "LIVEKIT_API_SECRET",
        "OPENAI_API_KEY",
        "DEEPGRAM_API_KEY",
    ]


def test_real_values_are_not_taken_for_placeholders(clean_environ: dict[str, str]):
    assert startup_problems(["agent.py", "start"], {**clean_environ, **USER_KEYS}) == []


def test_a_misspelled_variable_is_reported_with_the_closest_name(tmp_path: Path):
    (tmp_path / ".env.local").write_text("GREETING_MODEE=generate\nOPENAI_API_KEY=sk-1\n")
    (tmp_path / ".env").write_text("LIVEKIT_AGENT_NAME_OVERRIDE=x\nMY_OWN_THING=1\n")

    warnings = unknown_variables(tmp_path)

    assert warnings == [
        ".env.local sets GREETING_MODEE, which is not a setting: did you mean GREETING_MODE?",
        ".env sets MY_OWN_THING, which is not a setting: no setting reads it",
    ]


def library_env_names() -> set[str]:
    """The LIVEKIT_*/LK_*/OPENAI_*/DEEPGRAM_* names the installed livekit packages (agents,
    plugins, api, rtc) and the OpenAI SDK spell out in their sources: what they read."""
    import livekit.agents
    import openai as openai_sdk

    name = re.compile(rb"""["']((?:LIVEKIT|LK|OPENAI|DEEPGRAM)_[A-Z0-9_]+)["']""")
    roots = [Path(livekit.agents.__file__).parents[1], Path(openai_sdk.__file__).parent]
    found: set[str] = set()
    for root in roots:
        for source in root.rglob("*.py"):
            found.update(m.decode() for m in name.findall(source.read_bytes()))
    return found


def test_variables_the_libraries_read_are_never_reported(tmp_path: Path):
    names = library_env_names()
    assert {"LIVEKIT_LOG_LEVEL", "LIVEKIT_AGENT_NAME_OVERRIDE", "OPENAI_ORG_ID"} <= names
    (tmp_path / ".env.local").write_text("".join(f"{n}=1\n" for n in sorted(names)))
    (tmp_path / ".env").write_text("OTEL_EXPORTER_OTLP_ENDPOINT=http://collector:4318\n")

    assert unknown_variables(tmp_path) == []


def test_a_misspelled_library_variable_is_reported_with_its_name(tmp_path: Path):
    (tmp_path / ".env.local").write_text("LIVEKIT_LOG_LEVL=debug\nOPENAI_API_KYE=sk-1\n")

    assert unknown_variables(tmp_path) == [
        ".env.local sets LIVEKIT_LOG_LEVL, which is not a setting: did you mean LIVEKIT_LOG_LEVEL?",
        ".env.local sets OPENAI_API_KYE, which is not a setting: did you mean OPENAI_API_KEY?",
    ]


def test_a_misspelled_variable_does_not_stop_the_worker(
    tmp_path: Path, clean_environ: dict[str, str]
):
    copy_env_example(tmp_path, {**USER_KEYS, "GREETING_MODE": ""})
    with (tmp_path / ".env.local").open("a") as f:
        f.write("GREETING_MODEE=generate\n")
    load_env_files(tmp_path, clean_environ)

    assert unknown_variables(tmp_path) != []
    assert startup_problems(["agent.py", "start"], clean_environ) == []


def test_every_variable_in_env_example_is_read_by_something():
    names = dotenv_values(PROJECT_ROOT / ".env.example")
    assert [n for n in names if n not in SETTING_NAMES] == []


async def test_a_call_runs_on_the_copied_env_example(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, livekit_server, openai_server
):
    """The quick start as written: the copied file with only the keys (and, here, the
    providers' addresses, pointed at the local stand-ins) filled in answers a call."""
    copy_env_example(
        tmp_path,
        {
            **USER_KEYS,
            "OPENAI_BASE_URL": openai_server.base_url,
            "LIVEKIT_URL": livekit_server.url,
            "LIVEKIT_API_KEY": livekit_server.api_key,
            "LIVEKIT_API_SECRET": livekit_server.api_secret,
        },
    )
    environ = dict(os.environ)
    load_env_files(tmp_path, environ)
    for name in SETTING_NAMES:
        if name in environ:
            monkeypatch.setenv(name, environ[name])
        else:
            monkeypatch.delenv(name, raising=False)

    async with job(monkeypatch, livekit_server, openai_server, env={}) as run:
        run.room.add_participant(
            make_participant("sip_+15105550123", attributes=INBOUND_SIP_ATTRIBUTES)
        )
        await run.wait_until_done()
        await asyncio.wait_for(run.sink.wait_for_segments(1), 15)
        assert openai_server.speech_requests, "the caller heard no greeting"

        # The caller speaks; the LLM, reached at the file's OPENAI_BASE_URL, answers.
        openai_server.script(reply("Of course, what day suits you?"))
        result = await asyncio.wait_for(run.session.run(user_input="I need an appointment"), 15)

        result.expect.next_event().is_message(role="assistant")
        assert openai_server.chat_requests[-1].last_user_text == "I need an appointment"
        assert run.state.settings.models.openai_base_url == openai_server.base_url
