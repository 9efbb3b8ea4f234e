"""How the worker stops: it drains its calls, and cuts what is left, never silently.

The framework's CLI, on the first SIGTERM or SIGINT, stops taking calls and waits for the
running ones (`AgentServer.drain`); on a second signal it exits at once with status 1
(`os._exit`), and at its drain timeout it closes the job processes, which closes each call's
session mid-sentence. Either way the caller is cut off without a word, and after `os._exit`
no record is written. Here, called as the server's `drain`:

- the first signal drains: calls go on to their end, for up to DRAIN_TIMEOUT_SECONDS;
- a second signal, or the drain timeout, cuts them: each job process gets CUT_CALL_SIGNAL
  and its call says `prompts/shutdown_goodbye.txt`, hangs up and ends with reason
  `worker-stopped` (telephony.call.worker_stop), its record saved the usual way. The worker
  waits for that for up to CUT_GRACE_SECONDS (a further signal stops the wait), then the
  framework closes whatever is left (each session closed, its record saved).

The process then exits 0, as for any requested stop.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
from collections.abc import Awaitable, Callable

from livekit.agents import AgentServer

from telephony.call.framework_compat import running_job_pids
from telephony.call.worker_stop import CUT_CALL_SIGNAL, STOP_SIGNALS

logger = logging.getLogger("telephony.worker.stopping")

# How long cut calls get to say their goodbye (a sentence of TTS, ~5 s), hang up and save
# their record before the framework closes them (at most 10 s more). A supervisor's stop
# timeout should be DRAIN_TIMEOUT_SECONDS + 30 s: see README "Deploying".
CUT_GRACE_SECONDS = 15.0
POLL_SECONDS = 0.1


async def drain_then_cut(
    server: AgentServer, drain: Callable[[], Awaitable[None]], drain_timeout: float | None
) -> None:
    """Run `drain` (the framework's: wait for the running jobs, no limit of its own) until it
    is done, another stop signal comes, or `drain_timeout` seconds pass (None: no limit);
    then cut the calls still running."""
    loop = asyncio.get_running_loop()
    again = asyncio.Event()
    _on_stop_signals(loop, again.set)
    calls = len(running_job_pids(server))
    logger.info(
        "stopping: no new calls; %d call(s) may go on for up to %s (DRAIN_TIMEOUT_SECONDS); "
        "another stop signal cuts them now",
        calls,
        f"{drain_timeout:g} s" if drain_timeout else "any time",
    )
    drained = asyncio.ensure_future(drain())
    signalled = asyncio.ensure_future(again.wait())
    try:
        done, _ = await asyncio.wait(
            {drained, signalled}, timeout=drain_timeout or None, return_when=asyncio.FIRST_COMPLETED
        )
    finally:
        signalled.cancel()
    if drained in done:
        drained.result()
        return
    drained.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await drained
    why = (
        "a second stop signal"
        if again.is_set()
        else f"DRAIN_TIMEOUT_SECONDS ({drain_timeout:g} s) ran out"
    )
    again.clear()
    await cut_calls(server, why, again)


async def cut_calls(server: AgentServer, why: str, give_up: asyncio.Event) -> None:
    """Tell every job process with a call to cut it, and wait until they have ended (at most
    CUT_GRACE_SECONDS, or until `give_up` is set)."""
    pids = running_job_pids(server)
    if not pids:
        return
    logger.warning("stopping now (%s): cutting %d call(s), each with a goodbye", why, len(pids))
    for pid in pids:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, CUT_CALL_SIGNAL)
    loop = asyncio.get_running_loop()
    deadline = loop.time() + CUT_GRACE_SECONDS
    while running_job_pids(server) and loop.time() < deadline and not give_up.is_set():
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(give_up.wait(), POLL_SECONDS)
    if left := running_job_pids(server):
        logger.warning("%d call(s) still running after their goodbye: closing them", len(left))


def _on_stop_signals(loop: asyncio.AbstractEventLoop, callback: Callable[[], None]) -> None:
    """Replace the framework's force-exit handlers (`os._exit(1)` on a second signal)."""

    def handler(signum: int, frame: object) -> None:
        loop.call_soon_threadsafe(callback)

    for sig in STOP_SIGNALS:
        try:
            signal.signal(sig, handler)
        except ValueError:  # not the main thread (an embedded server): keep the framework's
            return
