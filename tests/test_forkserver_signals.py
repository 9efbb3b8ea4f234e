"""The worker's forkserver and the job processes it forks ignore a stop signal to the group.

Run in a process of its own (a forkserver is per process, and this one ignores SIGTERM): a
parent starts a forkserver that preloads what agent.py preloads for it, forks a "job
process" from it, and then SIGTERM reaches both, as a stop signal to the worker's process
group does. The job process must live on and its exit status must still reach the parent:
the forkserver reports it, so a dead forkserver makes every job process look dead (status
255) to the worker, which then ends its drain with the calls still running.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

import agent
from telephony.domain.paths import PROJECT_ROOT
from telephony.worker import forkserver_signals

PARENT = """
import json, multiprocessing, os, signal, sys
from multiprocessing import forkserver

def job(conn):
    conn.send([signal.getsignal(s) == signal.SIG_IGN for s in (signal.SIGTERM, signal.SIGINT)])
    conn.recv()  # until the parent says the signals were sent

if __name__ == "__main__":
    ctx = multiprocessing.get_context("forkserver")
    ctx.set_forkserver_preload(sys.argv[1:])
    parent_end, child_end = ctx.Pipe()
    proc = ctx.Process(target=job, args=(child_end,))
    proc.start()
    ignored = parent_end.recv()
    for pid in (forkserver._forkserver._forkserver_pid, proc.pid):
        os.kill(pid, signal.SIGTERM)
    parent_end.send("go on")
    proc.join(30)
    print(json.dumps({"ignored": ignored, "exit_code": proc.exitcode}))
"""


@pytest.mark.e2e  # starts Python three times: ~5 s
def test_a_stop_signal_to_the_group_spares_the_forkserver_and_its_job_processes(tmp_path: Path):
    assert "telephony.worker.forkserver_signals" in agent.PRELOAD_MODULES
    script = tmp_path / "parent.py"
    script.write_text(PARENT)
    done = subprocess.run(
        [sys.executable, str(script), "telephony.worker.forkserver_signals"],
        cwd=PROJECT_ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout.splitlines()[-1])
    assert result["ignored"] == [True, True]  # SIGTERM and SIGINT, from the first instruction
    assert result["exit_code"] == 0  # lived on, and the forkserver could still report it


def test_imported_anywhere_else_it_changes_nothing():
    assert not forkserver_signals.imported_by_forkserver()
