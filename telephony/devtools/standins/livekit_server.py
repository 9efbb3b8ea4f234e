"""A local stand-in for the LiveKit server API that speaks the real Twirp wire protocol.

``livekit.api.LiveKitAPI`` talks to it exactly as it talks to a LiveKit server:
``POST /twirp/livekit.<Service>/<Method>`` with a protobuf body and an HS256 bearer token
carrying per-call grants. Success answers are protobuf; failures are Twirp JSON errors
(``{"code", "msg", "meta"}``) with the matching HTTP status, which the client turns into
``api.TwirpError`` / ``api.SipCallError``.

Every request that authenticates and decodes is recorded as a ``RecordedRequest``. Answers
come from a per-method script queue; when it is empty a default success answer is built
from a tiny in-memory store (rooms, participants, trunks, dispatch rules, dispatches).

One deliberate difference: a valid token whose grants do not cover the call answers
"permission_denied" (403). livekit-server answers "unauthenticated" (401) with the message
"permissions denied" there; tests should not depend on which of the two they get.

Usage::

    async with LiveKitServerStandin() as server:
        server.script("CreateSIPParticipant", sip_call_error(486, "Busy Here"))
        lkapi = api.LiveKitAPI(server.url, server.api_key, server.api_secret)
        ...
        [dial] = server.calls("CreateSIPParticipant")
"""

from __future__ import annotations

import asyncio
import base64
import inspect
import itertools
import logging
import math
import time
from collections import defaultdict, deque
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from typing import Any, TypeAlias

import jwt
from aiohttp import web
from google.protobuf import any_pb2, json_format
from google.protobuf.descriptor import FieldDescriptor
from google.protobuf.message import DecodeError, Message
from google.protobuf.message_factory import GetMessageClass
from google.rpc import status_pb2
from livekit import api
from livekit.api.access_token import Claims  # not re-exported by livekit.api
from livekit.protocol import agent_dispatch, connector, egress, ingress, models, room, sip

from telephony.devtools.standins.local_server import LocalServer

logger = logging.getLogger(__name__)

DEFAULT_API_KEY = "devkey"
# PyJWT warns about HS256 secrets shorter than 32 bytes.
DEFAULT_API_SECRET = "a-secret-at-least-32-characters-long!!"
TWIRP_PREFIX = "/twirp/"
SHUTDOWN_TIMEOUT = 0.5  # don't let a request left in a long delay() stall teardown

# Twirp v7 error code -> HTTP status (https://twitchtv.github.io/twirp/docs/spec_v7.html).
TWIRP_STATUS: dict[str, int] = {
    "canceled": 408,
    "unknown": 500,
    "invalid_argument": 400,
    "malformed": 400,
    "deadline_exceeded": 408,
    "not_found": 404,
    "bad_route": 404,
    "already_exists": 409,
    "permission_denied": 403,
    "unauthenticated": 401,
    "resource_exhausted": 429,
    "failed_precondition": 412,
    "aborted": 409,
    "out_of_range": 400,
    "unimplemented": 501,
    "internal": 500,
    "unavailable": 503,
    "dataloss": 500,
}

# SIP status -> Twirp code, as livekit/protocol's SIPStatus.GRPCStatus() maps it; any other
# failure status is "internal".
_SIP_TWIRP_CODES: dict[int, str] = {
    487: "aborted",
    **dict.fromkeys((400, 404, 420, 421, 484, 485), "invalid_argument"),
    **dict.fromkeys((408, 504), "deadline_exceeded"),
    **dict.fromkeys((480, 486, 501, 503, 600, 603), "unavailable"),
    **dict.fromkeys((401, 403, 407), "permission_denied"),
}
# gRPC numeric codes, for the google.rpc.Status carried in the "error_details" meta.
_GRPC_CODES: dict[str, int] = {
    "aborted": 10,
    "invalid_argument": 3,
    "deadline_exceeded": 4,
    "unavailable": 14,
    "permission_denied": 7,
    "internal": 13,
}

# The protocol modules whose services livekit.api can call.
_SERVICE_MODULES = (room, sip, agent_dispatch, egress, ingress, connector)


# --------------------------------------------------------------------------- script items


class ScriptedError(Exception):
    """A Twirp error for the stand-in to answer with.

    Queue it with ``LiveKitServerStandin.script``, return it from a script callable, or
    raise it from one.
    """

    def __init__(
        self, code: str, msg: str, *, status: int, meta: dict[str, str] | None = None
    ) -> None:
        super().__init__(f"{code} ({status}): {msg}")
        self.code = code
        self.msg = msg
        self.status = status
        self.meta: dict[str, str] = dict(meta or {})

    def body(self) -> dict[str, Any]:
        """The Twirp JSON error body."""
        body: dict[str, Any] = {"code": self.code, "msg": self.msg}
        if self.meta:  # Twirp omits empty meta
            body["meta"] = self.meta
        return body


def twirp_error(
    code: str, msg: str, *, status: int | None = None, meta: dict[str, str] | None = None
) -> ScriptedError:
    """A Twirp error; ``status`` defaults to the Twirp spec's HTTP status for ``code``."""
    if status is None:
        if code not in TWIRP_STATUS:
            raise ValueError(f"unknown Twirp code {code!r}: pass status= explicitly")
        status = TWIRP_STATUS[code]
    return ScriptedError(code, msg, status=status, meta=meta)


def sip_call_error(
    sip_status_code: int, sip_status: str = "", *, msg: str | None = None
) -> ScriptedError:
    """The error a LiveKit server answers when a SIP dial fails with ``sip_status_code``.

    Mirrors livekit/protocol: the Twirp code comes from ``SIPStatus.GRPCStatus()`` (486 ->
    "unavailable"/503, 408 -> "deadline_exceeded"/408, 403 -> "permission_denied"/403, ...),
    and the meta carries ``sip_status_code``, ``sip_status`` and the base64 ``error_details``
    status, which ``SipService`` turns into ``api.SipCallError``.
    """
    if sip_status_code < 300:
        raise ValueError(f"SIP {sip_status_code} is not a failure status")
    code = _SIP_TWIRP_CODES.get(sip_status_code, "internal")
    detail = sip.SIPStatus(code=sip_status_code, status=sip_status)  # type: ignore[arg-type]
    short_name = _sip_code_name(sip_status_code).removeprefix("SIP_STATUS_")
    meta = {
        "sip_status_code": str(sip_status_code),
        "sip_status": sip_status or _sip_code_name(sip_status_code),
        "error_details": _error_details(
            code, f"sip status {sip_status_code}: {sip_status or short_name}", detail
        ),
    }
    text = msg or f"sip status: {sip_status_code}: {sip_status or short_name}"
    return twirp_error(code, text, meta=meta)


def _sip_code_name(sip_status_code: int) -> str:
    try:
        return sip.SIPStatusCode.Name(sip_status_code)  # type: ignore[arg-type]
    except ValueError:  # Go's enum String() falls back to the number
        return str(sip_status_code)


def _error_details(code: str, message: str, detail: Message) -> str:
    """Base64 google.rpc.Status, as livekit's xtwirp puts in the "error_details" meta."""
    packed = any_pb2.Any()
    packed.Pack(detail)
    status = status_pb2.Status(code=_GRPC_CODES[code], message=message, details=[packed])
    return base64.b64encode(status.SerializeToString()).decode()


@dataclass(frozen=True)
class Delay:
    """Wait ``seconds`` before answering with ``then`` (None: the default answer)."""

    seconds: float
    then: ScriptItem | None = None


def delay(seconds: float, then: ScriptItem | None = None) -> Delay:
    """A script item that answers with ``then`` (default answer if None) after ``seconds``."""
    if seconds < 0:
        raise ValueError("delay must be >= 0")
    return Delay(seconds, then)


# --------------------------------------------------------------------------- records


@dataclass
class RecordedRequest:
    """One request that authenticated and decoded; recorded when it arrives."""

    service: str  # e.g. "livekit.SIP"
    method: str  # e.g. "CreateSIPParticipant"
    request: Message  # the decoded livekit.protocol request message
    claims: Claims  # verified with api.TokenVerifier(api_key, api_secret)
    received_at: float  # time.monotonic() when the request arrived
    answered_at: float = math.nan  # time.monotonic() when answered; nan while pending
    response: Message | ScriptedError | None = None  # what was answered, once answered

    @property
    def answered(self) -> bool:
        return not math.isnan(self.answered_at)


ScriptResult: TypeAlias = "Message | ScriptedError | Delay | None"
ScriptCallable: TypeAlias = Callable[[RecordedRequest], "ScriptResult | Awaitable[ScriptResult]"]
ScriptItem: TypeAlias = "Message | ScriptedError | Delay | ScriptCallable"


# --------------------------------------------------------------------------- routing


@dataclass(frozen=True)
class MethodSpec:
    service: str  # fully qualified, e.g. "livekit.SIP"
    method: str
    request_cls: type[Message]
    response_cls: type[Message]

    @property
    def key(self) -> str:
        return f"{self.service}/{self.method}"


def _build_routes() -> dict[str, MethodSpec]:
    """Every RPC of the livekit.api services, keyed "livekit.Service/Method"."""
    routes: dict[str, MethodSpec] = {}
    for module in _SERVICE_MODULES:
        for service in module.DESCRIPTOR.services_by_name.values():  # type: ignore[attr-defined]
            for rpc in service.methods:
                spec = MethodSpec(
                    service.full_name,
                    rpc.name,
                    GetMessageClass(rpc.input_type),
                    GetMessageClass(rpc.output_type),
                )
                routes[spec.key] = spec
    return routes


_ROUTES = _build_routes()
_ROUTES_BY_METHOD = {spec.method: spec for spec in _ROUTES.values()}  # names are unique


def _lookup_method(name: str) -> MethodSpec:
    """Resolve "CreateSIPParticipant" or "livekit.SIP/CreateSIPParticipant"."""
    spec = _ROUTES.get(name) or _ROUTES_BY_METHOD.get(name)
    if spec is None:
        raise ValueError(f"unknown LiveKit API method {name!r}")
    return spec


# --------------------------------------------------------------------------- grants

GrantCheck: TypeAlias = Callable[[Any, Claims], bool]


def _video(claims: Claims) -> api.VideoGrants:
    return claims.video or api.VideoGrants()


def _needs_video(flag: str) -> GrantCheck:
    return lambda _req, claims: bool(getattr(_video(claims), flag))


def _needs_sip(flag: str) -> GrantCheck:
    return lambda _req, claims: bool(getattr(claims.sip or api.SIPGrants(), flag))


def _needs_room_admin(room_field: str = "room", destination_field: str = "") -> GrantCheck:
    """roomAdmin on exactly the request's room (and destination room, when moving)."""

    def check(req: Any, claims: Claims) -> bool:
        video = _video(claims)
        if not (video.room_admin and video.room == getattr(req, room_field)):
            return False
        return not destination_field or video.destination_room == getattr(req, destination_field)

    return check


def _needs_all(*checks: GrantCheck) -> GrantCheck:
    return lambda req, claims: all(check(req, claims) for check in checks)


# Moving a participant needs roomAdmin on both rooms.
_MOVE_GRANTS = _needs_room_admin(destination_field="destination_room")
# Mirrors livekit-server's Ensure*Permission checks for each call.
_METHOD_GRANTS: dict[str, GrantCheck] = {
    "livekit.RoomService/CreateRoom": _needs_video("room_create"),
    "livekit.RoomService/DeleteRoom": _needs_video("room_create"),
    "livekit.RoomService/ListRooms": _needs_video("room_list"),
    "livekit.RoomService/ForwardParticipant": _needs_room_admin(
        destination_field="destination_room"
    ),
    "livekit.RoomService/MoveParticipant": _needs_room_admin(destination_field="destination_room"),
    "livekit.SIP/CreateSIPParticipant": _needs_sip("call"),
    "livekit.SIP/TransferSIPParticipant": _needs_all(
        _needs_sip("call"), _needs_room_admin("room_name")
    ),
}
# Every other method of a service.
_SERVICE_GRANTS: dict[str, GrantCheck] = {
    "livekit.RoomService": _needs_room_admin(),
    "livekit.SIP": _needs_sip("admin"),
    "livekit.AgentDispatchService": _needs_room_admin(),
    "livekit.Egress": _needs_video("room_record"),
    "livekit.Ingress": _needs_video("ingress_admin"),
    "livekit.Connector": _needs_video("room_create"),
}


def _grants_allow(spec: MethodSpec, request: Message, claims: Claims) -> bool:
    check = _METHOD_GRANTS.get(spec.key) or _SERVICE_GRANTS[spec.service]
    return check(request, claims)


# --------------------------------------------------------------------------- wire codecs


@dataclass(frozen=True)
class _Codec:
    """Twirp serves both protobuf and JSON; livekit.api always sends protobuf."""

    json: bool

    def decode(self, cls: type[Message], body: bytes) -> Message:
        try:
            if self.json:
                return json_format.Parse(body.decode(), cls(), ignore_unknown_fields=True)
            return cls.FromString(body)
        except (DecodeError, json_format.ParseError, UnicodeDecodeError) as err:
            kind = "json" if self.json else "protobuf"
            raise twirp_error(
                "malformed", f"the {kind} request could not be decoded: {err}"
            ) from None

    def encode(self, message: Message) -> web.Response:
        if self.json:
            text = json_format.MessageToJson(message, preserving_proto_field_name=True)
            return web.Response(text=text, content_type="application/json")
        return web.Response(body=message.SerializeToString(), content_type="application/protobuf")


_CODECS = {"application/protobuf": _Codec(json=False), "application/json": _Codec(json=True)}


def _error_response(error: ScriptedError) -> web.Response:
    return web.json_response(error.body(), status=error.status)


# --------------------------------------------------------------------------- store


@dataclass
class StandinStore:
    """What default answers read and write; tests may seed or inspect it directly."""

    rooms: dict[str, models.Room] = field(default_factory=dict)
    # room name -> participant identity -> info
    participants: dict[str, dict[str, models.ParticipantInfo]] = field(
        default_factory=lambda: defaultdict(dict)
    )
    inbound_trunks: dict[str, sip.SIPInboundTrunkInfo] = field(default_factory=dict)
    outbound_trunks: dict[str, sip.SIPOutboundTrunkInfo] = field(default_factory=dict)
    dispatch_rules: dict[str, sip.SIPDispatchRuleInfo] = field(default_factory=dict)
    dispatches: dict[str, agent_dispatch.AgentDispatch] = field(default_factory=dict)
    _ids: Iterator[int] = field(default_factory=lambda: itertools.count(1), repr=False)

    def new_id(self, prefix: str) -> str:
        """LiveKit-looking ids ("ST_000000000001"), unique per stand-in."""
        return f"{prefix}_{next(self._ids):012d}"

    def ensure_room(self, name: str) -> models.Room:
        if name not in self.rooms:
            now = time.time()
            self.rooms[name] = models.Room(
                sid=self.new_id("RM"),
                name=name,
                creation_time=int(now),
                creation_time_ms=int(now * 1000),
            )
        return self.rooms[name]

    def add_participant(self, room_name: str, info: models.ParticipantInfo) -> None:
        self.ensure_room(room_name)
        self.participants[room_name][info.identity] = info


def _copy(message: Message) -> Message:
    clone = type(message)()
    clone.CopyFrom(message)
    return clone


def _not_found(what: str, ident: str) -> ScriptedError:
    return twirp_error("not_found", f"{what} {ident} not found")


def _is_map(fd: FieldDescriptor) -> bool:
    return fd.message_type is not None and fd.message_type.GetOptions().map_entry


def _apply_list_update(values: Any, update: models.ListUpdate) -> None:
    current = [] if update.clear else list(update.set or values)
    current += [value for value in update.add if value not in current]
    removed = set(update.remove)
    del values[:]
    values.extend(value for value in current if value not in removed)


def _apply_map_diff(target: Any, diff: Any) -> None:
    """An empty value deletes the key, as livekit's applyMapDiff does."""
    for key, value in diff.items():
        if value:
            target[key] = value
        else:
            target.pop(key, None)


def _apply_update(target: Message, update: Message) -> None:
    """Apply a SIP *Update message (optional fields, ListUpdates, map diffs) to an info."""
    target_fields = target.DESCRIPTOR.fields_by_name
    for fd in update.DESCRIPTOR.fields:
        if fd.name not in target_fields:
            continue
        value = getattr(update, fd.name)
        if _is_map(fd):
            _apply_map_diff(getattr(target, fd.name), value)
        elif not update.HasField(fd.name):
            continue
        elif fd.message_type is models.ListUpdate.DESCRIPTOR:
            _apply_list_update(getattr(target, fd.name), value)
        elif fd.message_type is not None:
            getattr(target, fd.name).CopyFrom(value)
        else:
            setattr(target, fd.name, value)


def _copy_shared_fields(source: Message, target: Message, skip: tuple[str, ...] = ()) -> None:
    """Copy same-named fields, e.g. a legacy CreateSIPDispatchRuleRequest into the info."""
    target_fields = target.DESCRIPTOR.fields_by_name
    for fd in source.DESCRIPTOR.fields:
        if fd.name in skip or fd.name not in target_fields:
            continue
        value = getattr(source, fd.name)
        if _is_map(fd):
            getattr(target, fd.name).update(value)
        elif fd.is_repeated:
            getattr(target, fd.name).extend(value)
        elif fd.message_type is not None:
            if source.HasField(fd.name):
                getattr(target, fd.name).CopyFrom(value)
        else:
            setattr(target, fd.name, value)


Handler: TypeAlias = Callable[[Any], "Message | ScriptedError"]


class _DefaultAnswers:
    """Default success answers, backed by a StandinStore. Rooms and participants are
    permissive (unknown ones are synthesized); SIP trunks/rules and agent dispatches are
    id-addressed config, so unknown ids answer not_found as the real server does."""

    def __init__(self, store: StandinStore) -> None:
        self.store = store
        self._handlers: dict[str, Handler] = {
            "CreateRoom": self._create_room,
            "ListRooms": self._list_rooms,
            "DeleteRoom": self._delete_room,
            "UpdateRoomMetadata": self._update_room_metadata,
            "ListParticipants": self._list_participants,
            "GetParticipant": self._get_participant,
            "RemoveParticipant": self._remove_participant,
            "UpdateParticipant": self._update_participant,
            "MutePublishedTrack": self._mute_published_track,
            "CreateSIPParticipant": self._create_sip_participant,
            "TransferSIPParticipant": self._transfer_sip_participant,
            "CreateSIPInboundTrunk": lambda req: self._create_trunk(store.inbound_trunks, req),
            "CreateSIPOutboundTrunk": lambda req: self._create_trunk(store.outbound_trunks, req),
            "UpdateSIPInboundTrunk": lambda req: self._update_trunk(store.inbound_trunks, req),
            "UpdateSIPOutboundTrunk": lambda req: self._update_trunk(store.outbound_trunks, req),
            "GetSIPInboundTrunk": lambda req: self._get_trunk(
                store.inbound_trunks, req, sip.GetSIPInboundTrunkResponse
            ),
            "GetSIPOutboundTrunk": lambda req: self._get_trunk(
                store.outbound_trunks, req, sip.GetSIPOutboundTrunkResponse
            ),
            "ListSIPInboundTrunk": lambda req: sip.ListSIPInboundTrunkResponse(
                items=_select_trunks(store.inbound_trunks, req)
            ),
            "ListSIPOutboundTrunk": lambda req: sip.ListSIPOutboundTrunkResponse(
                items=_select_trunks(store.outbound_trunks, req)
            ),
            "DeleteSIPTrunk": self._delete_trunk,
            "CreateSIPDispatchRule": self._create_dispatch_rule,
            "UpdateSIPDispatchRule": self._update_dispatch_rule,
            "ListSIPDispatchRule": self._list_dispatch_rules,
            "DeleteSIPDispatchRule": self._delete_dispatch_rule,
            "CreateDispatch": self._create_dispatch,
            "DeleteDispatch": self._delete_dispatch,
            "ListDispatch": self._list_dispatch,
        }

    def answer(self, spec: MethodSpec, request: Message) -> Message | ScriptedError:
        handler = self._handlers.get(spec.method)
        # Egress, ingress, connector and the rest: an empty response of the right type.
        return handler(request) if handler else spec.response_cls()

    # -- rooms and participants

    def _create_room(self, req: room.CreateRoomRequest) -> models.Room:
        existed = req.name in self.store.rooms
        info = self.store.ensure_room(req.name)
        if not existed:
            info.empty_timeout = req.empty_timeout
            info.departure_timeout = req.departure_timeout
            info.max_participants = req.max_participants
            info.metadata = req.metadata
        return _copy(info)

    def _list_rooms(self, req: room.ListRoomsRequest) -> room.ListRoomsResponse:
        names = set(req.names)
        rooms = [_copy(r) for name, r in self.store.rooms.items() if not names or name in names]
        for info in rooms:
            info.num_participants = len(self.store.participants.get(info.name, {}))
        return room.ListRoomsResponse(rooms=rooms)

    def _delete_room(self, req: room.DeleteRoomRequest) -> room.DeleteRoomResponse:
        self.store.rooms.pop(req.room, None)
        self.store.participants.pop(req.room, None)
        for dispatch_id, dispatch in list(self.store.dispatches.items()):
            if dispatch.room == req.room:
                del self.store.dispatches[dispatch_id]
        return room.DeleteRoomResponse()

    def _update_room_metadata(self, req: room.UpdateRoomMetadataRequest) -> models.Room:
        info = self.store.ensure_room(req.room)
        info.metadata = req.metadata
        return _copy(info)

    def _list_participants(self, req: room.ListParticipantsRequest) -> Message:
        people = self.store.participants.get(req.room, {}).values()
        return room.ListParticipantsResponse(participants=[_copy(p) for p in people])

    def _participant(self, room_name: str, identity: str) -> models.ParticipantInfo:
        """The stored participant, or a synthesized active one."""
        known = self.store.participants.get(room_name, {}).get(identity)
        if known is not None:
            return known
        return models.ParticipantInfo(
            sid=self.store.new_id("PA"), identity=identity, state=models.ParticipantInfo.ACTIVE
        )

    def _get_participant(self, req: room.RoomParticipantIdentity) -> Message:
        return _copy(self._participant(req.room, req.identity))

    def _remove_participant(self, req: room.RoomParticipantIdentity) -> Message:
        self.store.participants.get(req.room, {}).pop(req.identity, None)
        return room.RemoveParticipantResponse()

    def _update_participant(self, req: room.UpdateParticipantRequest) -> Message:
        info = self._participant(req.room, req.identity)
        if req.name:
            info.name = req.name
        if req.metadata:
            info.metadata = req.metadata
        if req.HasField("permission"):
            info.permission.CopyFrom(req.permission)
        _apply_map_diff(info.attributes, req.attributes)
        if req.room in self.store.rooms:  # remember it, but don't invent rooms
            self.store.add_participant(req.room, info)
        return _copy(info)

    def _mute_published_track(self, req: room.MuteRoomTrackRequest) -> Message:
        track = models.TrackInfo(sid=req.track_sid, muted=req.muted)
        return room.MuteRoomTrackResponse(track=track)

    # -- SIP calls

    def _create_sip_participant(self, req: sip.CreateSIPParticipantRequest) -> Message:
        # The real server names an unnamed callee "sip_<number>".
        identity = req.participant_identity or f"sip_{req.sip_call_to}"
        info = sip.SIPParticipantInfo(
            participant_id=self.store.new_id("PA"),
            participant_identity=identity,
            room_name=req.room_name,
            sip_call_id=self.store.new_id("SCL"),
        )
        attributes = dict(req.participant_attributes)
        attributes.update(
            {
                "sip.callID": info.sip_call_id,
                "sip.callStatus": "active",
                "sip.phoneNumber": req.sip_call_to,
                "sip.trunkID": req.sip_trunk_id,
            }
        )
        participant = models.ParticipantInfo(
            sid=info.participant_id,
            identity=identity,
            name=req.participant_name,
            metadata=req.participant_metadata,
            attributes=attributes,
            kind=models.ParticipantInfo.SIP,
            state=models.ParticipantInfo.ACTIVE,
            joined_at=int(time.time()),
        )
        self.store.add_participant(req.room_name, participant)
        return info

    def _transfer_sip_participant(self, req: sip.TransferSIPParticipantRequest) -> Message:
        # A completed transfer hangs up the transferred leg.
        self.store.participants.get(req.room_name, {}).pop(req.participant_identity, None)
        return sip.TransferSIPParticipantResponse(
            transfer_id=self.store.new_id("TRF"), status=sip.STS_TRANSFER_SUCCESSFUL
        )

    # -- SIP trunks and dispatch rules

    def _create_trunk(self, table: dict[str, Any], req: Any) -> Message:
        trunk = _copy(req.trunk)
        trunk.sip_trunk_id = self.store.new_id("ST")
        table[trunk.sip_trunk_id] = trunk
        return _copy(trunk)

    def _update_trunk(self, table: dict[str, Any], req: Any) -> Message | ScriptedError:
        return _update_entity(table, req.sip_trunk_id, req, "sip_trunk_id", "SIP trunk")

    def _get_trunk(self, table: dict[str, Any], req: Any, response: type[Message]) -> Any:
        trunk = table.get(req.sip_trunk_id)
        if trunk is None:
            return _not_found("SIP trunk", req.sip_trunk_id)
        return response(trunk=_copy(trunk))

    def _delete_trunk(self, req: sip.DeleteSIPTrunkRequest) -> Message | ScriptedError:
        for table, kind in (
            (self.store.inbound_trunks, sip.SIPTrunkInfo.TRUNK_INBOUND),
            (self.store.outbound_trunks, sip.SIPTrunkInfo.TRUNK_OUTBOUND),
        ):
            trunk = table.pop(req.sip_trunk_id, None)
            if trunk is not None:
                return sip.SIPTrunkInfo(
                    sip_trunk_id=trunk.sip_trunk_id,
                    kind=kind,
                    name=trunk.name,
                    metadata=trunk.metadata,
                )
        return _not_found("SIP trunk", req.sip_trunk_id)

    def _create_dispatch_rule(self, req: sip.CreateSIPDispatchRuleRequest) -> Message:
        rule = sip.SIPDispatchRuleInfo()
        if req.HasField("dispatch_rule"):
            rule.CopyFrom(req.dispatch_rule)
        else:  # the legacy flat request
            _copy_shared_fields(req, rule, skip=("dispatch_rule",))
        rule.sip_dispatch_rule_id = self.store.new_id("SDR")
        self.store.dispatch_rules[rule.sip_dispatch_rule_id] = rule
        return _copy(rule)

    def _update_dispatch_rule(self, req: sip.UpdateSIPDispatchRuleRequest) -> Any:
        table = self.store.dispatch_rules
        rule_id = req.sip_dispatch_rule_id
        return _update_entity(table, rule_id, req, "sip_dispatch_rule_id", "SIP dispatch rule")

    def _list_dispatch_rules(self, req: sip.ListSIPDispatchRuleRequest) -> Message:
        ids, trunks = set(req.dispatch_rule_ids), set(req.trunk_ids)
        rules = [
            _copy(rule)
            for rule_id, rule in self.store.dispatch_rules.items()
            if (not ids or rule_id in ids)
            # A rule without trunk ids applies to every trunk.
            and (not trunks or not rule.trunk_ids or trunks & set(rule.trunk_ids))
        ]
        return sip.ListSIPDispatchRuleResponse(items=rules)

    def _delete_dispatch_rule(self, req: sip.DeleteSIPDispatchRuleRequest) -> Any:
        rule = self.store.dispatch_rules.pop(req.sip_dispatch_rule_id, None)
        if rule is None:
            return _not_found("SIP dispatch rule", req.sip_dispatch_rule_id)
        return rule

    # -- agent dispatch

    def _create_dispatch(self, req: agent_dispatch.CreateAgentDispatchRequest) -> Message:
        dispatch = agent_dispatch.AgentDispatch(id=self.store.new_id("AD"))
        _copy_shared_fields(req, dispatch)
        dispatch.state.created_at = time.time_ns()
        self.store.ensure_room(req.room)
        self.store.dispatches[dispatch.id] = dispatch
        return _copy(dispatch)

    def _delete_dispatch(self, req: agent_dispatch.DeleteAgentDispatchRequest) -> Any:
        dispatch = self.store.dispatches.get(req.dispatch_id)
        if dispatch is None or dispatch.room != req.room:
            return _not_found("agent dispatch", req.dispatch_id)
        del self.store.dispatches[req.dispatch_id]
        dispatch.state.deleted_at = time.time_ns()
        return dispatch

    def _list_dispatch(self, req: agent_dispatch.ListAgentDispatchRequest) -> Message:
        found = [
            _copy(d)
            for d in self.store.dispatches.values()
            if d.room == req.room and (not req.dispatch_id or d.id == req.dispatch_id)
        ]
        return agent_dispatch.ListAgentDispatchResponse(agent_dispatches=found)


def _select_trunks(table: dict[str, Any], req: Any) -> list[Any]:
    ids, numbers = set(req.trunk_ids), set(req.numbers)
    return [
        _copy(trunk)
        for trunk_id, trunk in table.items()
        if (not ids or trunk_id in ids) and (not numbers or numbers & set(trunk.numbers))
    ]


def _update_entity(
    table: dict[str, Any], entity_id: str, req: Any, id_field: str, what: str
) -> Message | ScriptedError:
    """Apply an Update*Request's replace/update action to a stored trunk or rule."""
    current = table.get(entity_id)
    if current is None:
        return _not_found(what, entity_id)
    action = req.WhichOneof("action")
    if action == "replace":
        updated = _copy(req.replace)
        setattr(updated, id_field, entity_id)
    elif action == "update":
        updated = _copy(current)
        _apply_update(updated, req.update)
    else:
        return twirp_error("invalid_argument", "missing or unsupported update action")
    table[entity_id] = updated
    return _copy(updated)


# --------------------------------------------------------------------------- the server


class LiveKitServerStandin(LocalServer):
    """An aiohttp server on 127.0.0.1 answering the LiveKit server API over Twirp.

    Checks per request, in order: route (bad_route 404), content type (bad_route 404),
    token (unauthenticated 401), body (malformed 400), grants (permission_denied 403), then
    the script queue or the default answer. A request is recorded once it has authenticated
    and decoded, even when its grants are refused; refused ones consume no script item.
    """

    shutdown_timeout = SHUTDOWN_TIMEOUT
    api_key: str = DEFAULT_API_KEY
    api_secret: str = DEFAULT_API_SECRET
    delay = staticmethod(delay)

    def __init__(
        self, api_key: str = DEFAULT_API_KEY, api_secret: str = DEFAULT_API_SECRET
    ) -> None:
        self.api_key = api_key
        self.api_secret = api_secret
        self.requests: list[RecordedRequest] = []
        self.store = StandinStore()
        self._defaults = _DefaultAnswers(self.store)
        self._scripts: dict[str, deque[ScriptItem]] = defaultdict(deque)
        self._arrivals = asyncio.Condition()

    # -- lifecycle

    def _make_app(self) -> web.Application:
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self._handle)
        return app

    @property
    def url(self) -> str:
        """http://127.0.0.1:PORT; the client also accepts ``ws_url``."""
        return f"http://127.0.0.1:{self.port}"

    @property
    def ws_url(self) -> str:
        """ws://127.0.0.1:PORT, the usual LIVEKIT_URL form (the client maps ws -> http)."""
        return f"ws://127.0.0.1:{self.port}"

    def client(self) -> api.LiveKitAPI:
        """A real LiveKitAPI pointed here; the caller must ``aclose()`` it."""
        return api.LiveKitAPI(self.url, self.api_key, self.api_secret)

    # -- scripting and inspection

    def script(self, method: str, *responses: ScriptItem) -> None:
        """Queue answers for the next calls of ``method``, consumed in order.

        Each is a response message, a ScriptedError, a callable
        ``(RecordedRequest) -> message | ScriptedError | delay | None`` (may be async; may
        raise ScriptedError; None means the default answer), or a ``delay(...)``.
        """
        spec = _lookup_method(method)
        for item in responses:
            _validate_item(spec, item)
        self._scripts[spec.key].extend(responses)

    def calls(self, method: str) -> list[RecordedRequest]:
        """Recorded requests of ``method`` ("CreateSIPParticipant" or "livekit.SIP/...")."""
        spec = _lookup_method(method)
        return [r for r in self.requests if r.service == spec.service and r.method == spec.method]

    async def wait_for(
        self, method: str, count: int = 1, timeout: float = 5.0
    ) -> list[RecordedRequest]:
        """Wait until ``count`` requests of ``method`` have arrived; returns all of them."""
        _lookup_method(method)  # fail fast on a typo rather than time out
        async with self._arrivals:
            try:
                await asyncio.wait_for(
                    self._arrivals.wait_for(lambda: len(self.calls(method)) >= count), timeout
                )
            except TimeoutError:
                seen = [f"{r.service}/{r.method}" for r in self.requests]
                raise TimeoutError(
                    f"expected {count} {method} request(s) within {timeout}s, "
                    f"got {len(self.calls(method))}; all requests so far: {seen}"
                ) from None
        return self.calls(method)

    # -- request handling

    async def handle(self, http: web.Request) -> web.Response:
        """Answer one server API request; another stand-in serving the API on its own port
        (the worker endpoint's, as livekit-server serves both) routes requests here."""
        return await self._handle(http)

    async def _handle(self, http: web.Request) -> web.Response:
        received_at = time.monotonic()
        try:
            spec = _route(http)
            codec = _codec(http)
            claims = self._authenticate(http)
            message = codec.decode(spec.request_cls, await http.read())
        except ScriptedError as err:
            return _error_response(err)
        record = RecordedRequest(spec.service, spec.method, message, claims, received_at)
        await self._record(record)
        if _grants_allow(spec, message, claims):
            outcome = await self._answer(spec, record)
        else:  # livekit-server itself says "unauthenticated"; see the module docs
            outcome = twirp_error("permission_denied", "permissions denied")
        record.response, record.answered_at = outcome, time.monotonic()
        if isinstance(outcome, ScriptedError):
            return _error_response(outcome)
        return codec.encode(outcome)

    def _authenticate(self, http: web.Request) -> Claims:
        scheme, _, token = http.headers.get("Authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not token:
            raise twirp_error("unauthenticated", "missing or malformed authorization header")
        try:
            return api.TokenVerifier(self.api_key, self.api_secret).verify(token)
        except (jwt.PyJWTError, ValueError, TypeError) as err:
            raise twirp_error("unauthenticated", f"invalid token: {err}") from None

    async def _record(self, record: RecordedRequest) -> None:
        self.requests.append(record)
        async with self._arrivals:
            self._arrivals.notify_all()

    async def _answer(self, spec: MethodSpec, record: RecordedRequest) -> Message | ScriptedError:
        queue = self._scripts.get(spec.key)
        # Taken on arrival, so concurrent calls get queued answers in arrival order.
        item: ScriptResult | ScriptCallable = queue.popleft() if queue else None
        while True:
            if item is None:
                return self._defaults.answer(spec, record.request)
            if isinstance(item, Delay):
                await asyncio.sleep(item.seconds)
                item = item.then
            elif isinstance(item, (Message, ScriptedError)):
                return _checked_answer(spec, item)
            else:
                item = await _call_script(spec, item, record)


def _route(http: web.Request) -> MethodSpec:
    spec = _ROUTES.get(http.path.removeprefix(TWIRP_PREFIX))
    if http.method != "POST" or not http.path.startswith(TWIRP_PREFIX) or spec is None:
        raise twirp_error("bad_route", f"no handler for {http.method} {http.path}")
    return spec


def _codec(http: web.Request) -> _Codec:
    codec = _CODECS.get(http.content_type)
    if codec is None:
        raise twirp_error("bad_route", f"unexpected Content-Type: {http.content_type!r}")
    return codec


async def _call_script(
    spec: MethodSpec, fn: ScriptCallable, record: RecordedRequest
) -> ScriptResult:
    try:
        result = fn(record)
        if inspect.isawaitable(result):
            result = await result
        return result  # type: ignore[return-value]
    except ScriptedError as err:
        return err
    except Exception as err:
        # Surface a broken script to the client instead of hanging the call.
        logger.exception("LiveKit stand-in script for %s raised", spec.key)
        return twirp_error("internal", f"stand-in script for {spec.key} raised {err!r}")


def _checked_answer(spec: MethodSpec, answer: Message | ScriptedError) -> Message | ScriptedError:
    if isinstance(answer, Message) and not isinstance(answer, spec.response_cls):
        got, want = type(answer).__name__, spec.response_cls.__name__
        logger.error("LiveKit stand-in script for %s returned %s, not %s", spec.key, got, want)
        return twirp_error("internal", f"stand-in script returned {got}, expected {want}")
    return answer


def _validate_item(spec: MethodSpec, item: object) -> None:
    """Catch scripting mistakes in the test, not as a confusing client decode later."""
    if isinstance(item, Delay):
        if item.then is not None:
            _validate_item(spec, item.then)
    elif isinstance(item, Message):
        if not isinstance(item, spec.response_cls):
            raise TypeError(
                f"{spec.method} answers {spec.response_cls.__name__}, not {type(item).__name__}"
            )
    elif not (isinstance(item, ScriptedError) or callable(item)):
        raise TypeError(f"cannot script {item!r} for {spec.method}")
