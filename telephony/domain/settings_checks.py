"""Start-up checks of settings whose format belongs to another module (hours, contacts, menus).

Each module checks its own format; this list runs them all when settings are read, so the
worker reports a broken schedule, contacts file or menu before the first call, not during one.
Those modules name `Settings` for type checking only, so the settings can import this list.
"""

from __future__ import annotations

import importlib.util
from typing import TYPE_CHECKING

from telephony.domain.business_hours import check_business_hours_settings
from telephony.domain.callee_hours import check_callee_hours_settings
from telephony.domain.contacts import check_contacts_settings
from telephony.domain.keypad_menu import check_dtmf_settings

if TYPE_CHECKING:
    from telephony.domain.settings import Settings

# The optional noise-cancellation plugin (LiveKit Cloud), and how to install it.
NOISE_CANCELLATION_PLUGIN = "livekit.plugins.noise_cancellation"
NOISE_CANCELLATION_INSTALL_HINT = "uv sync --extra noise-cancellation"


def check_noise_cancellation_settings(settings: Settings) -> list[str]:
    """NOISE_CANCELLATION=bvc-telephony needs its optional package installed."""
    if settings.noise_cancellation == "off":
        return []
    if importlib.util.find_spec(NOISE_CANCELLATION_PLUGIN) is not None:
        return []
    return [
        "NOISE_CANCELLATION=bvc-telephony needs the livekit-plugins-noise-cancellation "
        f"package: install it with `{NOISE_CANCELLATION_INSTALL_HINT}` (it works with "
        "LiveKit Cloud only)"
    ]


def check_settings(settings: Settings) -> list[str]:
    problems: list[str] = []
    for check in (
        check_business_hours_settings,
        check_callee_hours_settings,
        check_contacts_settings,
        check_dtmf_settings,
        check_noise_cancellation_settings,
    ):
        problems.extend(check(settings))
    return problems
