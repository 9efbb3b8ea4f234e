"""The call-log web page (`python -m telephony web`) through aiohttp's test client: what a
person's browser gets for each page, filter and mistake, on SQLite and PostgreSQL.

The browser tests (Chromium, marked e2e) are in test_web_browser.py."""

from __future__ import annotations

import base64
import re
from collections.abc import AsyncIterator, Iterator
from html import unescape
from pathlib import Path

import pytest
import sqlalchemy as sa
from aiohttp.test_utils import TestClient, TestServer

from telephony.domain.settings import parse_settings
from telephony.operator.cli import main
from telephony.operator.cli.metrics import measured, percentile
from telephony.operator.web.app import WebConfig, make_app
from telephony.operator.web.query import number_filter
from telephony.records import migrations as schema
from telephony.records.call_index import CallFilter
from telephony.records.model import CallRecord, Outcome
from telephony.records.store import CallStore
from tests.web_fixtures import HOSTILE_ID, IMG, SCRIPT, conversation_record, fill

TOKEN = "s3cret-token-0123456789"


@pytest.fixture
def sqlite_store(tmp_path: Path) -> Iterator[CallStore]:
    store = CallStore.open(f"sqlite:///{tmp_path / 'calls.db'}")
    try:
        yield store
    finally:
        store.close()


async def client_for(store: CallStore, config: WebConfig) -> TestClient:
    client = TestClient(TestServer(make_app(store, config)))
    await client.start_server()
    return client


@pytest.fixture
async def page(sqlite_store: CallStore) -> AsyncIterator[tuple[TestClient, list[CallRecord]]]:
    """A client of the page (numbers shown in full) over the test records, on SQLite."""
    records = fill(sqlite_store, 60)
    client = await client_for(sqlite_store, WebConfig(mask_numbers=False))
    try:
        yield client, records
    finally:
        await client.close()


async def get_html(client: TestClient, url: str, status: int = 200) -> str:
    response = await client.get(url)
    text = await response.text()
    assert response.status == status, text
    return text


def linked_ids(html: str) -> list[str]:
    """The calls a page links to, in order (the in-progress section first)."""
    return re.findall(r'href="/calls/([^"]+)"', html)


def finished(records: list[CallRecord]) -> list[CallRecord]:
    return [r for r in records if r.outcome is not Outcome.IN_PROGRESS]


def newest_first(records: list[CallRecord]) -> list[str]:
    return [r.record_id for r in sorted(records, key=lambda r: -r.started_at)]


# ------------------------------------------------------------------ the list


async def test_the_list_is_newest_first_fifty_a_page_with_calls_in_progress_on_top(
    page: tuple[TestClient, list[CallRecord]],
) -> None:
    client, records = page
    done = newest_first(finished(records))
    live = [r.record_id for r in records if r.outcome is Outcome.IN_PROGRESS]

    first = await get_html(client, "/")
    second = await get_html(client, "/?page=2")

    assert linked_ids(first) == live + done[:50]
    assert 'class="in-progress"' in first and "In progress now (1)" in first
    assert linked_ids(second) == done[50:]  # the calls up now are on the first page only
    assert "page 2 of 2" in second and 'rel="prev"' in second and 'rel="next"' not in second
    assert '<b id="total-calls">61</b>' in first


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("direction=outbound", lambda r: r.direction == "outbound"),
        ("outcome=agent-ended", lambda r: r.outcome is Outcome.AGENT_ENDED),
        ("outcome=in-progress", lambda r: r.outcome is Outcome.IN_PROGRESS),
        (
            "direction=outbound&outcome=agent-ended",
            lambda r: r.record_id in ("rec-0012", "rec-0024", "rec-0036", "rec-0048", "rec-0060"),
        ),
        ("q=PLUMBER", lambda r: r.record_id == "rec-0005"),
        ("q=MB", lambda r: r.record_id == "rec-0005"),  # shorter than a trigram: scanned
        ("q=%3Cscript%3E", lambda r: r.record_id == HOSTILE_ID),
        ("q=100%25", lambda r: False),  # LIKE's wildcards are plain characters
    ],
)
async def test_each_filter_narrows_the_list(
    page: tuple[TestClient, list[CallRecord]], query: str, expected: object
) -> None:
    client, records = page
    want = newest_first([r for r in records if expected(r)])  # type: ignore[operator]

    html = await get_html(client, f"/?{query}")

    assert linked_ids(html) == want
    assert f'<b id="total-calls">{len(want)}</b>' in html


async def test_a_date_range_includes_the_whole_days(
    page: tuple[TestClient, list[CallRecord]], monkeypatch: pytest.MonkeyPatch
) -> None:
    client, records = page
    # Dates are local; the fixture's calls are an hour apart from 2026-05-28 07:26 UTC on.
    from datetime import date, datetime, time

    day = date(2026, 5, 29)
    start = datetime.combine(day, time()).timestamp()
    want = newest_first([r for r in finished(records) if start <= r.started_at < start + 86400])

    html = await get_html(client, "/?from=2026-05-29&to=2026-05-29")

    assert linked_ids(html) == want and len(want) == 24


@pytest.mark.parametrize(
    "typed", ["+1 (510) 555-0007", "+1.510.555.0007", "001 510 555 0007", "555-0007", "5550007"]
)
async def test_a_number_typed_any_way_finds_the_call(
    page: tuple[TestClient, list[CallRecord]], typed: str
) -> None:
    client, _ = page

    html = await get_html(client, "/?" + _encode({"number": typed}))

    assert linked_ids(html) == ["rec-0007"]


def test_number_filter_normalises_as_people_type() -> None:
    assert number_filter("+1 (510) 555-0123") == "+15105550123"
    assert number_filter("0044 20 7946 0958") == "+442079460958"
    assert number_filter(" 555 0123 ") == "5550123"
    assert number_filter("") is None
    for bad in ("abc", "12", "+1510", "555-0123 ext 4"):
        with pytest.raises(ValueError, match="Number"):
            number_filter(bad)


@pytest.mark.parametrize(
    ("query", "message"),
    [
        ("from=yesterday", "From &#39;yesterday&#39; is not a date: use YYYY-MM-DD."),
        ("from=2026-05-30&to=2026-05-29", "From must be on or before To."),
        ("direction=sideways", "Direction &#39;sideways&#39; is not one of: inbound"),
        ("number=call+me", "Number &#39;call me&#39; is not a phone number"),
        ("page=0", "Page &#39;0&#39; is not a page number from 1 to 10000."),
    ],
)
async def test_a_filter_that_does_not_parse_is_named_with_a_400(
    page: tuple[TestClient, list[CallRecord]], query: str, message: str
) -> None:
    client, _ = page

    html = await get_html(client, f"/?{query}", status=400)

    assert message in html


async def test_totals_and_reply_latency_percentiles_are_of_the_filtered_set(
    page: tuple[TestClient, list[CallRecord]],
) -> None:
    client, records = page
    chosen = [r for r in finished(records) if r.direction == "outbound"]
    replies = [v for r in chosen for v in measured(r.latency, "end_of_speech_to_first_audio")]
    p50, p90 = (round(percentile(replies, p) * 1000) for p in (50, 90))  # type: ignore[operator]

    html = await get_html(client, "/?direction=outbound")

    assert f"p50 {p50} ms" in html and f"p90 {p90} ms" in html
    assert f"over {len(replies)} replies" in html
    assert f'<b id="total-calls">{len(chosen)}</b>' in html


def test_store_totals_match_the_calls_stats_percentiles_on_both_engines(
    record_store: CallStore,
) -> None:
    records = fill(record_store, 30)
    done = finished(records)
    replies = [v for r in done for v in measured(r.latency, "end_of_speech_to_first_audio")]

    totals = record_store.totals(CallFilter())

    assert totals.calls == len(done)
    assert totals.replies_measured == len(replies)
    assert totals.e2e_p50 == pytest.approx(
        percentile([round(v * 1000) for v in replies], 50) / 1000
    )  # type: ignore[operator]
    assert totals.e2e_p90 == pytest.approx(
        percentile([round(v * 1000) for v in replies], 90) / 1000
    )  # type: ignore[operator]
    assert totals.by_outcome == {"completed": 24, "agent-ended": 7}  # every 4th of 30, +hostile


def test_store_filters_agree_on_both_engines(record_store: CallStore) -> None:
    fill(record_store, 30)

    def ids(**where: object) -> list[str]:
        return [r.record_id for r in record_store.page(CallFilter(**where), limit=100)]  # type: ignore[arg-type]

    assert ids(text="plumber") == ["rec-0005"]
    assert ids(text="PLUMB", direction="inbound") == ["rec-0005"]
    assert ids(text="mb") == ["rec-0005"]
    assert ids(text="100%") == []
    assert ids(number="+15105550007") == ["rec-0007"]
    assert ids(number="5550007") == ["rec-0007"]
    assert ids(outcome="in-progress") == ["rec-0500"]
    assert len(ids()) == 31  # finished calls only; in-progress ones are apart
    assert [r.record_id for r in record_store.in_progress(CallFilter())] == ["rec-0500"]
    assert ids(direction="outbound", outcome="agent-ended") == ["rec-0024", "rec-0012"]


def test_a_saved_again_record_is_searched_by_its_new_transcript(record_store: CallStore) -> None:
    record = conversation_record(1, said="I need a plumber")
    record_store.save(record)
    record.transcript[1].text = "I need an electrician"
    record_store.save(record)

    assert record_store.page(CallFilter(text="plumber")) == []
    assert [r.record_id for r in record_store.page(CallFilter(text="electrician"))] == ["rec-0001"]
    assert record_store.totals(CallFilter()).replies_measured == 2  # not 4


def test_migration_2_indexes_the_records_saved_before_it(record_store_url: str) -> None:
    with CallStore.open(record_store_url) as store:
        store.save(conversation_record(1, said="I need a plumber"))
    # Back to version 1, as a database from before the web page: no side tables (nor the
    # do-not-call list of version 3).
    engine = sa.create_engine(record_store_url)
    with engine.begin() as conn:
        for table in ("call_index", "call_latency", "call_text", "do_not_call"):
            conn.execute(sa.text(f"DROP TABLE {table}"))
        conn.execute(sa.text("DELETE FROM schema_version WHERE version >= 2"))
    engine.dispose()

    with CallStore.open(record_store_url) as store:
        assert store.schema_version() == len(schema.MIGRATIONS)
        assert [r.record_id for r in store.page(CallFilter(text="plumb"))] == ["rec-0001"]
        assert store.totals(CallFilter()).replies_measured == 2


# ------------------------------------------------------------------ a call


async def test_a_call_page_shows_its_facts_transcript_tools_chart_usage_and_webhook(
    page: tuple[TestClient, list[CallRecord]],
) -> None:
    client, _ = page

    html = await get_html(client, "/calls/rec-0004")
    text = unescape(html)

    for fact in (
        "agent-ended (silence)",
        "+15105550004",
        "ST_trunk",
        "200 OK",
        "1:35 (talk 1:34)",
        "420 in, 38 out",
        "not queued (no CALL_WEBHOOK_URL when it was saved)",
    ):
        assert fact in text, fact
    spoken = ["Thanks for calling", "book a table", "for which evening", "Friday at eight"]
    order = [text.index(s) for s in [*spoken[:4], "end_call"]]
    assert order == sorted(order)  # the transcript and the tool call in the order they came
    chart = re.search(r'<svg class="chart" id="latency-chart".*?</svg>', html, re.S)
    assert chart is not None
    assert len(re.findall(r'<rect class="s\d"', chart.group(0))) == 6  # 2 replies x 3 stages
    assert "end of speech to first audio: 750 ms" in chart.group(0)


async def test_a_call_is_found_by_its_sip_call_id_or_job_id_too(
    page: tuple[TestClient, list[CallRecord]],
) -> None:
    client, _ = page
    for key in ("SCL_0003", "AJ_0003"):
        assert 'Call <span class="id">SCL_0003</span>' in await get_html(client, f"/calls/{key}")


async def test_an_unknown_call_is_a_404(page: tuple[TestClient, list[CallRecord]]) -> None:
    client, _ = page

    html = await get_html(client, "/calls/no-such-call", status=404)

    assert "No call has the id <code>no-such-call</code>" in html


async def test_the_webhook_state_is_shown(sqlite_store: CallStore) -> None:
    record = conversation_record(1)
    sqlite_store.save(record, queue_webhook=True)
    sqlite_store.mark_delivery_failed(record.record_id, error="HTTP 503 <b>down</b>", retry_at=None)
    client = await client_for(sqlite_store, WebConfig())
    try:
        html = await get_html(client, "/calls/rec-0001")
    finally:
        await client.close()
    assert "pending: 1 failed attempt(s)" in html
    assert "\n  last error: HTTP 503 &lt;b&gt;down&lt;/b&gt;" in html


# ------------------------------------------------------------------ escaping and masking


async def test_every_record_field_is_escaped_on_every_page(
    page: tuple[TestClient, list[CallRecord]],
) -> None:
    client, _ = page
    for url in ("/", "/?q=script", f"/calls/{HOSTILE_ID}", "/overview?days=366"):
        html = await get_html(client, url)
        assert "<script" not in html and "<img" not in html and 'onerror="' not in html, url
    html = await get_html(client, f"/calls/{HOSTILE_ID}")
    assert "&lt;script&gt;window.__pwned = 1&lt;/script&gt;" in html
    assert "&lt;img src=x onerror=&#34;window.__pwned = 2&#34;&gt;" in html
    for field in ("agent " + IMG, "boom " + IMG, f"tool{SCRIPT}", f"machine {SCRIPT}"):
        assert field in unescape(html), field  # shown, as text


async def test_what_a_person_typed_is_escaped_when_shown_back(
    page: tuple[TestClient, list[CallRecord]],
) -> None:
    client, _ = page

    html = await get_html(client, "/?" + _encode({"q": '"><script>x()</script>'}))

    assert "<script" not in html
    assert 'value="&#34;&gt;&lt;script&gt;x()&lt;/script&gt;"' in html


async def test_numbers_are_masked_when_mask_phone_numbers_is_on(sqlite_store: CallStore) -> None:
    fill(sqlite_store, 3)
    client = await client_for(sqlite_store, WebConfig(mask_numbers=True))
    try:
        pages = [await get_html(client, url) for url in ("/", "/calls/rec-0002")]
        found = await get_html(client, "/?number=%2B15105550002")
    finally:
        await client.close()
    for html in pages:
        assert "+15105550002" not in html and "+1********02" in html
    assert "+1*******00_x" not in pages[1]  # the room name carries the number too
    assert "call-_+1********02_x" in pages[1]
    assert linked_ids(found) == ["rec-0002"]  # searching by the number still works


async def test_every_answer_forbids_scripts_and_framing(
    page: tuple[TestClient, list[CallRecord]],
) -> None:
    client, _ = page
    for url in ("/", "/calls/rec-0001", "/calls/nope", "/static/style.css"):
        response = await client.get(url)
        csp = response.headers["Content-Security-Policy"]
        assert "default-src 'none'" in csp and "script-src" not in csp, url
        assert response.headers["X-Frame-Options"] == "DENY"


# ------------------------------------------------------------------ read-only, access


async def test_only_get_and_head_are_answered(page: tuple[TestClient, list[CallRecord]]) -> None:
    client, _ = page
    for method in ("POST", "PUT", "PATCH", "DELETE"):
        for url in ("/", "/calls/rec-0001", "/overview", "/static/style.css"):
            response = await client.request(method, url)
            assert response.status == 405, (method, url)
            assert response.headers["Allow"] == "GET,HEAD"
            assert response.headers["X-Frame-Options"] == "DENY"
    head = await client.head("/calls/rec-0001")
    assert head.status == 200 and await head.read() == b""


async def test_a_token_is_needed_when_one_is_set(sqlite_store: CallStore) -> None:
    fill(sqlite_store, 2)
    client = await client_for(sqlite_store, WebConfig(token=TOKEN))

    def basic(password: str) -> dict[str, str]:
        pair = base64.b64encode(f"anyone:{password}".encode()).decode()
        return {"Authorization": f"Basic {pair}"}

    try:
        for url in ("/", "/calls/rec-0001", "/overview", "/static/style.css", "/nowhere"):
            response = await client.get(url)
            assert response.status == 401, url
            assert response.headers["WWW-Authenticate"].startswith("Basic ")
            assert "default-src 'none'" in response.headers["Content-Security-Policy"]
        for headers in (
            basic("wrong"),
            basic(TOKEN[:-1]),
            {"Authorization": f"Bearer {TOKEN}x"},
            {"Authorization": "Basic !!!"},
        ):
            assert (await client.get("/", headers=headers)).status == 401, headers
        assert (await client.get("/", headers=basic(TOKEN))).status == 200
        bearer = {"Authorization": f"Bearer {TOKEN}"}
        assert (await client.get("/calls/rec-0001", headers=bearer)).status == 200
        assert (await client.post("/", headers=bearer)).status == 405
    finally:
        await client.close()


@pytest.mark.parametrize(
    ("env", "problem"),
    [
        ({"WEB_HOST": "0.0.0.0"}, "WEB_HOST='0.0.0.0' lets other machines reach"),
        ({"WEB_HOST": "10.0.0.5"}, "set WEB_TOKEN"),
        ({"WEB_TOKEN": "short"}, "WEB_TOKEN is too short (5 characters)"),
        ({"WEB_PORT": "70000"}, "WEB_PORT='70000' must be a whole number from 0 to 65535"),
        ({"WEB_PORT": "0"}, "WEB_PORT=0 is not a port"),
    ],
)
def test_web_settings_are_checked(env: dict[str, str], problem: str) -> None:
    _, problems = parse_settings(env, deep_checks=False)
    assert any(problem in p for p in problems), problems
    assert not any(TOKEN in p or "short'" in p for p in problems)  # a token is never echoed


def test_loopback_or_a_token_is_fine() -> None:
    for env in (
        {},
        {"WEB_HOST": "localhost"},
        {"WEB_HOST": "::1"},
        {"WEB_HOST": "0.0.0.0", "WEB_TOKEN": TOKEN},
    ):
        settings, problems = parse_settings(env, deep_checks=False)
        assert problems == [], env
    assert (settings.web_host, settings.web_port, settings.web_token) == ("0.0.0.0", 8090, TOKEN)


def test_the_web_command_refuses_to_listen_beyond_loopback_without_a_token(
    capsys: pytest.CaptureFixture[str],
) -> None:
    code = main(["web", "--host", "0.0.0.0"])

    assert code == 2
    err = capsys.readouterr().err
    assert "error: --host '0.0.0.0' lets other machines reach the call-log web page" in err
    assert "set WEB_TOKEN" in err and "Traceback" not in err


# ------------------------------------------------------------------ overview


async def test_the_overview_counts_calls_per_day_by_outcome_with_latency(
    page: tuple[TestClient, list[CallRecord]],
) -> None:
    client, records = page

    html = await get_html(client, "/overview?days=366")

    assert '<svg class="chart" id="per-day-chart"' in html
    from datetime import datetime

    day = datetime.fromtimestamp(records[30].started_at).date().isoformat()
    row = re.search(rf"<tr><td>{day}</td>(.*?)</tr>", html)
    assert row is not None
    same_day = [
        r
        for r in finished(records)
        if datetime.fromtimestamp(r.started_at).date().isoformat() == day
    ]
    assert f'<td class="num">{len(same_day)}</td>' in row.group(1)
    assert "ms</td>" in row.group(1)
    await get_html(client, "/overview?days=0", status=400)


def _encode(params: dict[str, str]) -> str:
    from urllib.parse import urlencode

    return urlencode(params)
