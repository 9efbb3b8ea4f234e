"""`python -m telephony bench`: how fast this project's agent answers, measured offline.

The real agent (agent.py's entrypoint, session factory, prompts, tools and settings) takes
inbound calls whose providers are local stand-ins speaking each provider's wire protocol
(`providers/`), so the real openai and deepgram plugins run, with the latencies given as
options. The callers are synthetic speech through a phone line (`caller.py`), the agent's
audio is timed at its output (`sink.py`); each call runs in a process of its own
(`call.py`, `runner.py`) and the figures are computed in `report.py`.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any

from telephony.devtools.bench import report as rpt
from telephony.devtools.bench.call import CallPlan
from telephony.devtools.bench.runner import (
    BenchOptions,
    StandIns,
    call_plan,
    run_step,
    start_context,
    synthesize_callers,
)
from telephony.domain.paths import PROJECT_ROOT

__all__ = ["BenchOptions", "default_output", "run_bench", "write_report"]


def default_output(now: datetime | None = None) -> Path:
    """bench-results/<date>-<time>.json in the project."""
    stamp = (now or datetime.now()).strftime("%Y-%m-%d-%H%M%S")
    return PROJECT_ROOT / "bench-results" / f"{stamp}.json"


async def run_bench(
    options: BenchOptions, progress: Callable[[str], None] = lambda _: None
) -> dict[str, Any]:
    """Run the calls (for each caller voice) and the sweep (the first voice); return the
    report (see report.py for the figures)."""
    context = start_context()
    variants = ["product", "baseline"] if options.baseline else ["product"]
    outcomes: dict[str, dict[str, list[Any]]] = {
        voice: {v: [] for v in variants} for voice in options.voices
    }
    sweep: list[dict[str, Any]] = []
    progress(f"caller voices: {', '.join(options.voices)}; synthesizing their lines...")
    synthesize_callers(options)
    async with StandIns(options) as standins:
        env = standins.env()

        def plan(
            index: int,
            variant: str,
            voice: str | None = None,
            answer_delay: float = 0.0,
            turns: int | None = None,
        ) -> CallPlan:
            turns = options.turns if turns is None else turns
            return call_plan(options, env, index, variant, turns, voice, answer_delay=answer_delay)

        # A running line has had callers before: the first call after a deploy (or a new
        # greeting text or voice) synthesizes the greeting and fills the cache. That call
        # is made first and not counted; its greeting is reported on its own.
        step = await run_step(context, [plan(0, "product", turns=0)])
        (warm_up,) = step.calls
        progress(_call_line(0, 0, "product", warm_up).replace("call 0/0", "warm-up call"))
        index = 0
        for voice in options.voices:
            for i in range(options.calls):
                index += 1
                for variant in variants:
                    step = await run_step(context, [plan(index, variant, voice)])
                    (outcome,) = step.calls
                    outcomes[voice][variant].append(outcome)
                    progress(_call_line(i + 1, options.calls, f"{variant}, {voice}", outcome))
        for n in options.sweep:
            progress(f"sweep: {n} call(s) at once...")
            plans = [
                plan(i + 1, "product", answer_delay=i * options.answer_interval) for i in range(n)
            ]
            step = await run_step(context, plans, on_progress=progress)
            row = rpt.sweep_row(n, step)
            sweep.append(row)
            progress(f"sweep: {n} call(s) done in {step.wall_seconds:.0f} s")

    voices = {voice: rpt.voice_report(calls, options.baseline) for voice, calls in outcomes.items()}
    first = voices[options.voices[0]]
    report: dict[str, Any] = {
        "date": datetime.now().astimezone().isoformat(timespec="seconds"),
        "machine": rpt.machine(),
        "options": rpt.options_dict(options),
        # The first voice's figures, where reports before --voice had them.
        "voice": options.voices[0],
        "runs": first["runs"],
        "ratio": first["ratio"],
        "voices": voices,
        "warm_up_greeting": (warm_up.result or {}).get("greeting"),
        "sweep": sweep,
        "calls": first["calls"],
    }
    return report


def write_report(report: dict[str, Any], path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")


def _call_line(index: int, total: int, variant: str, outcome: Any) -> str:
    result = outcome.result
    if result is None or result.get("greeting") is None:
        return f"call {index}/{total} ({variant}): failed: {(outcome.error or '').strip()[-300:]}"
    turns = ", ".join(
        "-"
        if t["response"] is None
        else f"{t['response'] * 1000:.0f}" + ("*" if t["detector_waited_max"] else "")
        for t in result["turns"]
    )
    return (
        f"call {index}/{total} ({variant}): greeting {result['greeting'] * 1000:.0f} ms; "
        f"answers {turns} ms" + (f"; error: {result['error']}" if result.get("error") else "")
    )
