"""How fast the call-log web page answers on a big store:
`python -m telephony.devtools.web_bench [--records 100000] [--database-url URL]`.

Fills a database with synthetic calls (once: a store that already holds enough is reused),
serves the web page on a loopback port, and requests each page and filter many times,
printing p50/p90/max per request. Figures only: nothing here asserts a time.
"""

from __future__ import annotations

import argparse
import asyncio
import random
import sys
import time
from collections.abc import Sequence
from pathlib import Path

import aiohttp
from aiohttp import web

from telephony.domain.paths import PROJECT_ROOT
from telephony.operator.cli.metrics import percentile
from telephony.operator.web.app import WebConfig, make_app
from telephony.records.call_index import CallFilter
from telephony.records.model import (
    CallRecord,
    Outcome,
    ToolCallRecord,
    Turn,
    TurnLatency,
    Usage,
)
from telephony.records.store import CallStore, StoreError

DEFAULT_PATH = PROJECT_ROOT / "bench-results" / "web-bench.sqlite3"
BATCH = 2000
DAY = 86400.0
_VOCABULARY = (
    "hello thanks calling book table tonight tomorrow friday saturday eight seven two four "
    "people reservation change cancel order delivery address street avenue open close hours "
    "price menu vegetarian allergy gluten parking card pay invoice account number please yes "
    "no maybe sure great perfect sorry repeat again slower name spell email confirm message "
    "manager call back later morning afternoon evening window outside birthday party"
)
WORDS = tuple(_VOCABULARY.split(" "))
# A phrase in about one call in a hundred: what a search for a rare topic finds.
RARE = "water leak in the basement"
OUTCOMES = [
    (Outcome.COMPLETED, 55),
    (Outcome.CALLER_HUNG_UP, 15),
    (Outcome.AGENT_ENDED, 5),
    (Outcome.TRANSFERRED, 6),
    (Outcome.VOICEMAIL, 5),
    (Outcome.NO_ANSWER, 8),
    (Outcome.BUSY, 3),
    (Outcome.FAILED, 3),
]


def synthetic_record(i: int, rng: random.Random, now: float, days: int) -> CallRecord:
    """One plausible call: 4-12 lines, 2-6 measured replies, spread over `days` days."""
    start = now - rng.random() * days * DAY
    outcome = rng.choices([o for o, _ in OUTCOMES], [w for _, w in OUTCOMES])[0]
    answered = outcome not in (Outcome.NO_ANSWER, Outcome.BUSY, Outcome.FAILED)
    transcript: list[Turn] = []
    latency: list[TurnLatency] = []
    if answered:
        for k in range(rng.randint(4, 12)):
            text = " ".join(rng.choices(WORDS, k=rng.randint(4, 16)))
            if k == 1 and rng.random() < 0.01:
                text += " " + RARE
            transcript.append(Turn("user" if k % 2 else "assistant", text, start + 2 + 4 * k))
        for k in range(rng.randint(2, 6)):
            eou, llm, tts = rng.gauss(0.3, 0.08), rng.gauss(0.25, 0.1), rng.gauss(0.15, 0.05)
            parts = [max(0.01, v) for v in (eou, llm, tts)]
            latency.append(
                TurnLatency(start + 6 + 8 * k, parts[0], 0.1, parts[1], parts[2], sum(parts))
            )
    return CallRecord(
        record_id=f"bench-{i:07d}",
        call_id=f"SCL_bench{i}",
        job_id=f"AJ_bench{i}",
        room=f"call-bench-{i}",
        direction="outbound" if rng.random() < 0.4 else "inbound",
        remote_number=f"+1{rng.randint(2000000000, 9999999999)}",
        local_number=rng.choice(("+17075550100", "+17075550101", "+14155550199")),
        trunk_id="ST_bench",
        agent_name="bench-agent",
        started_at=start,
        answered_at=start + 2 if answered else None,
        ended_at=start + (rng.uniform(20, 400) if answered else 30),
        outcome=outcome,
        sip_status_code=200 if answered else 486,
        transcript=transcript,
        tool_calls=[ToolCallRecord("end_call", "{}", "ok", False, start + 60)] if answered else [],
        latency=latency,
        usage=Usage(800, 120, 400, 60.0),
    )


def fill(store: CallStore, start: int, stop: int, *, days: int) -> float:
    """Save synthetic calls number `start` to `stop` in batches; return the seconds taken."""
    rng = random.Random(start)
    now = time.time()
    began = time.perf_counter()
    for first in range(start, stop, BATCH):
        last = min(stop, first + BATCH)
        store.save_many([synthetic_record(i, rng, now, days) for i in range(first, last)])
        print(f"\r  saved {last:,} / {stop:,}", end="", file=sys.stderr)
    print(file=sys.stderr)
    return time.perf_counter() - began


def scenarios(store: CallStore) -> list[tuple[str, str]]:
    """(what, URL) of each request measured; numbers taken from the store itself."""
    sample = store.page(CallFilter(direction="inbound"), offset=1234, limit=1)[0]
    week_from = time.strftime("%Y-%m-%d", time.localtime(time.time() - 14 * DAY))
    week_to = time.strftime("%Y-%m-%d", time.localtime(time.time() - 8 * DAY))
    return [
        ("list, no filter", "/"),
        ("list, page 40", "/?page=40"),
        ("direction", "/?direction=outbound"),
        ("outcome", "/?outcome=no-answer"),
        ("direction + outcome", "/?direction=inbound&outcome=transferred"),
        ("a week", f"/?from={week_from}&to={week_to}"),
        ("number, whole", f"/?number={sample.remote_number.replace('+', '%2B')}"),
        ("number, last 4 digits", f"/?number={sample.remote_number[-4:]}"),
        ("transcript text", "/?q=water+leak"),
        ("text + direction + week", f"/?q=basement&direction=inbound&from={week_from}"),
        ("one call", f"/calls/{sample.record_id}"),
        ("overview, 30 days", "/overview"),
    ]


async def measure(store: CallStore, repeats: int) -> list[tuple[str, list[float], int]]:
    app = make_app(store, WebConfig(mask_numbers=True))
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    results = []
    try:
        async with aiohttp.ClientSession(f"http://127.0.0.1:{port}") as session:
            for what, url in scenarios(store):
                times: list[float] = []
                size = 0
                for k in range(repeats + 2):  # two to warm up
                    began = time.perf_counter()
                    async with session.get(url) as response:
                        body = await response.read()
                        if response.status != 200:
                            raise SystemExit(f"{url} answered {response.status}: {body[:300]!r}")
                    if k >= 2:
                        times.append(time.perf_counter() - began)
                    size = body.count(b'href="/calls/')
                results.append((what, times, size))
    finally:
        await runner.cleanup()
    return results


def report(results: Sequence[tuple[str, list[float], int]]) -> str:
    lines = [f"{'request':<26} {'p50 ms':>8} {'p90 ms':>8} {'max ms':>8} {'calls linked':>13}"]
    for what, times, linked in results:
        p50, p90 = (percentile(times, p) or 0.0 for p in (50, 90))
        lines.append(
            f"{what:<26} {p50 * 1000:>8.0f} {p90 * 1000:>8.0f} {max(times) * 1000:>8.0f} "
            f"{linked:>13}"
        )
    lists = [t for what, times, _ in results if what not in ("one call",) for t in times]
    lines.append(f"all list and overview requests: p90 {percentile(lists, 90) * 1000:.0f} ms")  # type: ignore[operator]
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m telephony.devtools.web_bench",
        description="Time the call-log web page's requests on a big store (figures only).",
    )
    parser.add_argument("--records", type=int, default=100_000, help="calls in the store")
    parser.add_argument("--days", type=int, default=90, help="spread over this many days")
    parser.add_argument("--repeats", type=int, default=20, help="requests per scenario")
    parser.add_argument(
        "--database-url",
        default="",
        help="PostgreSQL or SQLite URL (default: bench-results/web-bench.sqlite3)",
    )
    args = parser.parse_args(argv)
    if not 1_000 <= args.records <= 2_000_000 or not 1 <= args.repeats <= 1000:
        parser.error("--records must be 1000 to 2000000 and --repeats 1 to 1000")
    url = args.database_url or f"sqlite:///{DEFAULT_PATH}"
    if not args.database_url:
        Path(DEFAULT_PATH).parent.mkdir(parents=True, exist_ok=True)
    try:
        with CallStore.open(url) as store:
            have = store.count()
            if have < args.records:
                print(f"filling {store.url} with {args.records - have:,} synthetic calls ...")
                seconds = fill(store, have, args.records, days=args.days)
                print(f"  took {seconds:.0f} s")
            print(f"store: {store.url}, {store.count():,} calls; {args.repeats} requests each")
            print(report(asyncio.run(measure(store, args.repeats))))
    except StoreError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
