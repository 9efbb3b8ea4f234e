"""Start-up checks of settings whose format belongs to another module (hours, contacts, menus).

Each module checks its own format; this list runs them all when settings are read, so the
worker reports a broken schedule, contacts file or menu before the first call, not during one.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .settings import Settings


def check_settings(settings: Settings) -> list[str]:
    from .business_hours import check_business_hours_settings
    from .contacts import check_contacts_settings
    from .dtmf import check_dtmf_settings
    from .noise_cancellation import check_noise_cancellation_settings

    problems: list[str] = []
    for check in (
        check_business_hours_settings,
        check_contacts_settings,
        check_dtmf_settings,
        check_noise_cancellation_settings,
    ):
        problems.extend(check(settings))
    return problems
