"""A worker for the call-record tests that need real processes (tests/test_worker_records.py).

It is the product's worker (SupervisedServer, `worker_cli.keep_call_records`, the real
record saving), with one difference: offline there is no room to join, so its entrypoint
does what a call does first without one (the caller is known, the call answered, its record
written `in-progress` by the code CallJob.record_started runs), writes its PID to
TEST_JOB_PID_FILE and waits, so the test can kill the job process mid-call.

    PYTHONPATH=. python tests/record_worker.py start
"""

from __future__ import annotations

import asyncio
import math
import os
import sys
from pathlib import Path

from livekit.agents import JobContext

from telephony.call.call_context import CallContext
from telephony.call.recorder import recorder_for
from telephony.domain.settings import parse_settings, worker_options
from telephony.records.saving import save_in_progress_soon, save_record
from telephony.worker import worker_cli
from telephony.worker.worker_cli import SupervisedServer

AGENT_NAME = "record-test-agent"
CALLER = "+15105550123"

# One idle job process, and jobs accepted whatever the load of this shared test machine.
# The health check on IPv4 only: on all interfaces, port 0 gives IPv4 and IPv6 a port each,
# and the log names only one of them.
server = SupervisedServer(
    num_idle_processes=1, load_threshold=math.inf, host="127.0.0.1", **worker_options()
)


@server.on("worker_started")
def _on_worker_started() -> None:
    worker_cli.keep_call_records(server, parse_settings()[0])


async def save_call_record(ctx: JobContext) -> None:
    """What agent.save_call_record does for a job that ends normally."""
    await save_record(recorder_for(ctx).finish(), parse_settings()[0])


@server.rtc_session(agent_name=AGENT_NAME, on_session_end=save_call_record)
async def entrypoint(ctx: JobContext) -> None:
    recorder = recorder_for(ctx)
    context = CallContext(
        room_name=ctx.job.room.name,
        direction="inbound",
        participant_identity=f"sip_{CALLER}",
        remote_number=CALLER,
    )
    recorder.set_context(context)
    recorder.answered()
    await save_in_progress_soon(recorder.record, parse_settings()[0])
    await asyncio.to_thread(Path(os.environ["TEST_JOB_PID_FILE"]).write_text, str(os.getpid()))
    await asyncio.sleep(3600)  # the call goes on until the test kills this process


if __name__ == "__main__":
    worker_cli.run(server, sys.argv)
