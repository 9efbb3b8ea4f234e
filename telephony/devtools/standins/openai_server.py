"""A local OpenAI-compatible HTTP server that drives the real livekit openai plugin offline.

Chat-completions answers come from a script of ``LlmTurn`` items, consumed one per request,
in order; requests beyond the script get ``default_turn`` (or ``default_reply``).
``/v1/audio/speech`` answers with a quiet sine tone whose length is proportional to the
input text, encoded in whatever ``response_format`` the plugin asked for and framed as SSE
or raw bytes according to its ``stream_format``.

``/v1/audio/transcriptions`` (OpenAI's HTTP speech-to-text, multipart) answers from a script
of texts (``script_transcriptions``), else ``default_transcription``.

Delays (a turn's ``first_token_delay``, the server's ``tts_first_byte_delay``) are held from
the moment the request arrived, so time the stand-in spends encoding counts towards them,
as it would at a real provider.

Faults, for provider-outage tests and the benchmark's fault mode (each can be switched on or
off at any time, so a fault can start mid-call): ``http_error(status)`` answers a chat
request with an error, ``reply(..., first_token_delay=30)`` stalls it,
``reply(..., drop_after_chunks=N)`` cuts the connection after N chunks of the stream (no
``[DONE]``, no end of the body); ``tts_error_status`` answers every speech request with an
error, a large ``tts_first_byte_delay`` stalls them.

Usage::

    async with OpenAIStandin() as server:
        server.script(reply("Hello!"), tool_call("lookup", {"id": 1}))
        llm = server.llm()  # a real livekit.plugins.openai.LLM pointed at the stand-in
"""

from __future__ import annotations

import asyncio
import base64
import functools
import io
import json
import logging
import time
import uuid
import wave
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
from aiohttp import web

from telephony.devtools.standins.local_server import LocalServer

if TYPE_CHECKING:
    from livekit.plugins import openai as lk_openai

logger = logging.getLogger(__name__)

# What OpenAI serves for "pcm": 24 kHz, signed 16-bit little-endian, mono.
SAMPLE_RATE = 24_000
NUM_CHANNELS = 1
TTS_MS_PER_CHAR = 60.0
TONE_HZ = 440.0
TONE_AMPLITUDE = 0.1  # quiet, but clearly not silence
AUDIO_CHUNK_BYTES = 4_800  # 100 ms of pcm per streamed chunk
ARGUMENT_FRAGMENT_CHARS = 6  # OpenAI streams tool arguments a few tokens at a time
DEFAULT_ERROR_MESSAGE = "The server had an error while processing your request."
MODEL_IDS = (
    "gpt-4.1",
    "gpt-4.1-mini",
    "gpt-4o",
    "gpt-4o-mini",
    "gpt-4o-mini-tts",
    "tts-1",
)

# response_format -> (container, encoder, Content-Type); pcm and wav are built by hand.
_AV_FORMATS: dict[str, tuple[str, str, str]] = {
    "mp3": ("mp3", "libmp3lame", "audio/mpeg"),
    "opus": ("ogg", "libopus", "audio/opus"),
    "aac": ("adts", "aac", "audio/aac"),
    "flac": ("flac", "flac", "audio/flac"),
}
_RAW_CONTENT_TYPES = {"pcm": "audio/pcm", "wav": "audio/wav"}


# --------------------------------------------------------------------------- script items


@dataclass(frozen=True)
class ToolCallSpec:
    name: str
    arguments: str  # the JSON text exactly as it will be streamed
    call_id: str


@dataclass(frozen=True)
class LlmTurn:
    """One scripted answer to one chat-completions request."""

    text: str = ""
    tool_calls: tuple[ToolCallSpec, ...] = ()
    chunk_chars: int = 8
    first_token_delay: float = 0.0
    chunk_delay: float = 0.0
    error_status: int | None = None
    error_message: str = ""
    # Cut the connection after this many SSE chunks (a provider dropping mid-stream).
    drop_after_chunks: int | None = None
    decide: Callable[[dict[str, Any]], LlmTurn] | None = None

    @property
    def finish_reason(self) -> str:
        return "tool_calls" if self.tool_calls else "stop"


def reply(
    text: str,
    *,
    chunk_chars: int = 8,
    first_token_delay: float = 0.0,
    chunk_delay: float = 0.0,
    drop_after_chunks: int | None = None,
) -> LlmTurn:
    """A plain assistant message streamed ``chunk_chars`` characters per chunk.

    ``drop_after_chunks``: stream that many chunks (the first one carries the role), then
    close the connection mid-body, with no ``[DONE]``: the client sees a broken stream."""
    if chunk_chars < 1:
        raise ValueError("chunk_chars must be >= 1")
    if drop_after_chunks is not None and drop_after_chunks < 0:
        raise ValueError("drop_after_chunks must be >= 0")
    return LlmTurn(
        text=text,
        chunk_chars=chunk_chars,
        first_token_delay=first_token_delay,
        chunk_delay=chunk_delay,
        drop_after_chunks=drop_after_chunks,
    )


def tool_call(
    name: str,
    arguments: dict[str, Any] | str,
    *,
    call_id: str | None = None,
    text: str = "",
    first_token_delay: float = 0.0,
) -> LlmTurn:
    """One tool call whose arguments JSON is streamed in fragments, after optional text."""
    return LlmTurn(
        text=text,
        tool_calls=(_tool_spec(name, arguments, call_id),),
        first_token_delay=first_token_delay,
    )


def tool_calls(*calls: tuple[str, dict[str, Any] | str]) -> LlmTurn:
    """Several parallel tool calls in one turn."""
    if not calls:
        raise ValueError("tool_calls() needs at least one (name, arguments) pair")
    return LlmTurn(tool_calls=tuple(_tool_spec(name, args, None) for name, args in calls))


def http_error(status: int, message: str = DEFAULT_ERROR_MESSAGE) -> LlmTurn:
    """Answer the request with an OpenAI-style JSON error body and this status."""
    if status < 400:
        raise ValueError("http_error() needs a 4xx/5xx status")
    return LlmTurn(error_status=status, error_message=message)


def respond(fn: Callable[[dict[str, Any]], LlmTurn]) -> LlmTurn:
    """Decide the answer at request time from the request body (messages, tools, ...)."""
    return LlmTurn(decide=fn)


def _tool_spec(name: str, arguments: dict[str, Any] | str, call_id: str | None) -> ToolCallSpec:
    args = arguments if isinstance(arguments, str) else json.dumps(arguments)
    return ToolCallSpec(name=name, arguments=args, call_id=call_id or _new_id("call_"))


# --------------------------------------------------------------------------- request records


@dataclass
class ChatRequest:
    body: dict[str, Any]
    received_at: float  # time.monotonic()
    used_default: bool = False  # the script was empty, default_reply answered
    turn: LlmTurn | None = None  # the answer actually served (after respond() resolved)
    # monotonic time the first SSE chunk was written
    first_chunk_at: float | None = None
    client_disconnected: bool = False
    chunks_sent: int = 0  # SSE chunks written (not counting [DONE])
    dropped: bool = False  # the stand-in cut the connection mid-stream (drop_after_chunks)

    @property
    def messages(self) -> list[dict[str, Any]]:
        return list(self.body.get("messages") or [])

    @property
    def tools(self) -> list[str]:
        """Names of the function tools the request declared."""
        return [t["function"]["name"] for t in self.body.get("tools") or [] if "function" in t]

    @property
    def last_user_text(self) -> str | None:
        for msg in reversed(self.messages):
            if msg.get("role") == "user":
                return _content_text(msg.get("content"))
        return None


@dataclass
class SpeechRequest:
    body: dict[str, Any]
    received_at: float  # time.monotonic()
    # monotonic time the first audio bytes were written
    first_byte_at: float | None = None
    audio_duration: float = 0.0  # seconds of audio served
    client_disconnected: bool = False
    error_status: int | None = None  # answered with this error (tts_error_status)

    @property
    def input(self) -> str:
        return str(self.body.get("input", ""))

    @property
    def voice(self) -> str | None:
        return self.body.get("voice")

    @property
    def model(self) -> str | None:
        return self.body.get("model")

    @property
    def response_format(self) -> str:
        return str(self.body.get("response_format") or "mp3")  # OpenAI's own default

    @property
    def stream_format(self) -> str:
        return str(self.body.get("stream_format") or "audio")


@dataclass
class TranscriptionRequest:
    """One ``POST /v1/audio/transcriptions`` (multipart form), as the openai SDK sends it."""

    received_at: float  # time.monotonic()
    model: str
    language: str | None
    prompt: str | None
    response_format: str
    filename: str
    audio_bytes: int  # length of the uploaded file (a WAV from the livekit plugin)
    text: str = ""  # what the stand-in answered


# --------------------------------------------------------------------------- the server


@dataclass
class OpenAIStandin(LocalServer):
    """OpenAI-compatible server on 127.0.0.1 with scripted chat answers and synthetic TTS."""

    default_reply: str = "OK."
    # Answers every request beyond the script (e.g. reply(..., first_token_delay=0.4) or
    # respond(fn)); None answers with default_reply and logs a warning.
    default_turn: LlmTurn | None = None
    tts_first_byte_delay: float = 0.0
    tts_chunk_delay: float = 0.0
    tts_ms_per_char: float = TTS_MS_PER_CHAR
    # While set, every /v1/audio/speech is answered with this status and an OpenAI-style
    # JSON error (a TTS outage); may be set or cleared at any time, e.g. mid-call.
    tts_error_status: int | None = None
    tts_error_message: str = DEFAULT_ERROR_MESSAGE
    # What /v1/audio/transcriptions answers beyond script_transcriptions().
    default_transcription: str = ""
    chat_requests: list[ChatRequest] = field(default_factory=list, init=False)
    speech_requests: list[SpeechRequest] = field(default_factory=list, init=False)
    transcription_requests: list[TranscriptionRequest] = field(default_factory=list, init=False)
    models_requests: int = field(default=0, init=False)
    # API keys answered with 401, as OpenAI answers a wrong or revoked key.
    rejected_keys: set[str] = field(default_factory=set, init=False)
    # (method, path) of anything unrouted, e.g. the TTS plugin's prewarm GET
    other_requests: list[tuple[str, str]] = field(default_factory=list, init=False)
    _queue: deque[LlmTurn] = field(default_factory=deque, init=False, repr=False)
    _transcriptions: deque[str] = field(default_factory=deque, init=False, repr=False)
    _plugins: list[Any] = field(default_factory=list, init=False, repr=False)

    # ---- lifecycle

    async def _before_cleanup(self) -> None:
        # close plugin clients first so their keep-alive connections don't hold shutdown
        for plugin in self._plugins:
            try:
                await plugin.aclose()
            except Exception:
                logger.exception("closing %r failed", plugin)
        self._plugins.clear()

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    # ---- scripting

    def script(self, *turns: LlmTurn) -> None:
        """Append turns to the queue; each chat-completions request consumes one."""
        self._queue.extend(turns)

    @property
    def pending_turns(self) -> int:
        """Scripted turns not consumed yet."""
        return len(self._queue)

    @property
    def default_replies_used(self) -> int:
        return sum(1 for r in self.chat_requests if r.used_default)

    def script_transcriptions(self, texts: Iterable[str]) -> None:
        """What the next /v1/audio/transcriptions requests hear, one text per request, in
        order; requests beyond the script get default_transcription."""
        self._transcriptions.extend(texts)

    @property
    def pending_transcriptions(self) -> list[str]:
        return list(self._transcriptions)

    # ---- real plugin instances pointed at this server

    def llm(self, **kwargs: Any) -> lk_openai.LLM:
        from livekit.plugins import openai as lk_openai

        kwargs.setdefault("api_key", "test")
        kwargs.setdefault("base_url", self.base_url)
        return self._track(lk_openai.LLM(**kwargs))

    def tts(self, **kwargs: Any) -> lk_openai.TTS:
        """A real openai.TTS; defaults to response_format="pcm" so durations are exact."""
        from livekit.plugins import openai as lk_openai

        kwargs.setdefault("api_key", "test")
        kwargs.setdefault("base_url", self.base_url)
        kwargs.setdefault("response_format", "pcm")
        return self._track(lk_openai.TTS(**kwargs))

    def stt(self, **kwargs: Any) -> lk_openai.STT:
        """A real openai.STT on the HTTP transcriptions API (not the realtime websocket)."""
        from livekit.plugins import openai as lk_openai

        kwargs.setdefault("api_key", "test")
        kwargs.setdefault("base_url", self.base_url)
        kwargs.setdefault("use_realtime", False)
        return self._track(lk_openai.STT(**kwargs))

    def _track(self, plugin: Any) -> Any:
        self._plugins.append(plugin)
        return plugin

    # ---- http plumbing

    def _make_app(self) -> web.Application:
        app = web.Application()
        app.router.add_post("/v1/chat/completions", self._handle_chat)
        app.router.add_post("/v1/audio/speech", self._handle_speech)
        app.router.add_post("/v1/audio/transcriptions", self._handle_transcription)
        app.router.add_get("/v1/models", self._handle_models)
        app.router.add_get("/v1/models/{model}", self._handle_model)
        app.router.add_route("*", "/{tail:.*}", self._handle_other)
        return app

    async def _handle_models(self, request: web.Request) -> web.Response:
        self.models_requests += 1
        key = request.headers.get("Authorization", "").removeprefix("Bearer ")
        if key in self.rejected_keys:
            error = {"message": "Incorrect API key provided", "code": "invalid_api_key"}
            return web.json_response({"error": error}, status=401)
        return web.json_response({"object": "list", "data": [_model(m) for m in MODEL_IDS]})

    async def _handle_model(self, request: web.Request) -> web.Response:
        self.models_requests += 1
        return web.json_response(_model(request.match_info["model"]))

    async def _handle_other(self, request: web.Request) -> web.Response:
        # e.g. the TTS plugin's prewarm GET on the base url; recorded, never fatal
        self.other_requests.append((request.method, request.path))
        return _error_response(404, f"stand-in has no route {request.method} {request.path}")

    # ---- chat completions

    async def _handle_chat(self, request: web.Request) -> web.StreamResponse:
        received_at = time.monotonic()
        body = await request.json()
        turn, used_default = self._next_turn()
        record = ChatRequest(body=body, received_at=received_at, used_default=used_default)
        self.chat_requests.append(record)
        turn = _resolve(turn, body)
        record.turn = turn
        if turn.error_status is not None:
            return _error_response(turn.error_status, turn.error_message)
        if body.get("stream"):
            return await self._stream_chat(request, body, turn, record)
        await _sleep_until(received_at + turn.first_token_delay)
        if turn.drop_after_chunks is not None:
            # Nothing to stream: the connection goes down before any answer.
            record.dropped = True
            return _cut_connection(request, web.StreamResponse())
        return web.json_response(_completion(body, turn))

    def _next_turn(self) -> tuple[LlmTurn, bool]:
        if self._queue:
            return self._queue.popleft(), False
        if self.default_turn is not None:
            return self.default_turn, True
        logger.warning("OpenAIStandin script is empty; answering with default_reply")
        return reply(self.default_reply), True

    async def _stream_chat(
        self,
        request: web.Request,
        body: dict[str, Any],
        turn: LlmTurn,
        record: ChatRequest,
    ) -> web.StreamResponse:
        resp = await _open_stream(request, "text/event-stream")
        include_usage = bool((body.get("stream_options") or {}).get("include_usage"))
        chunks = _completion_chunks(body, turn, include_usage=include_usage)
        try:
            await _sleep_until(record.received_at + turn.first_token_delay)
            for i, chunk in enumerate(chunks):
                if i == turn.drop_after_chunks:
                    record.dropped = True
                    return _cut_connection(request, resp)
                if i and turn.chunk_delay:
                    await asyncio.sleep(turn.chunk_delay)
                await resp.write(_sse(chunk))
                record.chunks_sent += 1
                record.first_chunk_at = record.first_chunk_at or time.monotonic()
            if turn.drop_after_chunks is not None:  # fewer chunks than that: cut at the end
                record.dropped = True
                return _cut_connection(request, resp)
            await resp.write(b"data: [DONE]\n\n")
            await resp.write_eof()
        except ConnectionResetError:
            # the client gave up mid-stream (interruption, cancelled generation)
            record.client_disconnected = True
        return resp

    # ---- speech

    async def _handle_speech(self, request: web.Request) -> web.StreamResponse:
        received_at = time.monotonic()
        body = await request.json()
        record = SpeechRequest(body=body, received_at=received_at)
        self.speech_requests.append(record)
        if self.tts_error_status is not None:
            record.error_status = self.tts_error_status
            return _error_response(self.tts_error_status, self.tts_error_message)
        fmt = record.response_format
        if fmt not in _RAW_CONTENT_TYPES and fmt not in _AV_FORMATS:
            return _error_response(400, f"unsupported response_format {fmt!r}")

        audio, record.audio_duration = _synthesize(self.audio_duration_for(record.input), fmt)
        sse = record.stream_format == "sse"
        resp = await _open_stream(request, "text/event-stream" if sse else content_type(fmt))
        try:
            await self._write_audio(resp, audio, record, sse=sse)
        except ConnectionResetError:
            record.client_disconnected = True
        return resp

    # ---- transcriptions (speech-to-text over HTTP)

    async def _handle_transcription(self, request: web.Request) -> web.Response:
        received_at = time.monotonic()
        form = await request.post()
        upload = form.get("file")
        if not isinstance(upload, web.FileField):
            return _error_response(400, "the form has no 'file' upload")
        audio = upload.file.read()
        queue = self._transcriptions
        text = queue.popleft() if queue else self.default_transcription
        record = TranscriptionRequest(
            received_at=received_at,
            model=str(form.get("model", "")),
            language=_form_text(form.get("language")),
            prompt=_form_text(form.get("prompt")),
            response_format=str(form.get("response_format") or "json"),
            filename=upload.filename,
            audio_bytes=len(audio),
            text=text,
        )
        self.transcription_requests.append(record)
        if record.response_format == "text":
            return web.Response(text=text)
        body: dict[str, Any] = {"text": text}
        if record.response_format == "verbose_json":  # whisper-1's, with the language
            body |= {"task": "transcribe", "language": record.language or "english"}
            body |= {"duration": _wav_seconds(audio), "segments": []}
        return web.json_response(body)

    def audio_duration_for(self, text: str) -> float:
        """Seconds of audio the stand-in serves for ``text`` (before codec padding)."""
        return round(len(text) * self.tts_ms_per_char * SAMPLE_RATE / 1000) / SAMPLE_RATE

    async def _write_audio(
        self,
        resp: web.StreamResponse,
        audio: bytes,
        record: SpeechRequest,
        *,
        sse: bool,
    ) -> None:
        await _sleep_until(record.received_at + self.tts_first_byte_delay)
        for i, chunk in enumerate(_byte_chunks(audio, AUDIO_CHUNK_BYTES)):
            if i and self.tts_chunk_delay:
                await asyncio.sleep(self.tts_chunk_delay)
            await resp.write(_sse(_audio_delta(chunk)) if sse else chunk)
            record.first_byte_at = record.first_byte_at or time.monotonic()
        if sse:
            await resp.write(_sse(_audio_done(record.input)))
        await resp.write_eof()


# --------------------------------------------------------------------------- chat payloads


def _resolve(turn: LlmTurn, body: dict[str, Any]) -> LlmTurn:
    """Follow respond() callbacks; a failing callback becomes a 500 so the test sees why."""
    try:
        while turn.decide is not None:
            turn = turn.decide(body)
    except Exception as e:
        logger.exception("respond() callback failed")
        return http_error(500, f"stand-in respond() callback failed: {e!r}")
    return turn


def _completion_chunks(
    body: dict[str, Any], turn: LlmTurn, *, include_usage: bool
) -> Iterator[dict[str, Any]]:
    """The chat.completion.chunk objects OpenAI would stream for this turn."""
    completion_id, created, model = _new_id("chatcmpl-"), int(time.time()), _model_of(body)

    def chunk(delta: dict[str, Any], finish_reason: str | None = None) -> dict[str, Any]:
        out = _chunk_envelope(completion_id, created, model)
        out["choices"] = [
            {
                "index": 0,
                "delta": delta,
                "logprobs": None,
                "finish_reason": finish_reason,
            }
        ]
        if include_usage:
            out["usage"] = None  # OpenAI sends usage: null on every chunk but the last
        return out

    yield chunk({"role": "assistant", "content": "", "refusal": None})
    for piece in _split(turn.text, turn.chunk_chars):
        yield chunk({"content": piece})
    for index, call in enumerate(turn.tool_calls):
        for delta in _tool_call_deltas(index, call):
            yield chunk(delta)
    yield chunk({}, turn.finish_reason)
    if include_usage:
        out = _chunk_envelope(completion_id, created, model)
        out["choices"] = []
        out["usage"] = _usage(body, turn)
        yield out


def _tool_call_deltas(index: int, call: ToolCallSpec) -> Iterator[dict[str, Any]]:
    # the first delta names the call; later ones carry only argument fragments
    head = {
        "index": index,
        "id": call.call_id,
        "type": "function",
        "function": {"name": call.name, "arguments": ""},
    }
    yield {"tool_calls": [head]}
    for fragment in _split(call.arguments, ARGUMENT_FRAGMENT_CHARS):
        yield {"tool_calls": [{"index": index, "function": {"arguments": fragment}}]}


def _completion(body: dict[str, Any], turn: LlmTurn) -> dict[str, Any]:
    """A non-streamed chat.completion object."""
    message: dict[str, Any] = {
        "role": "assistant",
        "content": turn.text or None,
        "refusal": None,
    }
    if turn.tool_calls:
        message["tool_calls"] = [
            {
                "id": c.call_id,
                "type": "function",
                "function": {"name": c.name, "arguments": c.arguments},
            }
            for c in turn.tool_calls
        ]
    out = _chunk_envelope(_new_id("chatcmpl-"), int(time.time()), _model_of(body))
    out["object"] = "chat.completion"
    out["choices"] = [
        {
            "index": 0,
            "message": message,
            "logprobs": None,
            "finish_reason": turn.finish_reason,
        }
    ]
    out["usage"] = _usage(body, turn)
    return out


def _chunk_envelope(completion_id: str, created: int, model: str) -> dict[str, Any]:
    return {
        "id": completion_id,
        "object": "chat.completion.chunk",
        "created": created,
        "model": model,
        "system_fingerprint": "fp_standin",
    }


def _usage(body: dict[str, Any], turn: LlmTurn) -> dict[str, Any]:
    # rough 4-chars-per-token estimate: enough for metrics to be non-zero and stable
    prompt = _estimate_tokens(json.dumps(body.get("messages") or []))
    completion = _estimate_tokens(turn.text + "".join(c.arguments for c in turn.tool_calls))
    return {
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "total_tokens": prompt + completion,
        "prompt_tokens_details": {"cached_tokens": 0, "audio_tokens": 0},
        "completion_tokens_details": {"reasoning_tokens": 0, "audio_tokens": 0},
    }


# --------------------------------------------------------------------------- audio


@functools.lru_cache(maxsize=128)
def _synthesize(duration: float, response_format: str) -> tuple[bytes, float]:
    """The encoded tone for ``duration`` seconds and its exact pcm duration; cached, as
    encoding (mp3, opus...) would otherwise stall the server's event loop on every request."""
    pcm = tone_pcm(duration)
    return encode_audio(pcm, response_format), len(pcm) / (2 * SAMPLE_RATE)


def tone_pcm(duration: float) -> bytes:
    """``duration`` seconds of a quiet 440 Hz sine as 24 kHz s16le mono."""
    t = np.arange(round(duration * SAMPLE_RATE)) / SAMPLE_RATE
    samples = TONE_AMPLITUDE * 32767 * np.sin(2 * np.pi * TONE_HZ * t)
    return samples.astype("<i2").tobytes()


def content_type(response_format: str) -> str:
    if response_format in _RAW_CONTENT_TYPES:
        return _RAW_CONTENT_TYPES[response_format]
    return _AV_FORMATS[response_format][2]


def encode_audio(pcm: bytes, response_format: str) -> bytes:
    """Encode 24 kHz s16le mono pcm as OpenAI's ``response_format`` would deliver it."""
    if response_format == "pcm":
        return pcm
    if response_format == "wav":
        return _wav(pcm)
    container, codec, _ = _AV_FORMATS[response_format]
    return _encode_with_av(pcm, container, codec)


def _wav(pcm: bytes) -> bytes:
    buf = io.BytesIO()
    with wave.open(buf, "wb") as w:
        w.setnchannels(NUM_CHANNELS)
        w.setsampwidth(2)
        w.setframerate(SAMPLE_RATE)
        w.writeframes(pcm)
    return buf.getvalue()


def _encode_with_av(pcm: bytes, container: str, codec: str) -> bytes:
    import av  # a livekit-agents dependency; imported lazily as only codecs need it

    buf = io.BytesIO()
    with av.open(buf, mode="w", format=container) as out:
        stream = out.add_stream(codec, rate=SAMPLE_RATE, layout="mono")
        samples = np.frombuffer(pcm, dtype="<i2").reshape(1, -1)
        if samples.size:
            frame = av.AudioFrame.from_ndarray(samples, format="s16", layout="mono")
            frame.sample_rate = SAMPLE_RATE
            # PyAV resamples to the encoder's sample format and frame size itself
            for packet in stream.encode(frame):
                out.mux(packet)
        for packet in stream.encode(None):
            out.mux(packet)
    return buf.getvalue()


def _audio_delta(chunk: bytes) -> dict[str, Any]:
    return {
        "type": "speech.audio.delta",
        "audio": base64.b64encode(chunk).decode("ascii"),
    }


def _audio_done(text: str) -> dict[str, Any]:
    tokens = _estimate_tokens(text)
    usage = {
        "input_tokens": tokens,
        "output_tokens": tokens,
        "total_tokens": 2 * tokens,
    }
    return {"type": "speech.audio.done", "usage": usage}


# --------------------------------------------------------------------------- small helpers


async def _sleep_until(deadline: float) -> None:
    """Sleep until time.monotonic() reaches ``deadline`` (at once if it has passed)."""
    delay = deadline - time.monotonic()
    if delay > 0:
        await asyncio.sleep(delay)


async def _open_stream(request: web.Request, ctype: str) -> web.StreamResponse:
    resp = web.StreamResponse(
        headers={
            "Content-Type": ctype,
            "Cache-Control": "no-cache",
            "x-request-id": _new_id("req_"),
        }
    )
    await resp.prepare(request)
    return resp


def _cut_connection(request: web.Request, resp: web.StreamResponse) -> web.StreamResponse:
    """Close the TCP connection now, mid-body: what was written is flushed, the end of the
    chunked body never comes (aiohttp's write_eof then fails quietly on the closed socket)."""
    resp.force_close()
    if request.transport is not None:
        request.transport.close()
    return resp


def _form_text(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None


def _wav_seconds(data: bytes) -> float:
    try:
        with wave.open(io.BytesIO(data)) as w:
            return w.getnframes() / w.getframerate()
    except (wave.Error, EOFError):
        return 0.0


def _error_response(status: int, message: str) -> web.Response:
    if status >= 500:
        err_type = "server_error"
    elif status == 429:
        err_type = "requests"
    else:
        err_type = "invalid_request_error"
    body = {"error": {"message": message, "type": err_type, "param": None, "code": None}}
    return web.json_response(body, status=status, headers={"x-request-id": _new_id("req_")})


def _sse(payload: dict[str, Any]) -> bytes:
    return f"data: {json.dumps(payload)}\n\n".encode()


def _split(text: str, size: int) -> list[str]:
    return [text[i : i + size] for i in range(0, len(text), size)]


def _byte_chunks(data: bytes, size: int) -> Iterator[bytes]:
    for i in range(0, len(data), size):
        yield data[i : i + size]


def _model(model_id: str) -> dict[str, Any]:
    return {
        "id": model_id,
        "object": "model",
        "created": 1_700_000_000,
        "owned_by": "standin",
    }


def _model_of(body: dict[str, Any]) -> str:
    return str(body.get("model") or "gpt-4.1")


def _estimate_tokens(text: str) -> int:
    return max(1, len(text) // 4) if text else 0


def _new_id(prefix: str) -> str:
    return prefix + uuid.uuid4().hex[:24]


def _content_text(content: Any) -> str:
    # message content is either a string or a list of typed parts
    if isinstance(content, str):
        return content
    parts = content or []
    return "".join(p.get("text", "") for p in parts if isinstance(p, dict))
