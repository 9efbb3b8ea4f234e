"""The `.env.local` and `.env` files, read the way the README promises.

Two rules hold for every variable, ours and those the libraries read themselves:
- an empty value means "use the default". python-dotenv would set `OPENAI_BASE_URL=` to the
  empty string, and the OpenAI SDK then takes "" as its base URL: every request fails.
  So empty values are never put into the environment, and empty ones already there are removed.
- a variable already set in the environment wins over both files; set but empty, it means the
  default (and the files do not fill it: tests and supervisors blank a variable to keep a
  developer's `.env.local` out).

A name in the files that nothing reads (a typo such as GREETING_MODEE) is reported, with the
closest known name, but never stops the worker.
"""

from __future__ import annotations

import difflib
import os
from collections.abc import MutableMapping
from pathlib import Path

from dotenv import dotenv_values

from telephony.domain.settings import PROJECT_ROOT, SETTING_NAMES

ENV_FILE_NAMES = (".env.local", ".env")

# Prefixes of the variables the libraries read themselves: an empty one means their default
# too. (OTEL_: the OpenTelemetry SDK behind the framework's telemetry reads a family of them.)
_LIBRARY_PREFIXES = ("LIVEKIT_", "OPENAI_", "DEEPGRAM_", "LK_", "OTEL_")
# Whole families a library reads by pattern, never flagged as unknown.
_LIBRARY_FAMILIES = ("OTEL_",)

# Variables that livekit-agents, livekit-api, livekit (rtc) and the OpenAI SDK read on their own,
# which a user may rightly put in the files: never reported as unknown. Found by a grep of the
# installed sources; tests/test_env_files.py greps them again, so a library upgrade that reads a
# new variable fails a test instead of earning its users a false warning.
LIBRARY_SETTING_NAMES = frozenset(
    {
        # livekit-agents: the worker, its CLI, hosting and telemetry
        "LIVEKIT_AGENT_NAME_OVERRIDE",
        "LIVEKIT_AGENT_DEPLOYMENT",
        "LIVEKIT_AGENT_ID",
        "LIVEKIT_WORKER_TOKEN",
        "LIVEKIT_DEV_MODE",
        "LIVEKIT_LOG_LEVEL",
        "LIVEKIT_REGION_NAME",
        "LIVEKIT_OBSERVABILITY_URL",
        "LIVEKIT_TELEMETRY_ALLOW_PII",
        "LIVEKIT_AGENTS_LOOP_BLOCK_WARN_MS",
        "LIVEKIT_AGENTS_LOOP_BLOCK_ERROR_MS",
        "LIVEKIT_AGENTS_PRELOAD_LOCAL_INFERENCE",
        "LIVEKIT_EVALS_VERBOSE",
        "LK_DUMP_STACK_TRACES",
        "LK_DUMP_DIR",
        "LK_DUMP_TTS",
        "LK_KEYTERMS_DEBUG",
        "LK_OPENAI_DEBUG",
        # livekit-agents: LiveKit Inference (cloud models) and the warm transfer workflow
        "LIVEKIT_INFERENCE_URL",
        "LIVEKIT_INFERENCE_API_KEY",
        "LIVEKIT_INFERENCE_API_SECRET",
        "LIVEKIT_REMOTE_EOT_URL",
        "LIVEKIT_SIP_OUTBOUND_TRUNK",
        "LIVEKIT_SIP_NUMBER",
        # livekit (rtc) and livekit-api
        "LIVEKIT_TOKEN",
        "LIVEKIT_LIB_PATH",
        "LIVEKIT_RTC_DEBUG",
        # the OpenAI SDK and plugin (Azure included)
        "OPENAI_ORG_ID",
        "OPENAI_PROJECT_ID",
        "OPENAI_ADMIN_KEY",
        "OPENAI_WEBHOOK_SECRET",
        "OPENAI_CUSTOM_HEADERS",
        "OPENAI_API_VERSION",
        "OPENAI_API_TYPE",
        "OPENAI_LOG",
        "AZURE_OPENAI_API_KEY",
        "AZURE_OPENAI_ENDPOINT",
        "AZURE_OPENAI_AD_TOKEN",
        # HTTP clients: proxies and CA certificates
        "HTTP_PROXY",
        "HTTPS_PROXY",
        "NO_PROXY",
        "SSL_CERT_FILE",
        "SSL_CERT_DIR",
    }
)
KNOWN_NAMES = frozenset(SETTING_NAMES) | LIBRARY_SETTING_NAMES


def load_env_files(
    root: Path = PROJECT_ROOT, environ: MutableMapping[str, str] | None = None
) -> None:
    """Fill the environment from `.env.local`, then `.env`: non-empty values only, never
    over a variable already set; then drop the empty ones (see the module doc)."""
    environ = os.environ if environ is None else environ
    for path in env_files(root):
        for name, value in dotenv_values(path).items():
            if value and value.strip() and name not in environ:
                environ[name] = value
    drop_empty_settings(environ)


def drop_empty_settings(environ: MutableMapping[str, str]) -> None:
    """Remove empty settings from the environment, so that no library reads "" as a value."""
    for name in [n for n, v in environ.items() if not v.strip() and _is_setting(n)]:
        del environ[name]


def unknown_variables(root: Path = PROJECT_ROOT) -> list[str]:
    """One warning per variable in the env files that no setting or library reads."""
    warnings: list[str] = []
    for path in env_files(root):
        for name in dotenv_values(path):
            if is_known(name):
                continue
            close = difflib.get_close_matches(name, sorted(KNOWN_NAMES), n=1, cutoff=0.75)
            hint = f": did you mean {close[0]}?" if close else ": no setting reads it"
            warnings.append(f"{path.name} sets {name}, which is not a setting{hint}")
    return warnings


def is_known(name: str) -> bool:
    """True for a variable this project or a library it runs reads."""
    return name in KNOWN_NAMES or name.startswith(_LIBRARY_FAMILIES)


def env_files(root: Path) -> list[Path]:
    return [root / name for name in ENV_FILE_NAMES if (root / name).is_file()]


def _is_setting(name: str) -> bool:
    return name in KNOWN_NAMES or name.startswith(_LIBRARY_PREFIXES)
