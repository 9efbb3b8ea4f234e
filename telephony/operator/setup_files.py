"""The `lk` JSON files `setup` makes the LiveKit project match, by kind.

Apart from telephony.operator.provisioning so that `python -m telephony setup --help` names
them without loading livekit-api."""

from __future__ import annotations

from pathlib import Path

from telephony.domain.paths import PROJECT_ROOT

INBOUND = "inbound trunk"
OUTBOUND = "outbound trunk"
RULE = "dispatch rule"

DEFAULT_FILES: dict[str, Path] = {
    INBOUND: PROJECT_ROOT / "inbound-trunk.json",
    OUTBOUND: PROJECT_ROOT / "outbound-trunk.json",
    RULE: PROJECT_ROOT / "dispatch-rule.json",
}
