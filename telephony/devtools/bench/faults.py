"""`python -m telephony bench --fault CLASS [--fallback]`: what a caller meets when a provider
fails mid-call.

Each fault class breaks the primary stand-ins (never the fallbacks) in one way: the LLM
answers 500 (llm-5xx), holds its first token back 30 s (llm-stall) or drops every reply's
stream after two chunks (llm-drop); the TTS answers 503 (tts-5xx) or holds its first byte
back 30 s (tts-stall); Deepgram refuses every connection from the start of the call
(stt-refused) or goes down mid-call, dropping the open connection and refusing new ones
(stt-dropped); or the LLM, the TTS and Deepgram all go down (all-down). A fault is switched
on once the greeting has played, before the caller's first line (stt-refused: before the
call), and off again after the call.

With `--fallback` each class runs a second time with the product's fallback LLM, TTS and STT
configured (FALLBACK_* settings), each a second, healthy stand-in set up like the first.

Measured per call (from the call process, see call.FaultObservation, and from here: the
record the product saved, the DeleteRoom the LiveKit API stand-in received):
- silence after a turn: end of the caller's speech -> the agent's next audio, or -> the
  line going down (the agent's hang-up) if no audio came, or -> the end of the wait if
  neither did (then shown as a lower bound);
- longest gap: the longest stretch without agent audio from the end of the caller's speech
  to the agent's last audio before the caller spoke again (a reply cut short, then silence,
  then an apology counts that silence too);
- fault -> first word: the fault switched on -> the first agent audio after it;
- continued: every turn of the caller was answered and the agent did not hang up;
- the apology: an agent message after the fault that is one of the product's apology
  prompts (APOLOGY_PROMPTS), and any audio at all after the fault;
- the record's outcome, end reason and error, records lost (no record for the job), the room
  deleted by the agent itself, and crashes (a call process with no result or a non-zero exit,
  or a job entrypoint that raised).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, Literal

from telephony.devtools.bench import report as rpt
from telephony.devtools.bench.call import CALL_START, GREETED, CallPlan
from telephony.devtools.bench.runner import (
    BenchOptions,
    CallOutcome,
    StandIns,
    call_plan,
    run_step,
    start_context,
    synthesize_callers,
)
from telephony.devtools.standins.openai_server import http_error
from telephony.records.spool import SPOOL_NAME, read_spool
from telephony.records.store import CallStore, StoreError

STALL_SECONDS = 30.0  # a stall: no first token, no first byte, for this long
DROP_AFTER_CHUNKS = 2  # the role chunk and the first words, then the connection goes
TTS_ERROR_STATUS = 503
LLM_ERROR_STATUS = 500
FAULT_MESSAGE = "stand-in fault: the service is unavailable"
# How long the caller waits for an answer: past a stall, so a late answer is still seen.
TURN_TIMEOUT = STALL_SECONDS + 15.0


@dataclass(frozen=True)
class FaultClass:
    name: str
    summary: str
    llm: Literal["5xx", "stall", "drop"] | None = None
    tts: Literal["5xx", "stall"] | None = None
    stt: Literal["refused", "down"] | None = None

    @property
    def switched_on_at(self) -> str:
        """When, in the call, the fault is switched on (call.CALL_START or call.GREETED)."""
        return CALL_START if self.stt == "refused" else GREETED


FAULT_CLASSES: dict[str, FaultClass] = {
    c.name: c
    for c in (
        FaultClass("llm-5xx", "every chat request answered 500", llm="5xx"),
        FaultClass("llm-stall", f"no first token for {STALL_SECONDS:g} s", llm="stall"),
        FaultClass("llm-drop", f"every reply dropped after {DROP_AFTER_CHUNKS} chunks", llm="drop"),
        FaultClass("tts-5xx", f"every speech request answered {TTS_ERROR_STATUS}", tts="5xx"),
        FaultClass("tts-stall", f"first audio byte after {STALL_SECONDS:g} s", tts="stall"),
        FaultClass("stt-refused", "Deepgram refuses connections from the start", stt="refused"),
        FaultClass(
            "stt-dropped", "Deepgram drops the open connection, refuses new ones", stt="down"
        ),
        FaultClass("all-down", "llm-5xx, tts-5xx and stt-dropped at once", "5xx", "5xx", "down"),
    )
}
ALL = "all"


def fault_names(requested: Sequence[str]) -> list[str]:
    """The classes to run, in the table's order, once each ("all": every class)."""
    unknown = [n for n in requested if n != ALL and n not in FAULT_CLASSES]
    if unknown:
        raise ValueError(f"unknown fault class {unknown[0]!r}")
    if ALL in requested:
        return list(FAULT_CLASSES)
    return [n for n in FAULT_CLASSES if n in requested]


async def switch_on(fault: FaultClass, standins: StandIns) -> None:
    """Break the primary stand-ins as `fault` says (StandIns.heal() mends them)."""
    openai, deepgram = standins.openai, standins.deepgram
    if fault.llm == "5xx":
        openai.default_turn = http_error(LLM_ERROR_STATUS, FAULT_MESSAGE)
    elif fault.llm == "stall":
        openai.default_turn = standins.answer(first_token_delay=STALL_SECONDS)
    elif fault.llm == "drop":
        openai.default_turn = standins.answer(drop_after_chunks=DROP_AFTER_CHUNKS)
    if fault.tts == "5xx":
        openai.tts_error_status = TTS_ERROR_STATUS
        openai.tts_error_message = FAULT_MESSAGE
    elif fault.tts == "stall":
        openai.tts_first_byte_delay = STALL_SECONDS
    if fault.stt == "refused":
        deepgram.refuse_connections = True
    elif fault.stt == "down":
        await deepgram.go_down()


# --------------------------------------------------------------------------- running


async def run_fault_bench(
    options: BenchOptions,
    faults: Sequence[str],
    *,
    fallback: bool = False,
    progress: Callable[[str], None] = lambda _: None,
) -> dict[str, Any]:
    """Run `options.calls` calls per fault class, without fallbacks, then (`fallback`) with;
    return the report (rows for the table, and every call's observations)."""
    context = start_context()
    synthesize_callers(options)
    rows: list[dict[str, Any]] = []
    calls: dict[str, list[dict[str, Any]]] = {}
    first_index = 1
    for with_fallback in (False, True) if fallback else (False,):
        run = _Configuration(context, options, with_fallback, progress)
        for name, observed in (await run.faults(faults, first_index)).items():
            rows.append(fault_row(name, with_fallback, observed))
            calls[row_key(name, with_fallback)] = observed
            first_index += len(observed)
    return {
        "date": datetime.now().astimezone().isoformat(timespec="seconds"),
        "machine": rpt.machine(),
        "options": {
            **rpt.options_dict(options),
            "faults": list(faults),
            "fallback": fallback,
            "fault_turn_timeout_seconds": TURN_TIMEOUT,
            "fault_stall_seconds": STALL_SECONDS,
        },
        "faults": rows,
        "calls": calls,
    }


class _Configuration:
    """The fault classes' calls with one fallback setting, on stand-ins of their own."""

    def __init__(
        self,
        context: Any,
        options: BenchOptions,
        fallback: bool,
        progress: Callable[[str], None],
    ) -> None:
        self._context = context
        self._options = options
        self._fallback = fallback
        self._progress = progress

    def _plan(self, env: dict[str, str], index: int, fault: str | None, turns: int) -> CallPlan:
        return call_plan(
            self._options, env, index, "product", turns, turn_timeout=TURN_TIMEOUT, fault=fault
        )

    async def faults(
        self, names: Sequence[str], first_index: int
    ) -> dict[str, list[dict[str, Any]]]:
        """Each class's calls' observations; calls are numbered from `first_index`."""
        out: dict[str, list[dict[str, Any]]] = {}
        index = first_index
        async with StandIns(self._options, fallback=self._fallback) as standins:
            env = standins.env()
            # As on a running line, the greeting and the apology are synthesized and cached
            # by an earlier call: this one, not counted.
            (warm_up,) = (await run_step(self._context, [self._plan(env, 0, None, 0)])).calls
            label = "with fallbacks" if self._fallback else "without fallbacks"
            self._progress(f"warm-up call ({label}): " + ("ok" if warm_up.result else "failed"))
            for name in names:
                out[name] = []
                for _ in range(self._options.calls):
                    call = await self._call(standins, env, index, FAULT_CLASSES[name])
                    out[name].append(call)
                    self._progress(_call_line(name, self._fallback, call))
                    index += 1
        return out

    async def _call(
        self, standins: StandIns, env: dict[str, str], index: int, fault: FaultClass
    ) -> dict[str, Any]:
        async def on_event(_plan: CallPlan, event: str) -> bool:
            if event != fault.switched_on_at:
                return False
            await switch_on(fault, standins)
            return True

        before = _request_counts(standins)
        plan = self._plan(env, index, fault.name, self._options.turns)
        try:
            (outcome,) = (await run_step(self._context, [plan], on_event=on_event)).calls
        finally:
            await standins.heal()
        return observe_call(outcome, standins, before, fallback=self._fallback)


def row_key(fault: str, fallback: bool) -> str:
    return f"{fault}+fallback" if fallback else fault


def _request_counts(standins: StandIns) -> dict[str, dict[str, int]]:
    def counts(openai: Any, deepgram: Any) -> dict[str, int]:
        return {
            "llm": len(openai.chat_requests),
            "tts": len(openai.speech_requests),
            "stt": len(deepgram.connections),
            "stt_refused": deepgram.refused_connections,
        }

    out = {"primary": counts(standins.openai, standins.deepgram)}
    if standins.fallback_openai is not None and standins.fallback_deepgram is not None:
        out["fallback"] = counts(standins.fallback_openai, standins.fallback_deepgram)
    return out


# --------------------------------------------------------------------------- one call


def observe_call(
    outcome: CallOutcome,
    standins: StandIns,
    before: dict[str, dict[str, int]],
    *,
    fallback: bool,
) -> dict[str, Any]:
    """What one call with a fault came to, from its result and from the stand-ins."""
    result = outcome.result or {}
    obs = result.get("fault") or {}
    after = _request_counts(standins)
    requests = {side: {k: after[side][k] - before[side][k] for k in after[side]} for side in after}
    record = find_record(standins.records_path, result.get("job_id", ""))
    error_logs = obs.get("error_logs") or []
    flow_crashed = bool(obs.get("entrypoint_error")) or any(
        "call flow failed" in line for line in error_logs
    )
    call: dict[str, Any] = {
        "fallback": fallback,
        "job_id": result.get("job_id"),
        "room": result.get("room"),
        "error": outcome.error,
        "exitcode": outcome.exitcode,
        "process_crashed": outcome.result is None or outcome.exitcode not in (0, None),
        "flow_crashed": flow_crashed,
        "requests": requests,
        "record": record,
        # A call whose process died has no job id to look for: its record counts as lost.
        "record_lost": record is None,
        "error_logs": error_logs,
        **measure(result, obs),
    }
    deletions = standins.livekit.deletions(result.get("room", "")) if result else []
    call["room_deleted"] = bool(deletions)
    call["room_deleted_by_agent"] = bool(deletions) and call["agent_hung_up"]
    return call


def measure(result: dict[str, Any], obs: dict[str, Any]) -> dict[str, Any]:
    """The caller's side of a call with a fault: silences, what was heard, whether it went on.
    Times are the call process's time.monotonic(); figures are seconds."""
    heard = audible(obs.get("heard") or [])
    fault_at = obs.get("fault_at")
    line_down_at = obs.get("line_down_at")
    closed_at = obs.get("session_closed_at")
    # The line is gone for the caller when the agent hangs up or its session closes.
    down_at = min((t for t in (line_down_at, closed_at) if t is not None), default=None)
    end = obs.get("caller_hung_up_at") or down_at or 0.0
    turns = result.get("turns") or []
    measured = []
    for i, turn in enumerate(turns):
        ended = turn["speech_ended_at"]
        window_end = turns[i + 1]["speech_started_at"] if i + 1 < len(turns) else end
        measured.append(
            {
                "line": turn["line"],
                **turn_silences(ended, max(window_end, ended), heard, down_at),
            }
        )
    longest = max(measured, key=lambda t: t["silence"], default=None)
    after_fault = [] if fault_at is None else [(s, f) for s, f in heard if s >= fault_at]
    first_word = None
    if fault_at is not None and after_fault:
        first_word = round(after_fault[0][0] - fault_at, 3)
    said_after = [text for at, text in obs.get("said") or [] if fault_at and at >= fault_at]
    apologies = {t.strip() for t in obs.get("apology_texts") or []}
    answered = all(t["silence_until"] == "audio" for t in measured)
    return {
        "turns": measured,
        "turns_taken": len(turns),
        "timeline": _timeline(result, obs, fault_at),
        "longest_silence": None if longest is None else longest["silence"],
        "longest_silence_until": None if longest is None else longest["silence_until"],
        "longest_gap": max((t["longest_gap"] for t in measured), default=None),
        "first_word_after_fault": first_word,
        "heard_after_fault_seconds": round(
            sum((f if f is not None else end) - s for s, f in after_fault), 3
        ),
        "said_after_fault": said_after,
        "apology": any(text.strip() in apologies for text in said_after),
        "agent_hung_up": line_down_at is not None,
        "agent_hung_up_after_fault": _since(fault_at, line_down_at),
        "session_closed_after_fault": _since(fault_at, closed_at),
        "continued": bool(result) and down_at is None and answered and not result.get("error"),
        "bench_error": result.get("error"),
    }


def audible(segments: Sequence[dict[str, Any]]) -> list[tuple[float, float | None]]:
    """The stretches the caller heard agent audio in: each segment without its gaps (its next
    frame late); (start, end), end None for a segment that never finished."""
    spans: list[tuple[float, float | None]] = []
    for segment in segments:
        start = segment["started_at"]
        for gap_start, gap_end in segment.get("gaps") or []:
            spans.append((start, gap_start))
            start = gap_end
        spans.append((start, segment["finished_at"]))
    # A gap at a segment's very end leaves an empty stretch: nothing was heard there.
    return [(a, b) for a, b in spans if b is None or b - a > 0.001]


def _timeline(
    result: dict[str, Any], obs: dict[str, Any], fault_at: float | None
) -> list[tuple[float, float | None, str]]:
    """(start, end, what) in seconds from the fault (before it: negative), in order: what
    the caller said and heard, and the line going down; for reading a call in the JSON."""
    zero = fault_at if fault_at is not None else 0.0
    events: list[tuple[float, float | None, str]] = []
    for turn in result.get("turns") or []:
        start, end = turn["speech_started_at"] - zero, turn["speech_ended_at"] - zero
        events.append((round(start, 3), round(end, 3), f"caller: {turn['line']}"))
    for segment in obs.get("heard") or []:
        finished = segment["finished_at"]
        events.append(
            (
                round(segment["started_at"] - zero, 3),
                None if finished is None else round(finished - zero, 3),
                "agent audio" + (" (interrupted)" if segment["interrupted"] else ""),
            )
        )
        for start, end in segment.get("gaps") or []:
            events.append((round(start - zero, 3), round(end - zero, 3), "  silence within it"))
    for at, text in obs.get("said") or []:
        events.append((round(at - zero, 3), None, f"agent said (item added): {text}"))
    for key in ("line_down_at", "session_closed_at", "caller_hung_up_at"):
        if obs.get(key) is not None:
            events.append((round(obs[key] - zero, 3), None, key.removesuffix("_at")))
    return sorted(events, key=lambda e: e[0])


def turn_silences(
    ended: float,
    window_end: float,
    heard: Sequence[tuple[float, float | None]],
    down_at: float | None,
) -> dict[str, Any]:
    """After a turn that ended at `ended`, until the caller spoke again (`window_end`):

    - silence: -> the agent's next audio (0 if it was speaking at that moment), or -> the
      line going down (`down_at`) if no audio came, or -> `window_end` if neither did;
    - longest_gap: the longest stretch without agent audio from `ended` to the end of the
      agent's last audio in the window (its silence when no audio came)."""
    spans = sorted(
        (start, math.inf if finish is None else finish)
        for start, finish in heard
        if start < window_end and (finish is None or finish > ended)
    )
    if not spans:
        if down_at is not None and down_at <= window_end:
            silence, until = max(0.0, down_at - ended), "line-down"
        else:
            silence, until = window_end - ended, "nothing"
        return {
            "silence": round(silence, 3),
            "silence_until": until,
            "longest_gap": round(silence, 3),
        }
    cursor, longest = ended, 0.0
    for start, finish in spans:
        longest = max(longest, start - cursor)
        cursor = max(cursor, finish)
    first = max(0.0, spans[0][0] - ended)
    return {"silence": round(first, 3), "silence_until": "audio", "longest_gap": round(longest, 3)}


def _since(start: float | None, at: float | None) -> float | None:
    return None if start is None or at is None else round(at - start, 3)


def find_record(records_path: Path, job_id: str) -> dict[str, Any] | None:
    """The record the product saved for this job (or spooled, when its database failed)."""
    if not job_id:
        return None
    found: dict[str, Any] | None = None
    if records_path.exists():
        try:
            store = CallStore.open(f"sqlite:///{records_path}")
        except StoreError:
            store = None
        if store is not None:
            try:
                record = store.get(job_id)
            finally:
                store.close()
            if record is not None:
                found = {**_record_fields(record.to_dict()), "saved_in": "store"}
    # The call's record is written in-progress first: a finished one, wherever, wins.
    for line in read_spool(records_path.parent / SPOOL_NAME):
        unfinished = found is None or found["outcome"] == "in-progress"
        if unfinished and line.record is not None and line.record.get("job_id") == job_id:
            found = {**_record_fields(line.record), "saved_in": "spool"}
    return found


def _record_fields(data: dict[str, Any]) -> dict[str, Any]:
    return {k: data.get(k) for k in ("outcome", "end_reason", "error", "duration_seconds")}


# --------------------------------------------------------------------------- the table


def fault_row(fault: str, fallback: bool, calls: list[dict[str, Any]]) -> dict[str, Any]:
    """One fault class, with or without fallbacks, over its calls."""
    silences = [c for c in calls if c["longest_silence"] is not None]
    worst = max(silences, key=lambda c: c["longest_silence"], default=None)
    fallback_requests = None
    if fallback:
        fallback_requests = {
            k: sum(c["requests"].get("fallback", {}).get(k, 0) for c in calls)
            for k in ("llm", "tts", "stt")
        }
    outcomes = sorted(
        {
            f"{c['record']['outcome']}/{c['record']['end_reason'] or '-'}"
            for c in calls
            if c["record"]
        }
    )
    return {
        "fault": fault,
        "summary": FAULT_CLASSES[fault].summary,
        "fallback": fallback,
        "calls": len(calls),
        "longest_silence": None if worst is None else worst["longest_silence"],
        "longest_silence_until": None if worst is None else worst["longest_silence_until"],
        "longest_gap": max(
            (c["longest_gap"] for c in calls if c["longest_gap"] is not None), default=None
        ),
        "first_word_after_fault": max(
            (c["first_word_after_fault"] for c in calls if c["first_word_after_fault"] is not None),
            default=None,
        ),
        "calls_without_a_word_after_fault": sum(c["first_word_after_fault"] is None for c in calls),
        "continued": sum(c["continued"] for c in calls),
        "words_after_fault": sum(c["heard_after_fault_seconds"] > 0 for c in calls),
        "apology": sum(c["apology"] for c in calls),
        "outcomes": outcomes,
        "errors": sorted(
            {c["record"]["error"] for c in calls if c["record"] and c["record"]["error"]}
        ),
        "room_deleted": sum(c["room_deleted"] for c in calls),
        "room_deleted_by_agent": sum(c["room_deleted_by_agent"] for c in calls),
        "records_lost": sum(c["record_lost"] for c in calls),
        "crashes": sum(c["process_crashed"] or c["flow_crashed"] for c in calls),
        "bench_errors": [c["error"] for c in calls if c["error"]],
        "fallback_requests": fallback_requests,
    }


TABLE_COLUMNS = (
    "fault",
    "fallback",
    "calls",
    "longest silence after a turn",
    "longest gap in an answer",
    "fault -> first word",
    "call continued",
    "words after fault",
    "apology",
    "outcome/end_reason",
    "room deleted",
    "records lost",
    "crashes",
    "fallback served llm/tts/stt",
)


def render(report: dict[str, Any]) -> str:
    """The markdown table, one row per fault class and fallback setting, and a legend."""
    options = report["options"]
    lines = [
        f"{options['calls']} call(s) x {options['turns']} turn(s) per fault class; providers: "
        f"STT {options['stt_ms']:g} ms, LLM first token {options['llm_ttft_ms']:g} ms, "
        f"TTS first byte {options['tts_ttfb_ms']:g} ms; a stall is "
        f"{options['fault_stall_seconds']:g} s; {report['machine']['cpus']} CPU(s)",
        "",
        "| " + " | ".join(TABLE_COLUMNS) + " |",
        "|" + "|".join("---" for _ in TABLE_COLUMNS) + "|",
    ]
    for row in report["faults"]:
        n = row["calls"]
        cells = [
            row["fault"],
            "yes" if row["fallback"] else "no",
            str(n),
            _silence(row["longest_silence"], row["longest_silence_until"]),
            _seconds(row["longest_gap"]),
            _seconds(row["first_word_after_fault"])
            + (
                f" ({row['calls_without_a_word_after_fault']} silent)"
                if row["calls_without_a_word_after_fault"]
                else ""
            ),
            f"{row['continued']}/{n}",
            f"{row['words_after_fault']}/{n}",
            f"{row['apology']}/{n}",
            ", ".join(row["outcomes"]) or "-",
            f"{row['room_deleted']}/{n} ({row['room_deleted_by_agent']} by the agent)",
            str(row["records_lost"]),
            str(row["crashes"]),
            _served(row["fallback_requests"]),
        ]
        lines.append("| " + " | ".join(cells) + " |")
    lines += [
        "",
        "silence after a turn: end of the caller's speech -> the agent's next audio (-> the line "
        "going down when none came; >= when neither came before the caller spoke again or hung "
        "up). longest gap: the longest stretch without agent audio until the agent's last audio "
        "after that turn. fault -> first word: the fault switched on -> the first agent audio "
        "after it. call continued: every turn answered, no hang-up by the agent.",
    ]
    for row in report["faults"]:
        for error in row["errors"][:2]:
            lines.append(f"{row_key(row['fault'], row['fallback'])}: record error: {error}")
        for error in row["bench_errors"][:2]:
            last = error.strip().splitlines()[-1] if error.strip() else error
            lines.append(f"{row_key(row['fault'], row['fallback'])}: bench: {last}")
    return "\n".join(lines)


def _silence(value: float | None, until: str | None) -> str:
    if value is None:
        return "- (no turn taken)"
    if until == "line-down":
        return f"{value:.1f} s, then line down"
    if until == "nothing":
        return f">= {value:.1f} s, nothing came"
    return f"{value:.1f} s"


def _seconds(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f} s"


def _served(requests: dict[str, int] | None) -> str:
    if requests is None:
        return "-"
    return f"{requests['llm']}/{requests['tts']}/{requests['stt']}"


def _call_line(fault: str, fallback: bool, call: dict[str, Any]) -> str:
    record = call["record"]
    ended = f"{record['outcome']}/{record['end_reason'] or '-'}" if record else "no record"
    silence = _silence(call["longest_silence"], call["longest_silence_until"])
    parts = [
        f"{row_key(fault, fallback)}: silence after a turn {silence}",
        f"first word after fault {_seconds(call['first_word_after_fault'])}",
        "apology" if call["apology"] else "no apology",
        "continued" if call["continued"] else "did not continue",
        ended,
    ]
    if call["error"]:
        parts.append(f"error: {call['error'].strip().splitlines()[-1][:200]}")
    return "; ".join(parts)


def failed(report: dict[str, Any]) -> bool:
    """A record lost or a crash: what the benchmark's exit code reports."""
    return any(row["records_lost"] or row["crashes"] for row in report["faults"])
