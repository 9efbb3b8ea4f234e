"""Call control through the LiveKit server API: dial, transfer, hang up.

Every request goes through `livekit.api.LiveKitAPI`, so what these functions do is
exactly what the LiveKit server receives. `api=None` (console mode, no server) turns
every action into a logged no-op.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from enum import StrEnum

import aiohttp
from google.protobuf.duration_pb2 import Duration
from livekit import api

logger = logging.getLogger("telephony.call.call_control")

# Seconds the API request may run past the ringing window before we give up on it.
API_TIMEOUT_MARGIN = 5.0


class DialOutcome(StrEnum):
    ANSWERED = "answered"
    BUSY = "busy"
    NO_ANSWER = "no-answer"
    DECLINED = "declined"
    INVALID_NUMBER = "invalid-number"
    FAILED = "failed"


_OUTCOME_BY_SIP_STATUS: dict[int, DialOutcome] = {
    486: DialOutcome.BUSY,  # Busy Here
    600: DialOutcome.BUSY,  # Busy Everywhere
    408: DialOutcome.NO_ANSWER,  # Request Timeout: rang out
    480: DialOutcome.NO_ANSWER,  # Temporarily Unavailable
    487: DialOutcome.NO_ANSWER,  # Request Terminated: our ringing timeout cancelled it
    603: DialOutcome.DECLINED,  # Decline
    404: DialOutcome.INVALID_NUMBER,  # Not Found
    410: DialOutcome.INVALID_NUMBER,  # Gone
    484: DialOutcome.INVALID_NUMBER,  # Address Incomplete
    604: DialOutcome.INVALID_NUMBER,  # Does Not Exist Anywhere
}


def outcome_for_sip_status(code: int | None) -> DialOutcome:
    if code is None:
        return DialOutcome.FAILED
    return _OUTCOME_BY_SIP_STATUS.get(code, DialOutcome.FAILED)


@dataclass(frozen=True)
class DialResult:
    outcome: DialOutcome
    participant_identity: str
    sip_status_code: int | None = None
    sip_status: str = ""
    error: str = ""

    @property
    def answered(self) -> bool:
        return self.outcome is DialOutcome.ANSWERED


@dataclass(frozen=True)
class TransferResult:
    ok: bool
    # Why it failed, in words for the log (never read to the caller as-is).
    detail: str = ""


class CallControl:
    """The actions that change a call on the LiveKit server, for one room."""

    def __init__(self, lkapi: api.LiveKitAPI | None, room_name: str) -> None:
        self._api = lkapi
        self.room_name = room_name
        self._hang_up_task: asyncio.Task[bool] | None = None

    @property
    def connected_to_server(self) -> bool:
        return self._api is not None

    @property
    def api(self) -> api.LiveKitAPI | None:
        """The server API this call talks to; None in console mode."""
        return self._api

    @property
    def hang_up_task(self) -> asyncio.Task[bool] | None:
        """The hang-up under way or done, if one was started."""
        return self._hang_up_task

    async def dial(
        self,
        *,
        trunk_id: str,
        phone_number: str,
        participant_identity: str,
        ring_timeout_seconds: float,
        dtmf: str = "",
    ) -> DialResult:
        """Place the call and wait until it is answered or fails.

        `dtmf` (e.g. "ww1234#", from the dial request) is played by LiveKit once the call
        is answered, to reach an extension; "" plays nothing."""
        if self._api is None:
            logger.warning("no LiveKit server (console mode): not dialing")
            return DialResult(DialOutcome.FAILED, participant_identity, error="no LiveKit server")
        request = api.CreateSIPParticipantRequest(
            sip_trunk_id=trunk_id,
            sip_call_to=phone_number,
            room_name=self.room_name,
            participant_identity=participant_identity,
            participant_name=phone_number,
            wait_until_answered=True,
            ringing_timeout=Duration(seconds=int(ring_timeout_seconds)),
            dtmf=dtmf,
        )
        try:
            await self._api.sip.create_sip_participant(
                request, timeout=ring_timeout_seconds + API_TIMEOUT_MARGIN
            )
        except api.SipCallError as e:
            return DialResult(
                outcome_for_sip_status(e.sip_status_code),
                participant_identity,
                sip_status_code=e.sip_status_code,
                sip_status=e.sip_status or "",
                error=str(e),
            )
        except api.TwirpError as e:
            error = f"{e.code}: {e.message}"
            return DialResult(DialOutcome.FAILED, participant_identity, error=error)
        except (TimeoutError, aiohttp.ClientError) as e:
            error = f"no answer from the LiveKit server: {type(e).__name__} {e}".strip()
            return DialResult(DialOutcome.FAILED, participant_identity, error=error)
        return DialResult(DialOutcome.ANSWERED, participant_identity)

    async def transfer(self, participant_identity: str, transfer_to: str) -> TransferResult:
        """Cold-transfer the SIP participant with a SIP REFER; check the outcome."""
        if self._api is None:
            return TransferResult(False, "no LiveKit server (console mode)")
        request = api.TransferSIPParticipantRequest(
            room_name=self.room_name,
            participant_identity=participant_identity,
            transfer_to=transfer_to,
            # The caller hears ringing instead of silence while the new leg is set up.
            play_dialtone=True,
        )
        try:
            response = await self._api.sip.transfer_sip_participant(request)
        except api.TwirpError as e:
            return TransferResult(False, str(e))
        except (TimeoutError, aiohttp.ClientError) as e:
            return TransferResult(False, f"no answer from the LiveKit server: {type(e).__name__}")
        # The server can report a failed transfer without an error: check the status.
        if response.status == api.SIPTransferStatus.STS_TRANSFER_FAILED:
            reason = api.SIPTransferReason.Name(response.reason)
            sip = f" (SIP {response.sip_status.code})" if response.HasField("sip_status") else ""
            return TransferResult(False, f"transfer failed: {reason}{sip}")
        return TransferResult(True)

    def hang_up(self) -> asyncio.Task[bool]:
        """Delete the room, which hangs up every SIP leg in it. Safe to call twice."""
        if self._hang_up_task is None:
            self._hang_up_task = asyncio.create_task(self._delete_room(), name="hang_up")
        return self._hang_up_task

    async def _delete_room(self) -> bool:
        if self._api is None:
            logger.info("no LiveKit server (console mode): nothing to hang up")
            return False
        try:
            await self._api.room.delete_room(api.DeleteRoomRequest(room=self.room_name))
        except api.TwirpError as e:
            if e.code == api.TwirpErrorCode.NOT_FOUND:
                return True  # already gone: every leg is down
            logger.error("could not delete room %s to hang up: %s", self.room_name, e)
            return False
        except (TimeoutError, aiohttp.ClientError) as e:
            logger.error("could not reach the LiveKit server to hang up: %s", type(e).__name__)
            return False
        except Exception:
            # Never let a hang-up failure go unnoticed in a fire-and-forget task.
            logger.exception("could not hang up room %s", self.room_name)
            return False
        logger.info("room %s deleted: every participant hung up", self.room_name)
        return True
