"""A local stand-in for Deepgram's streaming listen API (WebSocket), for the real deepgram plugin.

It accepts the plugin's connection exactly as api.deepgram.com would (`/v1/listen` with the
options in the query string and `Authorization: Token <key>`), takes the audio, answers the
control messages (KeepAlive, Finalize, CloseStream), and sends scripted results as JSON.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from typing import Any

from aiohttp import WSMsgType, web

from tests.standins.local_server import LocalServer


@dataclass
class ListenConnection:
    query: dict[str, str]
    authorization: str
    opened_at: float
    audio_bytes: int = 0
    control_messages: list[str] = field(default_factory=list)
    closed_at: float | None = None


@dataclass
class DeepgramStandin(LocalServer):
    connections: list[ListenConnection] = field(default_factory=list, init=False)
    _sockets: list[web.WebSocketResponse] = field(default_factory=list, init=False, repr=False)

    def _make_app(self) -> web.Application:
        app = web.Application()
        app.router.add_get("/v1/listen", self._listen)
        return app

    async def _before_cleanup(self) -> None:
        for ws in list(self._sockets):
            await ws.close()

    @property
    def base_url(self) -> str:
        """The API root, as DEEPGRAM_BASE_URL takes it."""
        return f"http://127.0.0.1:{self.port}/v1"

    async def _listen(self, request: web.Request) -> web.WebSocketResponse:
        if not request.headers.get("Authorization", "").startswith("Token "):
            raise web.HTTPUnauthorized(text="missing Token authorization")
        ws = web.WebSocketResponse()
        await ws.prepare(request)
        connection = ListenConnection(
            query=dict(request.query),
            authorization=request.headers["Authorization"],
            opened_at=time.monotonic(),
        )
        self.connections.append(connection)
        self._sockets.append(ws)
        try:
            async for message in ws:
                if message.type == WSMsgType.BINARY:
                    connection.audio_bytes += len(message.data)
                elif message.type == WSMsgType.TEXT:
                    await self._control(ws, connection, json.loads(message.data))
        finally:
            connection.closed_at = time.monotonic()
            self._sockets.remove(ws)
        return ws

    async def _control(
        self, ws: web.WebSocketResponse, connection: ListenConnection, message: dict[str, Any]
    ) -> None:
        kind = str(message.get("type", ""))
        connection.control_messages.append(kind)
        if kind == "CloseStream":
            await ws.send_json({"type": "Metadata", "request_id": "standin", "duration": 0.0})
            await ws.close()
