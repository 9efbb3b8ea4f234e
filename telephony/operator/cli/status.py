"""`python -m telephony status` (alias `doctor`): check the settings and the LiveKit project's
telephony setup (credentials, dispatch rules, trunks), one line per finding with its fix."""

from __future__ import annotations

import argparse
import asyncio
import os
from typing import TYPE_CHECKING

from telephony.domain.prompts import PLACEHOLDERS, PromptError, Prompts
from telephony.domain.startup_checks import check_startup
from telephony.domain.terminal_text import printable
from telephony.operator.cli.base import CliError, add_command, add_request_timeout, within

if TYPE_CHECKING:  # imported where used: `--help` loads no livekit-api
    from telephony.domain.settings import Settings
    from telephony.operator.provisioning import Check

P = "python -m telephony"
LABELS = {"ok": "ok     ", "problem": "problem", "note": "note   "}


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    details = (
        "Checks, in order: what `python agent.py start` checks before it starts (settings,\n"
        "prompt files, hours, contacts and keypad menu: the same lines it refuses to start\n"
        "with; unknown names in .env.local/.env are notes); that OpenAI and Deepgram accept\n"
        "their keys (one cheap request each); that LiveKit accepts LIVEKIT_API_KEY/SECRET;\n"
        "that a dispatch rule sends calls to this worker's\n"
        "agent name (LIVEKIT_AGENT_NAME); that the inbound trunks have numbers and the rule\n"
        "is attached to one; that SIP_OUTBOUND_TRUNK_ID is an outbound trunk with a number.\n"
        "Each problem is one line with its fix; exit 1 if there is any. Secrets are never\n"
        "printed."
    )
    for name, summary in (
        ("status", "Check the settings and the LiveKit telephony setup; say what to fix."),
        ("doctor", "The same as `status`."),
    ):
        parser = add_command(
            subparsers,
            name,
            summary=summary,
            details=details,
            examples=[f"{P} {name}"],
            run=_status,
        )
        add_request_timeout(parser)


def _status(args: argparse.Namespace) -> int:
    from telephony.operator import provisioning as prov
    from telephony.operator.provider_keys import provider_key_checks
    from telephony.operator.provisioning import note, ok, problem

    # The worker's own start-up check: a problem here is one `agent.py start` refuses.
    startup = check_startup("start")
    settings, local = startup.settings, startup.problems
    print("settings")
    checks = [problem(p) for p in local] or [
        ok(
            "the worker would start: settings and prompts valid; the LiveKit, OpenAI and "
            "Deepgram keys are set"
        )
    ]
    checks += [note(w) for w in startup.warnings]
    _print(checks)

    print("providers")
    if any(p.startswith(("OPENAI_", "DEEPGRAM_")) for p in local):
        keys = [note("not checked: fix the provider settings above first")]
    else:
        keys = asyncio.run(provider_key_checks(settings.models, args.request_timeout))
    _print(keys)
    checks += keys

    print("when a provider fails")
    _print(failure_plan(settings))

    print("outbound calls")
    _print(outbound_plan(settings))

    url = settings.livekit_url
    print(f"LiveKit{f' at {url}' if url else ''}")
    if prov.livekit_problems(settings, local):
        server = [
            note("not checked: needs a valid LIVEKIT_URL, LIVEKIT_API_KEY and LIVEKIT_API_SECRET")
        ]
    else:
        server = asyncio.run(_bounded_server_checks(settings, args.request_timeout))
    _print(server)

    checks += server
    print("call records")
    records = record_checks(settings)
    _print(records)
    checks += records
    problems = sum(c.level == "problem" for c in checks)
    notes = sum(c.level == "note" for c in checks)
    noted = f", {notes} note{'s' * (notes != 1)}" if notes else ""
    print()
    if problems:
        print(
            f"{problems} problem{'s' * (problems != 1)}{noted}: fix them, then run "
            f"`{P} status` again"
        )
        return 1
    print(f"all checks passed{noted}")
    return 0


def record_checks(settings: Settings) -> list[Check]:
    """Records waiting outside the database: held in memory (a problem: the worker could
    store them nowhere) or in the spool (a note: import it)."""
    # Imported here: the records' modules bring SQLAlchemy, which other commands never need.
    from telephony.operator.provisioning import note, ok, problem
    from telephony.records.recovery import held_problem
    from telephony.records.spool import read_spool, spool_path

    try:
        held = held_problem(settings)
        spooled = sum(line.record is not None for line in read_spool(spool_path(settings)))
    except OSError as e:
        return [problem(f"cannot read the call records spool: {e.strerror or e}")]
    checks = []
    if held:
        checks.append(problem(f"{held}: free disk space or bring the database back"))
    if spooled:
        checks.append(
            note(
                f"{spooled} call record(s) wait in the spool {spool_path(settings)}: run "
                f"`{P} calls import-spool` once the database is reachable"
            )
        )
    return checks or [ok("no call records waiting outside the database")]


def failure_plan(settings: Settings) -> list[Check]:
    """The fallbacks set, and what a caller hears when no provider can answer."""
    from telephony.operator.provisioning import note, ok

    fallbacks = settings.models.fallbacks
    lines = [ok(f"fallback {kind.upper()}: {what}") for kind, what in fallbacks.items()]
    setting = {
        "llm": "FALLBACK_LLM_MODEL",
        "tts": "FALLBACK_TTS_PROVIDER",
        "stt": "FALLBACK_STT_PROVIDER",
    }
    missing = [kind for kind in setting if kind not in fallbacks]
    if missing:
        lines.append(
            note(
                f"no fallback {', '.join(k.upper() for k in missing)}: set "
                f"{', '.join(setting[k] for k in missing)} to add one"
            )
        )
    then = (
        f"then transferred to {settings.provider_failure_transfer}"
        if settings.provider_failure_transfer
        else "then the call hangs up"
    )
    lines.append(ok(f"when none can answer: the caller hears the apology, {then}"))
    return lines


def outbound_plan(settings: Settings) -> list[Check]:
    """What the law cares about on calls we place: disclosure and the callee's hours."""
    from telephony.operator.provisioning import note, ok

    lines: list[Check] = []
    if not settings.ai_disclosure:
        lines.append(
            note(
                "warning: AI_DISCLOSURE=false: outbound calls do not say who is calling nor "
                "that it is an automated assistant; many laws require it (in the US the "
                "TCPA, per the FCC's 2024 ruling): set AI_DISCLOSURE=true"
            )
        )
    else:
        try:
            words = Prompts.load(settings.prompts_dir).render(
                "outbound_disclosure",
                dict.fromkeys(PLACEHOLDERS, "") | {"company_name": settings.company_name},
            )
        except (PromptError, KeyError):
            words = ""  # the settings section above reports the prompts folder
        if words.strip():
            lines.append(ok(f"first words on calls we place: {printable(words.strip())}"))
        else:
            lines.append(
                note(
                    "warning: outbound_disclosure.txt is empty or unreadable: outbound calls "
                    "do not say who is calling nor that it is an automated assistant"
                )
            )
    if settings.callee_calling_hours.strip() == "24/7":
        lines.append(note("CALLEE_CALLING_HOURS=24/7: callees are called at any hour of their day"))
    else:
        lines.append(
            ok(f"callees are called {settings.callee_calling_hours} in their own time zone")
        )
    return lines


async def _bounded_server_checks(settings: Settings, seconds: float) -> list[Check]:
    from telephony.operator.provisioning import problem

    try:
        return await within(seconds, f"LiveKit at {settings.livekit_url}", _server_checks(settings))
    except CliError as e:
        return [problem(str(e))]


async def _server_checks(settings: Settings) -> list[Check]:
    from livekit import api

    from telephony.operator import provisioning as prov
    from telephony.operator.provisioning import ok, problem

    url = settings.livekit_url
    # A diagnosis reports what this URL answers: no replay against other regions.
    async with api.LiveKitAPI(
        url, settings.livekit_api_key, settings.livekit_api_secret, failover=False
    ) as lk:
        try:
            state = await prov.fetch_state(lk, url)
        except prov.ServerProblem as e:
            return [problem(str(e))]
    agent_name, variable = prov.worker_agent_name()
    # A malformed SIP_OUTBOUND_TRUNK_ID is already a settings problem; don't call it unset.
    malformed = bool(os.environ.get("SIP_OUTBOUND_TRUNK_ID", "").strip()) and not (
        settings.outbound_trunk_id
    )
    found = (
        f"{len(state.inbound)} inbound trunk(s), {len(state.outbound)} outbound trunk(s), "
        f"{len(state.rules)} dispatch rule(s)"
    )
    return [
        ok(f"credentials accepted; {found}"),
        *prov.check_server_state(
            state,
            agent_name=agent_name,
            agent_variable=variable,
            outbound_trunk_id=settings.outbound_trunk_id,
            outbound_trunk_id_checked=not malformed,
            noise_cancellation=settings.noise_cancellation,
        ),
    ]


def _print(checks: list[Check]) -> None:
    for check in checks:
        print(f"  {LABELS[check.level]}  {check.text}")
