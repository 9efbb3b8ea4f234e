"""`python -m telephony setup`: create or update the SIP trunks and the dispatch rule on your
LiveKit project from the `lk` JSON files (inbound-trunk.json, outbound-trunk.json,
dispatch-rule.json). Safe to run again: what already matches is left alone."""

from __future__ import annotations

import argparse
import asyncio
import textwrap
from pathlib import Path
from typing import TYPE_CHECKING

from telephony.domain.settings import Settings, SettingsError, parse_settings
from telephony.operator.cli.base import CliError, add_command, add_request_timeout, within
from telephony.operator.setup_files import DEFAULT_FILES, INBOUND, OUTBOUND, RULE

if TYPE_CHECKING:  # imported where used: `--help` loads no livekit-api
    from livekit import api

    from telephony.operator import provisioning as prov

P = "python -m telephony"


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = add_command(
        subparsers,
        "setup",
        summary="Create or update the SIP trunks and the dispatch rule from the lk JSON files.",
        details=(
            "Reads inbound-trunk.json, outbound-trunk.json and dispatch-rule.json (the files\n"
            "`lk sip ... create` takes) and makes your LiveKit project match them. Objects are\n"
            "found by their `name`: a missing one is created, a changed one is updated in place\n"
            "(same id), a matching one is left alone, so running setup twice changes nothing.\n"
            "A missing file is skipped with a note (inbound-only and outbound-only setups).\n"
            "The dispatch rule is attached to the inbound trunk set up here, unless\n"
            "the file names trunk_ids itself. A rule whose agentName is not this worker's\n"
            "(LIVEKIT_AGENT_NAME) is refused before anything is sent. Prints the outbound\n"
            "trunk's SIP_OUTBOUND_TRUNK_ID line for .env.local. Needs LIVEKIT_URL,\n"
            "LIVEKIT_API_KEY and LIVEKIT_API_SECRET."
        ),
        examples=[
            f"{P} setup --dry-run",
            f"{P} setup",
            f"{P} setup --inbound-trunk sip/inbound-prod.json --dispatch-rule sip/rule-prod.json",
        ],
        run=_setup,
    )
    parser.add_argument(
        "--dry-run",
        action="store_true",
        help="print each request setup would send (method and JSON, passwords redacted); "
        "send no change (it still lists what exists)",
    )
    for option, kind in (
        ("--inbound-trunk", INBOUND),
        ("--outbound-trunk", OUTBOUND),
        ("--dispatch-rule", RULE),
    ):
        parser.add_argument(
            option,
            metavar="FILE",
            type=Path,
            help=f"the {kind} file (default: {DEFAULT_FILES[kind].name} in the project)",
        )
    add_request_timeout(parser)


def _setup(args: argparse.Namespace) -> int:
    from telephony.operator import provisioning as prov

    chosen = {
        INBOUND: args.inbound_trunk,
        OUTBOUND: args.outbound_trunk,
        RULE: args.dispatch_rule,
    }
    paths = {kind: path or DEFAULT_FILES[kind] for kind, path in chosen.items()}
    agent_name, variable = prov.worker_agent_name()
    try:
        desired = prov.load_setup(paths, agent_name, variable)
    except prov.FileProblem as e:
        raise CliError(str(e), exit_code=2) from None
    settings, problems = parse_settings()
    needed = prov.livekit_problems(settings, problems)
    if needed:
        raise SettingsError(needed)
    for text in desired.notes:
        print(f"note: {text}")
    return asyncio.run(_run(desired, settings, dry_run=args.dry_run, timeout=args.request_timeout))


async def _run(
    desired: prov.DesiredSetup, settings: Settings, *, dry_run: bool, timeout: float
) -> int:
    from livekit import api

    from telephony.operator import provisioning as prov

    url = settings.livekit_url
    async with api.LiveKitAPI(url, settings.livekit_api_key, settings.livekit_api_secret) as lk:
        server = f"LiveKit at {url}"
        try:
            state = await within(timeout, server, prov.fetch_state(lk, url))
            actions = prov.plan_setup(desired, state)
            if dry_run:
                return _dry_run(actions, url)
            return await _apply(lk, actions, url, settings.outbound_trunk_id, timeout)
        except prov.ServerProblem as e:
            raise CliError(str(e)) from None


def _dry_run(actions: list[prov.Action], url: str) -> int:
    from telephony.operator import provisioning as prov

    print(f"dry run: nothing is changed on {url} (only listed); setup would send:")
    for action in actions:
        if not action.writes:
            print(f"{_label(action)}: unchanged {action.existing_id}, nothing to send")
            continue
        if action.verb == "create":
            print(f"{_label(action)}: would create it")
        else:
            changed = ", ".join(action.changed)
            print(f"{_label(action)}: would update {action.existing_id} (changed: {changed})")
        method, request = prov.request_for(action)
        print(f"  livekit.SIP/{method}")
        print(textwrap.indent(prov.request_json(request), "  "))
    count = sum(action.writes for action in actions)
    if count:
        print(f"dry run: {count} request(s) would be sent; run without --dry-run to send them")
    else:
        print("dry run: nothing to change, the server already matches the files")
    return 0


async def _apply(
    lk: api.LiveKitAPI,
    actions: list[prov.Action],
    url: str,
    configured_trunk_id: str,
    timeout: float,
) -> int:
    from telephony.operator import provisioning as prov

    inbound_id = outbound_id = ""
    for action in actions:
        if action.kind == RULE and inbound_id:
            prov.attach_new_inbound_trunk(action, inbound_id)
        if action.writes:
            object_id = await within(
                timeout, f"LiveKit at {url}", prov.apply_action(lk, action, url)
            )
        else:
            object_id = ""
        object_id = object_id or action.existing_id
        print(_outcome(action, object_id))
        if action.kind == INBOUND:
            inbound_id = object_id
        elif action.kind == OUTBOUND:
            outbound_id = object_id
    created = sum(a.verb == "create" for a in actions)
    updated = sum(a.verb == "update" for a in actions)
    if created or updated:
        unchanged = len(actions) - created - updated
        print(f"done: {created} created, {updated} updated, {unchanged} unchanged")
    else:
        print("nothing to change: the server already matches the files")
    if outbound_id:
        _print_trunk_id_line(outbound_id, configured_trunk_id)
    print(f"next: `{P} status` checks the whole setup")
    return 0


def _label(action: prov.Action) -> str:
    return f"{action.kind} '{action.name}'"


def _outcome(action: prov.Action, object_id: str) -> str:
    from telephony.operator import provisioning as prov

    info = action.desired
    if action.kind == RULE:
        agents = ", ".join(prov.rule_agent_names(info)) or "none"
        trunks = ", ".join(info.trunk_ids) or "every trunk"
        detail = f"agent {agents}, trunks: {trunks}"
    else:
        detail = f"numbers: {', '.join(info.numbers) or 'none'}"
    if action.verb == "create":
        return f"{_label(action)}: created {object_id} ({detail})"
    if action.verb == "update":
        changed = ", ".join(action.changed)
        return f"{_label(action)}: updated {object_id} in place (changed: {changed}; {detail})"
    return f"{_label(action)}: unchanged {object_id}"


def _print_trunk_id_line(trunk_id: str, configured: str) -> None:
    print(f"outbound trunk id: {trunk_id}; put this line in .env.local:")
    print(f"SIP_OUTBOUND_TRUNK_ID={trunk_id}")
    if configured == trunk_id:
        print("(SIP_OUTBOUND_TRUNK_ID is already set to it)")
    elif configured:
        print(f"(SIP_OUTBOUND_TRUNK_ID is {configured} now: replace it, then restart the worker)")
