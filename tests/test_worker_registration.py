"""`python agent.py start` registers with LiveKit as the agent the dispatch rule names.

Inbound calls reach the worker only if the SIP dispatch rule's ``agentName`` equals the name
the worker registers with; a mismatch is the classic "the phone rings and no agent joins".
These tests run the real command as a subprocess against a local stand-in for livekit-server's
agent endpoint (tests/standins/worker_server.py) and check what goes over the wire: the
worker's websocket to ``/agent``, its token, its ``RegisterWorkerRequest``, and its answer to a
job offered for that name. No network beyond 127.0.0.1.

A worker started with ``start`` runs in production mode, which brings three things the tests
work around without touching the product:

* it serves a health check on 0.0.0.0:8081 unless WORKER_HTTP_PORT says otherwise; the tests
  set it to 0 (any free port), so they run beside each other and beside whatever else holds
  8081, and check that a taken port makes the worker exit non-zero.
* before connecting it pre-warms one job process per CPU (``prewarm`` loads the VAD and the
  config). There is no setting for that count short of ``NUM_CPUS``, which would also skew
  the CPU load the worker reports, so it is left alone.
* it reports itself full, and rejects jobs, while the CPU load is above 0.7; the stand-in
  re-offers a rejected job once the worker says it is available again, as livekit-server
  moves a job on from a worker that says no.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import socket
import sys
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from importlib.metadata import version

import aiohttp
import pytest
from google.protobuf import json_format
from livekit import api
from livekit.protocol import agent

from telephony.devtools.standins.worker_server import (
    ConnectionRejected,
    NoWorkerAvailable,
    RecordedRegistration,
    WorkerServerStandin,
)
from telephony.domain.settings import PROJECT_ROOT, SETTING_NAMES
from telephony.worker.worker_cli import EXIT_WORKER_FAILED

# Each test starts the worker as a process: slow, run with `pytest -m e2e`.
pytestmark = pytest.mark.e2e

DISPATCH_RULE = PROJECT_ROOT / "dispatch-rule.json"
DEFAULT_HEALTH_PORT = 8081  # where `start` serves its health check unless WORKER_HTTP_PORT is set
REGISTER_TIMEOUT = 30.0  # import ~2 s + pre-warm (waited on for at most 12 s) + connect
STOP_GRACE = 5.0  # an idle worker exits within a second of SIGTERM
# Not product settings, but read by the worker; emptied so the developer's shell or
# .env.local cannot redirect it (python-dotenv never overrides a variable already set,
# even to "", and the worker treats "" as unset).
WORKER_VARS = (
    "LIVEKIT_AGENT_NAME_OVERRIDE",  # beats the agent name given in code
    "LIVEKIT_WORKER_TOKEN",  # LiveKit Cloud hosted agents
    "LIVEKIT_AGENT_DEPLOYMENT",
    "HTTPS_PROXY",  # the worker sends its websocket through it, even to 127.0.0.1
    "HTTP_PROXY",
)
CALLER = "+15105550123"


def dispatch_rule_agent_names() -> list[str]:
    """The agent names dispatch-rule.json dispatches calls to, parsed as `lk` parses it."""
    request = json_format.ParseDict(
        json.loads(DISPATCH_RULE.read_text()), api.CreateSIPDispatchRuleRequest()
    )
    return [a.agent_name for a in request.dispatch_rule.room_config.agents]


# --------------------------------------------------------------------------- the worker


@dataclass
class WorkerRun:
    proc: asyncio.subprocess.Process
    started_at: float = field(default_factory=time.monotonic)
    output: list[str] = field(default_factory=list)

    def log(self, text: str) -> None:
        self.output.append(f"[{time.monotonic() - self.started_at:6.2f}s] {text}")

    async def registration(
        self, server: WorkerServerStandin, timeout: float = REGISTER_TIMEOUT
    ) -> RecordedRegistration:
        """The worker's registration; fails at once if the worker exits first."""
        registered = asyncio.ensure_future(server.wait_for_registration(timeout))
        exited = asyncio.ensure_future(self.proc.wait())
        try:
            await asyncio.wait({registered, exited}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in (registered, exited):
                task.cancel()
        if not registered.cancelled() and registered.done():
            self.log("registered")
            return registered.result()  # or TimeoutError
        pytest.fail(
            f"`agent.py start` exited with code {self.proc.returncode} before registering "
            "(its output is below)"
        )


def worker_env(server: WorkerServerStandin, **overrides: str) -> dict[str, str]:
    env = dict(os.environ)
    env.update(dict.fromkeys(SETTING_NAMES, ""))
    env.update(dict.fromkeys(WORKER_VARS, ""))
    env.update(
        LIVEKIT_URL=server.ws_url,
        LIVEKIT_API_KEY=server.api_key,
        LIVEKIT_API_SECRET=server.api_secret,
        OPENAI_API_KEY="test",
        DEEPGRAM_API_KEY="test",
        WORKER_HTTP_PORT="0",  # any free port: runs never collide
        PYTHONUNBUFFERED="1",
    )
    env.update(overrides)
    return env


@contextlib.asynccontextmanager
async def agent_start(
    server: WorkerServerStandin,
    *,
    stop_grace: float = STOP_GRACE,
    script: str = "agent.py",
    **env: str,
) -> AsyncIterator[WorkerRun]:
    """`python agent.py start` (or another `script`) as a subprocess pointed at ``server``;
    always stopped after.

    SIGTERM, then SIGKILL to the whole process group (the worker, its forkserver and its
    job processes) after ``stop_grace`` seconds. The output is printed, which pytest shows
    when the test fails.
    """
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        script,
        "start",
        cwd=PROJECT_ROOT,
        env=worker_env(server, **env),
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
        start_new_session=True,  # its own process group, so nothing it spawns outlives it
    )
    run = WorkerRun(proc)

    async def pump() -> None:
        assert proc.stdout is not None
        async for line in proc.stdout:
            run.log(line.decode(errors="replace").rstrip())

    pumping = asyncio.create_task(pump())
    try:
        yield run
    finally:
        if proc.returncode is None:
            run.log("test: SIGTERM")
            proc.send_signal(signal.SIGTERM)
            try:
                await asyncio.wait_for(proc.wait(), stop_grace)
            except TimeoutError:
                run.log(f"test: still running {stop_grace:g}s after SIGTERM; SIGKILL")
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        await proc.wait()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(pumping, 5)
        run.log(f"test: exit code {proc.returncode}")
        print(f"----- `agent.py start` output, LIVEKIT_URL={server.ws_url} -----")
        print("\n".join(run.output))


@pytest.fixture
async def worker_server() -> AsyncIterator[WorkerServerStandin]:
    async with WorkerServerStandin() as server:
        yield server


# --------------------------------------------------------------------------- the tests


async def test_start_registers_as_the_dispatch_rule_agent_and_accepts_its_jobs(
    worker_server: WorkerServerStandin,
):
    """The worker registers, with a token holding the agent grant, as an explicitly named
    room agent whose name is the rule's ``agentName``, and accepts a call offered to it."""
    [rule_agent] = dispatch_rule_agent_names()
    assert rule_agent == "my-telephony-agent"

    # Accepting a job leaves the worker waiting 7.5 s for an assignment that never comes,
    # and a SIGTERM drains that wait first: kill it soon after instead.
    async with agent_start(worker_server, stop_grace=1.0) as worker:
        registration = await worker.registration(worker_server)

        assert registration.agent_name == rule_agent
        assert registration.job_type == agent.JobType.JT_ROOM
        assert registration.namespace == ""
        assert registration.version == version("livekit-agents")
        assert registration.allowed_permissions.agent
        # The websocket's bearer token verified against our key and secret and carried the
        # agent grant livekit-server requires of workers.
        assert registration.has_agent_grant
        assert registration.claims.video is not None
        assert not registration.claims.video.room_join
        assert registration.path == "/agent"
        assert worker_server.rejected == []

        answer = await worker_server.dispatch_job(
            rule_agent,
            room_name=f"call-_{CALLER}_Xy7Qk2",
            metadata=json.dumps({"phone_number": CALLER}),
        )
        worker.log(
            f"offered {len(worker_server.offers)}x, {worker_server.describe_workers()}: "
            f"{json_format.MessageToDict(answer)}"
        )
        assert answer.available, (
            f"the worker rejected the job {len(worker_server.offers)}x (a production worker "
            f"also does so while CPU load > 0.7; {worker_server.describe_workers()})"
        )
        assert not answer.terminate
        assert answer.job_id == worker_server.offers[-1].request.job.id
        assert answer.participant_identity  # who will join the room
        assert answer.participant_attributes["lk.agent.name"] == rule_agent


async def test_agent_name_setting_renames_the_worker_so_the_rule_must_follow(
    worker_server: WorkerServerStandin,
):
    """LIVEKIT_AGENT_NAME=front-desk registers the worker as "front-desk".

    Whoever renames the agent must rename ``agentName`` in dispatch-rule.json (and update the
    rule in LiveKit) to match, or inbound calls are dispatched to a name no worker serves.
    """
    async with agent_start(worker_server, LIVEKIT_AGENT_NAME="front-desk") as worker:
        registration = await worker.registration(worker_server)

        assert registration.agent_name == "front-desk"
        assert registration.job_type == agent.JobType.JT_ROOM
        assert registration.has_agent_grant
        # The unchanged rule now names an agent nobody serves.
        [rule_agent] = dispatch_rule_agent_names()
        with pytest.raises(NoWorkerAvailable):
            await worker_server.offer_job(rule_agent, room_name=f"call-_{CALLER}_Xy7Qk2")


async def test_two_workers_register_on_one_host_while_8081_is_taken(
    worker_server: WorkerServerStandin,
):
    with held_port(DEFAULT_HEALTH_PORT, required=False):
        async with (
            agent_start(worker_server, LIVEKIT_AGENT_NAME="first") as first,
            agent_start(worker_server, LIVEKIT_AGENT_NAME="second") as second,
        ):
            for name in ("first", "second"):
                await worker_server.wait_for_registration(REGISTER_TIMEOUT, agent_name=name)
            assert first.proc.returncode is None and second.proc.returncode is None
    assert {r.agent_name for r in worker_server.registrations} == {"first", "second"}


async def test_worker_exits_non_zero_when_its_health_port_is_taken(
    worker_server: WorkerServerStandin,
):
    with held_port(0) as port:
        async with agent_start(worker_server, WORKER_HTTP_PORT=str(port)) as worker:
            code = await asyncio.wait_for(worker.proc.wait(), REGISTER_TIMEOUT)
    assert code == EXIT_WORKER_FAILED
    assert worker_server.registrations == []
    assert any("address already in use" in line for line in worker.output)
    assert any("The agent stopped because the worker failed" in line for line in worker.output)


async def test_worker_exits_non_zero_when_livekit_cannot_be_reached(
    worker_server: WorkerServerStandin,
):
    with socket.socket() as probe:  # a port nothing listens on: connections are refused
        probe.bind(("127.0.0.1", 0))
        closed = probe.getsockname()[1]
    unreachable = {"LIVEKIT_URL": f"ws://127.0.0.1:{closed}", "WORKER_CONNECT_RETRIES": "1"}
    async with agent_start(worker_server, **unreachable) as worker:
        code = await asyncio.wait_for(worker.proc.wait(), REGISTER_TIMEOUT)
    assert code == EXIT_WORKER_FAILED
    assert any("failed to connect to livekit after 1 attempts" in line for line in worker.output)


async def test_a_stopped_worker_exits_zero(worker_server: WorkerServerStandin):
    async with agent_start(worker_server) as worker:
        await worker.registration(worker_server)
        worker.proc.send_signal(signal.SIGTERM)
        code = await asyncio.wait_for(worker.proc.wait(), STOP_GRACE)
    assert code == 0


@contextlib.contextmanager
def held_port(port: int, *, required: bool = True) -> Iterator[int]:
    """A port another program holds (0: any free one), listening unless asked not to."""
    with socket.socket() as holder:
        holder.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            holder.bind(("", port))
        except OSError:
            if required:
                raise
            yield port  # something else holds it already: just as good
            return
        holder.listen()
        yield holder.getsockname()[1]


# --------------------------------------------------------------------------- the stand-in
# Fast checks, with a scripted worker, of the stand-in behaviour the tests above rely on but
# a healthy worker rarely exercises.


def worker_token(server: WorkerServerStandin, grants: api.VideoGrants) -> str:
    return api.AccessToken(server.api_key, server.api_secret).with_grants(grants).to_jwt()


async def test_standin_refuses_a_worker_token_without_the_agent_grant(
    worker_server: WorkerServerStandin,
):
    token = worker_token(worker_server, api.VideoGrants(room_list=True))
    waiting = asyncio.create_task(worker_server.wait_for_registration(timeout=5))
    async with aiohttp.ClientSession() as http:
        with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
            await http.ws_connect(
                f"{worker_server.ws_url}/agent", headers={"Authorization": f"Bearer {token}"}
            )
    assert refused.value.status == 401
    # A test waiting for the worker to register hears of it at once.
    with pytest.raises(ConnectionRejected, match="no agent grant"):
        await waiting
    assert worker_server.registrations == []


async def test_standin_offers_a_rejected_job_again_once_the_worker_is_available(
    worker_server: WorkerServerStandin,
):
    token = worker_token(worker_server, api.VideoGrants(agent=True))
    async with (
        aiohttp.ClientSession() as http,
        http.ws_connect(
            f"{worker_server.ws_url}/agent", headers={"Authorization": f"Bearer {token}"}
        ) as ws,
    ):
        register = agent.RegisterWorkerRequest(type=agent.JobType.JT_ROOM, agent_name="busy")
        await ws.send_bytes(agent.WorkerMessage(register=register).SerializeToString())
        reply = agent.ServerMessage.FromString(await ws.receive_bytes())
        assert reply.register.worker_id.startswith("AW_")

        async def busy_then_free() -> None:
            for available in (False, True):
                offer = agent.ServerMessage.FromString(await ws.receive_bytes())
                answer = agent.AvailabilityResponse(
                    job_id=offer.availability.job.id, available=available
                )
                await ws.send_bytes(agent.WorkerMessage(availability=answer).SerializeToString())
                status = agent.UpdateWorkerStatus(status=agent.WorkerStatus.WS_AVAILABLE)
                await ws.send_bytes(agent.WorkerMessage(update_worker=status).SerializeToString())

        worker = asyncio.create_task(busy_then_free())
        answer = await worker_server.dispatch_job("busy", "call-1", timeout=5)
        await worker

    assert answer.available
    assert [offer.response.available for offer in worker_server.offers if offer.response] == [
        False,
        True,
    ]


async def test_worker_logs_never_show_the_callers_number(worker_server: WorkerServerStandin):
    """The worker logs each job request with its room name, which an individual dispatch
    rule builds from the caller's number: with MASK_PHONE_NUMBERS on (the default), the
    number never reaches the log in full."""
    [rule_agent] = dispatch_rule_agent_names()
    async with agent_start(worker_server, stop_grace=1.0) as worker:
        await worker.registration(worker_server)
        await worker_server.dispatch_job(rule_agent, room_name=f"call-_{CALLER}_Xy7Qk2")
        await asyncio.sleep(1.0)  # let the job-request log line through
        logged = "\n".join(worker.output)
    assert "received job request" in logged
    assert "call-_+1********23_Xy7Qk2" in logged
    assert CALLER not in logged
