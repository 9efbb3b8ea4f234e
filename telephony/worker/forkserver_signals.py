"""Imported by the worker's forkserver only (agent.py names it in its preload modules): there,
ignore SIGTERM and SIGINT.

On Linux the worker starts its job processes from a forkserver, a process of its own in the
worker's process group. A stop signal to the whole group (systemd's default
`KillMode=control-group`, `kill -- -PGID`, Ctrl+C) killed it, and with it the worker's only
way of learning when a job process exits (the forkserver reports each exit status): every
job process then looked dead to the worker at the next chance, the drain ended with the calls
still running, and the worker exited, leaving them to be killed with its process group. The
forkserver needs no stop signal: it exits by itself once the worker has gone. Job processes
forked from it start with both signals ignored, before any code of theirs runs (and set it
again at their start, telephony.call.worker_stop, for any other start method).

Anywhere else (the worker, a test importing it) this module does nothing.
"""

from __future__ import annotations

import multiprocessing.forkserver
import signal
import sys

from telephony.call.worker_stop import STOP_SIGNALS


def imported_by_forkserver() -> bool:
    """Whether this import runs inside the forkserver's main loop (its module preloading)."""
    frame = sys._getframe()
    while frame is not None:
        if frame.f_code is multiprocessing.forkserver.main.__code__:
            return True
        frame = frame.f_back
    return False


if imported_by_forkserver():
    for sig in STOP_SIGNALS:
        signal.signal(sig, signal.SIG_IGN)
