"""Telephony provisioning: create or update the SIP trunks and the dispatch rule from the
`lk` JSON files, and check a LiveKit project's telephony setup.

The operator commands `python -m telephony setup` and `python -m telephony status` print;
this module decides. File loading and the comparisons are pure; the functions that talk
to LiveKit take a `livekit.api.LiveKitAPI`. Objects on the server are matched by name.
"""

from __future__ import annotations

import json
import os
import socket
from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import aiohttp
from google.protobuf import json_format
from google.protobuf.message import Message
from livekit import api

from telephony.domain.bounded_json import InputFileError, read_json_file
from telephony.domain.placeholders import is_fictional_number, is_placeholder, placeholder_problem
from telephony.domain.settings import PROJECT_ROOT, Settings, agent_name_from_env

# The files and their kinds: in a module of their own, so `setup --help` names them quickly.
from telephony.operator.setup_files import DEFAULT_FILES, INBOUND, OUTBOUND, RULE

# Set by the server, never by a file: left out of every comparison.
SERVER_FIELDS = frozenset({"sip_trunk_id", "sip_dispatch_rule_id", "created_at", "updated_at"})
# Shown as this in anything printed (dry runs), never the value.
SECRET_FIELDS = frozenset({"auth_password"})
REDACTED = "<redacted>"
# Stands for the id of an inbound trunk that is created in the same run.
NEW_INBOUND_TRUNK_ID = "<id of the new inbound trunk>"

SETUP_COMMAND = "python -m telephony setup"

TrunkInfo = api.SIPInboundTrunkInfo | api.SIPOutboundTrunkInfo
Info = api.SIPInboundTrunkInfo | api.SIPOutboundTrunkInfo | api.SIPDispatchRuleInfo


class FileProblem(Exception):
    """A setup file cannot be used as it is: one line naming the file and the fix."""


class ServerProblem(Exception):
    """LiveKit could not be reached, refused the credentials or refused a request."""


# ------------------------------------------------------------------ the agent name


def worker_agent_name(env: Mapping[str, str] | None = None) -> tuple[str, str]:
    """The name the worker registers under, and the variable that sets it.

    LiveKit Agents' own LIVEKIT_AGENT_NAME_OVERRIDE (injected by LiveKit Cloud deployments)
    replaces the name given in code, which is LIVEKIT_AGENT_NAME or the default."""
    env = os.environ if env is None else env
    override = env.get("LIVEKIT_AGENT_NAME_OVERRIDE", "").strip()
    if override:
        return override, "LIVEKIT_AGENT_NAME_OVERRIDE"
    return agent_name_from_env(env), "LIVEKIT_AGENT_NAME"


def rule_agent_names(rule: api.SIPDispatchRuleInfo) -> list[str]:
    """The agents a dispatch rule sends into each call's room (roomConfig.agents)."""
    return [agent.agent_name for agent in rule.room_config.agents]


def check_rule_agent(
    rule: api.SIPDispatchRuleInfo, path: Path, agent_name: str, variable: str
) -> None:
    """Refuse a rule that would not dispatch this worker: calls would ring, no agent join."""
    names = rule_agent_names(rule)
    if agent_name in names:
        return
    shown = _display_path(path)
    if not any(names):
        raise FileProblem(
            f"{shown} dispatches no named agent (roomConfig.agents), but this worker registers "
            f"as '{agent_name}' ({variable}), so calls would ring and no agent join: add "
            f'{{"agentName": "{agent_name}"}} to roomConfig.agents in {shown}'
        )
    others = ", ".join(f"'{n}'" for n in names)
    raise FileProblem(
        f"{shown} dispatches agent {others} but this worker registers as '{agent_name}' "
        f"({variable}), so calls would ring and no agent join: set agentName to "
        f"'{agent_name}' in {shown}, or set {variable}={names[0]} in .env.local"
    )


# ------------------------------------------------------------------ the files


@dataclass
class DesiredSetup:
    """What the files ask for; None where a file was skipped."""

    inbound: api.SIPInboundTrunkInfo | None = None
    outbound: api.SIPOutboundTrunkInfo | None = None
    rule: api.SIPDispatchRuleInfo | None = None
    # The rule file names its trunks itself: setup leaves its trunk_ids as they are.
    rule_names_trunks: bool = False
    notes: list[str] = field(default_factory=list)


def load_setup(
    paths: Mapping[str, Path], agent_name: str, agent_variable: str = "LIVEKIT_AGENT_NAME"
) -> DesiredSetup:
    """Read the three files (a missing one is skipped with a note); check the rule's agent.

    Raises FileProblem for broken JSON, a wrong shape, a missing name or an agent name that
    is not this worker's; nothing has been sent by then."""
    desired = DesiredSetup()
    for kind in (INBOUND, OUTBOUND, RULE):
        path = paths[kind]
        if not path.exists():
            desired.notes.append(f"no {_display_path(path)}: the {kind} is skipped")
            continue
        if kind == INBOUND:
            desired.inbound = _load_trunk(path, api.CreateSIPInboundTrunkRequest, kind)
        elif kind == OUTBOUND:
            desired.outbound = _load_trunk(path, api.CreateSIPOutboundTrunkRequest, kind)
        else:
            desired.rule = load_dispatch_rule(path)
            desired.rule_names_trunks = bool(desired.rule.trunk_ids)
            check_rule_agent(desired.rule, path, agent_name, agent_variable)
    placeholders = [
        f"{_display_path(paths[kind])}: {line}"
        for kind, trunk in ((INBOUND, desired.inbound), (OUTBOUND, desired.outbound))
        if trunk is not None
        for line in trunk_placeholders(trunk)
    ]
    if placeholders:
        raise FileProblem(
            "the trunk files still hold example values; put your own there (nothing was sent):"
            "\n  - " + "\n  - ".join(placeholders)
        )
    if desired.inbound is None and desired.outbound is None and desired.rule is None:
        raise FileProblem(
            "nothing to set up: none of "
            + ", ".join(_display_path(paths[k]) for k in (INBOUND, OUTBOUND, RULE))
            + " exists"
        )
    if desired.rule is not None and not desired.rule_names_trunks and desired.inbound is None:
        desired.notes.append(
            "the dispatch rule names no trunk_ids and there is no inbound trunk file: "
            "the rule applies to calls on every trunk"
        )
    return desired


def _read_json(path: Path) -> Any:
    shown = _display_path(path)
    try:
        data = read_json_file(path, name=shown)
    except InputFileError as e:
        raise FileProblem(str(e)) from None
    if not isinstance(data, dict):
        raise FileProblem(f"{shown}: expected a JSON object, as `lk` takes")
    return data


def _parse(path: Path, data: dict[str, Any], message: Message) -> None:
    try:
        json_format.ParseDict(data, message)
    except json_format.ParseError as e:
        # protobuf's message lists the available fields on further lines.
        first = str(e).splitlines()[0].strip()
        raise FileProblem(f"{_display_path(path)}: {first}") from None


def _load_trunk(path: Path, request_cls: type[Message], kind: str) -> Any:
    data = _read_json(path)
    shown = _display_path(path)
    if not isinstance(data.get("trunk"), dict):
        command = "inbound" if kind == INBOUND else "outbound"
        raise FileProblem(
            f'{shown}: expected {{"trunk": {{"name": ..., "numbers": [...], ...}}}}, '
            f"the form `lk sip {command} create` takes"
        )
    request = request_cls()
    _parse(path, data, request)
    trunk = _copy(request.trunk)  # type: ignore[attr-defined]
    if not trunk.name:
        raise FileProblem(
            f'{shown}: the trunk has no "name": add one (setup finds the trunk on the server '
            "by its name)"
        )
    for name in ("sip_trunk_id", "created_at", "updated_at"):
        trunk.ClearField(name)
    return trunk


def trunk_placeholders(trunk: Message) -> list[str]:
    """One line per field of a trunk that still holds a shipped example value."""
    found: list[str] = []
    for fd, value in trunk.ListFields():
        values = list(value) if fd.is_repeated else [value]
        for item in values:
            if not isinstance(item, str):
                continue
            if is_placeholder(item):
                found.append(placeholder_problem(fd.json_name, item, _PLACEHOLDER_FIX[fd.name]))
            elif fd.name == "numbers" and is_fictional_number(item):
                found.append(placeholder_problem(fd.json_name, item, _PLACEHOLDER_FIX["numbers"]))
    return found


_PLACEHOLDER_FIX = defaultdict(
    lambda: "replace it with your provider's value",
    address="your SIP provider's host name (e.g. from its trunk settings)",
    auth_username="the SIP username your provider gave you",
    auth_password="the SIP password your provider gave you",
    numbers="your phone number: + then country code and number",
)


def load_dispatch_rule(path: Path) -> api.SIPDispatchRuleInfo:
    """The rule in a `lk sip dispatch create` file: {"dispatch_rule": {...}}, or the older
    flat form ({"name", "rule", "trunk_ids", ...} at the top)."""
    data = _read_json(path)
    shown = _display_path(path)
    request = api.CreateSIPDispatchRuleRequest()
    _parse(path, data, request)
    if request.HasField("dispatch_rule"):
        flat = [f.name for f, _ in request.ListFields() if f.name != "dispatch_rule"]
        if flat:
            raise FileProblem(
                f"{shown}: has both dispatch_rule and the old top-level fields "
                f"({', '.join(flat)}): move them into dispatch_rule"
            )
        rule = _copy(request.dispatch_rule)
    else:
        rule = api.SIPDispatchRuleInfo()
        json_format.ParseDict(
            json_format.MessageToDict(request, preserving_proto_field_name=True), rule
        )
    if not rule.name:
        raise FileProblem(
            f'{shown}: the dispatch rule has no "name": add one (setup finds the rule on the '
            "server by its name)"
        )
    if not rule.HasField("rule"):
        raise FileProblem(
            f'{shown}: the dispatch rule has no "rule": add e.g. '
            '"rule": {"dispatchRuleIndividual": {"roomPrefix": "call-"}}'
        )
    for name in ("sip_dispatch_rule_id", "created_at", "updated_at"):
        rule.ClearField(name)
    return rule


# ------------------------------------------------------------------ comparing


def differences(desired: Message, existing: Message) -> list[str]:
    """The fields (as the files spell them) where the server's object differs from the
    file's; server-set fields (ids, timestamps) do not count, nor the order of lists."""
    changed: list[str] = []
    for fd in desired.DESCRIPTOR.fields:
        if fd.name in SERVER_FIELDS:
            continue
        want, have = getattr(desired, fd.name), getattr(existing, fd.name)
        if _is_map(fd):
            same = dict(want) == dict(have)
        elif fd.is_repeated and fd.message_type is None:
            same = sorted(want) == sorted(have)
        elif fd.is_repeated:
            same = list(want) == list(have)
        else:
            same = want == have
        if not same:
            changed.append(fd.json_name)
    return changed


def _is_map(fd: Any) -> bool:
    return fd.message_type is not None and fd.message_type.GetOptions().map_entry


# ------------------------------------------------------------------ the server's state


@dataclass
class ServerState:
    inbound: list[api.SIPInboundTrunkInfo]
    outbound: list[api.SIPOutboundTrunkInfo]
    rules: list[api.SIPDispatchRuleInfo]


async def fetch_state(lkapi: api.LiveKitAPI, url: str) -> ServerState:
    """List the trunks and dispatch rules. The first list doubles as the credential check:
    a ServerProblem says in one line what is wrong (rejected keys, unreachable server)."""
    try:
        inbound = await lkapi.sip.list_inbound_trunk(api.ListSIPInboundTrunkRequest())
        outbound = await lkapi.sip.list_outbound_trunk(api.ListSIPOutboundTrunkRequest())
        rules = await lkapi.sip.list_dispatch_rule(api.ListSIPDispatchRuleRequest())
    except Exception as e:
        raise server_problem(e, url, "list the SIP trunks and dispatch rules") from None
    return ServerState(list(inbound.items), list(outbound.items), list(rules.items))


def server_problem(error: BaseException, url: str, doing: str) -> ServerProblem:
    """One line for a failed API call; re-raises what is not a server or network failure."""
    if isinstance(error, api.TwirpError):
        if error.status == 401 or error.code == api.TwirpErrorCode.UNAUTHENTICATED:
            return ServerProblem(
                f"LIVEKIT_API_KEY/SECRET rejected by {url}: copy them again from your "
                "project settings"
            )
        if error.status == 403 or error.code == api.TwirpErrorCode.PERMISSION_DENIED:
            return ServerProblem(
                f"{url} refused to {doing}: the API key lacks the permission "
                f"({error.message or error.code})"
            )
        detail = f"{error.message or 'no message'} ({error.code}, HTTP {error.status})"
        if error.status >= 500:
            return ServerProblem(f"{url} failed to {doing}: {detail}; try again later")
        if error.status == 404:
            detail += ": is LIVEKIT_URL your LiveKit server?"
        return ServerProblem(f"{url} refused to {doing}: {detail}")
    if isinstance(error, aiohttp.ClientConnectorError):
        return ServerProblem(f"cannot reach {url} ({_os_reason(error)}): is LIVEKIT_URL right?")
    if isinstance(error, TimeoutError):
        return ServerProblem(f"cannot reach {url} (no answer in time): is LIVEKIT_URL right?")
    if isinstance(error, aiohttp.InvalidURL):
        return ServerProblem(f"cannot reach {url} (not a valid URL): check LIVEKIT_URL")
    if isinstance(error, aiohttp.ClientError):
        reason = str(error) or type(error).__name__
        return ServerProblem(f"cannot reach {url} ({reason})")
    raise error


def _os_reason(error: aiohttp.ClientConnectorError) -> str:
    """ "Connection refused", "Name or service not known", ...: the OS's words, briefly."""
    os_error = error.os_error
    if isinstance(os_error, socket.gaierror) and os_error.strerror:
        return os_error.strerror
    if os_error.errno and not os.strerror(os_error.errno).startswith("Unknown error"):
        return os.strerror(os_error.errno)
    return os_error.strerror or str(os_error) or type(os_error).__name__


# ------------------------------------------------------------------ setup: plan and apply

Verb = Literal["create", "update", "unchanged"]


@dataclass
class Action:
    """What setup does with one object."""

    kind: str  # INBOUND, OUTBOUND or RULE
    verb: Verb
    desired: Any  # the info to create or to replace the existing one with
    existing_id: str = ""
    changed: list[str] = field(default_factory=list)

    @property
    def name(self) -> str:
        return self.desired.name

    @property
    def writes(self) -> bool:
        return self.verb != "unchanged"


def plan_setup(desired: DesiredSetup, state: ServerState) -> list[Action]:
    """Create, update or leave each object, matched by name; inbound trunk first, since the
    dispatch rule is attached to it. Raises ServerProblem when a name is ambiguous."""
    actions: list[Action] = []
    inbound_id = ""
    if desired.inbound is not None:
        action = _plan_one(INBOUND, desired.inbound, state.inbound, "sip_trunk_id")
        actions.append(action)
        inbound_id = action.existing_id if action.verb != "create" else NEW_INBOUND_TRUNK_ID
    if desired.outbound is not None:
        actions.append(_plan_one(OUTBOUND, desired.outbound, state.outbound, "sip_trunk_id"))
    if desired.rule is not None:
        rule = _copy(desired.rule)
        if not desired.rule_names_trunks and inbound_id:
            rule.trunk_ids[:] = [inbound_id]
        actions.append(_plan_one(RULE, rule, state.rules, "sip_dispatch_rule_id"))
    return actions


def _plan_one(kind: str, want: Any, found: Sequence[Any], id_field: str) -> Action:
    same_name = [item for item in found if item.name == want.name]
    if len(same_name) > 1:
        ids = ", ".join(getattr(item, id_field) for item in same_name)
        raise ServerProblem(
            f"{len(same_name)} {kind}s on the server are named '{want.name}' ({ids}): "
            "setup cannot tell which is yours; delete or rename the extra ones (with `lk sip`) "
            "and run setup again"
        )
    if not same_name:
        return Action(kind, "create", want)
    existing = same_name[0]
    existing_id = getattr(existing, id_field)
    changed = differences(want, existing)
    return Action(kind, "update" if changed else "unchanged", want, existing_id, changed)


def attach_new_inbound_trunk(action: Action, inbound_id: str) -> None:
    """Put the id of the inbound trunk created in this run into the rule's trunk_ids."""
    if action.kind == RULE and NEW_INBOUND_TRUNK_ID in action.desired.trunk_ids:
        action.desired.trunk_ids[:] = [
            inbound_id if t == NEW_INBOUND_TRUNK_ID else t for t in action.desired.trunk_ids
        ]


def request_for(action: Action) -> tuple[str, Message]:
    """The Twirp method and request message that carry out an action (not "unchanged")."""
    info = action.desired
    if action.kind == RULE:
        if action.verb == "create":
            return "CreateSIPDispatchRule", api.CreateSIPDispatchRuleRequest(dispatch_rule=info)
        return "UpdateSIPDispatchRule", api.UpdateSIPDispatchRuleRequest(
            sip_dispatch_rule_id=action.existing_id, replace=info
        )
    if action.kind == INBOUND:
        if action.verb == "create":
            return "CreateSIPInboundTrunk", api.CreateSIPInboundTrunkRequest(trunk=info)
        return "UpdateSIPInboundTrunk", api.UpdateSIPInboundTrunkRequest(
            sip_trunk_id=action.existing_id, replace=info
        )
    if action.verb == "create":
        return "CreateSIPOutboundTrunk", api.CreateSIPOutboundTrunkRequest(trunk=info)
    return "UpdateSIPOutboundTrunk", api.UpdateSIPOutboundTrunkRequest(
        sip_trunk_id=action.existing_id, replace=info
    )


def request_json(message: Message) -> str:
    """A request as JSON in the files' spelling, with every secret redacted."""
    data = json_format.MessageToDict(message)
    return json.dumps(_redact(data), indent=2)


def _redact(value: Any) -> Any:
    secret_keys = SECRET_FIELDS | {_camel(name) for name in SECRET_FIELDS}
    if isinstance(value, dict):
        return {k: (REDACTED if k in secret_keys and v else _redact(v)) for k, v in value.items()}
    if isinstance(value, list):
        return [_redact(v) for v in value]
    return value


def _camel(name: str) -> str:
    first, *rest = name.split("_")
    return first + "".join(part.title() for part in rest)


async def apply_action(lkapi: api.LiveKitAPI, action: Action, url: str) -> str:
    """Send one create or update; return the object's id."""
    info = action.desired
    try:
        if action.kind == INBOUND:
            if action.verb == "create":
                result: Any = await lkapi.sip.create_inbound_trunk(
                    api.CreateSIPInboundTrunkRequest(trunk=info)
                )
            else:
                result = await lkapi.sip.update_inbound_trunk(action.existing_id, info)
            return result.sip_trunk_id
        if action.kind == OUTBOUND:
            if action.verb == "create":
                result = await lkapi.sip.create_outbound_trunk(
                    api.CreateSIPOutboundTrunkRequest(trunk=info)
                )
            else:
                result = await lkapi.sip.update_outbound_trunk(action.existing_id, info)
            return result.sip_trunk_id
        if action.verb == "create":
            result = await lkapi.sip.create_dispatch_rule(
                api.CreateSIPDispatchRuleRequest(dispatch_rule=info)
            )
        else:
            result = await lkapi.sip.update_dispatch_rule(action.existing_id, info)
        return result.sip_dispatch_rule_id
    except Exception as e:
        raise server_problem(e, url, f"{action.verb} the {action.kind} '{info.name}'") from None


# ------------------------------------------------------------------ status checks

Level = Literal["ok", "problem", "note"]


@dataclass(frozen=True)
class Check:
    level: Level
    text: str


def ok(text: str) -> Check:
    return Check("ok", text)


def problem(text: str) -> Check:
    return Check("problem", text)


def note(text: str) -> Check:
    return Check("note", text)


def livekit_problems(settings: Settings, settings_problems: Sequence[str]) -> list[str]:
    """What keeps the CLI from talking to LiveKit: the three variables, a malformed URL."""
    found = [p for p in settings_problems if p.startswith("LIVEKIT_URL=")]
    found += [p for p in settings.missing_for("start") if p.startswith("LIVEKIT_")]
    return found


def check_server_state(
    state: ServerState,
    *,
    agent_name: str,
    agent_variable: str = "LIVEKIT_AGENT_NAME",
    outbound_trunk_id: str = "",
    outbound_trunk_id_checked: bool = True,
    noise_cancellation: str = "off",
) -> list[Check]:
    """Everything `status` says about the server's trunks and dispatch rules."""
    checks = _dispatch_checks(state, agent_name, agent_variable)
    checks += _inbound_trunk_checks(state)
    if outbound_trunk_id_checked:
        checks += _outbound_trunk_checks(state, outbound_trunk_id)
    if noise_cancellation != "off":
        stacked = [f"inbound trunk '{t.name}'" for t in state.inbound if t.krisp_enabled]
        stacked += [f"dispatch rule '{r.name}'" for r in state.rules if r.krisp_enabled]
        if stacked:
            checks.append(
                note(
                    f"{', '.join(stacked)} has krisp_enabled and NOISE_CANCELLATION="
                    f"{noise_cancellation} filters the caller again: two noise filters in a "
                    "row can muffle speech; turn one off (krispEnabled: false in the file, "
                    "then setup, or NOISE_CANCELLATION=off)"
                )
            )
    return checks


def _dispatch_checks(state: ServerState, agent_name: str, variable: str) -> list[Check]:
    inbound_ids = {t.sip_trunk_id for t in state.inbound}
    ours = [r for r in state.rules if agent_name in rule_agent_names(r)]
    others = [r for r in state.rules if agent_name not in rule_agent_names(r)]
    checks: list[Check] = []
    if not state.rules and not state.inbound:
        return [
            note(
                "inbound calls are not set up (no inbound trunk, no dispatch rule on the "
                f"server): fine for outbound only; to take calls run `{SETUP_COMMAND}`"
            )
        ]
    for rule in ours:
        label = f"dispatch rule '{rule.name}' ({rule.sip_dispatch_rule_id})"
        if not rule.trunk_ids:
            checks.append(ok(f"{label} sends calls on every trunk to agent '{agent_name}'"))
            continue
        attached = [t for t in rule.trunk_ids if t in inbound_ids]
        if attached:
            checks.append(ok(f"{label} sends calls on {', '.join(attached)} to '{agent_name}'"))
        else:
            checks.append(
                problem(
                    f"{label} dispatches '{agent_name}' but is attached to "
                    f"{', '.join(rule.trunk_ids)}, none of them an inbound trunk on the "
                    f"server, so no call reaches it: run `{SETUP_COMMAND}` to attach it to "
                    "your inbound trunk (or remove trunk_ids from the rule)"
                )
            )
    if not ours:
        checks.append(
            problem(
                f"no dispatch rule dispatches agent '{agent_name}' ({variable}): calls ring "
                f"and no agent joins; fix: run `{SETUP_COMMAND}`, which creates the rule "
                f"from dispatch-rule.json (its agentName must be '{agent_name}')"
            )
        )
    for rule in others:
        label = f"dispatch rule '{rule.name}' ({rule.sip_dispatch_rule_id})"
        names = [n for n in rule_agent_names(rule) if n]
        if names:
            what = f"{label} dispatches agent {', '.join(repr(n) for n in names)}, not this "
            what += f"worker's '{agent_name}'"
            fix = (
                f"set agentName to '{agent_name}' in dispatch-rule.json and run "
                f"`{SETUP_COMMAND}`, or run the worker with {variable}={names[0]}"
            )
        else:
            what = f"{label} dispatches no named agent, so this worker ('{agent_name}') "
            what += "never gets its calls"
            fix = f"add agentName '{agent_name}' to its roomConfig.agents"
        if ours:  # another agent's calls, next to ours: worth knowing, not wrong
            checks.append(note(f"{what} (another agent's calls?)"))
        else:
            checks.append(problem(f"{what}: {fix}"))
    return checks


def _server_placeholders(label: str, trunk: TrunkInfo, file: str) -> list[Check]:
    """A trunk on the server still holding a shipped example value (created from an unedited
    file before setup refused them, or by hand): no call gets through it."""
    return [
        problem(f"{label}: {line}; put it in {file} and run `{SETUP_COMMAND}`")
        for line in trunk_placeholders(trunk)
    ]


def _inbound_trunk_checks(state: ServerState) -> list[Check]:
    checks: list[Check] = []
    for trunk in state.inbound:
        label = f"inbound trunk '{trunk.name}' ({trunk.sip_trunk_id})"
        if examples := _server_placeholders(label, trunk, DEFAULT_FILES[INBOUND].name):
            checks += examples
        elif trunk.numbers:
            checks.append(ok(f"{label} answers {_numbers(trunk.numbers)}"))
        else:
            checks.append(
                problem(
                    f"{label} has no phone numbers, so it takes no calls: put your number "
                    f"in numbers in inbound-trunk.json and run `{SETUP_COMMAND}`"
                )
            )
    return checks


def _outbound_trunk_checks(state: ServerState, trunk_id: str) -> list[Check]:
    if not trunk_id:
        hint = ""
        if state.outbound:
            first = state.outbound[0]
            hint = (
                f" (the server has outbound trunk '{first.name}': put "
                f"SIP_OUTBOUND_TRUNK_ID={first.sip_trunk_id} in .env.local to use it)"
            )
        return [note(f"SIP_OUTBOUND_TRUNK_ID is not set: outbound calls are disabled{hint}")]
    trunk = next((t for t in state.outbound if t.sip_trunk_id == trunk_id), None)
    if trunk is None:
        inbound = next((t for t in state.inbound if t.sip_trunk_id == trunk_id), None)
        if inbound is not None:
            return [
                problem(
                    f"SIP_OUTBOUND_TRUNK_ID={trunk_id} is the inbound trunk '{inbound.name}': "
                    f"calls go out through an outbound trunk; run `{SETUP_COMMAND}` and use "
                    "the SIP_OUTBOUND_TRUNK_ID line it prints"
                )
            ]
        return [
            problem(
                f"SIP_OUTBOUND_TRUNK_ID={trunk_id}: no such outbound trunk on the server, so "
                f"every outbound call fails; run `{SETUP_COMMAND}` and put the "
                "SIP_OUTBOUND_TRUNK_ID line it prints in .env.local"
            )
        ]
    label = f"outbound trunk '{trunk.name}' ({trunk_id}, SIP_OUTBOUND_TRUNK_ID)"
    checks = _server_placeholders(label, trunk, DEFAULT_FILES[OUTBOUND].name)
    if not trunk.numbers:
        checks.append(
            problem(
                f"{label} has no phone numbers, so calls go out without a caller number and "
                f"providers refuse them: add yours to numbers in outbound-trunk.json and run "
                f"`{SETUP_COMMAND}`"
            )
        )
    if not trunk.address:
        checks.append(
            problem(
                f"{label} has no address: put your provider's SIP address in "
                f"outbound-trunk.json and run `{SETUP_COMMAND}`"
            )
        )
    if not checks:
        checks.append(ok(f"{label} calls from {_numbers(trunk.numbers)} via {trunk.address}"))
    return checks


def _numbers(numbers: Sequence[str], most: int = 3) -> str:
    shown = ", ".join(numbers[:most])
    return shown + (f" and {len(numbers) - most} more" if len(numbers) > most else "")


# ------------------------------------------------------------------ helpers


def _copy(message: Any) -> Any:
    clone = type(message)()
    clone.CopyFrom(message)
    return clone


def _display_path(path: Path) -> str:
    """Relative to the project when inside it (as the README names the files)."""
    try:
        return str(path.resolve().relative_to(PROJECT_ROOT))
    except ValueError:
        return str(path)
