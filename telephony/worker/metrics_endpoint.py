"""The worker's /metrics (METRICS_PORT): the framework's Prometheus endpoint, every process merged.

The framework serves /metrics on `prometheus_port` and merges the series of every process
that writes to the prometheus multiprocess directory (PROMETHEUS_MULTIPROC_DIR). But
prometheus_client decides once, when it is first imported, whether a process writes there,
and the framework sets the variable only when the worker starts, after livekit.agents (and
so prometheus_client) was imported: the worker process's own series (its load, the
webhook retries it runs) would be missing from the merge. So agent.py sets
`metrics_environment()` first thing, before importing livekit; the job processes inherit it.

Nothing here imports livekit or prometheus_client at module level, for that reason.
"""

from __future__ import annotations

import asyncio
import atexit
import contextlib
import glob
import logging
import os
import re
import shutil
import tempfile
from collections.abc import Mapping

from telephony.domain.env_files import load_env_files

logger = logging.getLogger("telephony.worker.metrics")

MULTIPROC_VARIABLE = "PROMETHEUS_MULTIPROC_DIR"
SWEEP_INTERVAL_SECONDS = 15.0
# A live gauge's file per process: gauge_livesum_<pid>.db (prometheus_client's naming).
_LIVE_GAUGE_FILE = re.compile(r"gauge_live\w+?_(\d+)\.db$")


def metrics_environment(environ: Mapping[str, str] | None = None) -> dict[str, str]:
    """The variables to set so that every process of this worker writes its series to one
    directory: {} when METRICS_PORT is not set (in the environment or the env files) or the
    directory is given already (PROMETHEUS_MULTIPROC_DIR); else a fresh directory, removed
    when this process exits. Job processes inherit it, so for them this returns {}."""
    if environ is None:
        load_env_files()  # METRICS_PORT may be in .env.local (agent.py reads them again)
        environ = os.environ
    if not environ.get("METRICS_PORT", "").strip() or environ.get(MULTIPROC_VARIABLE, "").strip():
        return {}
    path = tempfile.mkdtemp(prefix="telephony-metrics-")
    atexit.register(shutil.rmtree, path, ignore_errors=True)
    return {MULTIPROC_VARIABLE: path}


def sweep_dead_processes(path: str) -> int:
    """Drop the calls-in-progress gauges of job processes that are gone (a process that died
    mid-call never decremented its own); returns how many processes were swept."""
    from prometheus_client import multiprocess

    swept = set()
    for file in glob.glob(os.path.join(path, "gauge_live*_*.db")):
        match = _LIVE_GAUGE_FILE.search(os.path.basename(file))
        if match and not _alive(pid := int(match.group(1))):
            multiprocess.mark_process_dead(pid, path)
            swept.add(pid)
    return len(swept)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


# One reference per task: the event loop keeps only weak ones.
_tasks: set[asyncio.Task[None]] = set()


def start_sweeping(interval: float = SWEEP_INTERVAL_SECONDS) -> asyncio.Task[None] | None:
    """In the worker process, when metrics are on: sweep dead job processes now and then."""
    path = os.environ.get(MULTIPROC_VARIABLE)
    if not path:
        return None

    async def sweep_forever() -> None:
        while True:
            with contextlib.suppress(OSError):
                await asyncio.to_thread(sweep_dead_processes, path)
            await asyncio.sleep(interval)

    task = asyncio.get_running_loop().create_task(sweep_forever(), name="metrics-sweep")
    _tasks.add(task)
    task.add_done_callback(_tasks.discard)
    return task
