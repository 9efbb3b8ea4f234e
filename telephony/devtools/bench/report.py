"""The benchmark's figures from the calls' measurements: summaries, the table, the JSON.

Every figure is given as p50 and p90 (numpy's linear interpolation between the closest
ranks) in milliseconds:

- greeting: call answered (the caller's participant active in the room) -> the session
  hands the first frame of the greeting to its audio output;
- response: the caller's last audible sample (spoken on the line) -> the session hands the
  first frame of the agent's answer to its audio output, on every answered turn, and on the
  turns the turn detector called finished;
- overhead: response minus the floor of that turn (`call.turn_floor`).
"""

from __future__ import annotations

import os
import platform
from collections.abc import Sequence
from typing import Any

import numpy as np

from telephony.devtools.bench import turn_overrides
from telephony.devtools.bench.caller import CALLER_VOICES
from telephony.devtools.bench.runner import BenchOptions, CallOutcome, StepOutcome
from telephony.operator.cli.base import table

FIGURES = (
    ("greeting", "(a) call answered -> first greeting audio"),
    ("response", "(b) end of caller speech -> first agent audio"),
    ("response_finished", "    on turns the detector called finished"),
    ("overhead", "(c) net overhead above the floor"),
    ("overhead_finished", "    on turns the detector called finished"),
)


def stats(values: Sequence[float]) -> dict[str, Any] | None:
    """p50, p90, min, max (ms) and n of values in seconds; None when there are none."""
    if not values:
        return None
    ms = np.array(values, dtype=float) * 1000
    return {
        "n": len(values),
        "p50": round(float(np.percentile(ms, 50)), 1),
        "p90": round(float(np.percentile(ms, 90)), 1),
        "min": round(float(ms.min()), 1),
        "max": round(float(ms.max()), 1),
    }


def summarize(outcomes: Sequence[CallOutcome]) -> dict[str, Any]:
    """One configuration's figures over its calls."""
    results = [o.result for o in outcomes if o.result is not None]
    errors = [o.error for o in outcomes if o.error]
    turns = [t for r in results for t in r["turns"]]
    answered = [t for t in turns if t["response"] is not None and not t["cut_off"]]
    finished = [t for t in answered if not t["detector_waited_max"]]
    options = next((r["options"] for r in results if r.get("options")), None)
    sources = sorted({r["greeting_source"] for r in results if r.get("greeting_source")})
    uss = [o.peak_uss_bytes for o in outcomes if o.peak_uss_bytes]
    return {
        "calls": len(outcomes),
        "calls_failed": len(outcomes) - len([r for r in results if not r.get("error")]),
        "errors": errors,
        "greeting": stats([r["greeting"] for r in results if r.get("greeting") is not None]),
        "response": stats([t["response"] for t in answered]),
        "response_finished": stats([t["response"] for t in finished]),
        "overhead": stats([t["overhead"] for t in answered]),
        "overhead_finished": stats([t["overhead"] for t in finished]),
        "turns": len(turns),
        "turns_answered": len(answered),
        "turns_detector_waited_max": sum(t["detector_waited_max"] for t in answered),
        "turns_cut_off": sum(t["cut_off"] for t in turns),
        "turns_committed_early": sum(t.get("committed_early", False) for t in turns),
        "turns_unanswered": sum(t["response"] is None for t in turns),
        "floor_finished_ms": _floor(finished),
        "floor_waited_max_ms": _floor([t for t in answered if t["detector_waited_max"]]),
        # when each step of a finished turn happened, after the end of the caller's speech
        "steps": {
            "final_transcript": stats([t["transcript"] for t in finished if t["transcript"]]),
            "vad_end_of_speech": stats([t["vad_end"] for t in finished if t["vad_end"]]),
            "turn_committed": stats([t["committed"] for t in finished if t["committed"]]),
            "first_audio": stats([t["response"] for t in finished]),
        },
        "session": options,
        "greeting_source": sources,
        "cpu_share_per_call": _mean(
            [r["cpu_seconds"] / r["call_seconds"] for r in results if r.get("call_seconds")]
        ),
        "uss_mb_per_call": _mb(uss),
    }


def ratios(product: dict[str, Any], baseline: dict[str, Any]) -> dict[str, Any]:
    """baseline / product for each figure's p50 and p90 (how many times the product is faster)."""
    out: dict[str, Any] = {}
    for key, _ in FIGURES:
        p, b = product.get(key), baseline.get(key)
        out[key] = {
            q: (round(b[q] / p[q], 2) if p and b and p[q] > 0 and b[q] > 0 else None)
            for q in ("p50", "p90")
        }
    return out


def voice_report(outcomes: dict[str, list[CallOutcome]], baseline: bool) -> dict[str, Any]:
    """One caller voice's figures per variant ("runs"), baseline / product ("ratio", with
    a baseline) and every call's measurements ("calls")."""
    runs = {variant: summarize(calls) for variant, calls in outcomes.items()}
    return {
        "runs": runs,
        "ratio": ratios(runs["product"], runs["baseline"]) if baseline else None,
        "calls": {
            variant: [o.result or {"error": o.error} for o in calls]
            for variant, calls in outcomes.items()
        },
    }


def sweep_row(n: int, step: StepOutcome) -> dict[str, Any]:
    summary = summarize(step.calls)
    cpus = step.cpus
    return {
        "concurrent_calls": n,
        **{key: summary[key] for key in ("greeting", "response", "response_finished")},
        "overhead": summary["overhead"],
        "overhead_finished": summary["overhead_finished"],
        "turns_answered": summary["turns_answered"],
        "turns_detector_waited_max": summary["turns_detector_waited_max"],
        "turns_cut_off": summary["turns_cut_off"],
        "turns_committed_early": summary["turns_committed_early"],
        "turns_unanswered": summary["turns_unanswered"],
        "calls_failed": summary["calls_failed"],
        "errors": summary["errors"],
        "machine_cpu_busy": None if step.machine_busy is None else round(step.machine_busy, 3),
        "standins_cpu_share": round(step.standins_cpu_seconds / step.wall_seconds / cpus, 3),
        "cpu_share_per_call": summary["cpu_share_per_call"],
        "uss_mb_per_call": summary["uss_mb_per_call"],
        "wall_seconds": round(step.wall_seconds, 1),
    }


def machine() -> dict[str, Any]:
    model = ""
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            model = next((ln.split(":", 1)[1].strip() for ln in f if "model name" in ln), "")
    except OSError:
        pass
    return {
        "cpus": os.cpu_count(),
        "cpu_model": model or platform.processor(),
        "python": platform.python_version(),
        "platform": platform.platform(),
    }


# --------------------------------------------------------------------------- the terminal


def render(report: dict[str, Any]) -> str:
    options = report["options"]
    lines = [
        f"{options['calls']} call(s) x {options['turns']} turn(s) per configuration and caller "
        f"voice; providers: STT {options['stt_ms']:g} ms, LLM first token "
        f"{options['llm_ttft_ms']:g} ms, TTS first byte {options['tts_ttfb_ms']:g} ms; "
        f"{report['machine']['cpus']} CPU(s)",
        "",
    ]
    # Reports from before --voice have one voice's figures, at the top level only.
    voices = report.get("voices") or {
        report.get("voice", "espeak"): {"runs": report["runs"], "ratio": report["ratio"]}
    }
    for name, figures in voices.items():
        lines += [_voice_heading(name), _figures_table(figures), ""]
    if (warm_up := report.get("warm_up_greeting")) is not None:
        lines.append(
            f"product greeting on the first call after a greeting or voice change "
            f"(synthesized, then cached; not counted above): {warm_up * 1000:.0f} ms"
        )
    for name, run in report["runs"].items():
        lines.append(f"{name}: {_describe(run)}")
    for voice, figures in voices.items():
        for name, run in figures["runs"].items():
            lines.append(f"{name}, {voice}: finished turns, p50 after the end of speech:")
            lines.append(f"  {_steps(run)}")
            for error in run["errors"][:3]:
                lines.append(f"  error: {error.splitlines()[-1] if error else error}")
    if report.get("sweep"):
        voice = report.get("voice", "espeak")
        lines += [
            "",
            f"capacity sweep (product, caller voice {voice}, N calls at once, one process each):",
        ]
        headers = [
            "calls",
            "greeting p50/p90",
            "response p50/p90",
            "overhead p50/p90",
            "max-delay turns",
            "failed",
            "machine CPU",
            "stand-ins CPU",
            "USS/call MB mean/max",
        ]
        rows = []
        for row in report["sweep"]:
            uss = row["uss_mb_per_call"]
            rows.append(
                [
                    str(row["concurrent_calls"]),
                    _slash(row["greeting"]),
                    _slash(row["response"]),
                    _slash(row["overhead"]),
                    f"{row['turns_detector_waited_max']}/{row['turns_answered']}",
                    str(row["calls_failed"]),
                    _pct(row["machine_cpu_busy"]),
                    _pct(row["standins_cpu_share"]),
                    f"{uss['mean']:.0f}/{uss['max']:.0f}" if uss else "-",
                ]
            )
        lines.append(table(headers, rows, right=range(0, len(headers))))
    return "\n".join(lines)


def _voice_heading(name: str) -> str:
    voice = CALLER_VOICES.get(name)
    return f"caller voice {name}" + (f" ({voice.summary}):" if voice else ":")


def _figures_table(figures: dict[str, Any]) -> str:
    """One caller voice's figures: the product's, and the baseline's beside them."""
    runs = figures["runs"]
    product, baseline = runs["product"], runs.get("baseline")
    headers = ["figure (ms)", "product p50", "p90"]
    if baseline is not None:
        headers += ["baseline p50", "p90", "baseline/product p50", "p90"]
    rows = []
    for key, label in FIGURES:
        row = [label, *_pair(product.get(key))]
        if baseline is not None:
            ratio = figures["ratio"][key]
            row += [*_pair(baseline.get(key)), _x(ratio["p50"]), _x(ratio["p90"])]
        rows.append(row)
    rows.append(_count_row("turns the detector made wait its maximum", runs, "max"))
    rows.append(_count_row("turns ended early / cut off / unanswered", runs, "cut"))
    rows.append(
        [
            "floor on finished turns",
            _ms(product["floor_finished_ms"]),
            "",
            *([_ms(baseline["floor_finished_ms"]), "", "", ""] if baseline else []),
        ]
    )
    return table(headers, rows, right=range(1, len(headers)))


def _pair(figure: dict[str, Any] | None) -> list[str]:
    if not figure:
        return ["-", "-"]
    return [f"{figure['p50']:.0f}", f"{figure['p90']:.0f}"]


def _slash(figure: dict[str, Any] | None) -> str:
    return "-" if not figure else f"{figure['p50']:.0f}/{figure['p90']:.0f}"


def _x(ratio: float | None) -> str:
    return "-" if ratio is None else f"{ratio:.2f}x"


def _ms(value: float | None) -> str:
    return "-" if value is None else f"{value:.0f}"


def _pct(share: float | None) -> str:
    return "-" if share is None else f"{share * 100:.0f}%"


def _count_row(label: str, runs: dict[str, Any], kind: str) -> list[str]:
    row = [label]
    for name in ("product", "baseline"):
        run = runs.get(name)
        if run is None:
            continue
        if kind == "max":
            text = f"{run['turns_detector_waited_max']} of {run['turns_answered']}"
        else:
            text = (
                f"{run['turns_committed_early']} / {run['turns_cut_off']} / "
                f"{run['turns_unanswered']}"
            )
        row += [text, ""]
        if name == "baseline":
            row += ["", ""]
    return row


def _describe(run: dict[str, Any]) -> str:
    s = run.get("session")
    if not s:
        return "no session options recorded"
    preemptive = "off"
    if s["preemptive_generation"]:
        preemptive = "on, with TTS" if s["preemptive_tts"] else "on (LLM only)"
    greeting = ", ".join(run["greeting_source"]) or "-"
    return (
        f"VAD {s['vad']} ({s['vad_silence']:g} s of silence); turn detection "
        f"{s['turn_detection']}; endpointing {s['endpointing_mode']} {s['min_delay']:g}-"
        f"{s['max_delay']:g} s; preemptive generation {preemptive}; greeting via {greeting}"
    )


def _steps(run: dict[str, Any]) -> str:
    names = {
        "final_transcript": "final transcript",
        "vad_end_of_speech": "VAD end of speech",
        "turn_committed": "turn committed",
        "first_audio": "first audio",
    }
    parts = []
    for key, label in names.items():
        figure = run["steps"].get(key)
        parts.append(f"{label} {figure['p50']:.0f} ms" if figure else f"{label} -")
    return ", ".join(parts)


def _floor(turns: list[dict[str, Any]]) -> float | None:
    floors = [t["floor"] for t in turns]
    return round(float(np.median(floors)) * 1000, 1) if floors else None


def _mean(values: list[float]) -> float | None:
    return round(sum(values) / len(values), 3) if values else None


def _mb(values: list[int]) -> dict[str, float] | None:
    if not values:
        return None
    mb = [v / 2**20 for v in values]
    return {"mean": round(sum(mb) / len(mb), 1), "max": round(max(mb), 1)}


def options_dict(options: BenchOptions) -> dict[str, Any]:
    return {
        "calls": options.calls,
        "turns": options.turns,
        "stt_ms": options.stt_ms,
        "llm_ttft_ms": options.llm_ttft_ms,
        "tts_ttfb_ms": options.tts_ttfb_ms,
        "baseline": options.baseline,
        "sweep": list(options.sweep),
        "tts_ms_per_char": options.tts_ms_per_char,
        "gap_seconds": options.gap,
        "pause_seconds": options.pause,
        "answer_interval_seconds": options.answer_interval,
        "caller_lines": list(options.lines),
        "turn_overrides": dict(options.turn),
        "turn_taking": turn_overrides.current() | dict(options.turn),
        "caller_voices": list(options.voices),
    }
