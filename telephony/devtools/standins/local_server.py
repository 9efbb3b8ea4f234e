"""The lifecycle shared by the local stand-in servers: an aiohttp app on 127.0.0.1.

A subclass builds its app in ``_make_app`` and may close its own connections in
``_before_cleanup``; this base starts it on a free port, stops it, and serves as an async
context manager::

    async with SomeStandin() as server:
        ... server.port ...

It keeps its state in class-level defaults rather than an ``__init__``, so dataclass
subclasses need no ``__post_init__``.
"""

from __future__ import annotations

import socket
from abc import ABC, abstractmethod
from types import TracebackType
from typing import ClassVar, Self

from aiohttp import web


class LocalServer(ABC):
    """An aiohttp server on 127.0.0.1 at a port chosen by the OS."""

    # How long stop() lets open requests finish; keep it short so a request left in a
    # deliberate delay does not stall teardown.
    shutdown_timeout: ClassVar[float] = 1.0

    _runner: web.AppRunner | None = None
    _port: int | None = None

    @abstractmethod
    def _make_app(self) -> web.Application:
        """The aiohttp application to serve; called once per start()."""

    async def _before_cleanup(self) -> None:  # noqa: B027 - an optional hook
        """Runs at the start of every stop(), before the runner is cleaned up.

        Close long-lived connections here (websockets, clients with keep-alive) so they do
        not hold up the shutdown.
        """

    async def start(self) -> None:
        if self._runner is not None:
            raise RuntimeError(f"{type(self).__name__} is already started")
        runner = web.AppRunner(
            self._make_app(), access_log=None, shutdown_timeout=self.shutdown_timeout
        )
        await runner.setup()
        # Bind ourselves so the random port is known without reaching into aiohttp.
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.bind(("127.0.0.1", 0))
        await web.SockSite(runner, sock).start()
        self._runner, self._port = runner, sock.getsockname()[1]

    async def stop(self) -> None:
        await self._before_cleanup()
        if self._runner is not None:
            runner, self._runner = self._runner, None
            await runner.cleanup()

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.stop()

    @property
    def port(self) -> int:
        """The port the server listens on (still set after stop())."""
        if self._port is None:
            raise RuntimeError(f"{type(self).__name__} is not started")
        return self._port
