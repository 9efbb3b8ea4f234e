"""A local stand-in for the LiveKit server's agent-worker endpoint, on the real wire protocol.

An agent worker (``python agent.py start``) talks to it exactly as it talks to livekit-server:

* it opens a websocket to ``{LIVEKIT_URL}/agent`` (``ws://127.0.0.1:PORT/agent``) with an
  ``Authorization: Bearer <JWT>`` header; the token is HS256-signed with the API secret, issued
  by the API key, and carries the ``video.agent`` grant. livekit-server answers 401 to a token
  without that grant, and so does this stand-in. (livekit-server also reads an optional
  ``protocol`` query parameter; livekit-agents 1.x sends none, which means protocol 1.)
* every frame is a binary protobuf: the worker sends ``agent.WorkerMessage`` and reads
  ``agent.ServerMessage``.
* the first worker message is ``register`` (``RegisterWorkerRequest``: job type, agent name,
  version, namespace, allowed permissions); the server answers ``RegisterWorkerResponse``
  with a worker id and ``ServerInfo``. The worker treats anything else as a failed connect.
* afterwards the worker sends ``update_worker`` (status and load, every 2.5 s) and, when it
  has jobs, ``update_job``; the server offers a job with ``availability``
  (``AvailabilityRequest``) and the worker answers ``availability``
  (``AvailabilityResponse``: accept or reject). On an accept the real server then sends
  ``assignment`` (a ``JobAssignment`` with a room token) and the worker launches the job in a
  process that joins the room over WebRTC.

``dispatch_job`` stops before the assignment: a job process would try to join a real room,
which cannot work offline. A worker that accepted logs "assignment for job ... timed out"
7.5 s later, which is harmless, but a SIGTERM in those 7.5 s waits for that time-out before
the worker exits (a production-mode worker drains pending jobs first). ``assign_job`` goes
on to send the assignment, for a worker whose entrypoint does not connect to the room (a
test's); the worker then runs the job in a job process, as in production. Given a
``LiveKitServerStandin`` as ``server_api``, the stand-in also answers the server API
(``/twirp/...``) on its port, as livekit-server does, so a job's ``ctx.api`` reaches it.

As on livekit-server, a ``WorkerPing`` is answered with a ``WorkerPong``; livekit-agents 1.x
sends none and relies on websocket-level heartbeats (every 30 s), which aiohttp answers.

Usage::

    async with WorkerServerStandin() as server:
        # start the worker with LIVEKIT_URL=server.ws_url, LIVEKIT_API_KEY/SECRET=server.api_*
        registration = await server.wait_for_registration(timeout=15)
        answer = await server.dispatch_job(registration.agent_name, "call-1", metadata="{}")
        assert answer.available  # offer_job() makes a single offer instead
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TypeVar

from aiohttp import WSMsgType, web
from google.protobuf import json_format
from google.protobuf.message import DecodeError
from livekit import api
from livekit.api.access_token import Claims  # not re-exported by livekit.api
from livekit.protocol import agent, models

from telephony.devtools.standins.livekit_server import LiveKitServerStandin
from telephony.devtools.standins.local_server import LocalServer

logger = logging.getLogger(__name__)

DEFAULT_API_KEY = "devkey"
# Same as tests/standins/livekit_server.py (PyJWT warns about HS256 secrets under 32 bytes).
DEFAULT_API_SECRET = "a-secret-at-least-32-characters-long!!"
AGENT_PATH = "/agent"
# livekit-server waits this long for a worker's AvailabilityResponse (AssignJobTimeout).
AVAILABILITY_TIMEOUT = 10.0
SHUTDOWN_TIMEOUT = 0.5
CURRENT_PROTOCOL = 1  # the agent protocol livekit-server assumes when none is given

T = TypeVar("T")


def _guid(prefix: str) -> str:
    """An id shaped like livekit-server's (``AW_``, ``AJ_``, ``RM_`` ... + 12 characters)."""
    return prefix + secrets.token_hex(6)


class NoWorkerAvailable(LookupError):
    """No registered worker serves this agent name (livekit-server: "no workers available")."""


class ConnectionRejected(Exception):
    """A worker's websocket request failed authentication (see ``rejected``)."""

    def __init__(self, rejection: RejectedConnection) -> None:
        super().__init__(f"worker connection rejected: {rejection.status} {rejection.reason}")
        self.rejection = rejection


@dataclass(frozen=True)
class RecordedRegistration:
    """One worker that connected, authenticated and registered."""

    worker_id: str
    request: agent.RegisterWorkerRequest
    claims: Claims  # the verified connection token
    api_key: str  # the token's issuer
    protocol: int  # the ``protocol`` query parameter, or CURRENT_PROTOCOL
    path: str
    received_at: float  # time.monotonic()

    @property
    def agent_name(self) -> str:
        return self.request.agent_name

    @property
    def job_type(self) -> agent.JobType.ValueType:
        return self.request.type

    @property
    def version(self) -> str:
        return self.request.version

    @property
    def namespace(self) -> str:
        return self.request.namespace

    @property
    def allowed_permissions(self) -> models.ParticipantPermission:
        return self.request.allowed_permissions

    @property
    def has_agent_grant(self) -> bool:
        return bool(self.claims.video and self.claims.video.agent)


@dataclass(frozen=True)
class RecordedOffer:
    """A job offered to a worker and the worker's answer (None if it never answered)."""

    worker_id: str
    request: agent.AvailabilityRequest
    response: agent.AvailabilityResponse | None
    response_index: int | None  # where the answer sits in WorkerServerStandin.messages


@dataclass(frozen=True)
class RejectedConnection:
    """A request refused before the websocket opened: wrong path, or failed authentication."""

    status: int
    reason: str
    path: str


@dataclass
class _Worker:
    """A connected websocket, registered or not yet."""

    ws: web.WebSocketResponse
    claims: Claims
    registration: RecordedRegistration | None = None
    status: agent.WorkerStatus.ValueType = agent.WorkerStatus.WS_AVAILABLE
    load: float = 0.0
    # job id -> index of the worker's answer in WorkerServerStandin.messages
    pending: dict[str, asyncio.Future[int]] = field(default_factory=dict)


class WorkerServerStandin(LocalServer):
    """The ``/agent`` websocket of livekit-server, enough to register and offer jobs."""

    shutdown_timeout = SHUTDOWN_TIMEOUT

    def __init__(
        self,
        api_key: str = DEFAULT_API_KEY,
        api_secret: str = DEFAULT_API_SECRET,
        *,
        server_api: LiveKitServerStandin | None = None,
    ) -> None:
        self.api_key = api_key
        self.api_secret = api_secret
        self.server_api = server_api
        self._verifier = api.TokenVerifier(api_key, api_secret)
        self.server_info = models.ServerInfo(
            edition=models.ServerInfo.Standard,
            version="0.0.0-standin",
            protocol=16,
            agent_protocol=CURRENT_PROTOCOL,
            region="standin",
            node_id=_guid("ND_"),
        )
        self.registrations: list[RecordedRegistration] = []
        self.offers: list[RecordedOffer] = []
        self.rejected: list[RejectedConnection] = []
        # Every WorkerMessage after the registration, in arrival order (update_worker, ...),
        # with the id of the worker that sent it.
        self.messages: list[tuple[str, agent.WorkerMessage]] = []
        self._workers: list[_Worker] = []
        self._changed = asyncio.Condition()

    # -- lifecycle

    def _make_app(self) -> web.Application:
        app = web.Application()
        if self.server_api is not None:
            app.router.add_post("/twirp/{tail:.*}", self.server_api.handle)
        app.router.add_get("/{tail:.*}", self._handle)
        return app

    async def _before_cleanup(self) -> None:
        for worker in list(self._workers):
            for fut in worker.pending.values():
                if not fut.done():
                    fut.set_exception(ConnectionError("the stand-in stopped"))
            with contextlib.suppress(Exception):
                await asyncio.wait_for(worker.ws.close(), SHUTDOWN_TIMEOUT)

    @property
    def ws_url(self) -> str:
        """ws://127.0.0.1:PORT, the LIVEKIT_URL to give the worker."""
        return f"ws://127.0.0.1:{self.port}"

    # -- what tests wait on and do

    async def wait_for_registration(
        self, timeout: float = 15.0, *, agent_name: str | None = None
    ) -> RecordedRegistration:
        """The first registration (of ``agent_name``, if given) that is still connected.

        Raises ConnectionRejected as soon as a connection is refused instead (wrong path or
        failed authentication): a worker only retries, for minutes, with the same request.
        """
        rejected_before = len(self.rejected)

        def found() -> RecordedRegistration | RejectedConnection | None:
            if registration := self._registered(agent_name):
                return registration
            return self.rejected[-1] if len(self.rejected) > rejected_before else None

        result = await self._wait_for(found, timeout, "registration")
        if isinstance(result, RejectedConnection):
            raise ConnectionRejected(result)
        return result

    async def wait_for_status(
        self,
        agent_name: str,
        status: agent.WorkerStatus.ValueType = agent.WorkerStatus.WS_AVAILABLE,
        timeout: float = 10.0,
        *,
        after: int | None = None,
    ) -> agent.UpdateWorkerStatus:
        """The next ``update_worker`` from a worker of ``agent_name`` reporting ``status``.

        "Next" counts from ``messages[after]`` (default: from now on).
        """
        seen = len(self.messages) if after is None else after

        def found() -> agent.UpdateWorkerStatus | None:
            for worker_id, msg in self.messages[seen:]:
                worker = self._worker_by_id(worker_id)
                if (
                    worker is not None
                    and worker.registration is not None
                    and worker.registration.agent_name == agent_name
                    and msg.WhichOneof("message") == "update_worker"
                    and msg.update_worker.status == status
                ):
                    return msg.update_worker
            return None

        return await self._wait_for(
            found, timeout, f"worker status {agent.WorkerStatus.Name(status)}"
        )

    async def offer_job(
        self,
        agent_name: str,
        room_name: str,
        metadata: str = "",
        *,
        job_id: str | None = None,
        timeout: float = AVAILABILITY_TIMEOUT,
    ) -> agent.AvailabilityResponse:
        """Offer a room job to a registered worker of ``agent_name``; the worker's answer.

        Picks a worker the way livekit-server does: same agent name, JT_ROOM, the default
        namespace, last reported status WS_AVAILABLE. Raises NoWorkerAvailable if there is
        none and TimeoutError if the worker does not answer within ``timeout``. Never sends
        the assignment (see the module docstring).
        """
        worker = self._pick(agent_name)
        if worker is None:
            raise NoWorkerAvailable(
                f"no available worker registered as {agent_name!r} ({self.describe_workers()})"
            )
        assert worker.registration is not None
        now_ns = time.time_ns()
        job = agent.Job(
            id=job_id or _guid("AJ_"),
            dispatch_id=_guid("AD_"),
            type=agent.JobType.JT_ROOM,
            room=models.Room(
                sid=_guid("RM_"),
                name=room_name,
                creation_time=now_ns // 1_000_000_000,
                creation_time_ms=now_ns // 1_000_000,
            ),
            agent_name=agent_name,
            metadata=metadata,
            state=agent.JobState(
                status=agent.JobStatus.JS_RUNNING,
                worker_id=worker.registration.worker_id,
                started_at=now_ns,
                updated_at=now_ns,
            ),
        )
        request = agent.AvailabilityRequest(job=job)
        fut: asyncio.Future[int] = asyncio.get_running_loop().create_future()
        worker.pending[job.id] = fut
        index: int | None = None
        response: agent.AvailabilityResponse | None = None
        try:
            await self._send(worker, agent.ServerMessage(availability=request))
            index = await asyncio.wait_for(fut, timeout)
            response = self.messages[index][1].availability
            return response
        finally:
            worker.pending.pop(job.id, None)
            self.offers.append(
                RecordedOffer(worker.registration.worker_id, request, response, index)
            )

    async def dispatch_job(
        self,
        agent_name: str,
        room_name: str,
        metadata: str = "",
        *,
        timeout: float = 15.0,
    ) -> agent.AvailabilityResponse:
        """Offer a job until a worker of ``agent_name`` accepts it, as livekit-server does.

        The server only offers to workers whose last ``update_worker`` said WS_AVAILABLE and
        moves on when a worker answers ``available=False``; with a single worker that means
        waiting for it to report WS_AVAILABLE again and offering once more. This matters
        because a worker started with ``start`` reports itself full and rejects jobs while the
        CPU load of its machine (or container), not just its own, is above 0.7. Returns the
        accepting answer, or the last rejection (``terminate=True`` ends it at once) when
        ``timeout`` runs out. Every attempt is recorded in ``offers``.
        """
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        job_id = _guid("AJ_")
        while True:
            try:
                await self._wait_for(
                    lambda: self._pick(agent_name),
                    max(deadline - loop.time(), 0.0),
                    f"available worker registered as {agent_name!r}",
                )
            except TimeoutError as e:
                raise TimeoutError(f"{e} ({self.describe_workers()})") from None
            answer = await self.offer_job(
                agent_name,
                room_name,
                metadata,
                job_id=job_id,
                timeout=max(deadline - loop.time(), 0.1),
            )
            if answer.available or answer.terminate or loop.time() >= deadline:
                return answer
            answered_at = self.offers[-1].response_index
            assert answered_at is not None
            try:
                # A status report sent after the rejection, not one that was already stale.
                await self.wait_for_status(
                    agent_name, timeout=max(deadline - loop.time(), 0.0), after=answered_at + 1
                )
            except TimeoutError:
                return answer

    async def assign_job(
        self, agent_name: str, room_name: str, metadata: str = "", *, timeout: float = 15.0
    ) -> agent.AvailabilityResponse:
        """``dispatch_job``, then, once a worker accepted, the assignment livekit-server
        sends (``send_assignment``)."""
        answer = await self.dispatch_job(agent_name, room_name, metadata, timeout=timeout)
        if answer.available:
            await self.send_assignment(answer.job_id)
        return answer

    async def send_assignment(self, job_id: str) -> None:
        """Send the assignment of a job a worker accepted: the job and a token to join its
        room as the identity the worker chose, as livekit-server does; the worker then
        launches the job in a job process."""
        offer = next(
            o
            for o in reversed(self.offers)
            if o.request.job.id == job_id and o.response is not None and o.response.available
        )
        worker = self._worker_by_id(offer.worker_id)
        if worker is None:
            raise NoWorkerAvailable(f"the worker that accepted job {job_id} has gone")
        room = offer.request.job.room.name
        token = (
            api.AccessToken(self.api_key, self.api_secret)
            .with_identity(offer.response.participant_identity or f"agent-{job_id}")
            .with_kind("agent")
            .with_grants(api.VideoGrants(room_join=True, room=room, agent=True))
            .to_jwt()
        )
        assignment = agent.JobAssignment(job=offer.request.job, token=token)
        await self._send(worker, agent.ServerMessage(assignment=assignment))

    def describe_workers(self) -> str:
        """The connected workers' names, last reported status and load, for error messages."""
        described = [
            f"{w.registration.agent_name!r}: {agent.WorkerStatus.Name(w.status)}, load {w.load:.2f}"
            for w in self._workers
            if w.registration is not None
        ]
        return "workers: " + ("; ".join(described) or "none")

    # -- the websocket

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        if request.path.rstrip("/") != AGENT_PATH:
            return await self._reject(request, 404, "not found")
        if request.headers.get("Upgrade", "").lower() != "websocket":
            return await self._reject(request, 404, "not a websocket upgrade")

        auth = request.headers.get("Authorization", "")
        token = auth.removeprefix("Bearer ").strip() if auth.startswith("Bearer ") else ""
        token = token or request.query.get("access_token", "")
        if not token:
            return await self._reject(request, 401, "no authorization token")
        try:
            claims = self._verifier.verify(token)
        except Exception as e:  # any JWT failure: bad signature, issuer, expiry, format
            return await self._reject(request, 401, f"invalid token: {e}")
        if not (claims.video and claims.video.agent):
            return await self._reject(request, 401, "permissions denied: no agent grant")
        try:
            protocol = int(request.query.get("protocol", CURRENT_PROTOCOL))
        except ValueError:
            protocol = CURRENT_PROTOCOL

        ws = web.WebSocketResponse(autoping=True)
        await ws.prepare(request)
        worker = _Worker(ws=ws, claims=claims)
        self._workers.append(worker)
        try:
            async for frame in ws:
                if frame.type == WSMsgType.BINARY:
                    msg = agent.WorkerMessage()
                    try:
                        msg.ParseFromString(frame.data)
                    except DecodeError:
                        logger.warning("undecodable worker message; closing")
                        break
                elif frame.type == WSMsgType.TEXT:  # livekit-server also takes protojson
                    try:
                        msg = json_format.Parse(frame.data, agent.WorkerMessage())
                    except json_format.ParseError:
                        logger.warning("undecodable worker message; closing")
                        break
                else:
                    continue
                if not await self._on_message(worker, msg, request, protocol):
                    break
        finally:
            self._workers.remove(worker)
            for fut in worker.pending.values():
                if not fut.done():
                    fut.set_exception(ConnectionError("worker disconnected"))
            await self._notify()
        return ws

    async def _on_message(
        self, worker: _Worker, msg: agent.WorkerMessage, request: web.Request, protocol: int
    ) -> bool:
        """Handle one worker message; False closes the connection."""
        which = msg.WhichOneof("message")
        if which == "ping":
            pong = agent.WorkerPong(
                last_timestamp=msg.ping.timestamp, timestamp=int(time.time() * 1000)
            )
            await self._send(worker, agent.ServerMessage(pong=pong))
            if worker.registration is not None:
                self.messages.append((worker.registration.worker_id, msg))
            return True
        if worker.registration is None:
            if which != "register":
                logger.warning("worker sent %s before registering; closing", which)
                return False
            if msg.register.type not in agent.JobType.values():
                logger.warning("unknown job type %s; closing", msg.register.type)
                return False
            registration = RecordedRegistration(
                worker_id=_guid("AW_"),
                request=msg.register,
                claims=worker.claims,
                api_key=self.api_key,
                protocol=protocol,
                path=request.path,
                received_at=time.monotonic(),
            )
            worker.registration = registration
            self.registrations.append(registration)
            response = agent.RegisterWorkerResponse(
                worker_id=registration.worker_id, server_info=self.server_info
            )
            await self._send(worker, agent.ServerMessage(register=response))
            await self._notify()
            return True

        self.messages.append((worker.registration.worker_id, msg))
        if which == "update_worker":
            if msg.update_worker.HasField("status"):
                worker.status = msg.update_worker.status
            worker.load = msg.update_worker.load
        elif which == "availability":
            fut = worker.pending.get(msg.availability.job_id)
            if fut is not None and not fut.done():
                fut.set_result(len(self.messages) - 1)
            else:
                logger.warning("availability for unknown job %s", msg.availability.job_id)
        elif which == "register":
            logger.warning("worker registered twice; ignored")
        await self._notify()
        return True

    async def _send(self, worker: _Worker, msg: agent.ServerMessage) -> None:
        await worker.ws.send_bytes(msg.SerializeToString())

    async def _reject(self, request: web.Request, status: int, reason: str) -> web.Response:
        self.rejected.append(RejectedConnection(status, reason, request.path))
        await self._notify()
        return web.Response(status=status, text=reason)

    # -- helpers

    def _registered_all(self) -> list[RecordedRegistration]:
        return [w.registration for w in self._workers if w.registration is not None]

    def _registered(self, agent_name: str | None) -> RecordedRegistration | None:
        for registration in self._registered_all():
            if agent_name is None or registration.agent_name == agent_name:
                return registration
        return None

    def _worker_by_id(self, worker_id: str) -> _Worker | None:
        for worker in self._workers:
            if worker.registration and worker.registration.worker_id == worker_id:
                return worker
        return None

    def _pick(self, agent_name: str) -> _Worker | None:
        for worker in self._workers:
            reg = worker.registration
            if (
                reg is not None
                and reg.agent_name == agent_name
                and reg.job_type == agent.JobType.JT_ROOM
                and reg.namespace == ""
                and worker.status == agent.WorkerStatus.WS_AVAILABLE
            ):
                return worker
        return None

    async def _notify(self) -> None:
        async with self._changed:
            self._changed.notify_all()

    async def _wait_for(self, found: Callable[[], T | None], timeout: float, what: str) -> T:
        if (result := found()) is not None:
            return result

        async def wait() -> T:
            async with self._changed:
                while (result := found()) is None:
                    await self._changed.wait()
                return result

        try:
            return await asyncio.wait_for(wait(), timeout)
        except TimeoutError:
            raise TimeoutError(f"no {what} within {timeout:.1f}s") from None
