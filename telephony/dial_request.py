"""The outbound dial request carried in the job's metadata.

`lk dispatch create --metadata '{"phone_number": "+15105550123"}'` (or the agent
dispatch API) puts a JSON object in the job metadata. An empty metadata means no
dial: the job waits for whoever joins (an inbound caller, a web client).

Keys: `phone_number` (E.164, required), `transfer_to` (a number or SIP URI for this
call's "default" transfer), `dtmf` (keys LiveKit plays once the call is answered, to
reach an extension: digits, `*`, `#`, and `w` for a half-second pause, e.g. "ww1234#").
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field

from .phone_numbers import InvalidDestination, require_e164, transfer_uri


class InvalidMetadata(ValueError):
    """Job metadata that cannot be turned into a call; the message says what to fix."""


@dataclass(frozen=True)
class DialRequest:
    phone_number: str
    # Where a transfer of this call goes (a 'tel:' or 'sip:' URI), if the dispatcher set one.
    transfer_to: str | None = None
    # Keys played once the call is answered (an extension), e.g. "ww1234#"; "" for none.
    dtmf: str = ""
    # Dial even outside OUTBOUND_CALLING_HOURS (an operator's deliberate choice).
    force: bool = False
    # What the dispatcher knows about this call (a campaign row's columns, `--meta k=v`),
    # given to the agent with the call's other details.
    context: Mapping[str, str] = field(default_factory=dict)


_KNOWN_KEYS = {"phone_number", "transfer_to", "dtmf", "force", "context"}
_EXAMPLE = '{"phone_number": "+15105550123"}'
# LiveKit plays these after answer: 0-9 * # are keys, w (or W) waits half a second.
_DTMF = re.compile(r"[0-9*#wW]*")
MAX_DTMF_LENGTH = 32


def parse_dial_request(metadata: str | None) -> DialRequest | None:
    """Return the dial request in `metadata`, None when there is none, or raise InvalidMetadata."""
    if metadata is None or not metadata.strip():
        return None
    try:
        data = json.loads(metadata)
    except json.JSONDecodeError as e:
        raise InvalidMetadata(
            f"job metadata is not valid JSON ({e.msg} at line {e.lineno} column {e.colno}); "
            f"expected an object like {_EXAMPLE}"
        ) from None
    if not isinstance(data, dict):
        raise InvalidMetadata(
            f"job metadata must be a JSON object like {_EXAMPLE}, got {type(data).__name__}"
        )
    unknown = sorted(set(data) - _KNOWN_KEYS)
    if unknown:
        raise InvalidMetadata(
            f"job metadata has unknown key(s) {', '.join(map(repr, unknown))}; "
            f"known keys: {', '.join(sorted(_KNOWN_KEYS))}"
        )
    if "phone_number" not in data:
        raise InvalidMetadata(f"job metadata has no 'phone_number' to dial; expected {_EXAMPLE}")
    try:
        phone_number = require_e164(data["phone_number"], field="phone_number")
        transfer_to = data.get("transfer_to")
        if transfer_to is not None:
            transfer_to = transfer_uri(transfer_to, field="transfer_to")
    except InvalidDestination as e:
        raise InvalidMetadata(f"job metadata: {e}") from None
    force = data.get("force", False)
    if not isinstance(force, bool):
        raise InvalidMetadata(
            f"job metadata: force must be true or false, got {type(force).__name__}"
        )
    return DialRequest(
        phone_number=phone_number,
        transfer_to=transfer_to,
        dtmf=_dtmf(data.get("dtmf")),
        force=force,
        context=_context(data.get("context")),
    )


def _context(value: object) -> dict[str, str]:
    """The `context` key: a flat object of text (numbers and booleans are taken as text)."""
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise InvalidMetadata(
            'job metadata: context must be an object like {"name": "Dana"}, '
            f"got {type(value).__name__}"
        )
    context: dict[str, str] = {}
    for key, item in value.items():
        if isinstance(item, (dict, list)) or item is None:
            raise InvalidMetadata(
                f"job metadata: context {key!r} must be text, a number or true/false"
            )
        context[str(key)] = str(item).lower() if isinstance(item, bool) else str(item)
    return context


def _dtmf(value: object) -> str:
    """The `dtmf` key: keys to play after answer, checked before any call is placed."""
    if value is None:
        return ""
    if not isinstance(value, str):
        raise InvalidMetadata(
            f"job metadata: dtmf must be a string like 'ww1234#', got {type(value).__name__}"
        )
    if not _DTMF.fullmatch(value):
        raise InvalidMetadata(
            f"job metadata: dtmf {value!r} may only contain digits, *, # and w "
            "(a half-second pause)"
        )
    if len(value) > MAX_DTMF_LENGTH:
        raise InvalidMetadata(
            f"job metadata: dtmf {value!r} is {len(value)} characters long; "
            f"at most {MAX_DTMF_LENGTH} are allowed"
        )
    return value
