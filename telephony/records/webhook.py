"""Send each finished call record to CALL_WEBHOOK_URL, signed, until the receiver takes it.

The request, for receivers (the README shows a receiver):

    POST <CALL_WEBHOOK_URL>
    Content-Type: application/json
    User-Agent: telephony-agent-webhook/1
    X-Call-Record-Id: <record_id>
    X-Call-Record-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256 of "<t>.<record_id>.<body>">

    <the record's to_dict() as JSON: UTF-8, compact separators, sorted keys>

The signature (Stripe's and Svix's scheme) covers when it was sent and which record it is as
well as the body, and is made afresh for every attempt: a receiver rejects a delivery signed
more than TOLERANCE_SECONDS ago (a captured request replayed later) and one whose
X-Call-Record-Id was swapped (the id receivers de-duplicate on).

Any 2xx answer means delivered. 410 Gone means "stop": that record is never sent again, the
reason kept in its delivery state. Anything else (another 4xx, 5xx, a redirect, no answer)
is a failed attempt, retried. Delivery is at least once on the wire (a lost answer or a
lease that ran out sends the same record again) and exactly once in the store: receivers
drop duplicates by X-Call-Record-Id.

Records wait in the store's outbox (CallStore.claim_deliveries). They are sent right after
each call (`deliver_after_call`, bounded in time, after the hang-up), and the worker process
retries what is still pending (`start_background_delivery`). A record that fails is never
dropped: it stays pending and comes due again after a growing delay (RETRY_DELAYS_SECONDS).
"""

from __future__ import annotations

import asyncio
import errno
import hashlib
import hmac
import json
import logging
import math
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Literal

import aiohttp
from yarl import URL

from telephony.domain.settings import Settings
from telephony.domain.terminal_text import printable
from telephony.records import record_metrics
from telephony.records.model import CallRecord
from telephony.records.store import CallStore, StoreError
from telephony.records.stores import open_store

logger = logging.getLogger("telephony.records.webhook")

USER_AGENT = "telephony-agent-webhook/1"
RECORD_ID_HEADER = "X-Call-Record-Id"
SIGNATURE_HEADER = "X-Call-Record-Signature"
SIGNATURE_VERSION = "v1"
TOLERANCE_SECONDS = 300  # how old a signature a receiver accepts (Stripe's default)
GONE = 410  # the receiver's "stop sending this": final

POST_TIMEOUT_SECONDS = 10.0  # one POST, connecting included
# How long a record waits after a failed delivery round, by the rounds already failed:
# 30 s, 2 min, 10 min, 1 h, 3 h, then every 6 h for as long as it takes.
RETRY_DELAYS_SECONDS = (30.0, 120.0, 600.0, 3600.0, 3 * 3600.0, 6 * 3600.0)
AFTER_CALL_DEADLINE_SECONDS = 20.0  # the send right after a call, all retries included
RETRY_INTERVAL_SECONDS = 60.0  # the worker's background loop
PARALLEL_POSTS = 4  # records of one batch in flight at once
# Answers that a retry a second later cannot change (the record still comes due later).
_NOT_WORTH_RETRYING_NOW = frozenset(range(400, 500)) - {408, 425, 429}


_Ending = Literal["delivered", "failed", "gone"]  # how one record's delivery round ended


@dataclass(frozen=True)
class DeliveryReport:
    delivered: int
    failed: int  # stay queued, retried later
    gone: int = 0  # the receiver answered 410 Gone: never retried

    @property
    def tried(self) -> int:
        return self.delivered + self.failed + self.gone


# ------------------------------------------------------------------ the request


def payload(record: CallRecord) -> bytes:
    """The body: exactly the bytes that are signed."""
    return json.dumps(
        record.to_dict(), ensure_ascii=False, separators=(",", ":"), sort_keys=True
    ).encode("utf-8")


def _digest(secret: str, timestamp: int, record_id: str, body: bytes) -> str:
    signed = f"{timestamp}.{record_id}.".encode() + body
    return hmac.new(secret.encode("utf-8"), signed, hashlib.sha256).hexdigest()


def sign(body: bytes, secret: str, record_id: str, timestamp: int) -> str:
    """The X-Call-Record-Signature value: 't=<timestamp>,v1=<hex HMAC-SHA256 of
    "<timestamp>.<record_id>.<body>">'."""
    digest = _digest(secret, timestamp, record_id, body)
    return f"t={timestamp},{SIGNATURE_VERSION}={digest}"


def verify(
    body: bytes,
    secret: str,
    signature_header: str | None,
    record_id: str | None,
    *,
    now: float | None = None,
    tolerance: float = TOLERANCE_SECONDS,
) -> bool:
    """What a receiver does (the README's recipe): True only if the header signs exactly
    this body and record id with this secret, at most `tolerance` seconds from `now`.
    Constant-time; a missing or malformed header is simply False."""
    if not signature_header or not secret or record_id is None:
        return False
    try:
        parts = dict(item.strip().split("=", 1) for item in signature_header.split(","))
    except ValueError:
        return False
    stamp, given = parts.get("t", ""), parts.get(SIGNATURE_VERSION, "")
    if not (stamp.isascii() and stamp.isdigit()):
        return False
    timestamp = int(stamp)
    if abs((time.time() if now is None else now) - timestamp) > tolerance:
        return False
    expected = _digest(secret, timestamp, record_id, body)
    return hmac.compare_digest(expected.encode(), given.encode("utf-8", errors="replace"))


def request_headers(
    body: bytes, secret: str, record_id: str, *, now: float | None = None
) -> dict[str, str]:
    """The headers of one attempt, signed at `now` (default: the time now)."""
    timestamp = int(time.time() if now is None else now)
    return {
        "Content-Type": "application/json",
        "User-Agent": USER_AGENT,
        RECORD_ID_HEADER: record_id,
        SIGNATURE_HEADER: sign(body, secret, record_id, timestamp),
    }


async def post_record(
    session: aiohttp.ClientSession,
    url: str,
    secret: str,
    record: CallRecord,
    *,
    timeout: float = POST_TIMEOUT_SECONDS,
) -> str | None:
    """POST the record once: None on any 2xx, else a short reason ("HTTP 500",
    "connection refused", "timeout"). Never raises for network errors."""
    error, _status = await _post(session, url, secret, payload(record), record.record_id, timeout)
    return error


async def _post(
    session: aiohttp.ClientSession,
    url: str,
    secret: str,
    body: bytes,
    record_id: str,
    timeout: float,
) -> tuple[str | None, int | None]:
    """One POST: (None, status) on 2xx, else (reason, status or None without an answer)."""
    try:
        async with session.post(
            url,
            data=body,
            headers=request_headers(body, secret, record_id),
            timeout=aiohttp.ClientTimeout(total=timeout),
            # A redirected POST may come back as a GET whose 2xx proves nothing.
            allow_redirects=False,
        ) as response:
            if 200 <= response.status < 300:
                return None, response.status
            if response.status == GONE:
                return await _gone_reason(response), response.status
            return f"HTTP {response.status}", response.status
    except TimeoutError:  # aiohttp's timeouts subclass it
        return "timeout", None
    except aiohttp.ClientError as e:
        return _network_reason(e), None
    except (OSError, ValueError) as e:  # a socket error aiohttp did not wrap, a bad URL
        return _short(f"{type(e).__name__}: {e}"), None


async def _gone_reason(response: aiohttp.ClientResponse) -> str:
    """'HTTP 410 Gone', plus the first line of what the receiver said, if anything."""
    try:
        said = (await response.content.read(200)).decode("utf-8", errors="replace")
    except (aiohttp.ClientError, TimeoutError):
        said = ""
    # Kept and logged: the receiver's text never carries control characters into either.
    first = printable(said.strip().splitlines()[0].strip()) if said.strip() else ""
    return _short(f"HTTP 410 Gone: {first}" if first else "HTTP 410 Gone")


def _network_reason(error: aiohttp.ClientError) -> str:
    if isinstance(error, aiohttp.InvalidURL):
        return "invalid URL"
    if isinstance(error, aiohttp.ClientConnectorDNSError):
        return "unknown host"
    if isinstance(error, aiohttp.ClientConnectorCertificateError | aiohttp.ClientSSLError):
        return "TLS error"
    if isinstance(error, aiohttp.ClientConnectorError):
        os_error = error.os_error
        if os_error.errno == errno.ECONNREFUSED or isinstance(os_error, ConnectionRefusedError):
            return "connection refused"
        return _short(f"cannot connect ({os_error.strerror or type(os_error).__name__})")
    if isinstance(error, aiohttp.ServerDisconnectedError):
        return "server disconnected"
    return _short(f"{type(error).__name__}: {error}" if str(error) else type(error).__name__)


def _short(text: str, limit: int = 200) -> str:
    return text if len(text) <= limit else text[: limit - 3] + "..."


def display_url(url: str) -> str:
    """The URL fit for logs: no user, password, query or fragment (they may hold tokens)."""
    try:
        return str(URL(url).with_user(None).with_query(None).with_fragment(None))
    except (ValueError, TypeError):
        return "the webhook URL"


# ------------------------------------------------------------------ the outbox


def retry_delay(failed_rounds: int) -> float:
    """Seconds before a record that has already failed `failed_rounds` times comes due again."""
    return RETRY_DELAYS_SECONDS[min(max(failed_rounds, 0), len(RETRY_DELAYS_SECONDS) - 1)]


def _lease_seconds(limit: int, attempts: int, timeout: float, backoff: float) -> float:
    """Long enough for the whole batch in the worst case (every POST times out), so no
    other worker claims a record while it is still being tried here."""
    per_record = attempts * (timeout + 1.0) + backoff * (2 ** (attempts - 1) - 1)
    return math.ceil(max(limit, 1) / PARALLEL_POSTS) * per_record + 60.0


async def deliver_pending(
    store: CallStore,
    url: str,
    secret: str,
    *,
    now: float | None = None,
    limit: int = 50,
    attempts: int = 3,
    backoff: float = 0.5,
    timeout: float = POST_TIMEOUT_SECONDS,
) -> DeliveryReport:
    """Send up to `limit` records that are due at `now` (default: the time now).

    Each is POSTed up to `attempts` times, `backoff`, 2*backoff, ... seconds apart (each
    attempt signed afresh), then marked delivered, or gone (the receiver answered 410: never
    sent again), or failed and due again after retry_delay(rounds failed so far). Records
    are never dropped. Raises StoreError if the store fails, ValueError for an empty secret
    (nothing is ever sent unsigned).
    """
    if not secret:
        raise ValueError("CALL_WEBHOOK_SECRET is empty: webhooks are always signed")
    if attempts < 1:
        raise ValueError(f"attempts must be 1 or more; got {attempts}")
    clock = time.time() if now is None else now
    started = time.monotonic()
    lease = _lease_seconds(limit, attempts, timeout, backoff)
    records = await asyncio.to_thread(
        store.claim_deliveries, now=clock, limit=limit, lease_seconds=lease
    )
    if not records:
        return DeliveryReport(delivered=0, failed=0)

    undecided = {record.record_id for record in records}
    gate = asyncio.Semaphore(PARALLEL_POSTS)
    where = display_url(url)

    async def deliver(record: CallRecord, session: aiohttp.ClientSession) -> _Ending:
        body = payload(record)
        async with gate:
            error, status = await _post_with_retries(
                session, url, secret, body, record.record_id, attempts, backoff, timeout
            )
        undecided.discard(record.record_id)
        # Shielded: once the outcome is known it reaches the store, even if we are cancelled.
        if error is None:
            record_metrics.WEBHOOKS_SENT.inc()
            await asyncio.shield(
                asyncio.to_thread(store.mark_delivered, record.record_id, at=time.time())
            )
            logger.info(
                "call record %s delivered to %s",
                record.record_id,
                where,
                extra={"record_id": record.record_id},
            )
            return "delivered"
        if status == GONE:
            record_metrics.WEBHOOKS_FAILED.inc()
            await asyncio.shield(
                asyncio.to_thread(store.mark_delivery_gone, record.record_id, error=error)
            )
            logger.warning(
                "call record %s refused by %s (%s): never sent again",
                record.record_id,
                where,
                error,
                extra={"record_id": record.record_id},
            )
            return "gone"
        record_metrics.WEBHOOKS_FAILED.inc()
        moment = clock + (time.monotonic() - started)
        delay = await asyncio.shield(
            asyncio.to_thread(_mark_failed, store, record.record_id, error, moment)
        )
        logger.warning(
            "call record %s not delivered to %s (%s); it stays queued, next try in %s",
            record.record_id,
            where,
            error,
            _duration(delay),
            extra={"record_id": record.record_id},
        )
        return "failed"

    try:
        async with aiohttp.ClientSession() as session:
            results = await asyncio.gather(
                *(deliver(record, session) for record in records), return_exceptions=True
            )
    except BaseException:
        # Cut short (e.g. the after-call deadline): what was not tried to the end is due
        # again at once instead of waiting for its lease to run out.
        await _release(store, undecided)
        raise
    for result in results:
        if isinstance(result, BaseException):
            raise result
    return DeliveryReport(
        delivered=results.count("delivered"),
        failed=results.count("failed"),
        gone=results.count("gone"),
    )


async def _post_with_retries(
    session: aiohttp.ClientSession,
    url: str,
    secret: str,
    body: bytes,
    record_id: str,
    attempts: int,
    backoff: float,
    timeout: float,
) -> tuple[str | None, int | None]:
    """(None, status) once delivered, else the last attempt's (reason, status or None)."""
    error: str | None = None
    status: int | None = None
    for attempt in range(attempts):
        if attempt:
            await asyncio.sleep(backoff * 2 ** (attempt - 1))
        error, status = await _post(session, url, secret, body, record_id, timeout)
        if error is None or status in _NOT_WORTH_RETRYING_NOW:
            break
    return error, status


def _mark_failed(store: CallStore, record_id: str, error: str, now: float) -> float:
    """Count a failed round; the record comes due again after a delay that grows with the
    rounds already failed. Returns the delay."""
    delay = retry_delay(store.delivery_state(record_id).attempts)
    store.mark_delivery_failed(record_id, error=error, retry_at=now + delay)
    return delay


async def _release(store: CallStore, record_ids: Iterable[str]) -> None:
    """Best effort: make claimed records due again now (the lease covers a failure here)."""
    ids = list(record_ids)
    if not ids:
        return

    def release() -> None:
        for record_id in ids:
            store.mark_delivery_failed(record_id, error="interrupted", retry_at=None)

    try:
        await asyncio.shield(asyncio.to_thread(release))
    except BaseException as e:  # cancelled again, or the store failed: the lease expires
        logger.debug("could not release %d claimed call records: %r", len(ids), e)


def _duration(seconds: float) -> str:
    if seconds < 120:
        return f"{seconds:.0f} s"
    if seconds < 7200:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.0f} h"


# ------------------------------------------------------------------ when to deliver


async def deliver_after_call(
    store: CallStore, settings: Settings, *, deadline: float = AFTER_CALL_DEADLINE_SECONDS
) -> None:
    """Right after a call is saved (after the hang-up): send what is due, within `deadline`
    seconds. Never raises: what is not sent stays queued for the worker to retry."""
    try:
        await asyncio.wait_for(
            deliver_pending(store, settings.webhook_url, settings.webhook_secret), deadline
        )
    except TimeoutError:
        logger.warning(
            "call record webhook to %s not done within %.0f s; the rest stays queued and the "
            "worker retries it",
            display_url(settings.webhook_url),
            deadline,
        )
    except Exception as e:
        logger.warning(
            "call record webhook to %s not sent (%s); it stays queued and the worker retries it",
            display_url(settings.webhook_url),
            e,
        )


async def retry_forever(
    store_factory: Callable[[], CallStore],
    url: str,
    secret: str,
    *,
    interval: float = RETRY_INTERVAL_SECONDS,
) -> None:
    """The worker's loop: deliver everything due now, then again every `interval` seconds.
    Failures are logged as warnings; only cancellation ends it. `store_factory` is called
    in a thread, and again next round if it failed."""
    store: CallStore | None = None
    where = display_url(url)
    while True:
        try:
            if store is None:
                store = await asyncio.to_thread(store_factory)
            await _deliver_all_due(store, url, secret)
        except asyncio.CancelledError:
            raise
        except StoreError as e:
            logger.warning("call record webhooks to %s paused: %s", where, e)
        except Exception:
            logger.warning("call record webhooks to %s failed", where, exc_info=True)
        await asyncio.sleep(interval)


async def _deliver_all_due(store: CallStore, url: str, secret: str, *, batch: int = 50) -> None:
    # Every claimed record ends delivered or due in the future, so this ends.
    while True:
        report = await deliver_pending(store, url, secret, limit=batch)
        if report.tried < batch:
            return


# One reference per task: the event loop keeps only weak ones.
_background_tasks: set[asyncio.Task[None]] = set()


def start_background_delivery(
    settings: Settings, *, interval: float = RETRY_INTERVAL_SECONDS
) -> asyncio.Task[None] | None:
    """In the worker process (on the running loop): deliver what earlier runs left queued,
    then retry every `interval` seconds. None when no webhook is configured."""
    if not settings.webhook_url:
        return None
    if not settings.webhook_secret:
        logger.warning("CALL_WEBHOOK_URL is set without CALL_WEBHOOK_SECRET: no webhooks sent")
        return None
    try:
        loop = asyncio.get_running_loop()
    except RuntimeError:
        logger.warning("no event loop: queued call record webhooks are not retried here")
        return None
    task = loop.create_task(
        retry_forever(
            lambda: open_store(settings),
            settings.webhook_url,
            settings.webhook_secret,
            interval=interval,
        ),
        name="call-record-webhooks",
    )
    _background_tasks.add(task)
    task.add_done_callback(_background_tasks.discard)
    logger.info(
        "call record webhooks to %s: retrying queued records every %.0f s",
        display_url(settings.webhook_url),
        interval,
    )
    return task
