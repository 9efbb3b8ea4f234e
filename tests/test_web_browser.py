"""The call-log web page in a real browser: Debian's Chromium driven by Playwright, against
`python -m telephony web` started as a process, as an operator would run it.

Nothing downloads a browser: Playwright is pointed at /usr/bin/chromium (`.ci/run` installs
the Debian package). Screenshots are kept in test-artifacts/web/ (ignored by git)."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Page, sync_playwright

from telephony.domain.settings import PROJECT_ROOT, SETTING_NAMES
from telephony.records.store import CallStore
from tests.web_fixtures import HOSTILE_ID, IMG, SCRIPT, fill

CHROMIUM = Path("/usr/bin/chromium")
ARTIFACTS = PROJECT_ROOT / "test-artifacts" / "web"
START_TIMEOUT = 120.0  # seconds for `python -m telephony web` to listen on a loaded machine

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.skipif(
        not CHROMIUM.exists(),
        reason=f"no Chromium at {CHROMIUM}: install the Debian package chromium "
        "(.ci/run does); Playwright never downloads a browser here",
    ),
]


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture(scope="module")
def base_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """`python -m telephony web` on a loopback port, over the test records (SQLite)."""
    folder = tmp_path_factory.mktemp("web")
    database = folder / "calls.sqlite3"
    with CallStore.open(f"sqlite:///{database}") as store:
        fill(store, 60)
    port = free_port()
    # Every setting present but empty: a developer's .env.local cannot leak in.
    env = os.environ | dict.fromkeys(SETTING_NAMES, "") | {"CALL_RECORDS_PATH": str(database)}
    env["PROMPTS_DIR"] = str(PROJECT_ROOT / "tests" / "fixtures" / "prompts")
    log = folder / "server.log"
    with log.open("w") as out:
        server = subprocess.Popen(
            [sys.executable, "-m", "telephony", "web", "--port", str(port)],
            cwd=PROJECT_ROOT,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    try:
        _wait_until_listening(port, server, log)
        yield f"http://127.0.0.1:{port}"
    finally:
        server.terminate()
        server.wait(timeout=30)


def _wait_until_listening(port: int, server: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        if server.poll() is not None:
            pytest.fail(f"`python -m telephony web` exited {server.returncode}:\n{log.read_text()}")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            time.sleep(0.2)
    pytest.fail(f"`python -m telephony web` did not listen within {START_TIMEOUT:g} s")


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(
            executable_path=str(CHROMIUM), headless=True, args=["--no-sandbox"]
        )
        try:
            yield chromium
        finally:
            chromium.close()


@pytest.fixture
def page(browser: Browser) -> Iterator[Page]:
    context = browser.new_context(viewport={"width": 1200, "height": 860})
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    page.on("dialog", lambda dialog: errors.append(f"dialog: {dialog.message}"))
    try:
        yield page
    finally:
        context.close()
    assert errors == []  # no script ran, so none failed and none opened a dialog


def screenshot(page: Page, name: str) -> None:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / name))


def test_filter_the_list_open_a_call_and_see_its_transcript_and_chart(
    page: Page, base_url: str
) -> None:
    page.goto(base_url + "/")
    assert page.locator("table.calls tbody tr").count() == 50
    assert page.locator("section.live tr.in-progress").count() == 1
    screenshot(page, "list.png")

    page.fill("input[name=q]", "plumber")
    page.select_option("select[name=direction]", "inbound")
    page.click("button[type=submit]")
    page.wait_for_url("**/?*q=plumber*")
    rows = page.locator("table.calls tbody tr")
    assert rows.count() == 1
    assert page.locator("#total-calls").inner_text() == "1"
    screenshot(page, "list-filtered.png")

    rows.first.locator("a").click()
    page.wait_for_url("**/calls/rec-0005")
    transcript = page.locator("section.transcript").inner_text()
    assert "I need a plumber urgently" in transcript
    assert transcript.index("plumber") < transcript.index("end_call")  # tool call in order
    chart = page.locator("svg#latency-chart")
    assert chart.is_visible()
    assert chart.locator("rect.s0, rect.s1, rect.s2").count() == 6  # 2 replies x 3 stages
    assert chart.bounding_box()["width"] > 300
    screenshot(page, "call.png")


def test_a_hostile_transcript_is_shown_as_text_and_runs_nothing(page: Page, base_url: str) -> None:
    page.goto(f"{base_url}/calls/{HOSTILE_ID}")

    assert page.evaluate("window.__pwned") is None
    assert page.locator("script").count() == 0
    assert page.locator("main img").count() == 0
    transcript = page.locator("section.transcript").inner_text()
    assert SCRIPT in transcript and IMG in transcript  # shown, character for character
    facts = page.locator("section[aria-label=facts]").inner_text()
    assert f"agent {IMG}" in facts and f"boom {IMG}" in facts
    screenshot(page, "hostile.png")

    page.goto(base_url + "/?q=script")
    assert page.evaluate("window.__pwned") is None
    assert page.locator("table.calls tbody tr").count() == 1


def test_the_overview_draws_calls_per_day(page: Page, base_url: str) -> None:
    page.goto(base_url + "/overview?days=366")

    chart = page.locator("svg#per-day-chart")
    assert chart.is_visible()
    assert chart.locator("rect").count() >= 4
    assert page.locator("table.days tbody tr").count() >= 4
    screenshot(page, "overview.png")
