"""Settings: every value parsed, every problem reported at once with what to fix."""

import pytest

from telephony.domain.phone_numbers import InvalidDestination
from telephony.domain.settings import (
    DEFAULT_AGENT_NAME,
    SettingsError,
    parse_settings,
    parse_transfer_destinations,
    read_settings,
    worker_options,
)
from telephony.worker.worker_cli import SupervisedServer, startup_problems

COMPLETE = {
    "LIVEKIT_URL": "wss://example.livekit.cloud",
    "LIVEKIT_API_KEY": "APIkey",
    "LIVEKIT_API_SECRET": "secret",
    "OPENAI_API_KEY": "sk-test",
    "DEEPGRAM_API_KEY": "dg-test",
}


def test_defaults_when_nothing_is_set():
    settings = read_settings({})
    assert settings.agent_name == DEFAULT_AGENT_NAME == "my-telephony-agent"
    assert settings.ring_timeout_seconds == 30.0
    assert settings.greeting_mode == "say"
    assert settings.mask_phone_numbers is True
    assert settings.transfer_destinations == {}
    assert settings.models.tts_model == "gpt-4o-mini-tts"


def test_complete_settings_need_nothing_for_the_worker():
    settings = read_settings(COMPLETE)
    assert settings.missing_for("dev") == []
    assert settings.missing_for("start") == []


def test_missing_settings_are_listed_one_line_each():
    problems = read_settings({}).missing_for("dev")
    names = [p.split(" ", 1)[0] for p in problems]
    assert names == [
        "LIVEKIT_URL",
        "LIVEKIT_API_KEY",
        "LIVEKIT_API_SECRET",
        "OPENAI_API_KEY",
        "DEEPGRAM_API_KEY",
    ]


def test_console_needs_provider_keys_but_no_livekit_server():
    problems = read_settings({"OPENAI_API_KEY": "x"}).missing_for("console")
    assert len(problems) == 1 and problems[0].startswith("DEEPGRAM_API_KEY")


def test_command_line_flags_stand_in_for_livekit_variables():
    flags = ["--url", "wss://acme.livekit.cloud", "--api-key=APIkey", "--api-secret", "s3cret"]
    env = {"OPENAI_API_KEY": "x", "DEEPGRAM_API_KEY": "y"}
    assert startup_problems(["agent.py", "start", *flags], env) == []
    assert startup_problems(["agent.py", "start"], env) != []


def test_every_malformed_value_is_reported_together():
    env = COMPLETE | {
        "LIVEKIT_URL": "example.livekit.cloud",
        "OUTBOUND_RING_TIMEOUT_SECONDS": "soon",
        "SIP_OUTBOUND_TRUNK_ID": "trunk-1",
        "GREETING_MODE": "shout",
        "MASK_PHONE_NUMBERS": "maybe",
        "TRANSFER_DESTINATIONS": "sales=555",
    }
    with pytest.raises(SettingsError) as caught:
        read_settings(env)
    text = "\n".join(caught.value.problems)
    assert len(caught.value.problems) == 6
    for name in env.keys() - COMPLETE.keys() | {"LIVEKIT_URL"}:
        assert name in text


def test_ring_timeout_bounds():
    assert read_settings({"OUTBOUND_RING_TIMEOUT_SECONDS": "45"}).ring_timeout_seconds == 45
    with pytest.raises(SettingsError, match="between 5 and 120"):
        read_settings({"OUTBOUND_RING_TIMEOUT_SECONDS": "600"})


def test_transfer_destinations_become_refer_uris():
    parsed = parse_transfer_destinations(
        "sales=tel:+16285551111, Support=sip:support@pbx.example.com,billing=+16285552222"
    )
    assert parsed == {
        "sales": "tel:+16285551111",
        "support": "sip:support@pbx.example.com",
        "billing": "tel:+16285552222",
    }


@pytest.mark.parametrize(
    "raw",
    [
        "sales",
        "sales=5550001111",
        "=tel:+16285551111",
        "a=tel:+16285551111,a=tel:+16285552222",
        "sales=+10000000000",  # E.164 in form, but no such number
        "sales=tel:+999999999",  # no country has that code
    ],
)
def test_bad_transfer_destinations_are_rejected(raw):
    with pytest.raises(InvalidDestination, match="TRANSFER_DESTINATIONS"):
        parse_transfer_destinations(raw)


def test_deepgram_tts_gets_its_own_default_model():
    settings = read_settings({"TTS_PROVIDER": "deepgram"})
    assert settings.models.tts_model.startswith("aura-")


def test_the_fallback_llm_is_off_by_default_and_borrows_the_first_ones_endpoint_and_key():
    off = read_settings(COMPLETE).models
    assert off.fallback_llm_model == ""

    on = read_settings(
        {**COMPLETE, "FALLBACK_LLM_MODEL": "gpt-4o-mini", "OPENAI_BASE_URL": "http://proxy/v1"}
    ).models
    assert (on.fallback_llm_model, on.fallback_llm_base_url) == ("gpt-4o-mini", "http://proxy/v1")
    assert on.fallback_llm_api_key == "sk-test" and "sk-test" not in repr(on)


def test_a_fallback_llm_url_that_is_not_a_url_is_a_settings_problem():
    with pytest.raises(SettingsError) as e:
        read_settings({**COMPLETE, "FALLBACK_LLM_BASE_URL": "backup.example.com/v1"})
    assert any(p.startswith("FALLBACK_LLM_BASE_URL=") for p in e.value.problems)


def test_secrets_do_not_appear_in_repr():
    settings = read_settings(COMPLETE)
    assert "secret" not in repr(settings).replace("api_secret", "")
    assert "sk-test" not in repr(settings)


def test_every_setting_is_documented_in_env_example_and_the_readme():
    from telephony.domain.settings import PROJECT_ROOT, SETTING_NAMES

    example = (PROJECT_ROOT / ".env.example").read_text()
    readme = (PROJECT_ROOT / "README.md").read_text()
    documented = {line.split("=", 1)[0] for line in example.splitlines() if "=" in line}
    assert [n for n in SETTING_NAMES if n not in documented] == []
    assert [n for n in SETTING_NAMES if f"| `{n}` |" not in readme] == []


def test_env_example_is_a_valid_configuration():
    from dotenv import dotenv_values

    from telephony.domain.settings import PROJECT_ROOT

    values = {k: v or "" for k, v in dotenv_values(PROJECT_ROOT / ".env.example").items()}
    read_settings(values)  # raises with every problem if the example is broken


def test_fallback_speech_is_off_by_default_and_takes_its_providers_defaults():
    off = read_settings(COMPLETE).models
    assert (off.fallback_tts_provider, off.fallback_stt_provider) == ("", "")
    on = read_settings(
        {**COMPLETE, "FALLBACK_TTS_PROVIDER": "deepgram", "FALLBACK_STT_PROVIDER": "openai"}
    ).models
    assert (on.fallback_tts_model, on.fallback_tts_voice) == ("aura-2-andromeda-en", "")
    assert on.fallback_tts_base_url == on.deepgram_base_url
    assert (on.fallback_stt_model, on.fallback_stt_base_url) == (
        "gpt-4o-mini-transcribe",
        on.openai_base_url,
    )
    assert set(on.fallbacks) == {"tts", "stt"}


def test_a_fallback_that_is_the_provider_it_backs_up_is_a_settings_problem():
    with pytest.raises(SettingsError) as e:
        read_settings(
            {
                **COMPLETE,
                "FALLBACK_LLM_MODEL": "gpt-4.1-mini",  # the LLM_MODEL default, same endpoint
                "FALLBACK_TTS_PROVIDER": "openai",  # same model, voice and endpoint
                "FALLBACK_STT_PROVIDER": "deepgram",
                "FALLBACK_STT_MODEL": "nova-2",  # another model: fine
                "FALLBACK_TTS_VOICE": "coral",  # another voice: fine
            }
        )
    (problem,) = e.value.problems
    assert problem.startswith("FALLBACK_LLM_MODEL names the same model at the same endpoint")
    with pytest.raises(SettingsError) as e:
        read_settings({**COMPLETE, "FALLBACK_TTS_PROVIDER": "openai"})
    assert e.value.problems[0].startswith("FALLBACK_TTS_PROVIDER names the same model")
    with pytest.raises(SettingsError) as e:
        read_settings({**COMPLETE, "FALLBACK_STT_PROVIDER": "whisper"})
    assert e.value.problems == ["FALLBACK_STT_PROVIDER='whisper' is not one of: , deepgram, openai"]


def test_the_failure_transfer_takes_a_destination_name_or_a_number():
    env = {**COMPLETE, "TRANSFER_DESTINATIONS": "front-desk=+16285551111"}
    assert read_settings(env).provider_failure_transfer == ""
    by_name = read_settings({**env, "PROVIDER_FAILURE_TRANSFER": "Front-Desk"})
    assert by_name.provider_failure_transfer == "tel:+16285551111"
    by_number = read_settings({**env, "PROVIDER_FAILURE_TRANSFER": "sip:help@pbx.example.com"})
    assert by_number.provider_failure_transfer == "sip:help@pbx.example.com"
    with pytest.raises(SettingsError) as e:
        read_settings({**env, "PROVIDER_FAILURE_TRANSFER": "reception"})
    (line,) = e.value.problems
    assert line.startswith("PROVIDER_FAILURE_TRANSFER 'reception' is not a transfer destination")
    assert line.endswith("(or name one of TRANSFER_DESTINATIONS: front-desk)")


@pytest.mark.parametrize("raw", ["0", "-5", "ten", "1.5", "86401", "9" * 60, "٣٠"])
def test_a_drain_timeout_that_is_not_1_to_86400_whole_seconds_stops_the_worker(raw):
    problems = startup_problems(["agent.py", "start"], COMPLETE | {"DRAIN_TIMEOUT_SECONDS": raw})
    assert len(problems) == 1
    assert problems[0].startswith("DRAIN_TIMEOUT_SECONDS=")
    assert "whole number of seconds from 1 to 86400" in problems[0]


def test_the_drain_timeout_reaches_the_worker():
    assert read_settings({}).drain_timeout_seconds == 600
    assert worker_options({"DRAIN_TIMEOUT_SECONDS": "45"})["drain_timeout"] == 45
    assert (
        SupervisedServer(**worker_options({"DRAIN_TIMEOUT_SECONDS": "45"})).drain_timeout_seconds
        == 45
    )


@pytest.mark.parametrize(
    "target", ["sip:desk\x00@pbx.example.com", "sip:desk@pbx.example.com<x>", "sip:a@b\u202ec"]
)
def test_transfer_settings_refuse_what_job_metadata_refuses(target):
    """One grammar for every transfer destination: TRANSFER_DESTINATIONS and
    PROVIDER_FAILURE_TRANSFER refuse the URIs job metadata refuses."""
    with pytest.raises(InvalidDestination, match="not a transfer destination"):
        parse_transfer_destinations(f"desk={target}")
    problems = parse_settings({**COMPLETE, "PROVIDER_FAILURE_TRANSFER": target})[1]
    assert any(
        "PROVIDER_FAILURE_TRANSFER" in p and "not a transfer destination" in p for p in problems
    )
