"""A local stand-in for Deepgram's streaming listen API (WebSocket), for the real deepgram plugin.

It accepts the plugin's connection exactly as api.deepgram.com would (`/v1/listen` with the
options in the query string and `Authorization: Token <key>`), takes the audio, answers the
control messages (KeepAlive, Finalize, CloseStream), and sends scripted results as JSON.

What it "hears" is scripted, and the results are keyed to the audio it actually receives::

    deepgram_server.script_transcripts(["Hi, you've reached Sam, leave a message."])

Each utterance in the received audio (linear16, as the plugin sends it) is found by its
level: it starts at the first loud 10 ms window and ends after `end_of_speech` seconds
below `speech_level`. Each utterance takes the next scripted text, and the stand-in answers
as Deepgram does while the audio streams in: `SpeechStarted` at its start (when the query
has vad_events=true), interim `Results` (is_final=false) every `interim_every` seconds of
it with the words "heard" so far (when interim_results=true), then, at its end, the final
`Results` (is_final=true, speech_final=true) with word timings spread over the utterance,
and `UtteranceEnd` once `utterance_end_ms` of silence followed (only when the query asks
for utterance_end_ms, as the real API). A `Finalize` message finalizes the utterance under
way (from_finalize=true). Every message sent is recorded on the connection with the amount
of audio received by then. Without a script, audio is only counted; utterances beyond the
script say `default_transcript` (empty by default: empty results).

With `final_delay` (a provider's latency, as the benchmark sets it), every pause of an
utterance brings a final result (speech_final=true), as Deepgram's endpointing does: once the
server has received the query's `endpointing` milliseconds of silence after the last loud
window (10 when the query does not say; the deepgram plugin asks for 25), `final_delay`
seconds of wall-clock time after the audio holding that silence arrived (if no voice followed
by then). A server cannot hear the end of speech before the audio that shows it reaches it:
the plugin sends 50 ms chunks, so the final result comes 25-75 ms + `final_delay` after the
caller's last audible sample, as it would from Deepgram. The result holds the words
"heard" since the previous final result (FINAL_WORDS_PER_SECOND of loud time; all the rest
once enough time has passed), and at least one word, so the transcript grows at every pause,
and the one after the last words of the utterance arrives that long after them. The end of
the utterance (`end_of_speech`) then brings an empty final result (as after a Finalize).

Outages, switchable at any time (mid-call): `refuse_connections` answers every new
connection's upgrade with HTTP 503 and a JSON error; `drop_connections()` closes the open
connections abnormally (close code 1011) once, new ones are accepted (a transient drop);
`go_down()` does both until `come_back()`.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import re
import time
import uuid
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
from aiohttp import WSMsgType, web

from telephony.devtools.standins.local_server import LocalServer

if TYPE_CHECKING:
    from livekit.plugins import deepgram as lk_deepgram

logger = logging.getLogger(__name__)

# The close code of a connection the stand-in drops: 1011, "internal error", as a server
# going down sends it.
DROP_CLOSE_CODE = 1011
WINDOW_SECONDS = 0.01  # the level is measured over 10 ms windows
INTERIM_WORDS_PER_SECOND = 2.5  # how fast interim results reveal a scripted text
FINAL_WORDS_PER_SECOND = 3.0  # ... and final results at pauses (final_delay), generously


@dataclass
class SentMessage:
    audio_time: float  # seconds of audio the connection had received when it was sent
    sent_at: float  # time.monotonic()
    message: dict[str, Any]

    @property
    def type(self) -> str:
        return str(self.message.get("type", ""))


@dataclass
class ListenConnection:
    query: dict[str, str]
    authorization: str
    opened_at: float
    audio_bytes: int = 0
    control_messages: list[str] = field(default_factory=list)
    closed_at: float | None = None
    sent: list[SentMessage] = field(default_factory=list)
    # time.monotonic() when the stand-in closed it abnormally (drop_connections, go_down)
    dropped_at: float | None = None

    @property
    def sample_rate(self) -> int:
        return int(self.query.get("sample_rate", "16000"))

    @property
    def channels(self) -> int:
        return int(self.query.get("channels", "1"))

    @property
    def audio_seconds(self) -> float:
        """Seconds of linear16 audio received."""
        return self.audio_bytes / (2 * self.sample_rate * self.channels)

    def flag(self, name: str) -> bool:
        return self.query.get(name, "").lower() == "true"

    def messages(self, kind: str) -> list[SentMessage]:
        """The messages of one type ("Results", "SpeechStarted", ...) sent so far."""
        return [m for m in self.sent if m.type == kind]


@dataclass(frozen=True)
class TranscriptOptions:
    end_of_speech: float = 0.4  # seconds below speech_level that end an utterance
    speech_level: float = 0.01  # RMS, of full scale, above which a window is speech
    interim_every: float = 0.5  # seconds of an utterance between interim results
    silence_final_every: float = 1.0  # seconds of silence between empty final results
    # wall-clock seconds from an utterance's last loud window to its words' final result;
    # None: at end_of_speech (of audio time)
    final_delay: float | None = None


@dataclass
class DeepgramStandin(LocalServer):
    default_transcript: str = ""  # what utterances beyond the script say
    connections: list[ListenConnection] = field(default_factory=list, init=False)
    # API keys answered with 401, as Deepgram answers a wrong or revoked key.
    rejected_keys: set[str] = field(default_factory=set, init=False)
    # While set, a new connection's upgrade is answered with HTTP 503 (an outage); may be
    # switched at any time. Refused attempts are counted in refused_connections.
    refuse_connections: bool = field(default=False, init=False)
    refused_connections: int = field(default=0, init=False)
    _sockets: list[web.WebSocketResponse] = field(default_factory=list, init=False, repr=False)
    _open: dict[int, ListenConnection] = field(default_factory=dict, init=False, repr=False)
    _transcripts: deque[str] = field(default_factory=deque, init=False, repr=False)
    _transcript_options: TranscriptOptions | None = field(default=None, init=False, repr=False)

    def _make_app(self) -> web.Application:
        app = web.Application()
        app.router.add_get("/v1/listen", self._listen)
        app.router.add_get("/v1/projects", self._projects)
        return app

    async def _projects(self, request: web.Request) -> web.Response:
        """The projects the key can see: the cheap authenticated request `status` makes."""
        auth = request.headers.get("Authorization", "")
        if not auth.startswith("Token ") or auth.removeprefix("Token ") in self.rejected_keys:
            error = {"err_code": "INVALID_AUTH", "err_msg": "Invalid credentials."}
            return web.json_response(error, status=401)
        return web.json_response({"projects": [{"project_id": "standin", "name": "stand-in"}]})

    async def _before_cleanup(self) -> None:
        for ws in list(self._sockets):
            await ws.close()

    # ---- outages

    async def drop_connections(self) -> int:
        """Close every open listen connection abnormally (1011), once; new connections are
        still accepted (a transient drop the client may reconnect after). Returns how many."""
        sockets = [ws for ws in self._sockets if not ws.closed]
        now = time.monotonic()
        for ws in sockets:
            self._open[id(ws)].dropped_at = now
        # Closed together: each close waits for the client's answer to the close frame.
        await asyncio.gather(
            *(ws.close(code=DROP_CLOSE_CODE, message=b"stand-in outage") for ws in sockets),
            return_exceptions=True,
        )
        return len(sockets)

    async def go_down(self) -> int:
        """An outage: refuse new connections and drop the open ones, until come_back().
        Returns how many open connections were dropped."""
        self.refuse_connections = True
        return await self.drop_connections()

    def come_back(self) -> None:
        """The end of an outage: new connections are accepted again."""
        self.refuse_connections = False

    @property
    def base_url(self) -> str:
        """The API root, as DEEPGRAM_BASE_URL takes it."""
        return f"http://127.0.0.1:{self.port}/v1"

    def stt(self, **kwargs: Any) -> lk_deepgram.STT:
        """A real deepgram.STT pointed at this stand-in (it needs an http session: a job's,
        or `livekit.agents.utils.http_context.open()`)."""
        from livekit.plugins import deepgram as lk_deepgram

        kwargs.setdefault("api_key", "test")
        kwargs.setdefault("base_url", f"{self.base_url}/listen")
        return lk_deepgram.STT(**kwargs)

    # ---- scripting

    def script_transcripts(
        self,
        texts: Iterable[str],
        *,
        end_of_speech: float = TranscriptOptions.end_of_speech,
        speech_level: float = TranscriptOptions.speech_level,
        interim_every: float = TranscriptOptions.interim_every,
        silence_final_every: float = TranscriptOptions.silence_final_every,
        final_delay: float | None = TranscriptOptions.final_delay,
    ) -> None:
        """What the next utterances in the received audio say, one text per utterance, in
        order (over all connections); utterances beyond the script say default_transcript.
        An empty script turns the listening on with these options."""
        self._transcripts.extend(texts)
        self._transcript_options = TranscriptOptions(
            end_of_speech, speech_level, interim_every, silence_final_every, final_delay
        )

    @property
    def pending_transcripts(self) -> list[str]:
        """Scripted texts no utterance has taken yet."""
        return list(self._transcripts)

    def _next_transcript(self) -> str:
        return self._transcripts.popleft() if self._transcripts else self.default_transcript

    # ---- the websocket

    async def _listen(self, request: web.Request) -> web.StreamResponse:
        if not request.headers.get("Authorization", "").startswith("Token "):
            raise web.HTTPUnauthorized(text="missing Token authorization")
        if self.refuse_connections:
            self.refused_connections += 1
            # What Deepgram's edge answers when the service is unavailable.
            error = {
                "err_code": "SERVICE_UNAVAILABLE",
                "err_msg": "The service is temporarily unavailable (stand-in outage).",
            }
            return web.json_response(error, status=503)
        ws = web.WebSocketResponse()
        await ws.prepare(request)
        connection = ListenConnection(
            query=dict(request.query),
            authorization=request.headers["Authorization"],
            opened_at=time.monotonic(),
        )
        self.connections.append(connection)
        self._sockets.append(ws)
        self._open[id(ws)] = connection
        listener = None
        if self._transcript_options is not None:
            listener = _Listener(connection, self._transcript_options, self._next_transcript)
        timer: asyncio.Task[None] | None = None
        timer_due: float | None = None
        try:
            async for message in ws:
                if message.type == WSMsgType.BINARY:
                    connection.audio_bytes += len(message.data)
                    if listener is not None:
                        arrived_at = time.monotonic()
                        await self._send(ws, connection, listener.hear(message.data, arrived_at))
                        due = listener.final_due()
                        if due != timer_due:
                            if timer is not None:
                                timer.cancel()
                            timer, timer_due = None, due
                            if due is not None:
                                timer = asyncio.create_task(
                                    self._send_final_at(ws, connection, listener, due)
                                )
                elif message.type == WSMsgType.TEXT:
                    await self._control(ws, connection, json.loads(message.data), listener)
        finally:
            if timer is not None:
                timer.cancel()
            connection.closed_at = time.monotonic()
            self._sockets.remove(ws)
            del self._open[id(ws)]
        return ws

    async def _send_final_at(
        self,
        ws: web.WebSocketResponse,
        connection: ListenConnection,
        listener: _Listener,
        due: float,
    ) -> None:
        """The words' final result, `final_delay` after the utterance's last loud window."""
        await asyncio.sleep(max(0.0, due - time.monotonic()))
        with contextlib.suppress(ConnectionResetError):
            await self._send(ws, connection, listener.deliver_final())

    async def _control(
        self,
        ws: web.WebSocketResponse,
        connection: ListenConnection,
        message: dict[str, Any],
        listener: _Listener | None = None,
    ) -> None:
        kind = str(message.get("type", ""))
        connection.control_messages.append(kind)
        if kind == "Finalize" and listener is not None:
            await self._send(ws, connection, listener.finalize())
        if kind == "CloseStream":
            await ws.send_json({"type": "Metadata", "request_id": "standin", "duration": 0.0})
            await ws.close()

    async def _send(
        self, ws: web.WebSocketResponse, connection: ListenConnection, messages: list[dict]
    ) -> None:
        for message in messages:
            if ws.closed:
                return
            connection.sent.append(SentMessage(connection.audio_seconds, time.monotonic(), message))
            await ws.send_json(message)


# --------------------------------------------------------------------------- listening


@dataclass
class _Utterance:
    text: str
    start: float  # audio time of its first loud window
    last_voice: float  # audio time at the end of its last loud window
    next_interim: float
    finalized: bool = False  # its words went out in a final result (Finalize, final_delay)
    # time.monotonic() when the audio holding the endpointing silence after the last loud
    # window arrived (None: voice since, or not yet that much silence)
    silence_arrived: float | None = None
    words_sent: int = 0  # words already in final results at pauses (final_delay)
    voice_since_final: bool = True  # loud windows since the last final result at a pause


class _Listener:
    """One connection's ear: finds utterances in the audio by level and words them."""

    def __init__(self, connection: ListenConnection, options: TranscriptOptions, next_text):
        self._connection = connection
        self._options = options
        self._next_text = next_text
        self._request_id = str(uuid.uuid4())
        self._window = max(1, round(connection.sample_rate * WINDOW_SECONDS))
        self._pending = b""
        self._samples = 0  # samples (per channel) measured so far
        self._utterance: _Utterance | None = None
        self._utterance_end_at: float | None = None  # when to send UtteranceEnd
        self._last_word_end = 0.0
        self._last_final = 0.0  # audio time up to which results are final
        encoding = connection.query.get("encoding", "linear16")
        self._deaf = encoding != "linear16"
        # Silence that ends a pause for Deepgram's endpointing; Deepgram's default is 10 ms.
        endpointing = connection.query.get("endpointing", "10")
        self._endpointing = int(endpointing) / 1000 if endpointing.isdigit() else 0.01
        if self._deaf:
            logger.warning("deepgram stand-in only listens to linear16, not %s", encoding)

    def _now(self) -> float:
        return self._samples / self._connection.sample_rate

    def hear(self, data: bytes, arrived_at: float | None = None) -> list[dict[str, Any]]:
        """Results for this audio, which reached the server at `arrived_at` (monotonic)."""
        if self._deaf:
            return []
        arrived_at = time.monotonic() if arrived_at is None else arrived_at
        out: list[dict[str, Any]] = []
        channels = self._connection.channels
        self._pending += data
        step = 2 * channels * self._window
        while len(self._pending) >= step:
            chunk, self._pending = self._pending[:step], self._pending[step:]
            samples = np.frombuffer(chunk, dtype="<i2").astype(np.float32) / 32768.0
            level = float(np.sqrt(np.mean(samples**2)))
            self._samples += self._window
            loud = level >= self._options.speech_level
            out += self._on_window(loud)
            utterance = self._utterance
            if utterance is None:
                continue
            if loud:
                utterance.voice_since_final = True
                utterance.silence_arrived = None
            elif (
                utterance.silence_arrived is None
                and self._now() - utterance.last_voice >= self._endpointing - 1e-9
            ):
                utterance.silence_arrived = arrived_at
        return out

    def final_due(self) -> float | None:
        """time.monotonic() at which the utterance under way is due its words' final result
        (with final_delay), or None."""
        utterance, delay = self._utterance, self._options.final_delay
        if delay is None or utterance is None or not utterance.voice_since_final:
            return None
        if not utterance.text:
            return None
        if utterance.silence_arrived is None:
            return None
        return utterance.silence_arrived + delay

    def deliver_final(self) -> list[dict[str, Any]]:
        """The final result of the pause under way (final_delay), if it is due."""
        due = self.final_due()
        utterance = self._utterance
        if utterance is None or due is None or time.monotonic() < due - 0.001:
            return []
        words = utterance.text.split()
        heard = int((utterance.last_voice - utterance.start) * FINAL_WORDS_PER_SECOND) + 1
        heard = max(utterance.words_sent, min(len(words), heard))
        # At least a word: the voice went on, so the transcript must grow.
        new = words[utterance.words_sent : heard] or words[-1:]
        start = self._last_word_end if utterance.words_sent else utterance.start
        utterance.words_sent, utterance.voice_since_final = heard, False
        utterance.finalized = True  # no interim results after it; its end is empty
        self._last_final = self._now()
        self._last_word_end = utterance.last_voice
        text = " ".join(new)
        return [self._results(text, start, utterance.last_voice, is_final=True, speech_final=True)]

    def _on_window(self, loud: bool) -> list[dict[str, Any]]:
        now, out = self._now(), []
        utterance = self._utterance
        if loud:
            if utterance is None:
                start = now - WINDOW_SECONDS
                utterance = self._utterance = _Utterance(
                    text=self._next_text(),
                    start=start,
                    last_voice=now,
                    next_interim=start + self._options.interim_every,
                )
                self._utterance_end_at = None
                if self._connection.flag("vad_events"):
                    out.append(_speech_started(start))
            utterance.last_voice = now
        if utterance is not None:
            if now - utterance.last_voice >= self._options.end_of_speech:
                out.append(self._final(utterance, speech_final=True))
                self._utterance = None
                if utterance_end_ms := self._connection.query.get("utterance_end_ms"):
                    self._utterance_end_at = utterance.last_voice + int(utterance_end_ms) / 1000
            elif (
                now >= utterance.next_interim
                and self._connection.flag("interim_results")
                and not utterance.finalized
                and utterance.text
            ):
                utterance.next_interim += self._options.interim_every
                out.append(self._interim(utterance, now))
        else:
            if self._utterance_end_at is not None and now >= self._utterance_end_at:
                self._utterance_end_at = None
                out.append(
                    {
                        "type": "UtteranceEnd",
                        "channel": [0, 1],
                        "last_word_end": self._last_word_end,
                    }
                )
            if now - self._last_final >= self._options.silence_final_every:
                out.append(self._silence_final(now))
        return out

    def _silence_final(self, now: float, *, from_finalize: bool = False) -> dict[str, Any]:
        start, self._last_final = self._last_final, now
        return self._results(
            "", start, now, is_final=True, speech_final=False, from_finalize=from_finalize
        )

    def finalize(self) -> list[dict[str, Any]]:
        """Deepgram's Finalize: flush the utterance under way as a final result."""
        utterance = self._utterance
        if utterance is None or utterance.finalized:
            return [self._silence_final(self._now(), from_finalize=True)]
        message = self._final(utterance, speech_final=False, from_finalize=True)
        utterance.finalized = True
        return [message]

    def _interim(self, utterance: _Utterance, now: float) -> dict[str, Any]:
        words = utterance.text.split()
        heard = min(len(words) - 1, max(1, int((now - utterance.start) * INTERIM_WORDS_PER_SECOND)))
        return self._results(
            " ".join(words[:heard]), utterance.start, now, is_final=False, speech_final=False
        )

    def _final(
        self, utterance: _Utterance, *, speech_final: bool, from_finalize: bool = False
    ) -> dict[str, Any]:
        # After a Finalize flushed the words, the endpoint comes with an empty transcript.
        text = "" if utterance.finalized else utterance.text
        end = utterance.last_voice if speech_final else self._now()
        self._last_final = self._now()
        if text:
            self._last_word_end = end
        return self._results(
            text,
            utterance.start,
            end,
            is_final=True,
            speech_final=speech_final,
            from_finalize=from_finalize,
        )

    def _results(
        self,
        text: str,
        start: float,
        end: float,
        *,
        is_final: bool,
        speech_final: bool,
        from_finalize: bool = False,
    ) -> dict[str, Any]:
        return {
            "type": "Results",
            "channel_index": [0, 1],
            "duration": round(end - start, 3),
            "start": round(start, 3),
            "is_final": is_final,
            "speech_final": speech_final,
            "from_finalize": from_finalize,
            "channel": {
                "alternatives": [
                    {
                        "transcript": text,
                        "confidence": 0.99 if text else 0.0,
                        "words": _words(text, start, end),
                    }
                ]
            },
            "metadata": {
                "request_id": self._request_id,
                "model_info": {"name": "general-nova-3", "version": "standin", "arch": "nova-3"},
                "model_uuid": "00000000-0000-0000-0000-000000000000",
            },
        }


def _speech_started(at: float) -> dict[str, Any]:
    return {"type": "SpeechStarted", "channel": [0, 1], "timestamp": round(at, 3)}


def _words(text: str, start: float, end: float) -> list[dict[str, Any]]:
    """Deepgram's word list: times spread over [start, end] by word length."""
    tokens = text.split()
    if not tokens:
        return []
    total = sum(len(t) for t in tokens)
    words, at = [], start
    for token in tokens:
        length = (end - start) * len(token) / total
        words.append(
            {
                "word": re.sub(r"[^\w']", "", token).lower(),
                "start": round(at, 3),
                "end": round(at + length, 3),
                "confidence": 0.99,
                "punctuated_word": token,
            }
        )
        at += length
    return words
