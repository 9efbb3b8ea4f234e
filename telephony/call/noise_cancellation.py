"""Opt-in noise cancellation for phone callers (NOISE_CANCELLATION=bvc-telephony).

LiveKit's BVCTelephony model (the `livekit-plugins-noise-cancellation` package, which needs
LiveKit Cloud) cleans the caller's audio before VAD and STT. A trunk can already run Krisp
on the SIP side; filtering twice degrades speech, so the model is only applied when the
caller's trunk does not have Krisp on.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from livekit import api

from telephony.call.call_context import CallContext
from telephony.domain.settings import Settings

logger = logging.getLogger("telephony.call.noise_cancellation")


# trunk id -> whether that inbound trunk runs Krisp; trunks do not change during a process.
_trunk_krisp: dict[str, bool] = {}


async def trunk_has_krisp(lkapi: api.LiveKitAPI, trunk_id: str, *, timeout: float = 1.0) -> bool:
    """Whether the inbound trunk filters noise itself; unknown counts as yes (never stack)."""
    if trunk_id in _trunk_krisp:
        return _trunk_krisp[trunk_id]
    try:
        response = await asyncio.wait_for(
            lkapi.sip.list_inbound_trunk(api.ListSIPInboundTrunkRequest(trunk_ids=[trunk_id])),
            timeout,
        )
    except Exception as e:  # a lookup failure must never delay or break the call
        logger.warning("could not read trunk %s (%s): no noise cancellation", trunk_id, e)
        return True
    krisp = any(t.krisp_enabled for t in response.items)
    _trunk_krisp[trunk_id] = krisp
    return krisp


async def caller_noise_filter(
    settings: Settings, context: CallContext, lkapi: api.LiveKitAPI | None
) -> Any | None:
    """The audio filter for this caller, or None: off, not a phone call, or Krisp upstream.

    Calls we place never turn Krisp on (CreateSIPParticipant leaves it off), so only
    inbound trunks are checked."""
    if settings.noise_cancellation == "off" or not context.is_phone_call:
        return None
    if context.direction == "inbound" and (
        lkapi is None or await trunk_has_krisp(lkapi, context.trunk_id)
    ):
        return None
    from livekit.plugins import noise_cancellation  # optional dependency, checked at start-up

    return noise_cancellation.BVCTelephony()
