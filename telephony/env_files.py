"""The `.env.local` and `.env` files, read the way the README promises.

Two rules hold for every variable, ours and those the libraries read themselves:
- an empty value means "use the default". python-dotenv would set `OPENAI_BASE_URL=` to the
  empty string, and the OpenAI SDK then takes "" as its base URL: every request fails.
  So empty values are never put into the environment, and empty ones already there are removed.
- a variable already set in the environment wins over both files (set but empty: the default).

A name in the files that nothing reads (a typo such as GREETING_MODEE) is reported, with the
closest known name, but never stops the worker.
"""

from __future__ import annotations

import difflib
import os
from collections.abc import MutableMapping
from pathlib import Path

from dotenv import dotenv_values

from .settings import PROJECT_ROOT, SETTING_NAMES

ENV_FILE_NAMES = (".env.local", ".env")

# Prefixes of the variables the libraries read themselves: an empty one means their default too.
_LIBRARY_PREFIXES = ("LIVEKIT_", "OPENAI_", "DEEPGRAM_", "LK_")

# Variables that livekit-agents, livekit-api and the OpenAI SDK read on their own, which a user
# may rightly put in the files (grep of the installed sources for os.environ / getenv).
LIBRARY_SETTING_NAMES = frozenset(
    {
        "LIVEKIT_AGENT_NAME_OVERRIDE",
        "LIVEKIT_INFERENCE_URL",
        "LIVEKIT_INFERENCE_API_KEY",
        "LIVEKIT_INFERENCE_API_SECRET",
        "LIVEKIT_REMOTE_EOT_URL",
        "LIVEKIT_OBSERVABILITY_URL",
        "LIVEKIT_REGION_NAME",
        "LIVEKIT_RTC_DEBUG",
        "LK_DUMP_STACK_TRACES",
        "OPENAI_ORG_ID",
        "OPENAI_PROJECT_ID",
        "OPENAI_LOG",
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
            if name in KNOWN_NAMES:
                continue
            close = difflib.get_close_matches(name, sorted(KNOWN_NAMES), n=1, cutoff=0.75)
            hint = f": did you mean {close[0]}?" if close else ": no setting reads it"
            warnings.append(f"{path.name} sets {name}, which is not a setting{hint}")
    return warnings


def env_files(root: Path) -> list[Path]:
    return [root / name for name in ENV_FILE_NAMES if (root / name).is_file()]


def _is_setting(name: str) -> bool:
    return name in KNOWN_NAMES or name.startswith(_LIBRARY_PREFIXES)
