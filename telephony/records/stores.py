"""The call-record store of this process, opened once per database (saving, webhooks and
the operator commands share it)."""

from __future__ import annotations

from telephony.domain.settings import Settings
from telephony.records.store import CallStore, database_url

# One store per process: opening it creates or migrates the schema once.
_stores: dict[str, CallStore] = {}


def open_store(settings: Settings) -> CallStore:
    url = database_url(settings.database_url, settings.call_records_path)
    if url not in _stores:
        _stores[url] = CallStore.open(url)
    return _stores[url]


def close_stores() -> None:
    """Close every store this process opened (tests; a process exiting needs nothing)."""
    while _stores:
        _stores.popitem()[1].close()
