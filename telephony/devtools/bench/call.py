"""One benchmark call, in a process of its own as the worker runs each job.

The process imports the project's `agent` module, runs its prewarm (`agent.server`'s setup
function, as a worker's job process does before it takes a job), reports ready, and on "go"
runs the worker's job (`telephony.worker.job.run_job`, as `agent.entrypoint` does) on an
inbound call: the caller's SIP participant joins a stand-in room, the session hears a
synthetic caller (`CallerAudio`) through its audio input and speaks into a real-time sink
(`RealTimeAudioSink`), and every provider is a local stand-in (the URLs come in the plan's
environment). The one seam that needs a LiveKit server, the wiring's `join_room`, is the
bench's own: it connects the session to that input and output.

The caller waits for the greeting, then, turn after turn, waits until the agent has finished
speaking, lets `gap` seconds pass and says its next line; the agent's answer is timed from
the caller's last audible sample (the moment it was spoken on the line) to the moment the
session hands the first frame of the answer to its audio output. What the session decided
along the way (the turn detector's verdict and the endpointing delay it chose, when the
transcript arrived, when the turn was committed) is read from the framework's own debug log
lines, and the floor each turn could have been answered in is computed from the session's
actual options (see `turn_floor`).

With a fault (`CallPlan.fault`, the benchmark's fault mode, see faults.py), the call asks the
benchmark process to switch it on in the stand-ins through its pipe: at the call's start
(`CALL_START`) and once the greeting has played (`GREETED`), before the caller's first line;
the caller then stops talking once the agent has hung up, and the call reports what the
caller heard after the fault (`FaultObservation`).

The "baseline" variant is the same agent written the way the LiveKit examples show it: the
greeting through `session.generate_reply(instructions=...)` and an `AgentSession` with
default settings (`seed_session`), passed in the same wiring.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import importlib
import logging
import os
import resource
import sys
import time
import traceback
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from multiprocessing.connection import Connection
from pathlib import Path
from types import ModuleType
from typing import Any

from livekit import rtc
from livekit.agents import AgentSession, room_io
from livekit.agents.job import JobExecutorType, JobProcess
from livekit.agents.testing import fake_job_context
from livekit.agents.utils import http_context

from telephony.call import framework_compat as compat
from telephony.call import models
from telephony.call.call_context import call_context_from_participant
from telephony.devtools.bench import turn_overrides
from telephony.devtools.bench.caller import (
    CALLER_VOICES,
    CallerAudio,
    Silence,
    Spoken,
    render,
)
from telephony.devtools.bench.room import BenchRoom, phone_caller
from telephony.devtools.bench.sink import RealTimeAudioSink
from telephony.domain.paths import PROJECT_ROOT
from telephony.worker.job import run_job

logger = logging.getLogger("telephony.devtools.bench")

# What the framework logs (at debug level, logger "livekit.agents") at each step of a turn.
EOT_PREDICTION = "eot prediction"
TURN_COMMITTED = "user turn committed"
TRANSCRIPT_RECEIVED = "received user transcript"
_WATCHED = (EOT_PREDICTION, TURN_COMMITTED, TRANSCRIPT_RECEIVED)

GREETING_TIMEOUT = 15.0
POLL = 0.05  # how often the caller checks on the agent; timings come from the audio ends
# What a call with a fault tells the benchmark process, which answers FAULT_ON once it has
# switched the fault on at that point, or NO_CHANGE (the call waits for the answer): the
# call is starting (the caller has not joined yet), the greeting has played (the caller's
# first line comes next).
CALL_START = "call-start"
GREETED = "greeted"
FAULT_ON = "fault-on"
NO_CHANGE = "no-change"
# How long the caller listens to the agent's last words after it has hung up.
LAST_WORDS_TIMEOUT = 15.0
# How long the caller of a call with a fault stays on the line after the last answer.
LINGER_SECONDS = 2.0
# The prompts a provider failure is apologized with (one may not exist in this version).
APOLOGY_PROMPTS = ("provider_failure", "provider_failure_transfer")
# A hesitating caller (CallPlan.pause) pauses in the middle of lines this long or longer.
MIN_WORDS_TO_PAUSE = 4


@dataclass(frozen=True)
class Providers:
    """The stand-ins' latencies, in seconds."""

    stt: float
    llm_ttft: float
    tts_ttfb: float


@dataclass(frozen=True)
class CallPlan:
    index: int
    variant: str  # "product" or "baseline"
    turns: int
    lines: tuple[str, ...]  # what the caller says, one line a turn (cycled)
    voice: str  # how the caller says it: a name in caller.CALLER_VOICES
    providers: Providers
    env: dict[str, str]  # set before the agent is imported
    unset: tuple[str, ...] = ()  # removed from the environment
    gap: float = 0.8  # seconds between the end of the agent's speech and the caller's next line
    pause: float = 0.0  # seconds of silence mid-line (a caller hesitating), 0 for none
    turn_timeout: float = 10.0
    answer_delay: float = 0.0  # seconds after "go" before the caller joins
    fault: str | None = None  # the fault class of this call (fault mode), see faults.py
    turn: tuple[tuple[str, Any], ...] = ()  # the product's turn-taking values to change


@dataclass
class SessionOptions:
    """What bounds a turn's latency, as the session resolved it."""

    vad: str
    vad_silence: float  # the VAD's min_silence_duration (0 without a VAD)
    turn_detection: str
    endpointing_mode: str
    min_delay: float
    max_delay: float
    preemptive_generation: bool
    preemptive_tts: bool


@dataclass
class TurnResult:
    line: str
    speech_started_at: float  # time.monotonic(), as the other *_at fields
    speech_ended_at: float
    reply_started_at: float | None = None
    response: float | None = None  # end of caller speech -> first agent audio, seconds
    vad_end: float | None = None  # ... -> the session's user state turned "listening"
    transcript: float | None = None  # ... -> the last final transcript of the turn
    committed: float | None = None  # ... -> the user turn was committed
    eot_probability: float | None = None
    eot_threshold: float | None = None
    endpointing_delay: float = 0.0  # the delay the session chose for this turn
    detector_waited_max: bool = False  # the turn detector judged the turn unfinished
    floor: float = 0.0
    overhead: float | None = None  # response - floor
    cut_off: bool = False  # the agent spoke before the caller had finished
    committed_early: bool = False  # the session ended the turn before the caller had finished


@dataclass
class HeardSegment:
    """One stretch of the agent's audio, as the caller heard it (time.monotonic())."""

    started_at: float
    finished_at: float | None
    interrupted: bool = False
    gaps: list[tuple[float, float]] = field(default_factory=list)  # silences within it


@dataclass
class FaultObservation:
    """What the caller met after a fault was switched on (fault mode only)."""

    fault: str
    fault_at: float | None = None  # time.monotonic() the fault was on
    # The agent hung up (its hang-up began) before the caller did; time.monotonic().
    line_down_at: float | None = None
    session_closed_at: float | None = None
    caller_hung_up_at: float | None = None  # the benchmark's caller left (end of the call)
    heard: list[HeardSegment] = field(default_factory=list)
    # What the agent said (the session's assistant messages), with time.monotonic().
    said: list[tuple[float, str]] = field(default_factory=list)
    apology_texts: list[str] = field(default_factory=list)
    error_logs: list[str] = field(default_factory=list)  # ERROR lines logged in the call
    entrypoint_error: str | None = None  # the job's entrypoint raised


@dataclass
class CallResult:
    index: int
    variant: str
    greeting: float | None = None  # call answered -> first greeting audio, seconds
    greeting_source: str | None = None  # "say" or "generate_reply"
    turns: list[TurnResult] = field(default_factory=list)
    options: SessionOptions | None = None
    cpu_seconds: float = 0.0  # this process, from the answer to the hang-up
    call_seconds: float = 0.0
    uss_bytes: int | None = None  # private memory at the end of the call
    error: str | None = None
    job_id: str = ""
    room: str = ""
    fault: FaultObservation | None = None


# --------------------------------------------------------------------------- the floor


def turn_floor(options: SessionOptions, endpointing_delay: float, providers: Providers) -> float:
    """The earliest a turn can be answered, in seconds after the end of the caller's speech,
    with infinitely fast code between the providers.

    The turn is committed once the VAD has heard `vad_silence` of silence and the
    endpointing delay the session chose for the turn (min_delay, or max_delay when the turn
    detector judged the turn unfinished) has passed since the end of speech, and not before
    the final transcript (STT latency). With preemptive generation the LLM request starts at
    the final transcript, so its first token is due at STT + TTFT; the first sentence goes to
    the TTS once the turn is committed (or, with preemptive_tts, right away, its audio held
    until the commit). Without preemptive generation the LLM starts at the commit."""
    listen = max(options.vad_silence, endpointing_delay)
    stt, llm, tts = providers.stt, providers.llm_ttft, providers.tts_ttfb
    if not options.preemptive_generation:
        return max(listen, stt) + llm + tts
    if options.preemptive_tts:
        return max(listen, stt + llm + tts)
    return max(listen, stt + llm) + tts


# --------------------------------------------------------------------------- the process


def call_process(plan: CallPlan, conn: Connection) -> None:
    """The process's target: prepare, report ready, run the call on "go", send the result."""
    try:
        _apply_env(plan)
        _configure_logging(plan)
        agent, prewarmed, wiring = _prepare(plan)
        conn.send(("ready", os.getpid()))
        if conn.recv() != "go":
            return
        result = asyncio.run(_run_call(plan, agent, prewarmed, wiring, conn))
        conn.send(("done", dataclasses.asdict(result)))
    except BaseException:
        with contextlib.suppress(Exception):
            conn.send(("failed", traceback.format_exc()))
    finally:
        conn.close()


def _apply_env(plan: CallPlan) -> None:
    for name in plan.unset:
        os.environ.pop(name, None)
    os.environ.update(plan.env)


def _configure_logging(plan: CallPlan) -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setLevel(logging.WARNING)
    # The sink cannot pause (a room's track can): the framework says so once per call.
    handler.addFilter(lambda record: not str(record.msg).startswith("resume_false_interruption"))
    handler.setFormatter(
        logging.Formatter(f"%(levelname)s {plan.variant} call {plan.index}: %(name)s: %(message)s")
    )
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(logging.WARNING)
    # The turn's steps are debug lines of the framework; only they are kept (see _SessionLog).
    logging.getLogger("livekit.agents").setLevel(logging.DEBUG)


def _prepare(plan: CallPlan) -> tuple[ModuleType, dict[Any, Any], Any]:
    """Import the agent and prewarm, as a worker's job process does before taking a job; the
    caller's lines are rendered now too, so no synthesis runs during the call."""
    # This project's agent.py, whatever else is called agent on the path.
    sys.path.insert(0, str(PROJECT_ROOT))
    agent = importlib.import_module("agent")
    wiring = agent.PHONE_WIRING
    if plan.variant == "baseline":
        wiring = dataclasses.replace(
            wiring,
            build_session=seed_session,
            greet=seed_greet,
            caller_room_options=seed_room_options,
        )
    if plan.variant == "product":
        turn_overrides.apply(plan.turn)
    proc = JobProcess(executor_type=JobExecutorType.PROCESS, user_arguments=None, http_proxy=None)
    if agent.server.setup_fnc is not None:
        agent.server.setup_fnc(proc)
    if plan.variant == "baseline":
        # Imported here only: imported with the module, it would register itself as a
        # plugin and join the product's forkserver preload list (see runner.worker_preload).
        from livekit.plugins import silero

        proc.userdata["vad"] = silero.VAD.load()  # the examples' VAD, with its defaults
    sample_rate, _ = caller_audio_format(wiring.caller_room_options(_caller_context(plan), None))
    for item in spoken_items(plan.lines, plan.pause, plan.voice):
        render(item, sample_rate=sample_rate)
    return agent, proc.userdata, wiring


def caller_script(line: str, pause: float, voice: str) -> tuple[Silence | Spoken, ...]:
    """The line as the caller says it in `voice`: in one go, or (with a pause) in two halves
    split at the middle word, with `pause` seconds of silence between them. Short answers
    ("Yes.", "No, thanks.") are said in one go: nobody hesitates in the middle of those."""
    speak = CALLER_VOICES[voice].speak
    words = line.split()
    if pause <= 0 or len(words) < MIN_WORDS_TO_PAUSE:
        return (speak(line),)
    middle = len(words) // 2
    return speak(" ".join(words[:middle])), Silence(pause), speak(" ".join(words[middle:]))


def spoken_items(lines: tuple[str, ...], pause: float, voice: str) -> list[Spoken]:
    """Everything the caller will say of these lines, as `caller_script` splits them."""
    return [
        item
        for line in lines
        for item in caller_script(line, pause, voice)
        if not isinstance(item, Silence)
    ]


def _caller_context(plan: CallPlan) -> Any:
    return call_context_from_participant(phone_caller(plan.index), room_name="bench")


def caller_audio_format(room_options: Any) -> tuple[int, float]:
    """(sample rate, frame seconds) at which RoomIO would hand the session the caller's
    audio with these room options."""
    audio_input = room_options.audio_input
    if not isinstance(audio_input, room_io.AudioInputOptions):  # not given, or True
        audio_input = room_io.AudioInputOptions()
    return audio_input.sample_rate, audio_input.frame_size_ms / 1000


def seed_session(state: Any, vad: Any, call_models: Any = None) -> Any:
    """The session as the LiveKit examples write it: the models (built in the entrypoint)
    and the VAD, defaults for everything else (turn detection, endpointing, preemptive
    generation...)."""
    m = state.settings.models
    return AgentSession(
        stt=models.build_stt(m),
        llm=models.build_llm(m),
        tts=models.build_tts(m),
        vad=vad,
        userdata=state,
    )


def seed_room_options(context: Any, noise_filter: Any) -> Any:
    """RoomIO's defaults (24 kHz, 50 ms frames), listening to the caller."""
    return room_io.RoomOptions(participant_identity=context.participant_identity)


def seed_greet(session: Any, state: Any) -> None:
    """The greeting as the examples write it: the LLM words it, then the TTS speaks it."""
    session.generate_reply(instructions=state.render("greeting_instructions"))


# --------------------------------------------------------------------------- the call


class _SessionLog(logging.Handler):
    """Keeps the framework's debug lines about each turn's steps, with monotonic times."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.events: list[tuple[float, str, dict[str, Any]]] = []

    def emit(self, record: logging.LogRecord) -> None:
        if record.msg in _WATCHED:
            fields = {
                k: record.__dict__.get(k)
                for k in ("probability", "unlikely_threshold", "endpointing_delay")
            }
            self.events.append((time.monotonic(), str(record.msg), fields))

    def between(self, message: str, start: float, end: float) -> list[tuple[float, dict]]:
        return [(t, f) for t, m, f in self.events if m == message and start <= t <= end]


async def _run_call(
    plan: CallPlan,
    agent: ModuleType,
    prewarmed: dict[Any, Any],
    wiring: Any,
    conn: Connection | None = None,
) -> CallResult:
    result = CallResult(index=plan.index, variant=plan.variant)
    room = BenchRoom(f"bench-{plan.variant}-{plan.index}")
    sink = RealTimeAudioSink()
    callers: list[CallerAudio] = []
    sessions: list[Any] = []
    user_states: list[tuple[float, str]] = []
    speech_sources: list[str] = []
    session_log = _SessionLog()
    logging.getLogger("livekit.agents").addHandler(session_log)
    watch = _FaultWatch(plan.fault, sessions) if plan.fault else None

    async def join_room(session: Any, telephony_agent: Any, ctx: Any, room_options: Any) -> None:
        sessions.append(session)
        # The caller's audio in the format RoomIO would deliver with the agent's room options.
        sample_rate, frame_seconds = caller_audio_format(room_options)
        callers.append(CallerAudio(sample_rate=sample_rate, frame_seconds=frame_seconds))
        session.output.audio = sink
        session.input.audio = callers[0]
        session.on(
            "user_state_changed",
            lambda ev: user_states.append((time.monotonic(), ev.new_state)),
        )
        session.on("speech_created", lambda ev: speech_sources.append(ev.source))
        if watch is not None:
            watch.attach(session)
        await session.start(telephony_agent)

    wiring = dataclasses.replace(wiring, join_room=join_room)
    async with http_context.open():
        job_id = f"AJ_bench{uuid.uuid4().hex[:8]}"
        result.job_id, result.room = job_id, room.name
        with fake_job_context(room=room, job_metadata="", job_id=job_id) as ctx:
            ctx.proc.userdata.update(prewarmed)
            if watch is not None and conn is not None and await _ask(conn, CALL_START):
                # A fault present from the start is switched on before the job starts.
                watch.observation.fault_at = time.monotonic()
            entrypoint = asyncio.create_task(run_job(ctx, wiring))
            if watch is not None:
                watch.start(entrypoint)
            try:
                # The job is running (as a prewarmed worker's is) when the caller joins.
                await asyncio.sleep(0.1 + plan.answer_delay)
                cpu_start, answered = _cpu_seconds(), time.monotonic()
                room.add_participant(phone_caller(plan.index))
                await _until(lambda: bool(sink.segments), GREETING_TIMEOUT, "the greeting")
                result.greeting = sink.segments[0].handed_at - answered
                result.greeting_source = speech_sources[0] if speech_sources else None
                (session,), (caller,) = sessions, callers
                result.options = session_options(session)
                line_down = watch.line_down if watch is not None else _never
                for turn in range(plan.turns):
                    await _until_quiet(sink, session, plan.turn_timeout, line_down)
                    if turn == 0 and watch is not None and conn is not None:
                        await _greeted(conn, watch)
                    if line_down():
                        break  # the agent hung up: nobody listens to the caller any more
                    await asyncio.sleep(plan.gap)
                    if line_down():
                        break
                    line = plan.lines[turn % len(plan.lines)]
                    taken = await _take_turn(
                        plan, caller, sink, line, result.options, user_states, line_down
                    )
                    if taken is None:
                        break  # the agent hung up while the caller was speaking
                    result.turns.append(taken)
                await _until_quiet(sink, session, plan.turn_timeout, line_down)
                if watch is not None and not line_down():
                    # The caller lingers a moment before hanging up: an agent that ends the
                    # call after its last words is seen doing so.
                    with contextlib.suppress(TimeoutError):
                        await _until(line_down, LINGER_SECONDS, "the agent to hang up")
                result.call_seconds = time.monotonic() - answered
                result.cpu_seconds = _cpu_seconds() - cpu_start
                result.uss_bytes = private_memory(os.getpid())
                for turn_result in result.turns:
                    _explain_turn(turn_result, session_log, result.options, plan.providers)
            except Exception as e:
                result.error = f"{type(e).__name__}: {e}"
            finally:
                if watch is not None:
                    watch.observation.caller_hung_up_at = time.monotonic()
                _caller_leaves(room, plan.index)
                await _hang_up(agent, ctx, callers, sessions, entrypoint)
                await sink.aclose()
                if watch is not None:
                    result.fault = watch.finish(sink)
    logging.getLogger("livekit.agents").removeHandler(session_log)
    return result


async def _greeted(conn: Connection, watch: _FaultWatch) -> None:
    """The greeting has played: a mid-call fault starts now."""
    if await _ask(conn, GREETED):
        watch.observation.fault_at = time.monotonic()


def _caller_leaves(room: BenchRoom, index: int) -> None:
    """The caller's SIP participant leaves the room, as when a caller hangs up (the record
    then says who ended the call); nothing if it never joined or has gone."""
    identity = phone_caller(index).identity
    if identity in room.remote_participants:
        room.remove_participant(identity, rtc.DisconnectReason.CLIENT_INITIATED)


def _never() -> bool:
    return False


async def _ask(conn: Connection, event: str) -> bool:
    """Tell the benchmark process `event`; True once it has switched the fault on, False
    if the fault does not start at this point of the call."""
    conn.send(("event", event))
    answer = await receive(conn)
    if answer not in (FAULT_ON, NO_CHANGE):
        raise RuntimeError(f"the benchmark answered {answer!r} to {event!r}")
    return bool(answer == FAULT_ON)


class _FaultWatch(logging.Handler):
    """Notes, during a call with a fault, when the agent hung up or its session closed, what
    it said, and the ERROR lines logged (a handler on the root logger)."""

    def __init__(self, fault: str, sessions: list[Any]) -> None:
        super().__init__(logging.ERROR)
        self.observation = FaultObservation(fault=fault)
        self._sessions = sessions
        self._poller: asyncio.Task[None] | None = None
        self._entrypoint: asyncio.Task[None] | None = None
        logging.getLogger().addHandler(self)

    def emit(self, record: logging.LogRecord) -> None:
        errors = self.observation.error_logs
        if len(errors) < 20:
            errors.append(f"{record.name}: {record.getMessage()}"[:300])

    def attach(self, session: Any) -> None:
        obs = self.observation

        def closed(_: Any) -> None:
            if obs.caller_hung_up_at is None and obs.session_closed_at is None:
                obs.session_closed_at = time.monotonic()

        def added(ev: Any) -> None:
            item = ev.item
            if getattr(item, "role", None) == "assistant":
                # Added once said: timed at its start (a wall-clock metric) where known.
                started = (getattr(item, "metrics", None) or {}).get("started_speaking_at")
                now = time.monotonic()
                at = now if started is None else now - (time.time() - started)
                obs.said.append((at, item.text_content or ""))

        session.on("close", closed)
        session.on("conversation_item_added", added)

    def start(self, entrypoint: asyncio.Task[None]) -> None:
        self._entrypoint = entrypoint
        self._poller = asyncio.create_task(self._poll())

    async def _poll(self) -> None:
        # The hang-up is a task the call control starts: polled, as nothing announces it.
        obs = self.observation
        while obs.caller_hung_up_at is None:
            for session in self._sessions:
                control = getattr(session.userdata, "control", None)
                if control is not None and control.hang_up_task is not None:
                    obs.line_down_at = obs.line_down_at or time.monotonic()
            await asyncio.sleep(POLL)

    def line_down(self) -> bool:
        """The agent has hung up or its session has closed: the caller is alone."""
        obs = self.observation
        return obs.line_down_at is not None or obs.session_closed_at is not None

    def finish(self, sink: RealTimeAudioSink) -> FaultObservation:
        obs = self.observation
        if self._poller is not None:
            self._poller.cancel()
        logging.getLogger().removeHandler(self)
        entrypoint = self._entrypoint
        if entrypoint is not None and entrypoint.done() and not entrypoint.cancelled():
            error = entrypoint.exception()
            if error is not None:
                obs.entrypoint_error = f"{type(error).__name__}: {error}"
        obs.heard = [
            HeardSegment(s.started_at, s.finished_at, s.interrupted, list(s.gaps))
            for s in sink.segments
        ]
        for session in self._sessions:
            obs.apology_texts = _apology_texts(session.userdata)
        return obs


def _apology_texts(state: Any) -> list[str]:
    """The apologies this call could say (prompts that do not exist are left out)."""
    texts = []
    for name in APOLOGY_PROMPTS:
        try:
            texts.append(state.render(name))
        except Exception:  # a prompt this version of the product does not have
            continue
    return texts


async def _take_turn(
    plan: CallPlan,
    caller: CallerAudio,
    sink: RealTimeAudioSink,
    line: str,
    options: SessionOptions,
    user_states: list[tuple[float, str]],
    line_down: Callable[[], bool] = _never,
) -> TurnResult | None:
    """The turn, or None when the agent hung up before the caller had said the line (the
    session no longer takes the caller's audio)."""
    replies_before = len(sink.segments)
    segments = caller.queue(*caller_script(line, plan.pause, plan.voice))
    first, last = segments[0], segments[-1]
    await _until(
        lambda: last.ended_at is not None or line_down(), 60.0, "the caller's line to play"
    )
    if last.ended_at is None:
        return None
    assert last.ended_at is not None
    assert first.started_at is not None
    turn = TurnResult(line=line, speech_started_at=first.started_at, speech_ended_at=last.ended_at)
    turn.endpointing_delay = options.min_delay
    with contextlib.suppress(TimeoutError):
        await _until(
            lambda: len(sink.segments) > replies_before or line_down(),
            plan.turn_timeout,
            "a reply",
        )
    if len(sink.segments) > replies_before:
        turn.reply_started_at = sink.segments[replies_before].handed_at
        turn.response = turn.reply_started_at - turn.speech_ended_at
        # The agent began before the caller's last word reached it: a cut-off, not an answer.
        turn.cut_off = turn.response < 0
    ended = turn.speech_ended_at
    turn.vad_end = next(
        (t - ended for t, state in user_states if t > ended and state != "speaking"), None
    )
    return turn


def _explain_turn(
    turn: TurnResult, log: _SessionLog, options: SessionOptions, providers: Providers
) -> None:
    """What the session decided for this turn, from its log lines up to the reply."""
    start = turn.speech_started_at
    end = turn.reply_started_at if turn.reply_started_at is not None else turn.speech_ended_at + 30
    commits = log.between(TURN_COMMITTED, start, end)
    committed_at = end
    if commits:
        turn.committed_early = commits[0][0] < turn.speech_ended_at
        # The answer is to the whole line: the last commit before it is the turn's.
        committed_at = commits[-1][0]
        turn.committed = committed_at - turn.speech_ended_at
    transcripts = log.between(TRANSCRIPT_RECEIVED, start, committed_at)
    if transcripts:
        turn.transcript = transcripts[-1][0] - turn.speech_ended_at
    predictions = log.between(EOT_PREDICTION, start, committed_at)
    if predictions:
        _, fields = predictions[-1]
        turn.eot_probability = fields.get("probability")
        turn.eot_threshold = fields.get("unlikely_threshold")
        delay = fields.get("endpointing_delay")
        if isinstance(delay, int | float):
            turn.endpointing_delay = float(delay)
        turn.detector_waited_max = (
            turn.eot_probability is not None
            and turn.eot_threshold is not None
            and turn.eot_probability < turn.eot_threshold
        )
    turn.floor = turn_floor(options, turn.endpointing_delay, providers)
    if turn.response is not None and not turn.cut_off:
        turn.overhead = turn.response - turn.floor


async def _hang_up(
    agent: ModuleType,
    ctx: Any,
    callers: list[CallerAudio],
    sessions: list[Any],
    entrypoint: asyncio.Task[None],
) -> None:
    """The caller hangs up; the job ends as the worker ends it (the record is saved)."""
    for caller in callers:
        caller.hang_up()
    with contextlib.suppress(Exception):
        await asyncio.wait_for(asyncio.wait([entrypoint]), 10.0)
    if not entrypoint.done():
        entrypoint.cancel()
    for session in sessions:
        with contextlib.suppress(Exception):
            await asyncio.wait_for(session.aclose(), 10.0)
        if hang_up := session.userdata.control.hang_up_task:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(hang_up, 10.0)
    session_end = compat.session_end_callback(agent.server)
    if session_end is not None:
        with contextlib.suppress(Exception):
            await asyncio.wait_for(session_end(ctx), 10.0)
    with contextlib.suppress(Exception):
        await ctx.api.aclose()


def session_options(session: Any) -> SessionOptions:
    """The options that bound a turn's latency, as the running session resolved them (the
    agent's own turn handling, if any, over the session's)."""
    activity = compat.current_activity(session)
    endpointing = activity.endpointing_opts if activity is not None else session.options.endpointing
    preemptive = (
        activity.preemptive_generation_opts
        if activity is not None
        else session.options.preemptive_generation
    )
    vad = session.vad
    silence = compat.vad_min_silence(vad)
    detector = session.turn_detection
    detector_name = (
        detector
        if isinstance(detector, str) or detector is None
        else f"{type(detector).__name__}({getattr(detector, 'model', '?')})"
    )
    return SessionOptions(
        vad="none"
        if vad is None
        else f"{type(vad).__module__.split('.')[-2]}.{type(vad).__name__}",
        vad_silence=float(silence or 0.0),
        turn_detection=str(detector_name),
        endpointing_mode=str(endpointing.get("mode", "fixed")),
        min_delay=float(endpointing["min_delay"]),
        max_delay=float(endpointing["max_delay"]),
        preemptive_generation=bool(preemptive.get("enabled", False)),
        preemptive_tts=bool(preemptive.get("preemptive_tts", False)),
    )


# --------------------------------------------------------------------------- small helpers


async def _until(condition: Any, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise TimeoutError(f"waited {timeout:.0f} s for {what}")
        await asyncio.sleep(POLL)


async def _until_quiet(
    sink: RealTimeAudioSink,
    session: Any,
    timeout: float,
    line_down: Callable[[], bool] = _never,
) -> None:
    """Until the agent has finished speaking (all its audio played) and is listening; or,
    once it has hung up, until its last words have played (if they ever finish)."""

    def played() -> bool:
        return all(s.finished_at is not None for s in sink.segments)

    def quiet() -> bool:
        return played() and session.agent_state in ("listening", "idle")

    await _until(lambda: quiet() or line_down(), timeout + 30.0, "the agent to finish speaking")
    if not quiet():
        with contextlib.suppress(TimeoutError):
            await _until(played, LAST_WORDS_TIMEOUT, "the agent's last words")


async def receive(conn: Connection) -> Any:
    """conn.recv() without blocking the event loop (the stand-ins, or the call, run on it)."""
    loop = asyncio.get_running_loop()
    readable = asyncio.Event()
    loop.add_reader(conn.fileno(), readable.set)
    try:
        await readable.wait()
    finally:
        loop.remove_reader(conn.fileno())
    return conn.recv()


def _cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def private_memory(pid: int) -> int | None:
    """The process's unique set size (private pages, clean and dirty) in bytes, from
    /proc/<pid>/smaps_rollup; None where that is not readable (not Linux, gone)."""
    try:
        text = Path(f"/proc/{pid}/smaps_rollup").read_text(encoding="ascii")
    except OSError:
        return None
    total = 0
    for line in text.splitlines():
        name, _, rest = line.partition(":")
        if name in ("Private_Clean", "Private_Dirty", "Private_Hugetlb"):
            total += int(rest.split()[0]) * 1024
    return total
