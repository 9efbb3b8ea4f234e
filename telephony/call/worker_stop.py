"""A call in a job process when its worker stops: it goes on, or it is cut with a goodbye.

Stop signals are the worker's business. systemd (`KillMode=control-group`, its default),
`kill -- -PGID` and Ctrl+C in a terminal signal the whole process group, job processes
included, and a job process that dies of it cuts its call with no record. The framework
means job processes to ignore SIGTERM and SIGINT, but only where its
`ipc/job_proc_lazy_main.py` is first imported in the job process (a `spawn` start); under the
forkserver Linux uses, the forkserver has imported it already, so the job process never runs
that code and keeps the default SIGTERM action (death). `ignore_stop_signals` runs in every
job process at its start (the worker's setup function, `agent.prewarm`), however it was
started.

The worker drains: it takes no new calls and lets the running ones finish. When a call must
be cut all the same (a second stop signal, or DRAIN_TIMEOUT_SECONDS), the worker sends the
job process `CUT_CALL_SIGNAL`, and the call says `prompts/shutdown_goodbye.txt`, hangs up and
ends with outcome agent-ended, reason `worker-stopped`: the record is saved the usual way,
when the session ends (see telephony.worker.stopping for the worker's side).
"""

from __future__ import annotations

import asyncio
import logging
import signal
import threading
from collections.abc import Callable
from types import FrameType
from typing import Any

from livekit.agents import AgentSession

from telephony.call.call_state import CallState
from telephony.call.ending import end_call
from telephony.records.model import Outcome

logger = logging.getLogger("telephony.call.worker_stop")

# What a job process ignores: the worker stops on these and drains its calls.
STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT)
# What the worker sends a job process whose call it must cut (the framework uses SIGUSR1
# for stack dumps).
CUT_CALL_SIGNAL = signal.SIGUSR2
WORKER_STOPPED = "worker-stopped"
GOODBYE_PROMPT = "shutdown_goodbye"

# This process was asked to cut its call; a call that starts afterwards is cut at once.
_cut_requested = False
# The running call's cut, scheduled on its event loop when the signal comes.
_on_cut: tuple[asyncio.AbstractEventLoop, Callable[[], None]] | None = None


def ignore_stop_signals() -> None:
    """In a job process, at its start: ignore SIGTERM and SIGINT, and cut the call on
    CUT_CALL_SIGNAL (whose default action would kill the process). Nothing for a job run in
    a thread of the worker (`console`): that process's signals are the worker's."""
    if threading.current_thread() is not threading.main_thread():
        return
    for sig in STOP_SIGNALS:
        signal.signal(sig, signal.SIG_IGN)
    listen_for_cut_signal()


def listen_for_cut_signal() -> Any:
    """CUT_CALL_SIGNAL cuts this process's call (main thread only); the previous handler."""
    return signal.signal(CUT_CALL_SIGNAL, _cut_signal_received)


def _cut_signal_received(signum: int, frame: FrameType | None) -> None:
    # Runs in the main thread, where the job's event loop runs: only schedule the cut.
    global _cut_requested
    _cut_requested = True
    if _on_cut is not None:
        loop, cut = _on_cut
        loop.call_soon_threadsafe(cut)


def cut_call_when_worker_stops(session: AgentSession[CallState], state: CallState) -> None:
    """From now until the session closes, CUT_CALL_SIGNAL ends this call with the goodbye."""
    global _on_cut
    loop = asyncio.get_running_loop()
    cutting: list[asyncio.Task[bool]] = []

    def cut() -> None:
        if not cutting:
            cutting.append(asyncio.create_task(_say_goodbye_and_hang_up(session, state)))

    def stop_listening(_: object) -> None:
        global _on_cut
        if _on_cut is not None and _on_cut[1] is cut:
            _on_cut = None

    _on_cut = (loop, cut)
    session.once("close", stop_listening)
    if _cut_requested:
        cut()


async def _say_goodbye_and_hang_up(session: AgentSession[CallState], state: CallState) -> bool:
    """The agent stops mid-sentence if need be, says the goodbye in full, and hangs up."""
    logger.warning(
        "the worker is stopping and cannot wait for this call: saying goodbye and hanging up "
        "in room %s",
        state.context.room_name,
    )
    try:
        session.interrupt(force=True)
    except RuntimeError:  # the session is closing: the call is ending anyway
        return False
    return await end_call(
        session,
        state.ending,
        Outcome.AGENT_ENDED,
        WORKER_STOPPED,
        goodbye=state.render(GOODBYE_PROMPT),
    )
