"""Place outbound calls from the operator's side: build the dial request, dispatch the agent
into a new room, and find the call's record once the agent has saved it.

Shared by `python -m telephony call` and `python -m telephony campaign`. The agent does the
dialing: a dispatch names the agent, a new room (the dispatch creates it) and the job
metadata (`telephony.domain.dial_request`); the agent saves one call record per job, with the
room, whatever the ending. So the room name is the key that ties a dispatch to its outcome.
"""

from __future__ import annotations

import asyncio
import json
import secrets
from collections.abc import Collection, Mapping
from dataclasses import dataclass

import aiohttp
from livekit import api

from telephony.domain.dial_request import InvalidMetadata, parse_dial_request
from telephony.domain.settings import Settings, SettingsError
from telephony.records.model import CallRecord, Outcome
from telephony.records.store import CallStore

ROOM_PREFIX = "outbound-"

# Outcomes where someone (or a voicemail box) was reached: `call --wait` exits 0 on these.
CONNECTED_OUTCOMES = frozenset(
    {
        Outcome.COMPLETED,
        Outcome.VOICEMAIL,
        Outcome.TRANSFERRED,
        Outcome.AGENT_ENDED,
        Outcome.CALLER_HUNG_UP,
    }
)

# A record's started_at comes from the agent's host clock and is later than the dispatch;
# look this far back from the dispatch so a clock difference between hosts cannot hide it.
LOOKUP_SLACK_SECONDS = 600.0
# How long a dispatch request may take before it counts as failed (its result then unknown).
DISPATCH_TIMEOUT_SECONDS = 10.0


def new_room_name() -> str:
    """A fresh, unguessable room for one outbound call: 'outbound-3f9a1c2b7d4e'."""
    return f"{ROOM_PREFIX}{secrets.token_hex(6)}"


def dial_metadata(
    phone_number: str,
    *,
    transfer_to: str | None = None,
    dtmf: str | None = None,
    force: bool = False,
    context: Mapping[str, str] | None = None,
) -> str:
    """The job metadata for one call, as JSON; raises InvalidMetadata (message without the
    'job metadata: ' prefix) when the agent would reject it. Validated by the agent's own
    parser, so the operator's tools and the agent never disagree about what is valid."""
    data: dict[str, object] = {"phone_number": phone_number}
    if transfer_to is not None:
        data["transfer_to"] = transfer_to
    if dtmf:
        data["dtmf"] = dtmf
    if force:
        data["force"] = True
    if context:
        data["context"] = dict(context)
    text = json.dumps(data, ensure_ascii=False, separators=(",", ":"))
    try:
        parse_dial_request(text)
    except InvalidMetadata as e:
        raise InvalidMetadata(str(e).removeprefix("job metadata: ")) from None
    return text


def require_livekit_settings(settings: Settings) -> None:
    """SettingsError (exit 2) unless the LiveKit server API can be called."""
    problems = [
        f"{var} is not set: copy it from your LiveKit project settings"
        for var, value in (
            ("LIVEKIT_URL", settings.livekit_url),
            ("LIVEKIT_API_KEY", settings.livekit_api_key),
            ("LIVEKIT_API_SECRET", settings.livekit_api_secret),
        )
        if not value
    ]
    if problems:
        raise SettingsError(problems)


def default_call_timeout(settings: Settings) -> float:
    """How long to wait for a dispatched call's record: ringing, then the call itself (its
    MAX_CALL_DURATION_SECONDS, or 10 minutes when unlimited), plus a minute to save."""
    longest_call = settings.max_call_duration_seconds or 600.0
    return settings.ring_timeout_seconds + longest_call + 60.0


def span_text(seconds: float) -> str:
    """'0.5 s', '45 s', '12 min', '3 h 05 min'."""
    seconds = max(0.0, seconds)
    if seconds < 120:
        return f"{round(seconds, 1):g} s"
    minutes = round(seconds / 60)
    if minutes < 120:
        return f"{minutes} min"
    return f"{minutes // 60} h {minutes % 60:02d} min"


# ------------------------------------------------------------------ dispatching


class DispatchError(Exception):
    """A dispatch that certainly created nothing (LiveKit refused it, or was never reached).

    `stop` is True when every further dispatch would fail the same way (credentials, URL,
    rate limit, server unreachable); False when only this request was refused."""

    def __init__(self, message: str, *, stop: bool) -> None:
        super().__init__(message)
        self.stop = stop


class LiveKitDispatcher:
    """Creates agent dispatches through the LiveKit server API; an async context manager.

    One request per dispatch, never retried by the client (region failover is off): a
    repeated CreateDispatch would start a second agent, and so a second call.

    `dispatch` raises DispatchError when nothing was created; any other exception (a time-out,
    a 5xx, a connection lost mid-request) leaves it unknown whether the call was placed.
    """

    def __init__(
        self,
        settings: Settings,
        *,
        agent_name: str | None = None,
        timeout: float = DISPATCH_TIMEOUT_SECONDS,
    ) -> None:
        require_livekit_settings(settings)
        self.timeout = timeout
        self.url = settings.livekit_url
        self.agent_name = agent_name or settings.agent_name
        self._settings = settings
        self._api: api.LiveKitAPI | None = None

    async def __aenter__(self) -> LiveKitDispatcher:
        self._api = api.LiveKitAPI(
            self._settings.livekit_url,
            self._settings.livekit_api_key,
            self._settings.livekit_api_secret,
            timeout=aiohttp.ClientTimeout(total=self.timeout),
            failover=False,
        )
        return self

    async def __aexit__(self, *_exc: object) -> None:
        if self._api is not None:
            await self._api.aclose()
            self._api = None

    async def dispatch(self, room: str, metadata: str) -> str:
        """Dispatch the agent into `room` (created by the dispatch); return the dispatch id."""
        assert self._api is not None, "use `async with LiveKitDispatcher(...)`"
        request = api.CreateAgentDispatchRequest(
            agent_name=self.agent_name, room=room, metadata=metadata
        )
        try:
            # Bounded here: livekit-api switches off the session's timeout for each request.
            # (asyncio.timeout, not wait_for, which can swallow a cancellation on 3.11.)
            async with asyncio.timeout(self.timeout):
                dispatch = await self._api.agent_dispatch.create_dispatch(request)
        except TimeoutError:
            raise TimeoutError(
                f"LiveKit at {self.url} did not answer within {self.timeout:g} s "
                "(--request-timeout sets the wait)"
            ) from None
        except aiohttp.ClientConnectorError as e:
            # The connection was never made: nothing was sent.
            raise DispatchError(
                f"cannot reach LiveKit at {self.url} ({e.os_error.strerror or e})", stop=True
            ) from e
        except api.ServerError as e:
            if e.status >= 500 or e.status == 408:
                raise  # the server failed or timed out part-way: the dispatch may exist
            text = f"LiveKit refused the dispatch: {e.code}: {e.message or e.status}"
            if e.status in (401, 403):
                raise DispatchError(
                    f"{text} (check LIVEKIT_API_KEY and LIVEKIT_API_SECRET)", stop=True
                ) from e
            if e.status == 404:
                raise DispatchError(f"{text} (check LIVEKIT_URL)", stop=True) from e
            if e.status == 429:
                raise DispatchError(f"{text} (lower --rate)", stop=True) from e
            raise DispatchError(text, stop=False) from e
        return dispatch.id


# ------------------------------------------------------------------ finding the outcome


@dataclass(frozen=True)
class CallResult:
    """What the operator's tools need from a call record."""

    record_id: str
    room: str
    outcome: str
    duration_seconds: float
    sip_status_code: int | None
    sip_status: str
    error: str
    ended_at: float

    @classmethod
    def from_record(cls, record: CallRecord) -> CallResult:
        return cls(
            record_id=record.record_id,
            room=record.room,
            outcome=record.outcome.value,
            duration_seconds=record.duration_seconds,
            sip_status_code=record.sip_status_code,
            sip_status=record.sip_status,
            error=record.error,
            ended_at=record.ended_at,
        )

    @property
    def sip(self) -> str:
        """'486 Busy Here', '486', or '' when the call had no SIP status."""
        code = "" if self.sip_status_code is None else str(self.sip_status_code)
        return " ".join(part for part in (code, self.sip_status) if part)


class RecordFinder:
    """Looks up call records by room in the call records store (read only)."""

    def __init__(self, store: CallStore) -> None:
        self.store = store

    async def find(self, rooms: Collection[str], since: float) -> dict[str, CallResult]:
        """The records of these rooms among calls started after `since` (minus a slack for
        clock differences), by room. Raises StoreError when the store cannot be read."""
        if not rooms:
            return {}
        return await asyncio.to_thread(self._find, set(rooms), since - LOOKUP_SLACK_SECONDS)

    def _find(self, rooms: set[str], since: float) -> dict[str, CallResult]:
        found: dict[str, CallResult] = {}
        # Oldest first, so that if a room somehow has two records the latest one wins.
        for record in reversed(self.store.list(since=since, limit=None)):
            # An in-progress record is a call still going on (or not yet completed by its
            # worker): no outcome yet.
            if record.room in rooms and record.outcome is not Outcome.IN_PROGRESS:
                found[record.room] = CallResult.from_record(record)
        return found
