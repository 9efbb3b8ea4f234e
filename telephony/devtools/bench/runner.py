"""Run the benchmark: the stand-ins in this process, each call in a process of its own.

Calls are started the way the worker starts jobs on Linux: from a forkserver that has
preloaded the plugins and the framework's warm-up (`livekit.agents.ipc._preload`), each call
process then importing the agent and running its prewarm before it is given its call. A
process is prepared before its call starts, so the figures never include that start-up.

The single-call figures run the calls one after the other (product, then baseline, in
turn), each alone on the machine; a sweep step runs N calls at once, answered one every
`answer_interval` seconds (calls to a busy line arrive one by one, not all in the same
instant, so their turns do not fall in step), while a thread samples each call process's
private memory.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib
import multiprocessing
import os
import resource
import sys
import tempfile
import threading
import time
import types
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from livekit.agents import Plugin

from telephony.call.framework_compat import preload_modules
from telephony.devtools.bench.call import (
    FAULT_ON,
    NO_CHANGE,
    CallPlan,
    Providers,
    call_process,
    private_memory,
    receive,
    spoken_items,
)
from telephony.devtools.bench.caller import DEFAULT_VOICE, synthesize
from telephony.devtools.standins.deepgram_server import DeepgramStandin
from telephony.devtools.standins.livekit_api import LiveKitApiStandin
from telephony.devtools.standins.openai_server import LlmTurn, OpenAIStandin, reply, respond
from telephony.domain.paths import PROJECT_ROOT
from telephony.domain.settings import SETTING_NAMES

# What the caller says, one line a turn (cycled). "plain": no commas, so each line is one
# utterance. "natural": what callers say on a booking line, with the pauses of commas, short
# answers, digits read one by one, a time and a spelled name.
CALLER_LINES = (
    "Hi I would like to book an appointment for next week.",
    "Tuesday morning would be great.",
    "Can you tell me how long it usually takes?",
    "Perfect and do I need to bring anything with me?",
    "Okay thank you very much.",
)
NATURAL_LINES = (
    "Hi, I'd like to book an appointment for next week, if that's possible.",
    "Yes.",
    "Do you have anything on Tuesday, around 3:30?",
    "It's Smith, S M I T H.",
    "Sure, my number is 4 1 5, 5 5 5, 0 1 3 2.",
    "No, thanks.",
    "How long does it usually take, and do I need to bring anything with me?",
    "My booking reference is K 7 4 9 2.",
    "Okay, great. Thank you very much.",
)
LINE_SETS = {"natural": NATURAL_LINES, "plain": CALLER_LINES}
# What the stand-in LLM answers (the greeting when the request has no user message yet).
AGENT_GREETING = "Hello and thanks for calling. How can I help you today?"
AGENT_REPLY = "Sure, I can help with that. Is there anything else you need?"
TRANSCRIPT = "I would like to book an appointment for next week."

# What the worker's forkserver imports after the plugins and the server's preload_modules:
# the framework's warm-up, then the freeze that keeps it shared (it must stay last).
FRAMEWORK_PRELOAD = ("livekit.agents.ipc._preload", "livekit.agents.ipc._preload_freeze")
# Settings that would reach past the stand-ins or make a run depend on the time of day.
UNSET = (
    "CONTACT_LOOKUP",
    "DATABASE_URL",
    "CALL_WEBHOOK_URL",
    "CALL_WEBHOOK_SECRET",
    "NOISE_CANCELLATION",
    "BUSINESS_HOURS",
    "BUSINESS_HOLIDAYS_FILE",
    "LIVEKIT_DEV_MODE",  # would pick the cloud turn detector
    "LIVEKIT_REMOTE_EOT_URL",
    "LIVEKIT_INFERENCE_URL",
)
PREPARE_TIMEOUT = 120.0


def call_plan(
    options: BenchOptions,
    env: dict[str, str],
    index: int,
    variant: str,
    turns: int,
    voice: str | None = None,
    **more: Any,
) -> CallPlan:
    """One call's plan from the bench's options, the caller speaking in `voice` (the first of
    options.voices by default); `more`: answer_delay, turn_timeout, fault."""
    return CallPlan(
        index=index,
        variant=variant,
        turns=turns,
        lines=options.lines,
        voice=options.voices[0] if voice is None else voice,
        providers=options.providers,
        env=env,
        unset=UNSET,
        gap=options.gap,
        pause=options.pause,
        turn=options.turn,
        **more,
    )


@dataclass(frozen=True)
class BenchOptions:
    calls: int = 3
    turns: int = 3
    stt_ms: float = 100.0
    llm_ttft_ms: float = 400.0
    tts_ttfb_ms: float = 150.0
    baseline: bool = False
    sweep: tuple[int, ...] = ()
    tts_ms_per_char: float = 60.0  # how long the stand-in TTS speaks for each character
    gap: float = 0.8  # seconds from the end of the agent's speech to the caller's next line
    pause: float = 0.0  # seconds of silence in the middle of each line (0: none)
    # Seconds between the answers of a sweep step's calls. At 0.5 s, 32 calls arrive over
    # 16 s: still far burstier than a real line (32 calls of 3 minutes in progress means one
    # new call every ~6 s), and every call is in progress together once the last is answered.
    answer_interval: float = 0.5
    lines: tuple[str, ...] = NATURAL_LINES
    # The product's turn-taking values to change (bench --turn; see turn_overrides.py).
    turn: tuple[tuple[str, Any], ...] = ()
    voices: tuple[str, ...] = (DEFAULT_VOICE,)  # names in caller.CALLER_VOICES

    @property
    def providers(self) -> Providers:
        return Providers(self.stt_ms / 1000, self.llm_ttft_ms / 1000, self.tts_ttfb_ms / 1000)


@dataclass
class CallOutcome:
    """What a call process sent back, with what was measured of it from outside."""

    result: dict[str, Any] | None
    error: str | None = None
    peak_uss_bytes: int | None = None
    exitcode: int | None = None  # the call process's (None: it had to be killed)


# What a call process may tell the benchmark mid-call (call.CALL_START, call.GREETED): the
# handler does what it must (switch a fault on: True), then the call goes on.
EventHandler = Callable[[CallPlan, str], Awaitable[bool]]


@dataclass
class StepOutcome:
    calls: list[CallOutcome]
    wall_seconds: float
    machine_busy: float | None  # share of all cores busy (0..1), from /proc/stat
    standins_cpu_seconds: float  # this process: the stand-ins
    cpus: int = field(default_factory=lambda: os.cpu_count() or 1)


# The product's fallback settings: all blank (the default: none, and a developer's
# .env.local cannot fill them), unless the benchmark configures its fallbacks.
FALLBACK_SETTINGS = tuple(name for name in SETTING_NAMES if name.startswith("FALLBACK_"))
FALLBACK_LLM_MODEL = "gpt-4o-mini"


class StandIns:
    """The provider stand-ins and the environment that points the agent at them.

    With `fallback`, a second OpenAI stand-in and a second Deepgram stand-in, set up exactly
    as the first ones (same latencies, same answers), are the product's fallback LLM, TTS
    and STT; the benchmark's faults only ever hit the first ones (the primaries)."""

    def __init__(self, options: BenchOptions, *, fallback: bool = False) -> None:
        self._providers = providers = options.providers
        self.openai = _openai_standin(options)
        self.deepgram = _deepgram_standin(providers)
        self.fallback_openai = _openai_standin(options) if fallback else None
        self.fallback_deepgram = _deepgram_standin(providers) if fallback else None
        self.livekit = LiveKitApiStandin()
        self._records = tempfile.TemporaryDirectory(prefix="telephony-bench-")

    @property
    def servers(self) -> list[Any]:
        return [
            s
            for s in (
                self.openai,
                self.deepgram,
                self.fallback_openai,
                self.fallback_deepgram,
                self.livekit,
            )
            if s is not None
        ]

    async def __aenter__(self) -> StandIns:
        for server in self.servers:
            await server.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        for server in self.servers:
            with contextlib.suppress(Exception):
                await server.stop()
        self._records.cleanup()

    @property
    def records_path(self) -> Path:
        """The SQLite file the calls save their records in."""
        return Path(self._records.name) / "calls.sqlite3"

    def answer(self, *, first_token_delay: float | None = None, **faults: Any) -> LlmTurn:
        """The primary LLM's answer to every request (`faults`: reply()'s fault options)."""
        delay = self._providers.llm_ttft if first_token_delay is None else first_token_delay
        return respond(_answer(delay, **faults))

    async def heal(self) -> None:
        """Every fault off: the primaries answer as they did before (between calls)."""
        self.openai.default_turn = self.answer()
        self.openai.tts_error_status = None
        self.openai.tts_first_byte_delay = self._providers.tts_ttfb
        self.deepgram.come_back()

    def env(self) -> dict[str, str]:
        """The settings each call runs with: the project's own (prompts, greeting, models...),
        with every service a stand-in, records in a throwaway SQLite file and the greeting
        audio in a throwaway folder (see `run_bench`'s warm-up call), and caller lookup
        from the example contacts unless CONTACTS_FILE names one."""
        env = {
            "OPENAI_API_KEY": "bench",
            "OPENAI_BASE_URL": self.openai.base_url,
            "DEEPGRAM_API_KEY": "bench",
            "DEEPGRAM_BASE_URL": self.deepgram.base_url,
            "TTS_PROVIDER": "openai",  # the stand-in speaks OpenAI's speech API only
            "LIVEKIT_URL": self.livekit.url,
            "LIVEKIT_API_KEY": self.livekit.api_key,
            "LIVEKIT_API_SECRET": self.livekit.api_secret,
            "CALL_RECORDS_PATH": str(self.records_path),
            "GREETING_AUDIO_DIR": str(Path(self._records.name) / "greeting-audio"),
        }
        env |= dict.fromkeys(FALLBACK_SETTINGS, "")
        if self.fallback_openai is not None and self.fallback_deepgram is not None:
            env |= {
                "FALLBACK_LLM_MODEL": FALLBACK_LLM_MODEL,
                "FALLBACK_LLM_BASE_URL": self.fallback_openai.base_url,
                "FALLBACK_TTS_PROVIDER": "openai",
                "FALLBACK_TTS_BASE_URL": self.fallback_openai.base_url,
                "FALLBACK_STT_PROVIDER": "deepgram",
                "FALLBACK_STT_BASE_URL": self.fallback_deepgram.base_url,
            }
        if not os.environ.get("CONTACTS_FILE"):
            env["CONTACTS_FILE"] = str(PROJECT_ROOT / "contacts.example.json")
        return env


def _openai_standin(options: BenchOptions) -> OpenAIStandin:
    return OpenAIStandin(
        tts_first_byte_delay=options.providers.tts_ttfb,
        tts_ms_per_char=options.tts_ms_per_char,
        default_turn=respond(_answer(options.providers.llm_ttft)),
        # What its HTTP speech-to-text hears, should the product use it (as a fallback STT).
        default_transcription=TRANSCRIPT,
    )


def _deepgram_standin(providers: Providers) -> DeepgramStandin:
    deepgram = DeepgramStandin(default_transcript=TRANSCRIPT)
    # It hears speech down to -54 dBFS, as a provider's own VAD would: the end of an
    # utterance is then the caller's last audible sample, not a quiet word's ending.
    deepgram.script_transcripts([], final_delay=providers.stt, speech_level=0.002)
    return deepgram


def _answer(first_token_delay: float, **faults: Any) -> Callable[[dict[str, Any]], Any]:
    def answer(body: dict[str, Any]) -> Any:
        has_user = any(m.get("role") == "user" for m in body.get("messages") or [])
        text = AGENT_REPLY if has_user else AGENT_GREETING
        return reply(text, first_token_delay=first_token_delay, **faults)

    return answer


def synthesize_callers(options: BenchOptions) -> None:
    """Synthesize every line in every voice here, before any call: Piper's clips are kept on
    disk, so the call processes only read them and never load Piper's model (about 200 MB
    each, which would swell the private memory measured per call)."""
    for voice in options.voices:
        for item in spoken_items(options.lines, options.pause, voice):
            synthesize(item)


# --------------------------------------------------------------------------- processes


class CallProcess:
    """One call's process: started, prepared (ready), given "go", then its result."""

    def __init__(
        self,
        context: Any,
        plan: CallPlan,
        target: Callable[..., None] = call_process,
        on_event: EventHandler | None = None,
    ) -> None:
        self.plan = plan
        self._on_event = on_event
        self._conn, child = multiprocessing.Pipe()
        self.process = context.Process(
            target=target, args=(plan, child), name=f"bench-call-{plan.index}", daemon=True
        )
        with _no_main_module():
            self.process.start()
        child.close()
        self.pid: int | None = self.process.pid

    async def ready(self) -> None:
        kind, payload = await asyncio.wait_for(receive(self._conn), PREPARE_TIMEOUT)
        if kind != "ready":
            raise RuntimeError(f"call {self.plan.index} could not start:\n{payload}")

    def go(self) -> None:
        self._conn.send("go")

    async def outcome(self, timeout: float) -> CallOutcome:
        deadline = time.monotonic() + timeout
        try:
            while True:
                remaining = deadline - time.monotonic()
                kind, payload = await asyncio.wait_for(receive(self._conn), remaining)
                if kind != "event":
                    break
                switched = self._on_event is not None and await self._on_event(self.plan, payload)
                self._conn.send(FAULT_ON if switched else NO_CHANGE)
        except (TimeoutError, EOFError, OSError) as e:
            outcome = CallOutcome(None, f"no result from the call process ({type(e).__name__})")
        else:
            if kind == "done":
                outcome = CallOutcome(payload, payload.get("error"))
            else:
                outcome = CallOutcome(None, str(payload))
        finally:
            await asyncio.to_thread(self.process.join, 15)
            if self.process.is_alive():
                self.process.kill()
            self._conn.close()
        outcome.exitcode = self.process.exitcode
        return outcome

    def stop(self) -> None:
        if self.process.is_alive():
            self.process.kill()


def start_context() -> Any:
    """The forkserver the calls are forked from (spawn where there is no forkserver)."""
    if "forkserver" not in multiprocessing.get_all_start_methods():
        return multiprocessing.get_context("spawn")
    context = multiprocessing.get_context("forkserver")
    context.set_forkserver_preload(worker_preload())
    return context


def worker_preload() -> list[str]:
    """The modules the worker preloads in its forkserver for this agent, as it lists them:
    the registered plugins' packages, the AgentServer's preload_modules, the warm-up."""
    sys.path.insert(0, str(PROJECT_ROOT))
    agent = importlib.import_module("agent")  # registers the plugins it uses
    modules = [p.package for p in Plugin.registered_plugins]
    modules += preload_modules(agent.server)
    return [*dict.fromkeys(modules), *FRAMEWORK_PRELOAD]


@contextlib.contextmanager
def _no_main_module() -> Iterator[None]:
    """Start a process without re-importing this program's __main__ in it (the CLI, or
    pytest): a worker's job process imports only the agent, so a call process must too."""
    main = sys.modules["__main__"]
    sys.modules["__main__"] = types.ModuleType("__main__")
    try:
        yield
    finally:
        sys.modules["__main__"] = main


class MemorySampler:
    """A thread that reads each call process's private memory twice a second (off the
    event loop, where reading /proc would delay the stand-ins) and keeps the peak."""

    def __init__(self, pids: list[int]) -> None:
        self.peaks: dict[int, int] = {}
        self._pids = pids
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="bench-memory", daemon=True)

    def __enter__(self) -> MemorySampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    def _run(self) -> None:
        while not self._stop.wait(0.5):
            for pid in self._pids:
                uss = private_memory(pid)
                if uss is not None and uss > self.peaks.get(pid, 0):
                    self.peaks[pid] = uss


# --------------------------------------------------------------------------- running


async def run_step(
    context: Any,
    plans: list[CallPlan],
    *,
    on_progress: Callable[[str], None] = lambda _: None,
    target: Callable[..., None] = call_process,
    on_event: EventHandler | None = None,
) -> StepOutcome:
    """Prepare every call's process, then run the calls at once (each plan's answer_delay
    spreads them) and collect what they measured (`on_event`: what the calls say mid-call)."""
    procs: list[CallProcess] = []
    try:
        for plan in plans:
            procs.append(CallProcess(context, plan, target, on_event))
        await asyncio.gather(*(p.ready() for p in procs))
        on_progress(f"{len(procs)} call process(es) ready")
        pids = [p.pid for p in procs if p.pid is not None]
        busy_before, cpu_before = _machine_ticks(), _own_cpu()
        started = time.monotonic()
        with MemorySampler(pids) as sampler:
            for p in procs:
                p.go()
            timeout = max(_expected_seconds(p.plan) for p in procs) + 120
            outcomes = await asyncio.gather(*(p.outcome(timeout) for p in procs))
        wall = time.monotonic() - started
        busy_after, cpu_after = _machine_ticks(), _own_cpu()
        for p, outcome in zip(procs, outcomes, strict=True):
            if p.pid is not None:
                outcome.peak_uss_bytes = sampler.peaks.get(p.pid)
        return StepOutcome(
            calls=list(outcomes),
            wall_seconds=wall,
            machine_busy=_busy_share(busy_before, busy_after),
            standins_cpu_seconds=cpu_after - cpu_before,
        )
    finally:
        for p in procs:
            p.stop()


def _expected_seconds(plan: CallPlan) -> float:
    return plan.answer_delay + 20 + plan.turns * (plan.gap + plan.turn_timeout + 15)


def _own_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def _machine_ticks() -> tuple[int, int] | None:
    """(busy, total) jiffies of all cores, from /proc/stat; None where it is not readable."""
    try:
        first = Path("/proc/stat").read_text().splitlines()[0].split()
    except (OSError, IndexError):
        return None
    values = [int(v) for v in first[1:]]
    idle = values[3] + (values[4] if len(values) > 4 else 0)  # idle + iowait
    return sum(values) - idle, sum(values)


def _busy_share(before: tuple[int, int] | None, after: tuple[int, int] | None) -> float | None:
    if before is None or after is None or after[1] <= before[1]:
        return None
    return (after[0] - before[0]) / (after[1] - before[1])
