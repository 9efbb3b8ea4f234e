"""The web server: three pages and a stylesheet, GET and HEAD only.

Access: when a token is set every request must carry it, as the password of HTTP Basic
(the browser asks; any user name) or as `Authorization: Bearer <token>`, compared in
constant time; without one the command refuses to listen beyond loopback (settings.py).
Every answer forbids scripts, framing and caching (Content-Security-Policy and friends), so
even a field that slipped past escaping could not run.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import hmac
import math
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlencode

import jinja2
from aiohttp import web

from telephony.domain.settings import Settings
from telephony.operator import call_facts
from telephony.operator.cli.base import CliError
from telephony.operator.web import query as q
from telephony.operator.web import views
from telephony.records.call_index import CallTotals
from telephony.records.model import CallRecord
from telephony.records.store import CallStore, DeliveryState, database_url

HERE = Path(__file__).parent
OVERVIEW_DAYS = 30
MAX_OVERVIEW_DAYS = 366
MAX_ID = 200  # characters of a call id in a URL

SECURITY_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'none'; style-src 'self'; img-src 'self'; form-action 'self'; "
        "frame-ancestors 'none'; base-uri 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
}
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@dataclass(frozen=True)
class WebConfig:
    token: str = ""  # empty: no access check (the command allows that on loopback only)
    mask_numbers: bool = True


STORE = web.AppKey("store", CallStore)
CONFIG = web.AppKey("config", WebConfig)
TEMPLATES = web.AppKey("templates", jinja2.Environment)


def make_app(store: CallStore, config: WebConfig) -> web.Application:
    # The first is outermost: the security headers go on every answer, refusals included.
    app = web.Application(middlewares=[_headers, _read_only, _access])
    app[STORE] = store
    app[CONFIG] = config
    app[TEMPLATES] = jinja2.Environment(
        loader=jinja2.FileSystemLoader(HERE / "templates"),
        autoescape=True,  # every template, whatever its name
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    app.router.add_get("/", list_page)  # add_get answers HEAD too
    app.router.add_get("/calls/{record_id}", call_page)
    app.router.add_get("/overview", overview_page)
    app.router.add_static("/static", HERE / "static")
    return app


# ------------------------------------------------------------------ middlewares


@web.middleware
async def _read_only(request: web.Request, handler: Handler) -> web.StreamResponse:
    if request.method not in ("GET", "HEAD"):
        raise web.HTTPMethodNotAllowed(request.method, ["GET", "HEAD"], text="read-only\n")
    return await handler(request)


@web.middleware
async def _access(request: web.Request, handler: Handler) -> web.StreamResponse:
    token = request.app[CONFIG].token
    if token and not token_matches(request.headers.get("Authorization", ""), token):
        raise web.HTTPUnauthorized(
            headers={"WWW-Authenticate": 'Basic realm="call log", charset="UTF-8"'},
            text="the call log needs its token (WEB_TOKEN) as the password\n",
        )
    return await handler(request)


@web.middleware
async def _headers(request: web.Request, handler: Handler) -> web.StreamResponse:
    try:
        response = await handler(request)
    except web.HTTPException as e:
        e.headers.update(SECURITY_HEADERS)
        raise
    response.headers.update(SECURITY_HEADERS)
    return response


def token_matches(authorization: str, token: str) -> bool:
    """The token from a Basic (password; any user) or Bearer header, in constant time."""
    scheme, _, value = authorization.strip().partition(" ")
    given = ""
    if scheme.lower() == "bearer":
        given = value.strip()
    elif scheme.lower() == "basic":
        try:
            decoded = base64.b64decode(value.strip(), validate=True).decode("utf-8")
        except (binascii.Error, UnicodeDecodeError):
            return False
        given = decoded.partition(":")[2]
    return hmac.compare_digest(given.encode("utf-8"), token.encode("utf-8"))


# ------------------------------------------------------------------ pages


async def list_page(request: web.Request) -> web.Response:
    store, mask = request.app[STORE], _masker(request)
    wanted = q.parse_list_query(request.query)
    page = wanted.page
    where = wanted.where

    def read() -> tuple[CallTotals, list[CallRecord], list[CallRecord]]:
        records, totals = store.browse(where, offset=(page - 1) * q.PAGE_SIZE, limit=q.PAGE_SIZE)
        live = store.in_progress(where) if page == 1 and not where.outcome else []
        return totals, records, live

    totals, records, live = await asyncio.to_thread(read)
    pages = max(1, math.ceil(totals.calls / q.PAGE_SIZE))
    kept = {k: v for k, v in wanted.form.items() if v}
    context = {
        "form": wanted.form,
        "problems": wanted.problems,
        "directions": q.DIRECTIONS,
        "outcomes": q.OUTCOMES,
        "totals": totals,
        "duration": views.minutes_seconds(totals.duration_seconds),
        "p50": views.ms(totals.e2e_p50),
        "p90": views.ms(totals.e2e_p90),
        "outcome_counts": [
            (o, n, views.outcome_css(o)) for o, n in sorted(totals.by_outcome.items())
        ],
        "rows": [views.row(r, mask) for r in records],
        "live": [views.row(r, mask) for r in live],
        "page": page,
        "pages": pages,
        "prev_url": _url(kept, page - 1) if page > 1 else "",
        "next_url": _url(kept, page + 1) if page < pages else "",
        "masked": mask.enabled,
    }
    status = 400 if wanted.problems else 200
    return _render(request, "list.html", context, status=status)


async def call_page(request: web.Request) -> web.Response:
    store, mask = request.app[STORE], _masker(request)
    key = request.match_info["record_id"][:MAX_ID]

    def read() -> tuple[CallRecord | None, DeliveryState | None]:
        record = store.get(key)
        if record is None:
            return None, None
        try:
            return record, store.delivery_state(record.record_id)
        except KeyError:
            return record, None

    record, delivery = await asyncio.to_thread(read)
    if record is None:
        return _render(request, "missing.html", {"key": key}, status=404)
    context = {
        "title": record.call_id or record.record_id,
        "live": record.outcome.value == "in-progress",
        "facts": views.facts(record, mask),
        "conversation": views.conversation(record, mask),
        "latency": views.latency_table(record),
        "usage": call_facts.usage(record),
        "delivery": call_facts.delivery(delivery, mask.text),
        "masked": mask.enabled,
    }
    return _render(request, "call.html", context)


async def overview_page(request: web.Request) -> web.Response:
    store = request.app[STORE]
    raw = request.query.get("days", "")
    problems = []
    days = OVERVIEW_DAYS
    if raw:
        if raw.isdecimal() and 1 <= int(raw) <= MAX_OVERVIEW_DAYS:
            days = int(raw)
        else:
            problems.append(f"Days {raw[:20]!r} is not a number from 1 to {MAX_OVERVIEW_DAYS}.")
    offset = views.utc_offset_now()
    today = int((time.time() + offset) // 86400)
    since = (today - days + 1) * 86400 - offset
    per_day = await asyncio.to_thread(
        store.per_day, since=since, until=since + days * 86400, utc_offset=offset
    )
    context = {"days": days, "problems": problems, **views.overview(per_day)}
    return _render(request, "overview.html", context, status=400 if problems else 200)


def _masker(request: web.Request) -> views.Masker:
    return views.Masker(request.app[CONFIG].mask_numbers)


def _url(filters: dict[str, str], page: int) -> str:
    return "/?" + urlencode({**filters, "page": str(page)})


def _render(
    request: web.Request, name: str, context: dict[str, object], *, status: int = 200
) -> web.Response:
    html = request.app[TEMPLATES].get_template(name).render({"problems": [], **context})
    return web.Response(text=html, content_type="text/html", status=status)


# ------------------------------------------------------------------ serving


def serve(settings: Settings) -> int:
    """Run the server until Ctrl-C; the store is opened (and migrated) first."""
    url = database_url(settings.database_url, settings.call_records_path)
    with CallStore.open(url) as store:
        config = WebConfig(token=settings.web_token, mask_numbers=settings.mask_phone_numbers)
        host, port = settings.web_host, settings.web_port
        shown = f"[{host}]" if ":" in host else host
        access = "token required" if config.token else "no token: this machine only"
        print(f"call log on http://{shown}:{port}/ ({access}; records: {store.url})", flush=True)
        try:
            # No access log: filter URLs carry the phone numbers people search for.
            web.run_app(make_app(store, config), host=host, port=port, print=None, access_log=None)
        except OSError as e:
            raise CliError(
                f"cannot listen on {host}:{port} ({e.strerror or e}): "
                "choose another WEB_PORT (or --port) or stop what uses it"
            ) from e
    return 0
