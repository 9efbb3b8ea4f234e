"""The outbound dial request carried in the job's metadata.

`lk dispatch create --metadata '{"phone_number": "+15105550123"}'` (or the agent
dispatch API) puts a JSON object in the job metadata. An empty metadata means no
dial: the job waits for whoever joins (an inbound caller, a web client).
"""

from __future__ import annotations

import json
from dataclasses import dataclass

from .phone_numbers import InvalidDestination, require_e164, transfer_uri


class InvalidMetadata(ValueError):
    """Job metadata that cannot be turned into a call; the message says what to fix."""


@dataclass(frozen=True)
class DialRequest:
    phone_number: str
    # Where a transfer of this call goes (a 'tel:' or 'sip:' URI), if the dispatcher set one.
    transfer_to: str | None = None


_KNOWN_KEYS = {"phone_number", "transfer_to"}
_EXAMPLE = '{"phone_number": "+15105550123"}'


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
    return DialRequest(phone_number=phone_number, transfer_to=transfer_to)
