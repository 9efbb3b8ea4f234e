"""`python -m telephony bench`: measure how fast the agent answers, offline, with no keys."""

from __future__ import annotations

import argparse
import asyncio
import sys
from pathlib import Path
from typing import Any

from telephony.devtools.bench import (
    BenchOptions,
    default_output,
    run_bench,
    turn_overrides,
    write_report,
)
from telephony.devtools.bench import faults as fault_mode
from telephony.devtools.bench import report as rpt
from telephony.devtools.bench.caller import CALLER_VOICES, DEFAULT_VOICE, missing_for
from telephony.devtools.bench.runner import LINE_SETS
from telephony.operator.cli.base import CliError, UsageError, add_command, positive_int_arg

P = "python -m telephony"
MAX_SWEEP_CALLS = 256


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    details = (
        "Runs this project's agent (agent.py: its session, prompts, tools and settings) on\n"
        "inbound calls whose providers are local stand-ins speaking the real wire protocols\n"
        "(OpenAI chat completions and speech, Deepgram's streaming listen API), with the\n"
        "latencies below. Each caller is synthetic speech through an 8 kHz mu-law phone line,\n"
        "played in real time; it waits for the greeting, then says a line after each of the\n"
        "agent's answers. Each call runs in a process of its own, as the worker runs jobs.\n"
        "Needs sox (and espeak-ng for the espeak voice); no keys, no network. Caller voices\n"
        "(--voice; each voice gets its own calls and table, the sweep uses the first):\n"
        + "".join(f"  {name:<12} {v.summary}\n" for name, v in CALLER_VOICES.items())
        + "Caller lines (--lines): natural (questions, short answers, digits, a time, a\n"
        "spelled name) or plain (five plain sentences, the lines before natural ones).\n"
        "\n"
        "Figures (p50 and p90, in ms): (a) call answered -> first greeting audio at the agent's\n"
        "output; (b) end of the caller's speech -> first audio of the answer, on every turn and\n"
        "on the turns the turn detector called finished (it makes a turn it judges unfinished\n"
        "wait the maximum endpointing delay; those are counted); (c) net overhead: (b) minus\n"
        "the floor the session's settings allow, max(VAD silence, endpointing delay chosen,\n"
        "STT + LLM first token) + TTS first byte (with preemptive generation; see\n"
        "telephony/devtools/bench/call.py). --baseline also runs the agent as the LiveKit\n"
        "examples write it (greeting through generate_reply, default session settings) and\n"
        "prints the ratio. --sweep runs N calls at once for each N and adds CPU and private\n"
        "memory (USS) per call. The table goes to the terminal, everything measured to a JSON\n"
        "file.\n"
        "\n"
        "Fault mode (--fault CLASS, repeatable, or --fault all): a provider fails mid-call. The\n"
        "fault is switched on in the primary stand-ins once the greeting has played, before the\n"
        "caller's first line (stt-refused: before the call):\n"
        + "".join(f"  {c.name:<12} {c.summary}\n" for c in fault_mode.FAULT_CLASSES.values())
        + "--fallback also runs each class with the product's fallback LLM, TTS and STT\n"
        "configured (FALLBACK_* settings), each a second healthy stand-in; faults only hit\n"
        "the primaries. A markdown table, one row per class and fallback setting: the longest\n"
        "silence the caller heard after a turn, whether the call continued, whether a word\n"
        "(the apology) came after the fault, the record's outcome/end_reason, the room deleted\n"
        "by the agent, records lost and crashes. Exit code 1 if a record was lost or a call\n"
        "crashed."
    )
    parser = add_command(
        subparsers,
        "bench",
        summary="Benchmark the agent's latency (and capacity) against local provider stand-ins.",
        details=details,
        examples=[
            f"{P} bench",
            f"{P} bench --baseline --calls 10 --turns 4",
            f"{P} bench --llm-ttft-ms 700 --tts-ttfb-ms 250 --output bench-results/slow.json",
            f"{P} bench --sweep 1,4,8,16,32 --turns 3",
            f"{P} bench --baseline --pause-ms 500",
            f"{P} bench --baseline --voice joe,joe-slow,espeak --calls 3",
            f"{P} bench --fault llm-5xx --fault tts-stall --calls 1 --turns 2",
            f"{P} bench --fault all --fallback --calls 2",
        ],
        run=_bench,
    )
    parser.add_argument(
        "--calls", type=positive_int_arg, default=3, metavar="N", help="calls (default 3)"
    )
    parser.add_argument(
        "--turns",
        type=positive_int_arg,
        default=3,
        metavar="N",
        help="caller turns per call (default 3)",
    )
    parser.add_argument(
        "--stt-ms", type=_ms_arg, metavar="MS", default=100.0, help="STT latency (100)"
    )
    parser.add_argument(
        "--llm-ttft-ms",
        type=_ms_arg,
        metavar="MS",
        default=400.0,
        help="LLM time to first token (400)",
    )
    parser.add_argument(
        "--tts-ttfb-ms",
        type=_ms_arg,
        metavar="MS",
        default=150.0,
        help="TTS time to first byte (150)",
    )
    parser.add_argument(
        "--tts-ms-per-char",
        type=_ms_arg,
        metavar="MS",
        default=60.0,
        help="how long the stand-in TTS speaks per character (60)",
    )
    parser.add_argument(
        "--pause-ms",
        type=_ms_arg,
        metavar="MS",
        default=0.0,
        help="the caller hesitates: each line is said in two halves with MS of silence "
        "between them; turns the agent ended before the caller had finished are counted (0)",
    )
    parser.add_argument(
        "--voice",
        action="append",
        type=_voices_arg,
        default=[],
        metavar="NAME[,NAME...]",
        help=f"caller voice(s): {', '.join(CALLER_VOICES)} (repeatable; default {DEFAULT_VOICE})",
    )
    parser.add_argument(
        "--lines",
        choices=list(LINE_SETS),
        default="natural",
        help="what the callers say: natural or plain lines (default natural)",
    )
    parser.add_argument(
        "--baseline",
        action="store_true",
        help="also run the seed-style agent and print both side by side with the ratio",
    )
    parser.add_argument(
        "--sweep",
        type=_sweep_arg,
        default=(),
        metavar="N,N,...",
        help="capacity sweep: run N calls at once for each N (e.g. 1,4,8,16,32)",
    )
    parser.add_argument(
        "--turn",
        action="append",
        type=_turn_arg,
        default=[],
        metavar="NAME=VALUE",
        help="run the agent with another turn-taking value (repeatable): "
        f"{', '.join(turn_overrides.KNOBS)}; e.g. --turn max_delay=1.0 --turn preemptive_tts=on",
    )
    parser.add_argument(
        "--fault",
        action="append",
        type=_fault_arg,
        default=[],
        metavar="CLASS",
        help=f"fault mode: {', '.join(fault_mode.FAULT_CLASSES)} or {fault_mode.ALL} (repeatable)",
    )
    parser.add_argument(
        "--fallback",
        action="store_true",
        help="with --fault: also run each class with fallback providers configured",
    )
    parser.add_argument(
        "--output",
        type=Path,
        metavar="FILE",
        help="the JSON file (default bench-results/<date>-<time>.json in the project)",
    )


def _ms_arg(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not 0 <= value <= 60_000:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of milliseconds (0-60000)")
    return value


def _sweep_arg(text: str) -> tuple[int, ...]:
    try:
        values = tuple(int(part) for part in text.split(",") if part.strip())
    except ValueError:
        values = ()
    if not values or any(not 1 <= v <= MAX_SWEEP_CALLS for v in values):
        raise argparse.ArgumentTypeError(
            f"{text!r} is not a list of call counts like 1,4,8,16,32 (each 1-{MAX_SWEEP_CALLS})"
        )
    return values


def _turn_arg(text: str) -> tuple[str, Any]:
    try:
        return turn_overrides.parse(text)
    except ValueError as e:
        raise argparse.ArgumentTypeError(str(e)) from None


def _voices_arg(text: str) -> list[str]:
    names = [part.strip() for part in text.split(",") if part.strip()]
    unknown = [name for name in names if name not in CALLER_VOICES]
    if not names or unknown:
        raise argparse.ArgumentTypeError(
            f"{(unknown or [text])[0]!r} is not a caller voice ({', '.join(CALLER_VOICES)})"
        )
    return names


def _fault_arg(text: str) -> str:
    if text != fault_mode.ALL and text not in fault_mode.FAULT_CLASSES:
        choices = ", ".join([*fault_mode.FAULT_CLASSES, fault_mode.ALL])
        raise argparse.ArgumentTypeError(f"{text!r} is not a fault class ({choices})")
    return text


def _bench(args: argparse.Namespace) -> int:
    if args.fallback and not args.fault:
        raise UsageError("--fallback goes with --fault CLASS (fault mode)")
    if args.fault and (args.baseline or args.sweep):
        raise UsageError("--fault runs on its own: leave out --baseline and --sweep")
    voices = tuple(dict.fromkeys(name for names in args.voice for name in names))
    voices = voices or (DEFAULT_VOICE,)
    if args.fault and len(voices) > 1:
        raise UsageError("--fault runs with one caller voice: give --voice a single name")
    if missing := missing_for(voices):
        raise CliError(f"the synthetic callers need {', '.join(missing)}")
    output: Path = args.output or default_output()
    if output.exists() and output.is_dir():
        raise UsageError(f"--output {output} is a folder; name a .json file")
    options = BenchOptions(
        calls=args.calls,
        turns=args.turns,
        stt_ms=args.stt_ms,
        llm_ttft_ms=args.llm_ttft_ms,
        tts_ttfb_ms=args.tts_ttfb_ms,
        tts_ms_per_char=args.tts_ms_per_char,
        pause=args.pause_ms / 1000,
        baseline=args.baseline,
        sweep=args.sweep,
        turn=tuple(args.turn),
        lines=LINE_SETS[args.lines],
        voices=voices,
    )

    def progress(message: str) -> None:
        print(message, file=sys.stderr, flush=True)

    if args.fault:
        return _fault_bench(args, options, output, progress)
    report = asyncio.run(run_bench(options, progress))
    _publish(report, rpt.render(report), output)
    failed = sum(
        run["calls_failed"] for voice in report["voices"].values() for run in voice["runs"].values()
    )
    failed += sum(row["calls_failed"] for row in report["sweep"])
    return 1 if failed else 0


def _fault_bench(
    args: argparse.Namespace, options: BenchOptions, output: Path, progress: Any
) -> int:
    names = fault_mode.fault_names(args.fault)
    report = asyncio.run(
        fault_mode.run_fault_bench(options, names, fallback=args.fallback, progress=progress)
    )
    _publish(report, fault_mode.render(report), output)
    return 1 if fault_mode.failed(report) else 0


def _publish(report: dict[str, Any], table: str, output: Path) -> None:
    """Everything measured to `output`, the table to the terminal."""
    try:
        write_report(report, output)
    except OSError as e:
        raise CliError(f"could not write {output}: {e.strerror or e}") from e
    print(table)
    print(f"\nresults: {_shown(output)}")


def _shown(path: Path) -> str:
    try:
        return str(path.resolve().relative_to(Path.cwd()))
    except ValueError:
        return str(path)
