"""What a worker process loads once and every call then reads: settings, prompts, the
opening hours, the caller lookup and the keypad menu (prewarm builds it before any call)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

from telephony.domain.business_hours import Schedule, business_schedule, calling_schedule
from telephony.domain.callee_hours import CalleeHours, callee_hours, next_call_time
from telephony.domain.contacts import ContactLookup, build_lookup
from telephony.domain.keypad_menu import DtmfMenu, menu_from_settings
from telephony.domain.prompts import Prompts
from telephony.domain.settings import Settings, read_settings


@dataclass(frozen=True)
class CallConfig:
    settings: Settings
    prompts: Prompts
    business_hours: Schedule | None = None  # None: always open
    calling_hours: Schedule | None = None  # None: outbound calls at any time
    callee_hours: CalleeHours | None = None  # None: no callee-local check (24/7)
    contact_lookup: ContactLookup | None = None
    keypad_menu: DtmfMenu | None = None

    def after_hours(self, at: datetime | None = None) -> bool:
        hours = self.business_hours
        return hours is not None and not hours.is_open(at or datetime.now(UTC))

    def outside_callee_hours(self, number: str, at: datetime | None = None) -> bool:
        """Not now in `number`'s own calling window (every zone it may ring in)."""
        if self.callee_hours is None:
            return False
        now = at or datetime.now(UTC)
        return next_call_time(number, now, callee=self.callee_hours) != now

    def outside_calling_hours(self, at: datetime | None = None) -> bool:
        hours = self.calling_hours
        return hours is not None and not hours.is_open(at or datetime.now(UTC))


def load_config() -> CallConfig:
    """Everything validated; raises SettingsError / PromptError listing every problem."""
    settings = read_settings()
    return CallConfig(
        settings=settings,
        prompts=Prompts.load(settings.prompts_dir),
        business_hours=business_schedule(settings),
        calling_hours=calling_schedule(settings),
        callee_hours=callee_hours(settings),
        contact_lookup=build_lookup(settings),
        keypad_menu=menu_from_settings(settings),
    )
