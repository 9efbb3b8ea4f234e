"""Everything that stops the worker from starting, checked in one place.

`python agent.py dev|start|connect|console` refuses to start on any problem `check_startup`
finds (telephony.worker.worker_cli), and `python -m telephony status` reports the very same
lines for `start` (telephony.operator.cli.status). A new start-up check goes in
STARTUP_CHECKS (or, for a setting's own format, in telephony.domain.settings_checks, which the
settings parser runs): both the worker and `status` then run it.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

from telephony.domain.env_files import unknown_variables
from telephony.domain.paths import PROJECT_ROOT
from telephony.domain.prompts import PromptError, Prompts
from telephony.domain.settings import Settings, parse_settings


@dataclass(frozen=True)
class StartupCheck:
    settings: Settings
    problems: list[str]  # each stops the worker; one line with its fix
    warnings: list[str]  # shown, never stop it (a variable in .env.local that nothing reads)


def prompt_problems(settings: Settings) -> list[str]:
    """Every prompt file present, UTF-8, and using known placeholders only."""
    try:
        Prompts.load(settings.prompts_dir)
    except PromptError as e:
        return e.problems
    return []


# Checks that need the parsed settings, run after the parser's own (which already checks
# hours, contacts, the keypad menu and noise cancellation: settings_checks.check_settings).
STARTUP_CHECKS: tuple[Callable[[Settings], list[str]], ...] = (prompt_problems,)


def check_startup(
    command: str = "start", env: Mapping[str, str] | None = None, root: Path | None = None
) -> StartupCheck:
    """What the worker command `command` would refuse to start over, and its warnings.

    `env` is the environment with the worker's `--url`/`--api-key`/`--api-secret` flags
    applied; `root` holds the .env.local and .env files looked at for unknown names (the
    project's by default)."""
    env = os.environ if env is None else env
    settings, problems = parse_settings(env)
    problems = [*problems, *settings.missing_for(command)]
    for check in STARTUP_CHECKS:
        problems += check(settings)
    return StartupCheck(settings, problems, unknown_variables(root or PROJECT_ROOT))
