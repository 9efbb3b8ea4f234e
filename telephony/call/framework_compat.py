"""Every use of LiveKit internals (names starting with `_`), in one place.

Written for livekit-agents 1.8 (pyproject pins the series). The project reaches past the
public API only where the framework offers no public way; each such use is a function or
class here, and `PRIVATE_NAMES` lists every internal name they rely on, so that
tests/test_framework_compat.py fails loudly, naming what moved, on a version this module
was not written for. Upgrading livekit-agents: run that test first, then fix this module.
"""

from __future__ import annotations

import contextlib
import inspect
import logging
from collections.abc import Awaitable, Callable, Iterable
from typing import Any

from aiohttp import web
from livekit import rtc
from livekit.agents import AgentServer, AgentSession, JobContext, ToolError, llm, stt, tts
from livekit.agents import __version__ as AGENTS_VERSION
from livekit.agents.beta.workflows import WarmTransferTask
from livekit.agents.utils import http_context
from livekit.plugins import deepgram, openai

logger = logging.getLogger("telephony.call.framework_compat")

# The livekit-agents release series this module was written and tested for.
SUPPORTED_SERIES = "1.8"

# Owner -> the internal names used on it (attributes set in __init__ count).
PRIVATE_NAMES: dict[type | object, tuple[str, ...]] = {
    http_context: ("_create_ssl_context",),
    AgentServer: (
        "_session_end_fnc",
        "_preload_modules",
        "_agent_name",
        "_proc_pool",
        "_http_server",
    ),
    AgentSession: ("_activity",),
    JobContext: ("_on_shutdown",),
    WarmTransferTask: (
        "_set_result",
        "_merge_calls",
        "_background_audio",
        "_hold_audio_handle",
        "_human_agent_sess",
        "_dial_human_agent",
    ),
    rtc.Room: ("_info", "_remote_participants", "_local_participant"),
    rtc.Participant: ("_info",),
    openai.LLM: ("_client",),
    openai.TTS: ("_client",),
    openai.STT: ("_client",),
    deepgram.STT: ("_opts",),
    deepgram.TTS: ("_opts",),
    llm.FallbackAdapter: ("_llm_instances", "_status"),
    tts.FallbackAdapter: ("_tts_instances", "_status"),
    stt.FallbackAdapter: ("_stt_instances",),
}


def supported_version(version: str = AGENTS_VERSION) -> bool:
    return version == SUPPORTED_SERIES or version.startswith(f"{SUPPORTED_SERIES}.")


# -------------------------------------------------------------------- the worker


def build_tls_context_ahead() -> None:
    """Build the TLS context of the job's shared HTTP session now, not on the first request
    of the call (it parses the whole CA bundle, ~80 ms of CPU on the event loop)."""
    create = getattr(http_context, "_create_ssl_context", None)
    if create is not None:
        try:
            create()
        except Exception as e:  # a broken CA setup is reported by the first real use
            logger.debug("could not build the TLS context ahead: %s", e)


def session_end_callback(server: AgentServer) -> Callable[[JobContext], Awaitable[None]] | None:
    """The `on_session_end` callback registered with `@server.rtc_session`."""
    return getattr(server, "_session_end_fnc", None)


def preload_modules(server: AgentServer) -> list[str]:
    return list(getattr(server, "_preload_modules", None) or [])


def registered_agent_name(server: AgentServer) -> str:
    """The agent name the server registers with (after LIVEKIT_AGENT_NAME_OVERRIDE)."""
    return str(getattr(server, "_agent_name", ""))


def running_job_pids(server: AgentServer) -> list[int]:
    """The process ids of the server's job processes that are running a job (a stopping
    worker tells each to cut its call)."""
    pool = getattr(server, "_proc_pool", None)
    processes = pool.processes if pool is not None else []
    # A thread executor (no process of its own) has no pid: nothing to signal.
    pids = [getattr(p, "pid", None) for p in processes if p.running_job is not None]
    return [pid for pid in pids if pid is not None]


def on_job_shutdown(ctx: JobContext, hook: Callable[[str], None]) -> None:
    """Call `hook(reason)` instead of the worker's own handler when the job shuts down
    (a job run outside a worker, in tests and the benchmark)."""
    ctx._on_shutdown = hook  # type: ignore[attr-defined]


# -------------------------------------------------------------------- the session


def current_activity(session: AgentSession) -> Any | None:
    """The running agent activity, whose options are the agent's over the session's."""
    return getattr(session, "_activity", None)


def vad_min_silence(vad: Any) -> float | None:
    """The VAD's end-of-speech silence, from its property or (silero's VAD) its options."""
    silence = getattr(vad, "min_silence_duration", None)
    if silence is None:
        silence = getattr(getattr(vad, "_opts", None), "min_silence_duration", None)
    return silence


def openai_client(model: openai.LLM | openai.TTS | openai.STT) -> Any:
    """The OpenAI SDK client an OpenAI plugin model calls through."""
    return model._client


def adapter_instances(model: Any) -> list[Any]:
    """The models a fallback adapter tries, in order; a model alone is a list of one."""
    if isinstance(model, llm.FallbackAdapter):
        return list(model._llm_instances)
    if isinstance(model, tts.FallbackAdapter):
        return list(model._tts_instances)
    if isinstance(model, stt.FallbackAdapter):
        return list(model._stt_instances)
    return [model]


def serving(model: Any, instance: Any) -> bool:
    """Whether `instance` answers requests of the fallback adapter `model`, so an error of
    it belongs to a reply: it is available, or none is (the adapter then tries them all).
    An unavailable one beside an available one only runs the adapter's recovery probes in
    the background. A model alone always serves."""
    if isinstance(model, llm.FallbackAdapter | tts.FallbackAdapter):
        instances = adapter_instances(model)
        if instance in instances:
            available = [status.available for status in model._status]
            return available[instances.index(instance)] or not any(available)
    return True


def adapter_chain(model: Any) -> list[Any]:
    """The plugins a fallback adapter tries, in order (a bound TTS stands for its plugin)."""
    return [getattr(m, "inner", m) for m in adapter_instances(model)]


def plugin_endpoint(model: Any) -> str:
    """The URL a speech or language model of the OpenAI or Deepgram plugin will call (the
    first one of a fallback adapter)."""
    model = adapter_chain(model)[0]
    if isinstance(model, openai.LLM | openai.TTS | openai.STT):
        return str(openai_client(model).base_url)
    if isinstance(model, deepgram.STT):
        return str(model._opts.endpoint_url)
    if isinstance(model, deepgram.TTS):
        return str(model._opts.base_url)
    raise TypeError(f"no endpoint known for {type(model).__name__}")


# -------------------------------------------------------------------- warm transfer


class GuardedWarmTransferTask(WarmTransferTask):
    """`WarmTransferTask`, made to always finish and to clean up after itself.

    - An error before the dial (e.g. the hold-music track cannot be published) completes
      the task with a ToolError; the framework would otherwise leave the caller on hold
      forever, because only the dial itself is guarded.
    - A failed MoveParticipant (a self-hosted LiveKit server has none) completes the task
      with a ToolError and hangs up on the person, instead of leaving the caller on hold.
    - When the session cancels the task (it closes because the caller hung up while on
      hold), the person on the consultation line is hung up on too; the framework's
      cancel() would leave them there.
    - The hold-music player is closed when the task ends.
    """

    async def on_enter(self) -> None:
        try:
            await super().on_enter()
        except Exception:
            logger.exception("the warm transfer could not start")
            self._set_result(ToolError("the warm transfer could not start"))

    def cancel(self) -> None:
        if not self.done():
            self._set_result(ToolError("the warm transfer was cancelled"))
        super().cancel()

    async def on_exit(self) -> None:
        if not self.done():
            self._set_result(ToolError("the warm transfer ended before it connected"))
        with contextlib.suppress(Exception):
            await self._background_audio.aclose()

    async def _merge_calls(self) -> None:
        try:
            await super()._merge_calls()
        except Exception:
            logger.exception("could not move the person into the caller's room")
            self._set_result(ToolError("could not connect the person to the caller"))
            raise

    @property
    def consultation_session(self) -> AgentSession | None:
        """The session on the line to the person being consulted, once dialed."""
        return self._human_agent_sess

    @property
    def hold_music(self) -> Any | None:
        """The hold music's play handle while the caller is on hold."""
        return self._hold_audio_handle


# -------------------------------------------------------------------- rooms without a server


def set_room_name(room: rtc.Room, name: str) -> None:
    room._info.name = name


def set_local_participant(room: rtc.Room, participant: rtc.LocalParticipant) -> None:
    room._local_participant = participant


def add_remote_participant(room: rtc.Room, participant: rtc.RemoteParticipant) -> None:
    room._remote_participants[participant.identity] = participant


def remove_remote_participant(room: rtc.Room, identity: str) -> rtc.RemoteParticipant:
    return room._remote_participants.pop(identity)


def set_disconnect_reason(
    participant: rtc.Participant, reason: rtc.DisconnectReason.ValueType
) -> None:
    participant._info.disconnect_reason = reason


def update_participant_attributes(participant: rtc.Participant, changed: dict[str, str]) -> None:
    participant._info.attributes.update(changed)


def missing_private_names(
    owners: Iterable[tuple[type | object, tuple[str, ...]]] | None = None,
) -> list[str]:
    """'Owner._name' for every internal name this module uses that the installed version
    no longer has (attributes set in `__init__` are found in its source)."""
    missing = []
    for owner, names in owners if owners is not None else PRIVATE_NAMES.items():
        source = ""
        if isinstance(owner, type):
            with contextlib.suppress(OSError, TypeError):
                source = "".join(inspect.getsource(k) for k in owner.__mro__[:-1])
        for name in names:
            if not hasattr(owner, name) and f"self.{name}" not in source:
                missing.append(f"{getattr(owner, '__name__', owner)}.{name}")
    return missing


# ------------------------------------------------------------------ the worker process


def on_job_processes(
    server: AgentServer, *, launched: Callable[[str], None], closed: Callable[[str], None]
) -> None:
    """In the worker process: `launched(job_id)` when a job process starts a job, and
    `closed(job_id)` when a job process that ran a job has exited, however it ended (its
    job done, kill -9, the OOM killer). Call it once the worker has started (its process
    pool exists from then on)."""

    def hook(callback: Callable[[str], None]) -> Callable[[Any], None]:
        def on_event(executor: Any) -> None:
            if (job := executor.running_job) is not None:
                callback(job.job.id)

        return on_event

    server._proc_pool.on("process_job_launched", hook(launched))
    server._proc_pool.on("process_closed", hook(closed))


class HealthCheckedServer(AgentServer):
    """An AgentServer whose health check (GET / on the worker's HTTP port) also answers 503
    with the reason when a check added with `add_health_check` returns one.

    The framework builds its HTTP app inside `run()` and starts it at once, after which no
    route or middleware can be added; so the app is caught as it is assigned."""

    def add_health_check(self, check: Callable[[], str | None]) -> None:
        """`check()` returns why the worker is unwell, or None; it must be quick."""
        self.health_checks.append(check)

    @property
    def health_checks(self) -> list[Callable[[], str | None]]:
        return self.__dict__.setdefault("_telephony_health_checks", [])

    @property  # type: ignore[override]
    def _http_server(self) -> Any:
        return self.__dict__.get("_telephony_http_server")

    @_http_server.setter
    def _http_server(self, server: Any) -> None:
        if server is not None:
            server.app.middlewares.append(_health_middleware(self))
        self.__dict__["_telephony_http_server"] = server


def _health_middleware(server: HealthCheckedServer) -> Any:
    @web.middleware
    async def check(request: web.Request, handler: Any) -> web.StreamResponse:
        if request.path == "/":
            for health_check in server.health_checks:
                if problem := health_check():
                    return web.Response(status=503, text=problem)
        return await handler(request)

    return check
