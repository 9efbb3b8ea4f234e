"""A local stand-in for the LiveKit server API the call control uses (Twirp over HTTP).

Every `POST /twirp/livekit.<Service>/<Method>` succeeds with an empty message, which each
response type reads as its defaults: hanging up (DeleteRoom) or a transfer works without a
LiveKit project, and no request of the benchmark ever leaves the machine. The rooms deleted
(the calls hung up) are noted with the time, as the benchmark's fault mode reports them.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

from aiohttp import web
from livekit import api

from telephony.devtools.standins.local_server import LocalServer


@dataclass
class LiveKitApiStandin(LocalServer):
    api_key: str = "bench-key"
    api_secret: str = "bench-secret-bench-secret-bench-secret"
    requests: list[str] = field(default_factory=list, init=False)  # "Service/Method"
    # (room name, time.monotonic()) of each DeleteRoom: a call hung up
    deleted_rooms: list[tuple[str, float]] = field(default_factory=list, init=False)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def _make_app(self) -> web.Application:
        app = web.Application()
        app.router.add_post("/twirp/{service}/{method}", self._handle)
        return app

    async def _handle(self, request: web.Request) -> web.Response:
        body = await request.read()
        self.requests.append(f"{request.match_info['service']}/{request.match_info['method']}")
        if request.match_info["method"] == "DeleteRoom":
            room = api.DeleteRoomRequest.FromString(body).room
            self.deleted_rooms.append((room, time.monotonic()))
        return web.Response(body=b"", content_type="application/protobuf")

    def deletions(self, room: str) -> list[float]:
        """When `room` was deleted (time.monotonic()), each time it was asked."""
        return [at for name, at in self.deleted_rooms if name == room]
