"""What a job's metadata asks for: a call to place, or context for a call we answer.

`lk dispatch create --metadata '{"phone_number": "+15105550123"}'` (or the agent dispatch
API) puts a JSON object in the job metadata. Only a `phone_number` key makes a job a call to
place. Any other metadata, which dispatch rules (`roomConfig.agents[].metadata`) and worker
hosts attach too, leaves the job an inbound or web call: its JSON object's values are context
for that call (the prompts see them), and metadata that is not a JSON object is ignored with
a warning. It is never a reason to hang up on a caller.

Dial request keys: `phone_number` (E.164, required), `transfer_to` (a number or SIP URI for
this call's "default" transfer), `dtmf` (keys LiveKit plays once the call is answered, to
reach an extension: digits, `*`, `#`, and `w` for a half-second pause, e.g. "ww1234#"),
`force` and `context`.

Limits (a dispatcher's typo or a hostile value never crashes the job): the metadata is at
most 64,000 characters and 16 levels deep, numbers at most 100 digits; context (inbound or a
dial request's) at most 50 keys of 64 characters, values of 500. Past a limit, a dial request
is refused (InvalidMetadata) and other metadata is ignored with a reason.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field

from telephony.domain.bounded_json import JsonLimitError, loads_bounded
from telephony.domain.phone_numbers import InvalidDestination, quoted, require_e164, transfer_uri


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


@dataclass(frozen=True)
class JobMetadata:
    """A job's metadata, read: a call to place, or context for the call we answer."""

    dial: DialRequest | None = None
    # For a call we answer: the metadata object's values, as text.
    context: Mapping[str, str] = field(default_factory=dict)
    # Why metadata was ignored (not a JSON object), for one warning line; "" if it was not.
    ignored: str = ""


# The name under which a call's own `transfer_to` (from its job metadata) is offered.
CALL_TRANSFER_TARGET = "default"

# A dial request's key: its presence, even in broken JSON, makes the job a call to place.
DIAL_KEY = "phone_number"
# Bounds on the metadata as a whole: LiveKit carries it in every job message.
MAX_METADATA_CHARS = 64_000
MAX_METADATA_DEPTH = 16
# Bounds on a call's context (inbound, or a dial request's), which ends up in the LLM's
# instructions: an inbound call's is cut to them, a dial request's must keep within them.
MAX_CONTEXT_ITEMS = 50
MAX_CONTEXT_KEY_LENGTH = 64
MAX_CONTEXT_VALUE_LENGTH = 500


def read_job_metadata(metadata: str | None) -> JobMetadata:
    """Read `metadata`; raise InvalidMetadata only for a malformed dial request."""
    if metadata is None or not metadata.strip():
        return JobMetadata()
    try:
        data = loads_bounded(metadata, max_chars=MAX_METADATA_CHARS, max_depth=MAX_METADATA_DEPTH)
    except JsonLimitError as e:
        if DIAL_KEY in metadata:
            raise InvalidMetadata(f"job metadata {e}; expected an object like {_EXAMPLE}") from None
        return JobMetadata(ignored=f"it {e}")
    if not isinstance(data, dict):
        return JobMetadata(ignored=f"it is a JSON {type(data).__name__}, not an object")
    if DIAL_KEY not in data:
        return JobMetadata(context=_inbound_context(data))
    return JobMetadata(dial=_dial_request(data))


def parse_dial_request(metadata: str | None) -> DialRequest | None:
    """The dial request in `metadata`, None when it asks for no call, or raise InvalidMetadata."""
    return read_job_metadata(metadata).dial


def _inbound_context(data: Mapping[str, object]) -> dict[str, str]:
    """An answered call's metadata as text: nested values as JSON, the size bounded."""
    context: dict[str, str] = {}
    for key, value in list(data.items())[:MAX_CONTEXT_ITEMS]:
        if value is None:
            continue
        context[key[:MAX_CONTEXT_KEY_LENGTH]] = _text(value)[:MAX_CONTEXT_VALUE_LENGTH]
    return context


def _text(value: object) -> str:
    """A JSON value as the agent reads it: true/false, numbers as written, nested as JSON."""
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, (dict, list)):
        return json.dumps(value, ensure_ascii=False, separators=(",", ":"))
    return str(value)


def _dial_request(data: Mapping[str, object]) -> DialRequest:
    unknown = sorted(set(data) - _KNOWN_KEYS)
    if unknown:
        more = f" and {len(unknown) - 5} more" if len(unknown) > 5 else ""
        raise InvalidMetadata(
            f"job metadata has unknown key(s) {', '.join(map(quoted, unknown[:5]))}{more}; "
            f"known keys: {', '.join(sorted(_KNOWN_KEYS))}"
        )
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
    if len(value) > MAX_CONTEXT_ITEMS:
        raise InvalidMetadata(
            f"job metadata: context has {len(value)} keys; at most {MAX_CONTEXT_ITEMS} are allowed"
        )
    context: dict[str, str] = {}
    for key, item in value.items():
        if len(key) > MAX_CONTEXT_KEY_LENGTH:
            raise InvalidMetadata(
                f"job metadata: context key {quoted(key)} is {len(key)} characters long; "
                f"at most {MAX_CONTEXT_KEY_LENGTH} are allowed"
            )
        if isinstance(item, (dict, list)) or item is None:
            raise InvalidMetadata(
                f"job metadata: context {key!r} must be text, a number or true/false"
            )
        text = _text(item)
        if len(text) > MAX_CONTEXT_VALUE_LENGTH:
            raise InvalidMetadata(
                f"job metadata: context {key!r} is {len(text)} characters long; "
                f"at most {MAX_CONTEXT_VALUE_LENGTH} are allowed"
            )
        context[key] = text
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
            f"job metadata: dtmf {quoted(value)} may only contain digits, *, # and w "
            "(a half-second pause)"
        )
    if len(value) > MAX_DTMF_LENGTH:
        raise InvalidMetadata(
            f"job metadata: dtmf {quoted(value)} is {len(value)} characters long; "
            f"at most {MAX_DTMF_LENGTH} are allowed"
        )
    return value
