"""The phone agent: answers inbound calls and places outbound ones on LiveKit.

    uv run python agent.py dev          # run the worker against your LiveKit project
    uv run python agent.py console      # talk to it locally, no phone needed

This file puts the worker together: what each process loads once (prewarm), the worker
itself, and the entrypoint that hands each job to the call flows in telephony/worker/
(job.py decides, inbound.py answers, outbound.py dials, session.py builds the agent).
What the LLM may do is in tools/, the words in prompts/.
"""

from __future__ import annotations

import logging
import os
import sys

from telephony.worker.metrics_endpoint import metrics_environment

# With METRICS_PORT, before livekit.agents imports prometheus_client (see metrics_endpoint).
os.environ.update(metrics_environment())

from livekit.agents import JobContext, JobProcess

from telephony.call import models
from telephony.call.greeting_audio import GreetingAudioCache
from telephony.call.recorder import recorder_for
from telephony.call.turn_taking import phone_vad
from telephony.call.worker_stop import ignore_stop_signals
from telephony.domain.config import CallConfig, load_config
from telephony.domain.env_files import load_env_files
from telephony.domain.log_masking import install_phone_masking
from telephony.domain.settings import agent_name_from_env, parse_settings, worker_options
from telephony.records.saving import save_record
from telephony.records.webhook import start_background_delivery
from telephony.worker import worker_cli
from telephony.worker.job import run_job
from telephony.worker.metrics_endpoint import start_sweeping
from telephony.worker.session import CallWiring
from telephony.worker.worker_cli import SupervisedServer

load_env_files()
logger = logging.getLogger("agent")

# The phone worker's seams: its session, greeting, audio format and room (the defaults).
PHONE_WIRING = CallWiring()


def prewarm(proc: JobProcess) -> None:
    """Once per job process, before any call: nothing slow is left for the caller to wait on."""
    # First: a stop signal to the whole process group is the worker's to handle (it drains
    # the calls); the framework's own ignoring never runs under the forkserver.
    ignore_stop_signals()
    proc.userdata["vad"] = vad = phone_vad()
    proc.userdata["config"] = config = load_config()
    proc.userdata["greeting_audio"] = GreetingAudioCache(config.settings.greeting_audio_dir)
    models.warm_tls_context()
    # Used by this process's first call only (see CallJob.take_models).
    proc.userdata["models"] = models.prebuild(config.settings.models, vad)


# Imported once in the worker's forkserver, so every job process shares them copy-on-write
# instead of importing its own: this project's modules, and with them the call records'
# SQLAlchemy and Alembic (~35 MB a call in all). Everything imported above, so none is missed.
# Also what the openai SDK and the framework import on a call's first LLM request, which
# would otherwise stall the first answer (a module that is not there is skipped).
PRELOAD_MODULES = [
    *sorted(m for m in sys.modules if m.split(".")[0] in ("telephony", "tools")),
    # The forkserver ignores stop signals: they are the worker's (see the module).
    "telephony.worker.forkserver_signals",
    "anyio._backends._asyncio",
    "jiter",
    "openai.lib.streaming.chat",
    "openai.resources.audio.speech",
    "openai.resources.chat.completions.completions",
    "livekit.agents.llm.async_toolset",
]
server = SupervisedServer(setup_fnc=prewarm, preload_modules=PRELOAD_MODULES, **worker_options())


@server.on("worker_started")
def _on_worker_started() -> None:
    """In the worker process: mask numbers in logs, and retry queued webhooks."""
    # The worker's log handlers exist from here on; job processes forward their records here.
    settings = parse_settings()[0]
    install_phone_masking(settings.mask_phone_numbers)
    # Webhooks still queued (earlier runs, failed sends) are retried from the worker process.
    start_background_delivery(settings)


@server.on("worker_started")
def _keep_call_records() -> None:
    """In the worker process: complete the records of job processes that died, move records
    held in memory to disk, report them in the health check (telephony/records/recovery.py)."""
    worker_cli.keep_call_records(server, parse_settings()[0])


@server.on("worker_started")
def _sweep_metrics() -> None:
    """With METRICS_PORT: forget the calls in progress of job processes that died mid-call."""
    start_sweeping()


async def save_call_record(ctx: JobContext) -> None:
    """After every job, whatever its ending (the framework calls this even after a crash)."""
    recorder = recorder_for(ctx)
    record = recorder.finish(recorder.session.userdata if recorder.session else None)
    config: CallConfig = ctx.proc.userdata.get("config") or load_config()
    await save_record(record, config.settings)


@server.rtc_session(agent_name=agent_name_from_env(), on_session_end=save_call_record)
async def entrypoint(ctx: JobContext) -> None:
    """One job: a call to place or a caller to answer (telephony/worker/job.py)."""
    await run_job(ctx, PHONE_WIRING)


if __name__ == "__main__":
    worker_cli.run(server, sys.argv)
