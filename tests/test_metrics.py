"""Prometheus metrics: what a scrape of the worker's /metrics shows (README "Watching your calls").

The scrapes go over HTTP to the framework's own endpoint (livekit.agents.telemetry's
HttpServer, what METRICS_PORT starts) and are read with prometheus_client's text parser.
Series are process-wide and other tests in this process count too, so each test compares
a scrape with the one before it.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest
import pytest_asyncio
from livekit.agents.telemetry.http_server import HttpServer
from livekit.agents.utils import nodename
from prometheus_client.parser import text_string_to_metric_families

from telephony.call import call_metrics
from telephony.devtools.bench.caller import tools_available
from telephony.devtools.standins.openai_server import reply
from telephony.devtools.standins.worker_server import WorkerServerStandin
from telephony.domain.paths import PROJECT_ROOT
from telephony.records.metric_labels import (
    ALLOWED,
    OTHER,
    bounded,
    end_reason_label,
    provider_label,
)
from telephony.records.model import CallRecord, Outcome
from telephony.worker.metrics_endpoint import metrics_environment, sweep_dead_processes
from tests.test_provider_faults import TIMEOUT, saved_record
from tests.test_speech_faults import LINE, spoken_call
from tests.test_worker_registration import agent_start

Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


@pytest_asyncio.fixture
async def metrics_url() -> AsyncIterator[str]:
    """The framework's /metrics endpoint, as the worker serves it on METRICS_PORT."""
    server = HttpServer("127.0.0.1", 0)
    await server.start()
    try:
        yield f"http://127.0.0.1:{server.port}/metrics"
    finally:
        await server.aclose()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


async def scrape(url: str) -> Samples:
    async with aiohttp.ClientSession() as session, session.get(url) as response:
        assert response.status == 200
        text = await response.text()
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


def grew(before: Samples, after: Samples, name: str, **labels: str) -> float:
    return value(after, name, **labels) - value(before, name, **labels)


TURN_SERIES = [
    f"telephony_turn_{stage}_seconds_count"
    for stage in (
        "end_of_speech_to_first_audio",
        "end_of_turn_delay",
        "transcription_delay",
        "llm_ttft",
        "tts_ttfb",
    )
]


# ------------------------------------------------------------------ a spoken call


@pytest.mark.skipif(not tools_available(), reason="needs espeak-ng and sox")
async def test_a_spoken_call_shows_its_turn_latency_while_up_and_its_outcome_once_ended(
    monkeypatch, livekit_server, openai_server, deepgram_server, metrics_url
):
    openai_server.script(reply("Of course, which day suits you?"))
    deepgram_server.script_transcripts([LINE])
    before = await scrape(metrics_url)
    async with spoken_call(monkeypatch, livekit_server, openai_server) as (run, caller):
        greeted = await scrape(metrics_url)
        caller.start()
        await asyncio.wait_for(run.sink.wait_for_segments(2), TIMEOUT)
        for _ in range(200):  # the answer played in full: it is in the history now
            if run.sink.segments[1].finished_at is not None and len(run.session.history.items) >= 3:
                break
            await asyncio.sleep(0.05)
        await asyncio.sleep(0.2)
        during = await scrape(metrics_url)
        assert livekit_server.calls("DeleteRoom") == []  # the call is still up

        run.caller_hangs_up()
        await run.end_job()
    after = await scrape(metrics_url)

    assert grew(before, greeted, "telephony_calls_started_total", direction="inbound") == 1
    assert grew(before, greeted, "telephony_calls_in_progress", direction="inbound") == 1
    # One caller turn answered: one observation of each stage, before the call ended.
    for series in TURN_SERIES:
        assert grew(greeted, during, series) == 1, series
    assert grew(greeted, during, "telephony_turn_end_of_speech_to_first_audio_seconds_sum") > 0

    record = saved_record()
    assert record.outcome is Outcome.CALLER_HUNG_UP
    ended = {"direction": "inbound", "outcome": "caller-hung-up", "reason": "none"}
    assert grew(during, after, "telephony_calls_ended_total", **ended) == 1
    assert grew(before, after, "telephony_calls_in_progress", direction="inbound") == 0
    assert grew(during, after, "telephony_records_saved_total", outcome="caller-hung-up") == 1
    # The record's latency and the series agree: one answered turn.
    answered = [t for t in record.latency if t.end_of_speech_to_first_audio is not None]
    assert len(answered) == 1


# ------------------------------------------------------------------ bounded labels


def test_label_values_off_their_list_become_other() -> None:
    assert bounded("direction", "inbound") == "inbound"
    assert bounded("direction", "") == "none"
    assert bounded("direction", "+15105550123") == OTHER
    assert bounded("outcome", "call-SCL_abc123") == OTHER
    assert end_reason_label("dial failed: busy") == "dial-failed"
    assert end_reason_label("rejected: phone_number '+1510555' is not E.164") == "rejected"
    assert end_reason_label("no caller") == "no-caller"
    assert end_reason_label("call-_+15105550123_abc") == OTHER
    assert provider_label(object()) == OTHER


async def test_no_number_room_or_call_id_reaches_a_label(metrics_url) -> None:
    """A record carrying a number, a room and an id in every free-text field it has."""
    record = CallRecord(
        call_id="SCL_secret1",
        room="call-_+15105550123_room1",
        direction="+15105550123",
        remote_number="+15105550123",
        end_reason="rejected: +15105550123 in call-_+15105550123_room1",
        outcome=Outcome.FAILED,
    )
    call_metrics.call_started(record.direction)
    call_metrics.call_ended(record, started=record.direction)
    call_metrics.apology_played("SCL_secret1")
    samples = await scrape(metrics_url)
    ours = {key: v for key, v in samples.items() if key[0].startswith("telephony_")}
    assert ours, "no telephony_ series in the scrape"
    for (name, labels), _ in ours.items():
        for label, label_value in labels:
            if label == "le":  # a histogram's bucket bound, fixed in the code
                continue
            assert label in ALLOWED, (name, label)
            allowed = ALLOWED[label] | {OTHER, "none"}
            assert label_value in allowed, (name, label, label_value)
            assert "555" not in label_value and "SCL_" not in label_value


# ------------------------------------------------------------------ every process merged

CHILD = """
from telephony.call import call_metrics
from telephony.records import record_metrics
from telephony.records.model import CallRecord, Outcome
call_metrics.call_started("outbound")
call_metrics.call_ended(CallRecord(direction="outbound", outcome=Outcome.BUSY,
    end_reason="dial failed: busy"), started="outbound")
call_metrics.call_started("outbound")  # still up when this process dies
record_metrics.WEBHOOKS_SENT.inc()
"""


def child(env: dict[str, str], code: str = CHILD) -> None:
    subprocess.run([sys.executable, "-c", code], env=env, cwd=PROJECT_ROOT, check=True)


@pytest.mark.realtime
async def test_series_counted_in_a_job_process_are_in_the_workers_scrape(
    metrics_url, monkeypatch, tmp_path: Path
) -> None:
    """What agent.py sets up with METRICS_PORT: processes that share the directory are merged
    by the framework's endpoint; a process that died mid-call stops counting once swept."""
    extra = metrics_environment({"METRICS_PORT": "9100"})
    assert list(extra) == ["PROMETHEUS_MULTIPROC_DIR"]
    folder = extra["PROMETHEUS_MULTIPROC_DIR"]
    assert metrics_environment({"METRICS_PORT": "9100", **extra}) == {}  # job processes
    assert metrics_environment({}) == {}  # metrics off
    env = {**os.environ, **extra}
    child(env)
    child(env)
    monkeypatch.setenv("PROMETHEUS_MULTIPROC_DIR", folder)  # as the worker process has it

    samples = await scrape(metrics_url)
    busy = {"direction": "outbound", "outcome": "busy", "reason": "dial-failed"}
    assert value(samples, "telephony_calls_ended_total", **busy) == 2
    assert value(samples, "telephony_calls_started_total", direction="outbound") == 4
    assert value(samples, "telephony_webhook_deliveries_sent_total") == 2
    assert value(samples, "telephony_calls_in_progress", direction="outbound") == 2

    assert sweep_dead_processes(folder) == 2
    samples = await scrape(metrics_url)
    assert value(samples, "telephony_calls_in_progress", direction="outbound") == 0
    assert value(samples, "telephony_calls_ended_total", **busy) == 2  # counters stay


# ------------------------------------------------------------------ the worker's endpoint


@pytest_asyncio.fixture
async def worker_server() -> AsyncIterator[WorkerServerStandin]:
    async with WorkerServerStandin() as server:
        yield server


@pytest.mark.e2e
async def test_agent_start_with_metrics_port_serves_the_worker_and_its_processes(
    worker_server,
):
    """`python agent.py start` with METRICS_PORT: /metrics answers with the worker process's
    own series (its load, its child-process count, which the framework counts only in
    multiprocess mode) merged from the shared directory, where job processes write theirs."""
    port = free_port()
    url = f"http://127.0.0.1:{port}/metrics"
    samples: Samples = {}
    async with agent_start(worker_server, METRICS_PORT=str(port)):
        # Reported once the job processes are up (up to ~40 s on a busy machine).
        for _ in range(600):
            with contextlib.suppress(aiohttp.ClientConnectionError):
                samples = await scrape(url)
            if value(samples, "lk_agents_child_process_count", nodename=nodename()) >= 1:
                break
            await asyncio.sleep(0.2)
    names = {name for name, _ in samples}
    assert "lk_agents_worker_load" in names
    assert value(samples, "lk_agents_child_process_count", nodename=nodename()) >= 1
    # Only the merged registry is served (the single-process one would add process_* series).
    assert "process_cpu_seconds_total" not in names


# ------------------------------------------------------------------ the shipped dashboard


def series_names() -> set[str]:
    """Every sample name the registry can show (a counter's _total, a histogram's _bucket...)."""
    from prometheus_client import REGISTRY

    suffixes = {"counter": ["_total"], "histogram": ["_bucket", "_count", "_sum"], "gauge": [""]}
    return {
        family.name + suffix
        for family in REGISTRY.collect()
        for suffix in suffixes.get(family.type, [""])
    }


@pytest.mark.parametrize("shipped", ["deploy/grafana-dashboard.json", "deploy/prometheus.yml"])
def test_the_dashboard_and_the_scrape_example_name_only_series_that_exist(shipped: str) -> None:
    import re

    text = (PROJECT_ROOT / shipped).read_text()
    named = set(re.findall(r"\b(?:telephony|lk_agents)_[a-z0-9_]+", text))
    assert named, f"{shipped} names no series"
    assert named - series_names() == set()


# ------------------------------------------------------------------ records


def counted(name: str) -> float:
    from prometheus_client import REGISTRY

    return REGISTRY.get_sample_value(name) or 0.0


async def test_a_record_the_database_refuses_counts_as_spooled_or_else_failed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from telephony.domain.settings import parse_settings
    from telephony.records import saving
    from telephony.records.saving import save_record

    settings, _ = parse_settings(
        {
            "DATABASE_URL": "postgresql://calls:pw@127.0.0.1:9/calls",  # nothing listens
            "CALL_RECORDS_PATH": str(tmp_path / "calls.sqlite3"),
        },
        deep_checks=False,
    )
    record = CallRecord(direction="inbound", outcome=Outcome.COMPLETED)
    spooled, failed = (
        counted("telephony_records_spooled_total"),
        counted("telephony_records_failed_total"),
    )
    await save_record(record, settings)
    assert counted("telephony_records_spooled_total") - spooled == 1
    assert counted("telephony_records_failed_total") - failed == 0

    (tmp_path / "unsaved-call-records.jsonl").unlink()
    (tmp_path / "unsaved-call-records.jsonl").mkdir()  # the spool cannot be written either
    await save_record(record, settings)  # held on the memory filesystem: still kept
    assert counted("telephony_records_spooled_total") - spooled == 2
    assert counted("telephony_records_failed_total") - failed == 0

    (tmp_path / "held").mkdir()  # nor the holding spool, and no time left to retry: lost
    monkeypatch.setattr(saving, "holding_path", lambda _settings: tmp_path / "held")
    monkeypatch.setattr(saving, "RETRY_DELAYS", ())
    await save_record(record, settings)
    assert counted("telephony_records_spooled_total") - spooled == 2
    assert counted("telephony_records_failed_total") - failed == 1


async def test_webhook_rounds_count_as_failed_then_sent(record_store, metrics_url) -> None:
    from aiohttp import web

    from telephony.records.webhook import deliver_pending
    from tests.test_webhook import closed_port_url, queued

    async def take(_request: web.Request) -> web.Response:
        return web.Response(status=200)

    app = web.Application()
    app.router.add_post("/hook", take)
    runner = web.AppRunner(app)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    url = f"http://127.0.0.1:{runner.addresses[0][1]}/hook"
    try:
        queued(record_store)
        before = await scrape(metrics_url)
        await deliver_pending(record_store, closed_port_url(), "s", attempts=1, backoff=0)
        failed = await scrape(metrics_url)
        await deliver_pending(record_store, url, "s", now=time.time() + 3600, attempts=1)
        sent = await scrape(metrics_url)
    finally:
        await runner.cleanup()
    assert grew(before, failed, "telephony_webhook_deliveries_failed_total") == 1
    assert grew(before, failed, "telephony_webhook_deliveries_sent_total") == 0
    assert grew(failed, sent, "telephony_webhook_deliveries_sent_total") == 1


# ------------------------------------------------------------------ the setting


@pytest.mark.parametrize(
    ("env", "problem"),
    [
        ({"METRICS_PORT": "nine"}, "METRICS_PORT='nine' must be a whole number from 0 to 65535"),
        ({"METRICS_PORT": "0"}, "METRICS_PORT=0: Prometheus scrapes a known port"),
        (
            {"METRICS_PORT": "8090", "WORKER_HTTP_PORT": "8090"},
            "METRICS_PORT=8090 is also the worker's health port (WORKER_HTTP_PORT)",
        ),
        ({"METRICS_PORT": "8081"}, "METRICS_PORT=8081 is also the worker's health port"),
    ],
)
def test_a_metrics_port_that_cannot_work_is_one_clear_sentence(
    env: dict[str, str], problem: str
) -> None:
    from telephony.domain.settings import parse_settings

    _, problems = parse_settings(env, deep_checks=False)
    assert [p for p in problems if p.startswith(problem)], problems


def test_metrics_port_turns_on_the_frameworks_endpoint() -> None:
    from telephony.domain.settings import worker_options

    assert worker_options({"METRICS_PORT": "9100"})["prometheus_port"] == 9100
    assert "prometheus_port" not in worker_options({})
