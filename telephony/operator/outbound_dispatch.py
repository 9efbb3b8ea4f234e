"""Place outbound calls from the operator's side: build the dial request, dispatch the agent
into a new room, find the call's record once the agent has saved it (in the store or in the
local spool), and ask LiveKit what it knows of the room.

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
from pathlib import Path
from typing import Any

import aiohttp
from livekit import api

from telephony.domain.dial_request import InvalidMetadata, parse_dial_request
from telephony.domain.settings import Settings, SettingsError
from telephony.records.model import CallRecord, Outcome
from telephony.records.spool import read_spool
from telephony.records.store import CallStore, StoreError

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

    async def rooms(self, rooms: Collection[str], *, jobs: bool = False) -> dict[str, RoomView]:
        """LiveKit's view of these rooms now (ABSENT for a room it does not have); with
        `jobs`, also how many jobs the dispatches of an empty room were given. Raises
        LiveKitUnavailable when LiveKit cannot tell."""
        assert self._api is not None, "use `async with LiveKitDispatcher(...)`"
        views = dict.fromkeys(rooms, ABSENT)
        if not views:
            return views
        try:
            async with asyncio.timeout(self.timeout):
                listed = await self._api.room.list_rooms(api.ListRoomsRequest(names=list(views)))
                for info in listed.rooms:
                    if info.name not in views:
                        continue
                    taken = 0
                    if jobs and not info.num_participants:
                        dispatches = await self._api.agent_dispatch.list_dispatch(info.name)
                        taken = sum(len(d.state.jobs) for d in dispatches)
                    views[info.name] = RoomView(info.num_participants, exists=True, jobs=taken)
        except (TimeoutError, aiohttp.ClientError, api.ServerError) as e:
            raise LiveKitUnavailable(_livekit_problem(self.url, self.timeout, e)) from None
        return views

    async def retire(self, room: str) -> None:
        """Delete the room, and with it its dispatch, so that no worker can take that
        dispatch later (after which a new attempt for the number cannot be a second
        call). Raises LiveKitUnavailable."""
        assert self._api is not None, "use `async with LiveKitDispatcher(...)`"
        try:
            async with asyncio.timeout(self.timeout):
                await self._api.room.delete_room(api.DeleteRoomRequest(room=room))
        except api.ServerError as e:
            if e.status != 404:  # already gone: as good
                raise LiveKitUnavailable(_livekit_problem(self.url, self.timeout, e)) from None
        except (TimeoutError, aiohttp.ClientError) as e:
            raise LiveKitUnavailable(_livekit_problem(self.url, self.timeout, e)) from None


class LiveKitUnavailable(Exception):
    """LiveKit could not be asked about a room (unreachable, refused, too slow)."""


@dataclass(frozen=True)
class RoomView:
    """What LiveKit knows of one call's room."""

    participants: int  # people and agents in it now: a call is under way
    exists: bool = True
    jobs: int = 0  # jobs given for its dispatches, when LiveKit reports them

    @property
    def taken(self) -> bool:
        """A worker took the dispatch (or someone is in the room): a call may be placed."""
        return self.participants > 0 or self.jobs > 0


ABSENT = RoomView(participants=0, exists=False)


def _livekit_problem(url: str, timeout: float, error: Exception) -> str:
    if isinstance(error, TimeoutError):
        return f"LiveKit at {url} did not answer within {timeout:g} s"
    if isinstance(error, api.ServerError):
        return f"LiveKit at {url} answered {error.status} ({error.code}: {error.message})"
    return f"cannot reach LiveKit at {url} ({error})"


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
    source: str = "store"  # or "spool": saved while the worker could not reach the store

    @classmethod
    def from_record(cls, record: CallRecord, source: str = "store") -> CallResult:
        return cls(
            record_id=record.record_id,
            room=record.room,
            outcome=record.outcome.value,
            duration_seconds=record.duration_seconds,
            sip_status_code=record.sip_status_code,
            sip_status=record.sip_status,
            error=record.error,
            ended_at=record.ended_at,
            source=source,
        )

    @property
    def in_progress(self) -> bool:
        """The record of a call still under way: not an outcome yet."""
        return self.outcome == Outcome.IN_PROGRESS.value

    @property
    def sip(self) -> str:
        """'486 Busy Here', '486', or '' when the call had no SIP status."""
        code = "" if self.sip_status_code is None else str(self.sip_status_code)
        return " ".join(part for part in (code, self.sip_status) if part)


class LookupIncomplete(StoreError):
    """The store could not be read; `found` holds what the other places had."""

    def __init__(self, message: str, found: dict[str, CallResult]) -> None:
        super().__init__(message)
        self.found = found


class RecordFinder:
    """Looks up call records by room wherever the worker may have put them: the call
    records store, and the local spool where it keeps records the store could not take
    (read only; `calls import-spool` moves them to the store)."""

    def __init__(self, store: CallStore, spool: Path | None = None) -> None:
        self.store = store
        self.spool = spool
        self.spool_unreadable = 0  # lines of the spool that are not a whole record
        self._spool_key: tuple[int, int] | None = None
        self._spooled: dict[str, CallResult] = {}

    async def find(self, rooms: Collection[str], since: float) -> dict[str, CallResult]:
        """The records of these rooms among calls started after `since` (minus a slack for
        clock differences), by room. Raises LookupIncomplete (a StoreError) when the store
        cannot be read, with what the spool had."""
        if not rooms:
            return {}
        wanted = set(rooms)
        spooled = await asyncio.to_thread(self._from_spool, wanted)
        try:
            stored = await asyncio.to_thread(self._find, wanted, since - LOOKUP_SLACK_SECONDS)
        except StoreError as e:
            raise LookupIncomplete(str(e), spooled) from e
        return {room: _latest(stored.get(room), spooled.get(room)) for room in stored | spooled}

    def spool_problem(self) -> str:
        """Why the spool cannot vouch that a record is not there ('' when it can)."""
        if not self.spool_unreadable:
            return ""
        return (
            f"{self.spool_unreadable} line(s) of the spool {self.spool} cannot be read (one may "
            "be this call's record): run `python -m telephony calls import-spool`, which "
            "imports every whole record and sets the rest aside"
        )

    def _find(self, rooms: set[str], since: float) -> dict[str, CallResult]:
        found: dict[str, CallResult] = {}
        # Oldest first, so that if a room somehow has two records the latest one wins;
        # but an in-progress record never hides a finished one.
        for record in reversed(self.store.list(since=since, limit=None)):
            if record.room in rooms:
                result = CallResult.from_record(record)
                earlier = found.get(record.room)
                if earlier is None or earlier.in_progress or not result.in_progress:
                    found[record.room] = result
        return found

    def _from_spool(self, rooms: set[str]) -> dict[str, CallResult]:
        """The spool's records of these rooms; the file is re-read only when it changed."""
        if self.spool is None:
            return {}
        try:
            stat = self.spool.stat()
        except FileNotFoundError:
            self._spool_key, self._spooled, self.spool_unreadable = None, {}, 0
            return {}
        except OSError:
            self.spool_unreadable = max(self.spool_unreadable, 1)
            return {}
        key = (stat.st_size, stat.st_mtime_ns)
        if key != self._spool_key:
            self._spooled, self.spool_unreadable = _spooled_results(self.spool)
            self._spool_key = key
        return {room: self._spooled[room] for room in rooms if room in self._spooled}


def _spooled_results(path: Path) -> tuple[dict[str, CallResult], int]:
    """Every record of the spool by room (a later line for a room replaces an earlier
    one), and how many lines are not a readable record."""
    found: dict[str, CallResult] = {}
    unreadable = 0
    try:
        lines = read_spool(path)
    except OSError:
        return {}, 1
    for line in lines:
        result = _spooled_result(line.record) if line.record is not None else None
        if result is None:
            unreadable += 1
        elif result.room:
            found[result.room] = _latest(found.get(result.room), result)
    return found, unreadable


def _spooled_result(data: dict[str, Any]) -> CallResult | None:
    try:
        code = data.get("sip_status_code")
        return CallResult(
            record_id=str(data["record_id"]),
            room=str(data.get("room") or ""),
            outcome=Outcome(data["outcome"]).value,
            duration_seconds=float(data.get("duration_seconds") or 0.0),
            sip_status_code=None if code is None else int(code),
            sip_status=str(data.get("sip_status") or ""),
            error=str(data.get("error") or ""),
            ended_at=float(data.get("ended_at") or 0.0),
            source="spool",
        )
    except (KeyError, ValueError, TypeError):
        return None


def _latest(first: CallResult | None, second: CallResult | None) -> CallResult:
    """Of two records of one room, the one that says how the call ended (the first if
    both or neither do)."""
    if first is None or (first.in_progress and second is not None and not second.in_progress):
        assert second is not None
        return second
    return first
