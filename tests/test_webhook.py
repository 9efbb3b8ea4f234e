"""Call-record webhooks: signed, delivered exactly once per record in the store, retried
until the receiver takes them, and sent only after the hang-up.

A real aiohttp receiver on 127.0.0.1 checks each signature with `webhook.verify`, as a
customer's receiver would; store tests run on SQLite and PostgreSQL (`record_store`)."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import logging
import socket
import time
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import aiohttp
import pytest
import pytest_asyncio
from aiohttp import web

import agent
from telephony.devtools.standins.openai_server import reply, tool_call
from telephony.domain.settings import PROJECT_ROOT, read_settings
from telephony.records import webhook
from telephony.records.model import CallRecord, Outcome, ToolCallRecord, Turn
from telephony.records.store import CallStore, StoreError
from telephony.records.stores import close_stores, open_store
from telephony.records.webhook import (
    DeliveryReport,
    deliver_after_call,
    deliver_pending,
    post_record,
    retry_delay,
    retry_forever,
    sign,
    start_background_delivery,
    verify,
)
from tests.flow import job
from tests.participants import INBOUND_SIP_ATTRIBUTES, make_participant
from tests.record_fixtures import make_record

SECRET = "whsec-test-0123456789abcdef"
TIMEOUT = 15
FAST = {"backoff": 0.01}  # the retry spacing has its own test


# ------------------------------------------------------------------ a receiver


@dataclass
class Received:
    at: float  # time.monotonic() when the request arrived (before any stall)
    body: bytes
    headers: dict[str, str]
    signature_ok: bool

    @property
    def record(self) -> CallRecord:
        return CallRecord.from_dict(json.loads(self.body))


@dataclass
class Receiver:
    """What a customer runs: verify the signature (401 if wrong), then answer `status`."""

    secret: str = SECRET
    status: int = 200
    stall: float = 0.0  # seconds to wait before answering
    text: str = ""  # the answer's body
    received: list[Received] = field(default_factory=list)
    url: str = ""
    arrived: asyncio.Event = field(default_factory=asyncio.Event)

    async def handle(self, request: web.Request) -> web.Response:
        body = await request.read()
        ok = verify(
            body,
            self.secret,
            request.headers.get("X-Call-Record-Signature"),
            request.headers.get("X-Call-Record-Id"),
        )
        self.received.append(Received(time.monotonic(), body, dict(request.headers), ok))
        self.arrived.set()
        if self.stall:
            await asyncio.sleep(self.stall)
        if not ok:
            return web.Response(status=401, text="bad signature")
        if 300 <= self.status < 400:
            return web.Response(status=self.status, headers={"Location": "/elsewhere"})
        return web.Response(status=self.status, text=self.text)

    async def elsewhere(self, _request: web.Request) -> web.Response:
        return web.Response(status=200)  # a followed redirect would land here, as a GET

    async def wait_for(self, count: int, timeout: float = TIMEOUT) -> None:
        async def enough() -> None:
            while len(self.received) < count:
                self.arrived.clear()
                await self.arrived.wait()

        await asyncio.wait_for(enough(), timeout)


@pytest_asyncio.fixture
async def receiver() -> AsyncIterator[Receiver]:
    receiving = Receiver()
    app = web.Application()
    app.router.add_post("/hooks/calls", receiving.handle)
    app.router.add_route("*", "/elsewhere", receiving.elsewhere)
    runner = web.AppRunner(app, shutdown_timeout=0.1)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    receiving.url = f"http://127.0.0.1:{port}/hooks/calls"
    try:
        yield receiving
    finally:
        await runner.cleanup()


def closed_port_url() -> str:
    """A URL on 127.0.0.1 where nothing listens: connection refused."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return f"http://127.0.0.1:{port}/hooks/calls"


def queued(store: CallStore, number: int = 1) -> CallRecord:
    """A finished call's record, saved and queued for the webhook, with some detail."""
    record = make_record(number)
    record.transcript = [Turn("assistant", "Hello, café García — how can I help?", 1.5)]
    record.tool_calls = [ToolCallRecord("end_call", "{}", "goodbye said", False, 2.5)]
    store.save(record, queue_webhook=True)
    return record


# ------------------------------------------------------------------ the request


def test_signature_covers_the_time_the_record_id_and_the_body() -> None:
    body, record_id, t = b'{"a":1}', "rec-1", 1_700_000_000
    signed = f"{t}.{record_id}.".encode() + body
    expected = hmac.new(SECRET.encode(), signed, hashlib.sha256).hexdigest()
    assert sign(body, SECRET, record_id, t) == f"t={t},v1={expected}"
    assert verify(body, SECRET, f"t={t},v1={expected}", record_id, now=t)


def test_verify_rejects_tampering_replays_and_swapped_ids() -> None:
    record = make_record(1)
    body, record_id, t = webhook.payload(record), record.record_id, 1_700_000_000
    signature = sign(body, SECRET, record_id, t)
    assert verify(body, SECRET, signature, record_id, now=t)
    assert verify(body, SECRET, f"  {signature}\n", record_id, now=t)  # whitespace is harmless
    assert verify(body, SECRET, signature, record_id, now=t + 300)  # 5 min: still fresh
    assert verify(body, SECRET, signature, record_id, now=t - 300)  # a clock a bit behind

    assert not verify(body, SECRET, signature, record_id, now=t + 301)  # replayed later
    assert not verify(body, SECRET, signature, record_id, now=t - 301)
    assert not verify(body, SECRET, signature, "r-0002", now=t)  # another record's id
    assert not verify(body, SECRET, signature, None, now=t)
    assert not verify(
        body.replace(b"+16285550001", b"+16285550002"), SECRET, signature, record_id, now=t
    )
    assert not verify(body + b" ", SECRET, signature, record_id, now=t)
    assert not verify(body, SECRET + "x", signature, record_id, now=t)  # another secret
    assert not verify(body, "", signature, record_id, now=t)
    assert not verify(body, SECRET, "", record_id, now=t)  # header missing
    assert not verify(body, SECRET, None, record_id, now=t)
    digest = signature.split("v1=")[1]
    for bad in (
        f"t={t + 1},v1={digest}",  # the time moved: the signature no longer matches
        f"v1={digest}",  # no time
        f"t=,v1={digest}",
        f"t=-{t},v1={digest}",
        f"t={t}",  # no signature
        f"t={t},v1={digest[:-1]}",
        f"t={t},v1={digest.upper()}",
        f"t={t},v1=é{digest[1:]}",  # not even ASCII
        f"t={t};v1={digest}",
        f"sha256={digest}",  # the old scheme
    ):
        assert not verify(body, SECRET, bad, record_id, now=t), bad


def readme_recipe() -> Callable[[bytes, str, str, str], bool]:
    """The README's verification code ("Post-call webhook"), exactly as a customer copies it."""
    readme = (PROJECT_ROOT / "README.md").read_text(encoding="utf-8")
    section = readme.split("### Post-call webhook", 1)[1].split("\n## ", 1)[0]
    code = section.split("```python\n", 1)[1].split("```", 1)[0]
    namespace: dict[str, Any] = {}
    exec(compile(code, "README.md: Post-call webhook", "exec"), namespace)
    return namespace["is_from_our_agent"]


async def test_the_readme_recipe_accepts_a_delivery_and_rejects_a_replay_or_a_swapped_id(
    record_store: CallStore, receiver: Receiver, monkeypatch: pytest.MonkeyPatch
) -> None:
    is_from_our_agent = readme_recipe()
    first, second = queued(record_store, 1), queued(record_store, 2)
    await deliver_pending(record_store, receiver.url, SECRET)
    captured = {got.headers["X-Call-Record-Id"]: got for got in receiver.received}
    got, other = captured[first.record_id], captured[second.record_id]
    signature = got.headers["X-Call-Record-Signature"]

    def accepted(body: bytes, record_id: str, signature: str, secret: str = SECRET) -> bool:
        return is_from_our_agent(body, record_id, signature, secret)

    assert accepted(got.body, first.record_id, signature)
    assert accepted(other.body, second.record_id, other.headers["X-Call-Record-Signature"])
    # The id receivers de-duplicate on, swapped: a record would be dropped as "seen".
    assert not accepted(got.body, second.record_id, signature)
    assert not accepted(other.body, first.record_id, signature)  # another record's body
    assert not accepted(got.body.replace(b"completed", b"voicemail"), first.record_id, signature)
    assert not accepted(got.body, first.record_id, signature, "another-secret")
    assert not accepted(got.body, first.record_id, "")
    assert not accepted(got.body, first.record_id, "sha256=" + "0" * 64)

    # The capture replayed: fine within 5 minutes of its signing, refused after.
    signed_at = int(signature.split(",")[0].removeprefix("t="))
    with monkeypatch.context() as m:
        m.setattr(time, "time", lambda: signed_at + 299.0)
        assert accepted(got.body, first.record_id, signature)
        m.setattr(time, "time", lambda: signed_at + 301.0)
        assert not accepted(got.body, first.record_id, signature)
        assert not verify(got.body, SECRET, signature, first.record_id)  # the module agrees


async def test_every_attempt_is_signed_at_its_own_time(
    record_store: CallStore, receiver: Receiver, monkeypatch: pytest.MonkeyPatch
) -> None:
    queued(record_store)
    receiver.status = 500
    start = time.time()
    # The clock jumps 400 s between attempts, so a signature made once would be stale.
    monkeypatch.setattr(time, "time", lambda: start + 400 * len(receiver.received))

    await deliver_pending(record_store, receiver.url, SECRET, **FAST)

    stamps = [got.headers["X-Call-Record-Signature"].split(",")[0] for got in receiver.received]
    assert stamps == [f"t={int(start) + 400 * n}" for n in range(3)]
    assert all(got.signature_ok for got in receiver.received)


async def test_a_410_gone_stops_that_delivery_for_good_with_the_reason_kept(
    record_store: CallStore, receiver: Receiver, caplog: pytest.LogCaptureFixture
) -> None:
    record = queued(record_store)
    receiver.status, receiver.text = 410, "unsubscribed: this endpoint was removed\nbye"

    report = await deliver_pending(record_store, receiver.url, SECRET, **FAST)

    assert report == DeliveryReport(delivered=0, failed=0, gone=1)
    assert len(receiver.received) == 1  # not retried at once
    state = record_store.delivery_state(record.record_id)
    assert (state.status, state.attempts, state.next_attempt_at) == ("gone", 1, None)
    assert state.last_error == "HTTP 410 Gone: unsubscribed: this endpoint was removed"
    assert "never sent again" in caplog.text

    # Never again: not by the schedule, not by an operator's "deliver now".
    receiver.status = 200
    assert record_store.make_pending_due(now=time.time() + 1e6) == 0
    later = await deliver_pending(record_store, receiver.url, SECRET, now=time.time() + 1e6)
    assert later == DeliveryReport(0, 0) and len(receiver.received) == 1
    # The 410 was about that delivery: the next call's record goes out as usual.
    queued(record_store, 2)
    assert await deliver_pending(record_store, receiver.url, SECRET) == DeliveryReport(1, 0)


def test_payload_is_compact_sorted_utf8_json_of_to_dict() -> None:
    record = make_record(1)
    record.transcript = [Turn("user", "Grüße", 1.0)]
    body = webhook.payload(record)

    assert body == json.dumps(
        record.to_dict(), separators=(",", ":"), sort_keys=True, ensure_ascii=False
    ).encode("utf-8")
    assert "Grüße".encode() in body and b", " not in body and b": " not in body
    assert CallRecord.from_dict(json.loads(body)) == record


async def test_post_record_answers_and_errors(receiver: Receiver) -> None:
    record = make_record(1)
    async with aiohttp.ClientSession() as session:
        for status in (200, 201, 204):
            receiver.status = status
            assert await post_record(session, receiver.url, SECRET, record) is None
        receiver.status = 500
        assert await post_record(session, receiver.url, SECRET, record) == "HTTP 500"
        receiver.status = 302  # not followed: the GET it would become proves nothing
        assert await post_record(session, receiver.url, SECRET, record) == "HTTP 302"
        assert await post_record(session, closed_port_url(), SECRET, record) == (
            "connection refused"
        )
        receiver.status, receiver.stall = 200, 1.0
        assert await post_record(session, receiver.url, SECRET, record, timeout=0.2) == "timeout"

    first = receiver.received[0]
    assert first.signature_ok
    assert first.headers["Content-Type"] == "application/json"
    assert first.headers["X-Call-Record-Id"] == record.record_id
    assert first.headers["X-Call-Record-Signature"].startswith("t=")
    assert first.headers["User-Agent"] == "telephony-agent-webhook/1"
    assert first.body == webhook.payload(record)


# ------------------------------------------------------------------ the outbox


async def test_a_queued_record_is_delivered_signed_and_exactly_once(
    record_store: CallStore, receiver: Receiver
) -> None:
    record = queued(record_store)

    report = await deliver_pending(record_store, receiver.url, SECRET)

    assert report == DeliveryReport(delivered=1, failed=0)
    (got,) = receiver.received
    assert got.signature_ok
    assert got.headers["X-Call-Record-Id"] == record.record_id
    assert got.record == record
    state = record_store.delivery_state(record.record_id)
    assert state.status == "delivered" and state.delivered_at is not None
    assert state.attempts == 0 and state.last_error == ""

    again = await deliver_pending(record_store, receiver.url, SECRET, now=time.time() + 86_400)
    assert again == DeliveryReport(delivered=0, failed=0)
    assert len(receiver.received) == 1


async def test_a_receiver_with_another_secret_rejects_the_signature(
    record_store: CallStore, receiver: Receiver
) -> None:
    receiver.secret = "not-the-senders-secret"
    record = queued(record_store)

    report = await deliver_pending(record_store, receiver.url, SECRET, **FAST)

    assert report == DeliveryReport(delivered=0, failed=1)
    (got,) = receiver.received  # a 401 cannot change a second later: no immediate retry
    assert not got.signature_ok
    state = record_store.delivery_state(record.record_id)
    assert (state.status, state.attempts, state.last_error) == ("pending", 1, "HTTP 401")


async def test_failed_deliveries_stay_pending_until_a_receiver_takes_them(
    record_store: CallStore, receiver: Receiver, caplog: pytest.LogCaptureFixture
) -> None:
    record = queued(record_store)
    now = time.time()

    # A receiver answering 500: three POSTs, then the record waits its turn.
    receiver.status = 500
    report = await deliver_pending(record_store, receiver.url, SECRET, now=now, **FAST)
    assert report == DeliveryReport(delivered=0, failed=1)
    assert len(receiver.received) == 3
    state = record_store.delivery_state(record.record_id)
    assert (state.status, state.attempts, state.last_error) == ("pending", 1, "HTTP 500")
    assert state.next_attempt_at is not None
    assert now + 30 <= state.next_attempt_at < now + 40
    assert await deliver_pending(record_store, receiver.url, SECRET, now=now + 1) == (
        DeliveryReport(0, 0)
    )  # not due yet

    # Then the receiver is down: the next round is refused, the wait grows.
    now = state.next_attempt_at
    report = await deliver_pending(record_store, closed_port_url(), SECRET, now=now, **FAST)
    assert report == DeliveryReport(delivered=0, failed=1)
    state = record_store.delivery_state(record.record_id)
    assert (state.status, state.attempts) == ("pending", 2)
    assert state.last_error == "connection refused"
    assert state.next_attempt_at is not None
    assert now + 120 <= state.next_attempt_at < now + 130

    # Back up: delivered once, and never again.
    receiver.status = 200
    before = len(receiver.received)
    now = state.next_attempt_at
    report = await deliver_pending(record_store, receiver.url, SECRET, now=now, **FAST)
    assert report == DeliveryReport(delivered=1, failed=0)
    assert len(receiver.received) == before + 1
    assert receiver.received[-1].signature_ok and receiver.received[-1].record == record
    state = record_store.delivery_state(record.record_id)
    assert (state.status, state.attempts, state.last_error) == ("delivered", 2, "")
    assert await deliver_pending(record_store, receiver.url, SECRET, now=now + 1e6) == (
        DeliveryReport(0, 0)
    )
    assert len(receiver.received) == before + 1

    assert "HTTP 500" in caplog.text and "connection refused" in caplog.text
    assert SECRET not in caplog.text


async def test_retries_are_spaced_by_the_backoff(
    record_store: CallStore, receiver: Receiver
) -> None:
    queued(record_store)
    receiver.status = 500

    report = await deliver_pending(record_store, receiver.url, SECRET, attempts=3, backoff=0.2)

    assert report.failed == 1
    assert len(receiver.received) == 3
    first, second, third = (r.at for r in receiver.received)
    assert 0.2 <= second - first < 0.5
    assert 0.4 <= third - second < 0.7


def test_the_retry_schedule_grows_and_is_capped() -> None:
    assert [retry_delay(n) for n in range(8)] == [
        30,
        120,
        600,
        3600,
        3 * 3600,
        6 * 3600,
        6 * 3600,
        6 * 3600,
    ]
    assert retry_delay(1000) == 6 * 3600


async def test_many_records_in_one_round(record_store: CallStore, receiver: Receiver) -> None:
    records = [queued(record_store, n) for n in range(7)]

    report = await deliver_pending(record_store, receiver.url, SECRET, limit=5)
    assert report == DeliveryReport(delivered=5, failed=0)
    report = await deliver_pending(record_store, receiver.url, SECRET, limit=5)
    assert report == DeliveryReport(delivered=2, failed=0)

    ids = sorted(r.headers["X-Call-Record-Id"] for r in receiver.received)
    assert ids == sorted(r.record_id for r in records)
    assert all(r.signature_ok for r in receiver.received)


async def test_nothing_is_sent_unsigned(record_store: CallStore, receiver: Receiver) -> None:
    queued(record_store)
    with pytest.raises(ValueError, match="CALL_WEBHOOK_SECRET"):
        await deliver_pending(record_store, receiver.url, "")
    assert receiver.received == []


# ------------------------------------------------------------------ after a call


def webhook_settings(monkeypatch: pytest.MonkeyPatch, database_url: str, url: str):
    monkeypatch.setenv("DATABASE_URL", database_url)
    monkeypatch.setenv("CALL_WEBHOOK_URL", url)
    monkeypatch.setenv("CALL_WEBHOOK_SECRET", SECRET)
    return read_settings()


async def test_a_send_cut_short_keeps_the_record_due(
    record_store: CallStore,
    record_store_url: str,
    receiver: Receiver,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    settings = webhook_settings(monkeypatch, record_store_url, receiver.url)
    record = queued(record_store)
    receiver.stall = 5.0

    started = time.monotonic()
    await deliver_after_call(record_store, settings, deadline=0.5)  # never raises

    assert time.monotonic() - started < 3
    assert len(receiver.received) == 1
    state = record_store.delivery_state(record.record_id)
    assert (state.status, state.last_error) == ("pending", "interrupted")
    assert record_store.claim_deliveries(now=time.time()) == [record]  # due again at once
    assert "not done within" in caplog.text and SECRET not in caplog.text


async def test_save_record_delivers_right_away(
    record_store_url: str, receiver: Receiver, monkeypatch: pytest.MonkeyPatch
) -> None:
    from telephony.records.saving import save_record

    settings = webhook_settings(monkeypatch, record_store_url, receiver.url)
    record = make_record(3)
    try:
        await save_record(record, settings)
        assert open_store(settings).delivery_state(record.record_id).status == "delivered"
    finally:
        close_stores()
    (got,) = receiver.received
    assert got.signature_ok and got.record == record


async def test_save_record_survives_a_receiver_that_is_down(
    record_store_url: str, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    from telephony.records.saving import save_record

    settings = webhook_settings(monkeypatch, record_store_url, closed_port_url())
    record = make_record(4)
    try:
        await save_record(record, settings)
        state = open_store(settings).delivery_state(record.record_id)
    finally:
        close_stores()
    assert (state.status, state.attempts, state.last_error) == (
        "pending",
        1,
        "connection refused",
    )
    assert "stays queued" in caplog.text and SECRET not in caplog.text


# ------------------------------------------------------------------ the worker's loop


async def test_the_worker_delivers_what_earlier_runs_left_queued(
    record_store: CallStore,
    record_store_url: str,
    receiver: Receiver,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(agent, "install_phone_masking", lambda _on: None)
    webhook_settings(monkeypatch, record_store_url, receiver.url)
    record = queued(record_store)
    before = set(webhook._background_tasks)
    try:
        agent._on_worker_started()  # what the worker runs on "worker_started"
        (task,) = webhook._background_tasks - before  # kept referenced while it runs
        await receiver.wait_for(1)
        for _ in range(200):
            if record_store.delivery_state(record.record_id).status == "delivered":
                break
            await asyncio.sleep(0.02)
        assert record_store.delivery_state(record.record_id).status == "delivered"
        assert not task.done()
    finally:
        for task in webhook._background_tasks - before:
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task
        close_stores()
    (got,) = receiver.received
    assert got.signature_ok and got.record == record


def test_no_background_delivery_without_a_webhook() -> None:
    assert start_background_delivery(read_settings()) is None


async def test_the_worker_loop_outlives_store_errors(
    record_store: CallStore, receiver: Receiver, caplog: pytest.LogCaptureFixture
) -> None:
    record = queued(record_store)
    opened = 0

    def store_factory() -> CallStore:
        nonlocal opened
        opened += 1
        if opened == 1:
            raise StoreError("cannot reach the call records database at postgresql://db")
        return record_store

    caplog.set_level(logging.WARNING, logger="telephony.records.webhook")
    task = asyncio.create_task(retry_forever(store_factory, receiver.url, SECRET, interval=0.05))
    try:
        await receiver.wait_for(1)
        await asyncio.sleep(0.2)  # more rounds: nothing else is due
        assert not task.done()
    finally:
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
    assert opened == 2  # opened again after the failure, then kept
    assert len(receiver.received) == 1
    assert record_store.delivery_state(record.record_id).status == "delivered"
    assert "cannot reach the call records database" in caplog.text


async def test_the_worker_loop_logs_an_unexpected_error_and_goes_on(
    record_store: CallStore,
    receiver: Receiver,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    queued(record_store)
    rounds = 0

    async def flaky(*args, **kwargs) -> DeliveryReport:
        nonlocal rounds
        rounds += 1
        if rounds == 1:
            raise RuntimeError("a bug")
        return await deliver_pending(*args, **kwargs)

    monkeypatch.setattr(webhook, "deliver_pending", flaky)
    task = asyncio.create_task(
        retry_forever(lambda: record_store, receiver.url, SECRET, interval=0.05)
    )
    try:
        await receiver.wait_for(1)
    finally:
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
    (failure,) = [r for r in caplog.records if r.exc_info and "a bug" in str(r.exc_info[1])]
    assert failure.levelno == logging.WARNING
    assert receiver.received[0].signature_ok


# ------------------------------------------------------------------ a whole call


@pytest.fixture
def call_webhook(
    record_store_url: str, receiver: Receiver, monkeypatch: pytest.MonkeyPatch
) -> Iterator[dict[str, str]]:
    env = {
        "DATABASE_URL": record_store_url,
        "CALL_WEBHOOK_URL": receiver.url,
        "CALL_WEBHOOK_SECRET": SECRET,
    }
    yield env
    close_stores()


async def inbound_call(run) -> None:
    run.room.add_participant(
        make_participant("sip_+15105550123", attributes=INBOUND_SIP_ATTRIBUTES)
    )
    await run.wait_until_done()
    await asyncio.wait_for(run.sink.wait_for_segments(1), TIMEOUT)  # the greeting


async def test_a_call_sends_exactly_one_signed_record(
    monkeypatch, livekit_server, openai_server, receiver: Receiver, call_webhook
) -> None:
    openai_server.script(
        reply("Sure, you're booked for Tuesday at ten."),
        tool_call("end_call", {}),
        reply("Goodbye, and thanks for calling!"),
    )
    async with job(monkeypatch, livekit_server, openai_server, env=call_webhook) as run:
        await inbound_call(run)
        await asyncio.wait_for(run.session.run(user_input="Book me for Tuesday at ten"), TIMEOUT)
        await asyncio.wait_for(run.session.run(user_input="That's all, bye"), TIMEOUT)
        await livekit_server.wait_for("DeleteRoom", timeout=TIMEOUT)
        await run.end_job()

    (got,) = receiver.received
    assert got.signature_ok
    record = got.record
    assert record.outcome is Outcome.COMPLETED
    assert record.job_id == run.ctx.job.id and record.call_id == "SCL_abc123"
    assert got.headers["X-Call-Record-Id"] == record.record_id
    assert record.transcript[-1].text == "Goodbye, and thanks for calling!"
    store = open_store(read_settings())
    assert store.list(limit=None) == [record]
    assert store.delivery_state(record.record_id).status == "delivered"


async def test_a_stalling_receiver_never_delays_the_hang_up(
    monkeypatch, livekit_server, openai_server, receiver: Receiver, call_webhook
) -> None:
    receiver.stall = 3.0
    async with job(monkeypatch, livekit_server, openai_server, env=call_webhook) as run:
        await inbound_call(run)
        run.caller_hangs_up()
        await livekit_server.wait_for("DeleteRoom", timeout=TIMEOUT)
        await run.end_job()

    (delete_room,) = livekit_server.calls("DeleteRoom")
    (got,) = receiver.received
    assert delete_room.answered and delete_room.answered_at < got.at
    assert delete_room.received_at < got.at
    assert got.signature_ok and got.record.outcome is Outcome.CALLER_HUNG_UP
    state = open_store(read_settings()).delivery_state(got.record.record_id)
    assert state.status == "delivered"  # 3 s is within the POST timeout
