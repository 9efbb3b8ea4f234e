"""Every setting the product reads, parsed and validated in one place.

Values come from the process environment, filled in from `.env.local`, then `.env` by
`telephony.domain.env_files` (a value already set wins, so the real environment beats both files).
An empty value means the default, everywhere.
"""

from __future__ import annotations

import ipaddress
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Literal

from telephony.domain.paths import PROJECT_ROOT
from telephony.domain.phone_numbers import InvalidDestination, transfer_uri
from telephony.domain.placeholders import is_placeholder, placeholder_problem
from telephony.domain.settings_checks import check_settings

DEFAULT_AGENT_NAME = "my-telephony-agent"
MAX_DRAIN_TIMEOUT_SECONDS = 24 * 3600

# Every environment variable the product reads (.env.example documents each one).
SETTING_NAMES = (
    "LIVEKIT_URL",
    "LIVEKIT_API_KEY",
    "LIVEKIT_API_SECRET",
    "OPENAI_API_KEY",
    "DEEPGRAM_API_KEY",
    "SIP_OUTBOUND_TRUNK_ID",
    "LIVEKIT_AGENT_NAME",
    "COMPANY_NAME",
    "GREETING_MODE",
    "TRANSFER_DESTINATIONS",
    "OUTBOUND_RING_TIMEOUT_SECONDS",
    "CALLER_JOIN_TIMEOUT_SECONDS",
    "MASK_PHONE_NUMBERS",
    "PROMPTS_DIR",
    "LLM_MODEL",
    "STT_MODEL",
    "STT_LANGUAGE",
    "TTS_PROVIDER",
    "TTS_MODEL",
    "TTS_VOICE",
    "OPENAI_BASE_URL",
    "DEEPGRAM_BASE_URL",
    "GREETING_AUDIO_DIR",
    "CALL_RECORDS_PATH",
    "DATABASE_URL",
    "CALL_WEBHOOK_URL",
    "CALL_WEBHOOK_SECRET",
    "AMD_ENABLED",
    "SILENCE_TIMEOUT_SECONDS",
    "MAX_CALL_DURATION_SECONDS",
    "BUSINESS_HOURS",
    "BUSINESS_TIMEZONE",
    "BUSINESS_HOLIDAYS_FILE",
    "OUTBOUND_CALLING_HOURS",
    "CALLEE_CALLING_HOURS",
    "AI_DISCLOSURE",
    "CONTACTS_FILE",
    "CONTACT_LOOKUP",
    "DTMF_MENU_FILE",
    "WARM_TRANSFER",
    "NOISE_CANCELLATION",
    "WORKER_HTTP_PORT",
    "METRICS_PORT",
    "WORKER_CONNECT_RETRIES",
    "DRAIN_TIMEOUT_SECONDS",
    "TURN_DETECTOR",
    "INTERRUPTION_DETECTION",
    "FALLBACK_LLM_MODEL",
    "FALLBACK_LLM_BASE_URL",
    "FALLBACK_LLM_API_KEY",
    "FALLBACK_TTS_PROVIDER",
    "FALLBACK_TTS_MODEL",
    "FALLBACK_TTS_VOICE",
    "FALLBACK_TTS_BASE_URL",
    "FALLBACK_STT_PROVIDER",
    "FALLBACK_STT_MODEL",
    "FALLBACK_STT_BASE_URL",
    "PROVIDER_FAILURE_TRANSFER",
    "WEB_HOST",
    "WEB_PORT",
    "WEB_TOKEN",
)

GreetingMode = Literal["say", "generate"]
TtsProvider = Literal["openai", "deepgram"]
SttProvider = Literal["deepgram", "openai"]


class SettingsError(Exception):
    """One or more settings are missing or invalid; `problems` has one line each."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("\n".join(problems))
        self.problems = problems


@dataclass(frozen=True)
class ModelSettings:
    stt_model: str = "nova-3"
    stt_language: str = "en-US"
    llm_model: str = "gpt-4.1-mini"
    tts_provider: TtsProvider = "openai"
    tts_model: str = "gpt-4o-mini-tts"
    tts_voice: str = "ash"
    openai_api_key: str = field(default="", repr=False)
    # OpenAI's API root, or an OpenAI-compatible endpoint (Azure, a proxy, a local server).
    # Always given to the clients: left to itself the SDK reads OPENAI_BASE_URL, even when empty.
    openai_base_url: str = "https://api.openai.com/v1"
    deepgram_api_key: str = field(default="", repr=False)
    # Deepgram's API root; the STT streams to {root}/listen and the TTS posts to {root}/speak.
    deepgram_base_url: str = "https://api.deepgram.com/v1"
    # A second LLM the call switches to when the first fails or is slow to start answering
    # ("": none). Its endpoint and key default to the first one's.
    fallback_llm_model: str = ""
    fallback_llm_base_url: str = ""
    fallback_llm_api_key: str = field(default="", repr=False)
    # A second TTS and a second STT ("" provider: none), each at its provider's API root
    # (OPENAI_BASE_URL or DEEPGRAM_BASE_URL unless set), with that provider's key.
    fallback_tts_provider: TtsProvider | Literal[""] = ""
    fallback_tts_model: str = ""
    fallback_tts_voice: str = ""
    fallback_tts_base_url: str = ""
    fallback_stt_provider: SttProvider | Literal[""] = ""
    fallback_stt_model: str = ""
    fallback_stt_base_url: str = ""

    def api_root(self, provider: str) -> str:
        return self.deepgram_base_url if provider == "deepgram" else self.openai_base_url

    def api_key(self, provider: str) -> str:
        return self.deepgram_api_key if provider == "deepgram" else self.openai_api_key

    @property
    def fallbacks(self) -> dict[str, str]:
        """The configured fallbacks, one line each ("llm", "tts", "stt"), for `status`."""
        lines = {}
        if self.fallback_llm_model:
            lines["llm"] = f"{self.fallback_llm_model} at {self.fallback_llm_base_url}"
        if self.fallback_tts_provider:
            voice = f" ({self.fallback_tts_voice})" if self.fallback_tts_voice else ""
            lines["tts"] = (
                f"{self.fallback_tts_provider} {self.fallback_tts_model}{voice} "
                f"at {self.fallback_tts_base_url}"
            )
        if self.fallback_stt_provider:
            lines["stt"] = (
                f"{self.fallback_stt_provider} {self.fallback_stt_model} "
                f"at {self.fallback_stt_base_url}"
            )
        return lines


@dataclass(frozen=True)
class Settings:
    livekit_url: str = ""
    livekit_api_key: str = ""
    livekit_api_secret: str = field(default="", repr=False)
    agent_name: str = DEFAULT_AGENT_NAME
    caller_join_timeout_seconds: float = 60.0
    outbound_trunk_id: str = ""
    ring_timeout_seconds: float = 30.0
    transfer_destinations: Mapping[str, str] = field(default_factory=dict)
    greeting_mode: GreetingMode = "say"
    company_name: str = "our company"
    prompts_dir: Path = PROJECT_ROOT / "prompts"
    mask_phone_numbers: bool = True
    models: ModelSettings = field(default_factory=ModelSettings)
    # The greeting's synthesized audio, cached as WAV files shared by every job process;
    # None keeps it in each process's memory only.
    greeting_audio_dir: Path | None = PROJECT_ROOT / "data" / "greeting-audio"
    # Call records: an SQLite file by default; DATABASE_URL (PostgreSQL) for several workers.
    call_records_path: Path = PROJECT_ROOT / "data" / "calls.sqlite3"
    database_url: str = field(default="", repr=False)
    webhook_url: str = ""
    webhook_secret: str = field(default="", repr=False)
    # Outbound: answering-machine detection from the callee's audio, before the agent speaks.
    amd_enabled: bool = True
    # Ask "are you still there?" after this much silence, then hang up; 0 turns it off.
    silence_timeout_seconds: float = 15.0
    # Wrap up and hang up after this long; 0 means no limit.
    max_call_duration_seconds: float = 0.0
    # Opening hours, e.g. "mon-fri 09:00-17:00, sat 10:00-13:00"; empty means always open.
    business_hours: str = ""
    business_timezone: str = "UTC"
    business_holidays_file: Path | None = None
    # When outbound calls may be placed; empty means the same as business_hours.
    outbound_calling_hours: str = ""
    # When a callee may be called, in their own time zones (from the number); 24/7: no check.
    callee_calling_hours: str = "daily 08:00-21:00"
    # Outbound calls open with outbound_disclosure.txt (who calls, an automated assistant).
    ai_disclosure: bool = True
    # Caller lookup: a CSV or JSON file, or "package.module:function" replacing the lookup.
    contacts_file: Path | None = None
    contact_lookup: str = ""
    # Keypad menu ("press 1 for sales"): a JSON file; empty means no menu.
    dtmf_menu_file: Path | None = None
    # Offer a warm transfer (hold music, a briefed human) beside the cold one; LiveKit Cloud.
    warm_transfer: bool = False
    # "off" or "bvc-telephony" (livekit-plugins-noise-cancellation, LiveKit Cloud).
    noise_cancellation: str = "off"
    # The worker's health/HTTP port (the framework's `port`); None keeps the framework's
    # default (8081 for `start`, any free port for `dev`), 0 asks for any free port.
    worker_http_port: int | None = None
    # Port of the worker's Prometheus /metrics (the framework's `prometheus_port`); None: off.
    metrics_port: int | None = None
    # Connection attempts to LiveKit before the worker gives up (and exits non-zero).
    worker_connect_retries: int = 16
    # After a stop signal, how long running calls may go on before they are cut (with a
    # goodbye, and a record saying so); the supervisor's stop timeout must be longer.
    drain_timeout_seconds: int = 600
    # The end-of-turn model: "local" (runs in the worker) or "cloud" (LiveKit Inference).
    turn_detector: str = "local"
    # Interruptions: "vad" (local) or "adaptive" (LiveKit's cloud barge-in model).
    interruption_detection: str = "vad"
    # When no provider can answer: after the apology, transfer the caller here (a
    # TRANSFER_DESTINATIONS name or a number/SIP URI, as a transfer target) instead of
    # hanging up; "" hangs up.
    provider_failure_transfer: str = ""
    # The call-log web page (`python -m telephony web`): where it listens, and the token a
    # browser must give (HTTP Basic password, or `Authorization: Bearer`); required unless
    # it listens on loopback only.
    web_host: str = "127.0.0.1"
    web_port: int = 8090
    web_token: str = field(default="", repr=False)

    def missing_for(self, command: str) -> list[str]:
        """What a worker command needs that is not set, or is still an example value: one
        line each, with the fix. (The worker's `--url`/`--api-key`/`--api-secret` flags are
        read as these variables before this check: telephony.worker.worker_cli.)"""
        problems: list[str] = []
        required: list[tuple[str, str, str]] = []
        if command in ("dev", "start", "connect"):
            fix = "copy it from your LiveKit project settings"
            required += [
                ("LIVEKIT_URL", self.livekit_url, fix),
                ("LIVEKIT_API_KEY", self.livekit_api_key, fix),
                ("LIVEKIT_API_SECRET", self.livekit_api_secret, fix),
            ]
        if command in ("dev", "start", "connect", "console"):
            required += [
                ("OPENAI_API_KEY", self.models.openai_api_key, "the LLM (and OpenAI TTS) need it"),
                ("DEEPGRAM_API_KEY", self.models.deepgram_api_key, "speech-to-text needs it"),
            ]
        for var, value, fix in required:
            if not value:
                problems.append(f"{var} is not set: {fix}")
            elif is_placeholder(value):
                problems.append(placeholder_problem(var, value, f"replace it ({fix})"))
        return problems


# A token a person cannot guess or brute-force over HTTP.
WEB_TOKEN_MIN_LENGTH = 16


def is_loopback(host: str) -> bool:
    """Whether only this machine can reach a server listening on `host`."""
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False  # a host name or a wildcard such as 0.0.0.0 reaches further


def _web_port(env: Mapping[str, str], problems: list[str]) -> int:
    port = _whole_number(env, "WEB_PORT", 8090, problems, high=65535)
    if port == 0:
        problems.append("WEB_PORT=0 is not a port: use a port from 1 to 65535 (default 8090)")
        return 8090
    return 8090 if port is None else port


def web_access_problems(settings: Settings) -> list[str]:
    token = settings.web_token
    if token and len(token) < WEB_TOKEN_MIN_LENGTH:
        return [
            f"WEB_TOKEN is too short ({len(token)} characters): use at least "
            f"{WEB_TOKEN_MIN_LENGTH} random characters (e.g. `openssl rand -hex 16`)"
        ]
    if not token and not is_loopback(settings.web_host):
        return [
            f"WEB_HOST={settings.web_host!r} lets other machines reach the call-log web page: "
            "set WEB_TOKEN (e.g. `openssl rand -hex 16`) or listen on 127.0.0.1 only"
        ]
    return []


def _whole_number(
    env: Mapping[str, str], name: str, default: int | None, problems: list[str], *, high: int
) -> int | None:
    raw = _text(env, name)
    if not raw:
        return default
    if not raw.isdecimal() or not raw.isascii() or int(raw) > high:
        problems.append(f"{name}={raw!r} must be a whole number from 0 to {high}")
        return default
    return int(raw)


def worker_options(env: Mapping[str, str] | None = None) -> dict[str, int]:
    """The AgentServer options settings choose; needed before settings are validated
    (a malformed value is left to the framework's default and reported at start-up)."""
    settings, _ = parse_settings(env, deep_checks=False)
    options = {
        "max_retry": settings.worker_connect_retries,
        "drain_timeout": settings.drain_timeout_seconds,
    }
    if settings.worker_http_port is not None:
        options["port"] = settings.worker_http_port
    if settings.metrics_port is not None:
        options["prometheus_port"] = settings.metrics_port
    return options


def _text(env: Mapping[str, str], name: str, default: str = "") -> str:
    return env.get(name, "").strip() or default


def _flag(env: Mapping[str, str], name: str, default: bool, problems: list[str]) -> bool:
    raw = _text(env, name).lower()
    if not raw:
        return default
    if raw in ("1", "true", "yes", "on"):
        return True
    if raw in ("0", "false", "no", "off"):
        return False
    problems.append(f"{name}={raw!r} is not a yes/no value: use true or false")
    return default


def _drain_timeout(env: Mapping[str, str], problems: list[str]) -> int:
    """DRAIN_TIMEOUT_SECONDS: whole seconds, 1 to a day (0 would cut every call at once)."""
    raw = _text(env, "DRAIN_TIMEOUT_SECONDS")
    default = Settings.drain_timeout_seconds
    if not raw:
        return default
    if raw.isascii() and raw.isdecimal() and 1 <= int(raw) <= MAX_DRAIN_TIMEOUT_SECONDS:
        return int(raw)
    problems.append(
        f"DRAIN_TIMEOUT_SECONDS={raw[:40]!r} must be a whole number of seconds from 1 to "
        f"{MAX_DRAIN_TIMEOUT_SECONDS}: how long calls may go on after a stop signal"
    )
    return default


def _seconds(
    env: Mapping[str, str],
    name: str,
    default: float,
    problems: list[str],
    *,
    low: float,
    high: float,
) -> float:
    raw = _text(env, name)
    if not raw:
        return default
    try:
        value = float(raw)
    except ValueError:
        problems.append(f"{name}={raw!r} is not a number of seconds")
        return default
    if not low <= value <= high:
        problems.append(f"{name}={raw!r} must be between {low:g} and {high:g} seconds")
        return default
    return value


def _choice(
    env: Mapping[str, str], name: str, default: str, allowed: tuple[str, ...], problems: list[str]
) -> str:
    raw = _text(env, name, default).lower()
    if raw not in allowed:
        problems.append(f"{name}={raw!r} is not one of: {', '.join(allowed)}")
        return default
    return raw


_DESTINATION_NAME = re.compile(r"^[a-z0-9][a-z0-9_-]*$")


def parse_transfer_destinations(raw: str) -> dict[str, str]:
    """Parse 'sales=tel:+16285551111,support=sip:support@pbx.example.com'."""
    destinations: dict[str, str] = {}
    for item in filter(None, (part.strip() for part in raw.split(","))):
        name, sep, target = item.partition("=")
        name = name.strip().lower()
        if not sep or not _DESTINATION_NAME.match(name):
            raise InvalidDestination(
                f"TRANSFER_DESTINATIONS entry {item!r} must look like name=tel:+16285551111"
            )
        if name in destinations:
            raise InvalidDestination(f"TRANSFER_DESTINATIONS names {name!r} twice")
        destinations[name] = transfer_uri(target.strip(), field=f"TRANSFER_DESTINATIONS {name!r}")
    return destinations


def _url(env: Mapping[str, str], problems: list[str]) -> str:
    url = _text(env, "LIVEKIT_URL")
    if url and not url.startswith(("ws://", "wss://", "http://", "https://")):
        problems.append(
            f"LIVEKIT_URL={url!r} must start with wss:// (or ws://, https://, http://), "
            "e.g. wss://my-project.livekit.cloud"
        )
    return url


def _api_root(env: Mapping[str, str], name: str, default: str, problems: list[str]) -> str:
    """A provider's API root: an http(s) URL, without the trailing slash."""
    url = _text(env, name, default).rstrip("/")
    if not url.startswith(("https://", "http://")):
        problems.append(f"{name}={url!r} must start with https:// (or http://), e.g. {default}")
        return default
    return url


def _optional_path(env: Mapping[str, str], name: str, problems: list[str]) -> Path | None:
    """A file setting: empty means none; relative paths are relative to the project."""
    raw = _text(env, name)
    if not raw:
        return None
    path = PROJECT_ROOT / raw
    if not path.is_file():
        problems.append(f"{name}={raw!r}: no such file")
    return path


def _telephony_depth_problems(settings: Settings) -> list[str]:
    """Checks that need other modules: the schedule, the time zone, lookup and menu files.

    Each module validates its own format; telephony.domain.settings_checks keeps one place
    that reports every problem at start-up."""
    return check_settings(settings)


def _greeting_audio_dir(env: Mapping[str, str]) -> Path | None:
    """Empty: data/greeting-audio in the project; "off": memory only (no folder)."""
    raw = _text(env, "GREETING_AUDIO_DIR")
    if not raw:
        return Settings.greeting_audio_dir
    return None if raw.lower() == "off" else PROJECT_ROOT / raw


def _database_url(env: Mapping[str, str], problems: list[str]) -> str:
    url = _text(env, "DATABASE_URL")
    if url and not url.startswith(("postgresql://", "postgres://", "postgresql+", "sqlite:")):
        problems.append(
            "DATABASE_URL must be a PostgreSQL URL like postgresql://user:password@host:5432/db, "
            "an SQLite URL like sqlite:////var/lib/calls.sqlite3, or empty for CALL_RECORDS_PATH"
        )
    return url


def _webhook_url(env: Mapping[str, str], problems: list[str]) -> str:
    url = _text(env, "CALL_WEBHOOK_URL")
    if url and not url.startswith(("https://", "http://")):
        problems.append(f"CALL_WEBHOOK_URL={url!r} must start with https:// (or http://)")
    return url


def _trunk_id(env: Mapping[str, str], problems: list[str]) -> str:
    trunk = _text(env, "SIP_OUTBOUND_TRUNK_ID")
    if trunk and not trunk.startswith("ST_"):
        problems.append(
            f"SIP_OUTBOUND_TRUNK_ID={trunk!r} is not an outbound trunk id: "
            "they start with ST_ (see `lk sip outbound list`)"
        )
    return trunk


def agent_name_from_env(env: Mapping[str, str] | None = None) -> str:
    """The worker's agent name; needed before settings are validated (`--help` works without)."""
    env = os.environ if env is None else env
    return _text(env, "LIVEKIT_AGENT_NAME", DEFAULT_AGENT_NAME)


def read_settings(env: Mapping[str, str] | None = None) -> Settings:
    """Parse every setting; raise SettingsError listing every malformed value at once."""
    settings, problems = parse_settings(env)
    if problems:
        raise SettingsError(problems)
    return settings


def parse_settings(
    env: Mapping[str, str] | None = None, *, deep_checks: bool = True
) -> tuple[Settings, list[str]]:
    """Parse every setting; a malformed value falls back to its default and is listed.

    `deep_checks=False` skips reading the files settings name (schedules, contacts, menus)."""
    env = os.environ if env is None else env
    problems: list[str] = []

    try:
        destinations = parse_transfer_destinations(_text(env, "TRANSFER_DESTINATIONS"))
    except InvalidDestination as e:
        problems.append(str(e))
        destinations = {}

    models = ModelSettings(
        stt_model=_text(env, "STT_MODEL", ModelSettings.stt_model),
        stt_language=_text(env, "STT_LANGUAGE", ModelSettings.stt_language),
        llm_model=_text(env, "LLM_MODEL", ModelSettings.llm_model),
        tts_provider=_choice(env, "TTS_PROVIDER", "openai", ("openai", "deepgram"), problems),  # type: ignore[arg-type]
        tts_model=_text(env, "TTS_MODEL"),
        tts_voice=_text(env, "TTS_VOICE"),
        openai_api_key=_text(env, "OPENAI_API_KEY"),
        openai_base_url=_api_root(env, "OPENAI_BASE_URL", ModelSettings.openai_base_url, problems),
        deepgram_api_key=_text(env, "DEEPGRAM_API_KEY"),
        deepgram_base_url=_api_root(
            env, "DEEPGRAM_BASE_URL", ModelSettings.deepgram_base_url, problems
        ),
        fallback_llm_model=_text(env, "FALLBACK_LLM_MODEL"),
        fallback_llm_base_url=_api_root(
            env,
            "FALLBACK_LLM_BASE_URL",
            _text(env, "OPENAI_BASE_URL", ModelSettings.openai_base_url),
            problems,
        ),
        fallback_llm_api_key=_text(env, "FALLBACK_LLM_API_KEY", _text(env, "OPENAI_API_KEY")),
    )
    models = _with_fallback_speech(env, _with_tts_defaults(models), problems)

    # Relative folders are relative to the project, wherever the worker is started from.
    prompts_dir = PROJECT_ROOT / _text(env, "PROMPTS_DIR", "prompts")
    if not prompts_dir.is_dir():
        problems.append(f"PROMPTS_DIR={str(prompts_dir)!r} is not a folder")

    settings = Settings(
        livekit_url=_url(env, problems),
        livekit_api_key=_text(env, "LIVEKIT_API_KEY"),
        livekit_api_secret=_text(env, "LIVEKIT_API_SECRET"),
        agent_name=agent_name_from_env(env),
        caller_join_timeout_seconds=_seconds(
            env, "CALLER_JOIN_TIMEOUT_SECONDS", 60.0, problems, low=1, high=3600
        ),
        outbound_trunk_id=_trunk_id(env, problems),
        ring_timeout_seconds=_seconds(
            env, "OUTBOUND_RING_TIMEOUT_SECONDS", 30.0, problems, low=5, high=120
        ),
        transfer_destinations=destinations,
        greeting_mode=_choice(env, "GREETING_MODE", "say", ("say", "generate"), problems),  # type: ignore[arg-type]
        company_name=_text(env, "COMPANY_NAME", "our company"),
        prompts_dir=prompts_dir,
        mask_phone_numbers=_flag(env, "MASK_PHONE_NUMBERS", True, problems),
        models=models,
        greeting_audio_dir=_greeting_audio_dir(env),
        call_records_path=PROJECT_ROOT
        / _text(env, "CALL_RECORDS_PATH", str(PROJECT_ROOT / "data" / "calls.sqlite3")),
        database_url=_database_url(env, problems),
        webhook_url=_webhook_url(env, problems),
        webhook_secret=_text(env, "CALL_WEBHOOK_SECRET"),
        amd_enabled=_flag(env, "AMD_ENABLED", True, problems),
        silence_timeout_seconds=_seconds(
            env, "SILENCE_TIMEOUT_SECONDS", 15.0, problems, low=0, high=600
        ),
        max_call_duration_seconds=_seconds(
            env, "MAX_CALL_DURATION_SECONDS", 0.0, problems, low=0, high=24 * 3600
        ),
        business_hours=_text(env, "BUSINESS_HOURS"),
        business_timezone=_text(env, "BUSINESS_TIMEZONE", "UTC"),
        business_holidays_file=_optional_path(env, "BUSINESS_HOLIDAYS_FILE", problems),
        outbound_calling_hours=_text(env, "OUTBOUND_CALLING_HOURS"),
        callee_calling_hours=_text(env, "CALLEE_CALLING_HOURS", "daily 08:00-21:00"),
        ai_disclosure=_flag(env, "AI_DISCLOSURE", True, problems),
        contacts_file=_optional_path(env, "CONTACTS_FILE", problems),
        contact_lookup=_text(env, "CONTACT_LOOKUP"),
        dtmf_menu_file=_optional_path(env, "DTMF_MENU_FILE", problems),
        warm_transfer=_flag(env, "WARM_TRANSFER", False, problems),
        noise_cancellation=_choice(
            env, "NOISE_CANCELLATION", "off", ("off", "bvc-telephony"), problems
        ),
        turn_detector=_choice(env, "TURN_DETECTOR", "local", ("local", "cloud"), problems),
        interruption_detection=_choice(
            env, "INTERRUPTION_DETECTION", "vad", ("vad", "adaptive"), problems
        ),
        provider_failure_transfer=_failure_transfer(env, destinations, problems),
        worker_http_port=_whole_number(env, "WORKER_HTTP_PORT", None, problems, high=65535),
        metrics_port=_whole_number(env, "METRICS_PORT", None, problems, high=65535),
        worker_connect_retries=_whole_number(env, "WORKER_CONNECT_RETRIES", 16, problems, high=1000)
        or 0,
        drain_timeout_seconds=_drain_timeout(env, problems),
        web_host=_text(env, "WEB_HOST", "127.0.0.1"),
        web_port=_web_port(env, problems),
        web_token=_text(env, "WEB_TOKEN"),
    )
    problems.extend(web_access_problems(settings))
    if deep_checks:
        problems.extend(_telephony_depth_problems(settings))
    problems.extend(_metrics_port_problems(settings))
    if settings.webhook_url and not settings.webhook_secret:
        problems.append(
            "CALL_WEBHOOK_SECRET is not set: every webhook is signed, so set a long random "
            "secret (e.g. `openssl rand -hex 32`) and share it with the receiver"
        )
    return settings, problems


def _metrics_port_problems(settings: Settings) -> list[str]:
    port = settings.metrics_port
    if port == 0:
        return ["METRICS_PORT=0: Prometheus scrapes a known port, so give one from 1 to 65535"]
    if port is not None and port == (settings.worker_http_port or DEFAULT_WORKER_HTTP_PORT):
        return [
            f"METRICS_PORT={port} is also the worker's health port (WORKER_HTTP_PORT): "
            "give /metrics a port of its own, e.g. 9100"
        ]
    return []


# The framework's health port for `start` when WORKER_HTTP_PORT is not set.
DEFAULT_WORKER_HTTP_PORT = 8081

# Each provider's TTS model and voice when left empty (Deepgram names the voice inside the
# model id; it has no separate voice), and its STT model.
TTS_DEFAULTS = {"deepgram": ("aura-2-andromeda-en", ""), "openai": ("gpt-4o-mini-tts", "ash")}
STT_DEFAULTS = {"deepgram": "nova-3", "openai": "gpt-4o-mini-transcribe"}


def _with_tts_defaults(models: ModelSettings) -> ModelSettings:
    """Fill the TTS model and voice from the provider when they were left empty."""
    model, voice = TTS_DEFAULTS[models.tts_provider]
    return replace(models, tts_model=models.tts_model or model, tts_voice=models.tts_voice or voice)


def _with_fallback_speech(
    env: Mapping[str, str], models: ModelSettings, problems: list[str]
) -> ModelSettings:
    """The second TTS and STT: a provider, its defaults, and its API root."""
    tts = _choice(env, "FALLBACK_TTS_PROVIDER", "", ("", "openai", "deepgram"), problems)
    stt = _choice(env, "FALLBACK_STT_PROVIDER", "", ("", "deepgram", "openai"), problems)
    models = replace(models, fallback_tts_provider=tts, fallback_stt_provider=stt)  # type: ignore[arg-type]
    if tts:
        model, voice = TTS_DEFAULTS[tts]
        models = replace(
            models,
            fallback_tts_model=_text(env, "FALLBACK_TTS_MODEL", model),
            fallback_tts_voice=_text(env, "FALLBACK_TTS_VOICE", voice),
            fallback_tts_base_url=_api_root(
                env, "FALLBACK_TTS_BASE_URL", models.api_root(tts), problems
            ),
        )
    if stt:
        models = replace(
            models,
            fallback_stt_model=_text(env, "FALLBACK_STT_MODEL", STT_DEFAULTS[stt]),
            fallback_stt_base_url=_api_root(
                env, "FALLBACK_STT_BASE_URL", models.api_root(stt), problems
            ),
        )
    problems.extend(_fallbacks_that_fail_together(models))
    return models


def _fallbacks_that_fail_together(models: ModelSettings) -> list[str]:
    """A fallback identical to the provider it backs up would fail with it."""
    same = []
    if models.fallback_llm_model and (models.fallback_llm_model, models.fallback_llm_base_url) == (
        models.llm_model,
        models.openai_base_url,
    ):
        same.append(("FALLBACK_LLM_MODEL", "the LLM", "FALLBACK_LLM_BASE_URL"))
    tts = (
        models.tts_provider,
        models.tts_model,
        models.tts_voice,
        models.api_root(models.tts_provider),
    )
    fallback_tts = (
        models.fallback_tts_provider,
        models.fallback_tts_model,
        models.fallback_tts_voice,
        models.fallback_tts_base_url,
    )
    if tts == fallback_tts:
        same.append(("FALLBACK_TTS_PROVIDER", "the TTS", "FALLBACK_TTS_BASE_URL"))
    if (models.fallback_stt_provider, models.fallback_stt_model, models.fallback_stt_base_url) == (
        "deepgram",
        models.stt_model,
        models.deepgram_base_url,
    ):
        same.append(("FALLBACK_STT_PROVIDER", "the speech-to-text", "FALLBACK_STT_BASE_URL"))
    return [
        f"{name} names the same model at the same endpoint as {what}, so it would fail "
        f"with it: choose another model or provider, or set {url}"
        for name, what, url in same
    ]


def _failure_transfer(
    env: Mapping[str, str], destinations: Mapping[str, str], problems: list[str]
) -> str:
    """Where a caller goes when no provider can answer: a destination name or a target."""
    raw = _text(env, "PROVIDER_FAILURE_TRANSFER")
    if not raw or raw.lower() in destinations:
        return destinations.get(raw.lower(), "")
    try:
        return transfer_uri(raw, field="PROVIDER_FAILURE_TRANSFER")
    except InvalidDestination as e:
        names = ", ".join(destinations) or "none set"
        problems.append(f"{e} (or name one of TRANSFER_DESTINATIONS: {names})")
        return ""
