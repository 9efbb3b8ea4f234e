"""The stand-ins' fault knobs, seen from the real provider plugins: what a client meets when
OpenAI's chat or speech fails, stalls or drops mid-stream, and when Deepgram refuses or
drops its listen connections. The product's fault handling and the benchmark's fault mode
(`bench --fault`) rely on these behaving like the outages they imitate."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable

import httpx2 as httpx
import pytest
import pytest_asyncio
from livekit import rtc
from livekit.agents import (
    APIConnectionError,
    APIConnectOptions,
    APIStatusError,
    APITimeoutError,
    llm,
    stt,
)
from livekit.agents.utils import http_context

from telephony.devtools.standins.deepgram_server import DROP_CLOSE_CODE, DeepgramStandin
from telephony.devtools.standins.openai_server import OpenAIStandin, reply

NO_RETRY = APIConnectOptions(max_retry=0)
TEXT = "Sure, I can help with that."
STALL = 0.6  # seconds: long enough to tell apart from a prompt answer, short for a test


def _user_ctx(text: str = "hi") -> llm.ChatContext:
    ctx = llm.ChatContext()
    ctx.add_message(role="user", content=text)
    return ctx


async def _read(stream: llm.LLMStream, received: list[str]) -> None:
    """Collect the streamed text into `received` (kept when the stream breaks)."""
    async with stream:
        async for chunk in stream:
            if chunk.delta and chunk.delta.content:
                received.append(chunk.delta.content)


def _causes(error: BaseException | None) -> list[BaseException]:
    """The error and what caused it, down the chain."""
    chain = []
    while error is not None:
        chain.append(error)
        error = error.__cause__ or error.__context__
    return chain


async def _first_body_byte(client: httpx.AsyncClient, url: str, body: dict) -> tuple[float, float]:
    """(seconds to the response headers, seconds to the first byte of the body)."""
    started = time.monotonic()
    async with client.stream("POST", url, json=body) as response:
        headers_at = time.monotonic() - started
        async for _ in response.aiter_raw():
            return headers_at, time.monotonic() - started
    raise AssertionError("the body was empty")


# --------------------------------------------------------------------------- OpenAI chat


async def test_a_reply_dropped_mid_stream_breaks_the_plugins_stream(
    openai_server: OpenAIStandin,
) -> None:
    # Chunks: the role, then "Sure", ", I " ... : the connection goes after three.
    openai_server.script(reply(TEXT, chunk_chars=4, drop_after_chunks=3))
    received: list[str] = []

    # Retries allowed: the plugin still does not retry, as text had already arrived.
    retries = APIConnectOptions(max_retry=2, retry_interval=0.0)
    with pytest.raises(APIConnectionError) as raised:
        await _read(openai_server.llm().chat(chat_ctx=_user_ctx(), conn_options=retries), received)

    assert "".join(received) == "Sure, I "
    assert not raised.value.retryable
    assert any(isinstance(e, httpx.RemoteProtocolError) for e in _causes(raised.value))
    (request,) = openai_server.chat_requests
    assert (request.chunks_sent, request.dropped) == (3, True)


async def test_a_dropped_stream_has_no_done_and_no_end_of_body(
    openai_server: OpenAIStandin,
) -> None:
    openai_server.script(reply(TEXT, drop_after_chunks=2))
    body = {"model": "gpt-4.1", "messages": [{"role": "user", "content": "hi"}], "stream": True}
    lines: list[str] = []

    async with httpx.AsyncClient() as client:
        with pytest.raises(httpx.RemoteProtocolError, match="incomplete chunked read"):
            url = f"{openai_server.base_url}/chat/completions"
            async with client.stream("POST", url, json=body) as response:
                assert response.status_code == 200
                async for line in response.aiter_lines():
                    lines.append(line)

    data = [line for line in lines if line.startswith("data: ")]
    assert len(data) == 2 and "data: [DONE]" not in data


async def test_a_drop_after_more_chunks_than_the_reply_has_still_cuts_the_end(
    openai_server: OpenAIStandin,
) -> None:
    openai_server.script(reply("Hi.", drop_after_chunks=99))
    received: list[str] = []

    with pytest.raises(APIConnectionError):
        await _read(openai_server.llm().chat(chat_ctx=_user_ctx(), conn_options=NO_RETRY), received)

    assert "".join(received) == "Hi."
    assert openai_server.chat_requests[0].dropped


async def test_a_drop_before_any_chunk_is_retried_by_the_plugin(
    openai_server: OpenAIStandin,
) -> None:
    # Nothing had arrived yet, so the plugin's retry covers it with the next answer.
    openai_server.script(reply(TEXT, drop_after_chunks=0), reply("Recovered."))
    received: list[str] = []

    once = APIConnectOptions(max_retry=1, retry_interval=0.0)
    await _read(openai_server.llm().chat(chat_ctx=_user_ctx(), conn_options=once), received)

    assert "".join(received) == "Recovered."
    assert [r.dropped for r in openai_server.chat_requests] == [True, False]


async def test_a_stalled_reply_holds_back_its_first_byte(openai_server: OpenAIStandin) -> None:
    openai_server.script(reply(TEXT, first_token_delay=STALL))
    body = {"model": "gpt-4.1", "messages": [{"role": "user", "content": "hi"}], "stream": True}

    async with httpx.AsyncClient() as client:
        url = f"{openai_server.base_url}/chat/completions"
        headers_at, first_byte_at = await _first_body_byte(client, url, body)

    # The status and headers come at once, as OpenAI sends them; the first token does not.
    assert headers_at < STALL / 2
    assert first_byte_at >= STALL


async def test_a_stall_longer_than_the_plugins_timeout_is_a_timeout(
    openai_server: OpenAIStandin,
) -> None:
    openai_server.default_turn = reply(TEXT, first_token_delay=30)
    received: list[str] = []
    started = time.monotonic()

    short = APIConnectOptions(max_retry=0, timeout=STALL / 2)
    with pytest.raises(APITimeoutError):
        await _read(openai_server.llm().chat(chat_ctx=_user_ctx(), conn_options=short), received)

    assert received == [] and time.monotonic() - started < 5
    assert openai_server.chat_requests[0].first_chunk_at is None


# --------------------------------------------------------------------------- OpenAI speech


async def test_tts_error_status_fails_every_speech_request_until_cleared(
    openai_server: OpenAIStandin,
) -> None:
    tts = openai_server.tts()
    openai_server.tts_error_status = 503

    for _ in range(2):
        with pytest.raises(APIStatusError) as raised:
            [ev async for ev in tts.synthesize("Hello there.", conn_options=NO_RETRY)]
        assert raised.value.status_code == 503
        assert "error while processing" in raised.value.message

    openai_server.tts_error_status = None  # the outage ends: the same client works again
    frames = [ev.frame async for ev in tts.synthesize("Hello there.", conn_options=NO_RETRY)]

    assert sum(f.duration for f in frames) > 0.5
    assert [r.error_status for r in openai_server.speech_requests] == [503, 503, None]


@pytest.mark.parametrize(
    ("model", "stream_format"), [("tts-1", "audio"), ("gpt-4o-mini-tts", "sse")]
)
async def test_a_tts_stall_holds_back_the_first_audio_byte(
    openai_server: OpenAIStandin, model: str, stream_format: str
) -> None:
    openai_server.tts_first_byte_delay = STALL
    body = {"model": model, "input": "Hello.", "voice": "alloy", "response_format": "pcm"}

    async with httpx.AsyncClient() as client:
        url = f"{openai_server.base_url}/audio/speech"
        headers_at, first_byte_at = await _first_body_byte(
            client, url, {**body, "stream_format": stream_format}
        )
    # The plugin's first frame, with the stream format it picks for the model.
    started = time.monotonic()
    async for _ in openai_server.tts(model=model).synthesize("Hello.", conn_options=NO_RETRY):
        first_frame_at = time.monotonic() - started
        break

    assert headers_at < STALL / 2 and first_byte_at >= STALL
    assert first_frame_at >= STALL
    assert [r.stream_format for r in openai_server.speech_requests] == [stream_format] * 2


# --------------------------------------------------------------------------- OpenAI STT


def _speech_buffer(seconds: float = 0.5) -> rtc.AudioFrame:
    samples = round(16_000 * seconds)
    return rtc.AudioFrame(
        data=b"\x10\x00" * samples, sample_rate=16_000, num_channels=1, samples_per_channel=samples
    )


async def test_http_transcriptions_answer_the_script_then_the_default(
    openai_server: OpenAIStandin,
) -> None:
    openai_server.script_transcriptions(["I would like to book an appointment."])
    openai_server.default_transcription = "Yes."
    plugin = openai_server.stt(model="gpt-4o-mini-transcribe", language="en")

    first = await plugin.recognize(_speech_buffer(), conn_options=NO_RETRY)
    second = await plugin.recognize(_speech_buffer(), conn_options=NO_RETRY)

    assert first.type is stt.SpeechEventType.FINAL_TRANSCRIPT
    assert first.alternatives[0].text == "I would like to book an appointment."
    assert second.alternatives[0].text == "Yes."
    request = openai_server.transcription_requests[0]
    assert (request.model, request.language, request.response_format) == (
        "gpt-4o-mini-transcribe",
        "en",
        "json",
    )
    # The plugin uploads a WAV of the buffer: half a second of 16 kHz 16-bit mono.
    assert request.audio_bytes >= 16_000
    assert openai_server.pending_transcriptions == []


async def test_whisper_gets_verbose_json_with_the_language(openai_server: OpenAIStandin) -> None:
    openai_server.default_transcription = "Tuesday."

    event = await openai_server.stt(model="whisper-1").recognize(
        _speech_buffer(), conn_options=NO_RETRY
    )

    assert event.alternatives[0].text == "Tuesday."
    assert openai_server.transcription_requests[0].response_format == "verbose_json"


# --------------------------------------------------------------------------- Deepgram


@pytest_asyncio.fixture
async def listening() -> AsyncIterator[None]:
    """The http session the deepgram plugin takes from a job, outside a job."""
    async with http_context.open():
        yield


class _Stream:
    """A deepgram plugin stream fed 10 ms of silence every 10 ms, its errors noted."""

    def __init__(self, server: DeepgramStandin, conn_options: APIConnectOptions) -> None:
        self.plugin = server.stt()
        self.errors: list[stt.STTError] = []
        self.plugin.on("error", self.errors.append)
        self.stream = self.plugin.stream(conn_options=conn_options)
        self._feeder = asyncio.create_task(self._feed())
        self.reader = asyncio.create_task(self._read())

    async def _feed(self) -> None:
        frame = rtc.AudioFrame(
            data=b"\0\0" * 160, sample_rate=16_000, num_channels=1, samples_per_channel=160
        )
        while True:
            self.stream.push_frame(frame)
            await asyncio.sleep(0.01)

    async def _read(self) -> None:
        async for _ in self.stream:
            pass

    async def aclose(self) -> None:
        self._feeder.cancel()
        await self.stream.aclose()
        self.reader.cancel()


async def _until(condition: Callable[[], bool], timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        await asyncio.sleep(0.02)


async def test_refused_connections_fail_the_stream_after_its_retries(
    deepgram_server: DeepgramStandin, listening: None
) -> None:
    deepgram_server.refuse_connections = True
    stream = _Stream(deepgram_server, APIConnectOptions(max_retry=2, retry_interval=0.05))
    try:
        with pytest.raises(APIConnectionError, match="after 2 attempts"):
            await asyncio.wait_for(stream.reader, 5)
    finally:
        await stream.aclose()

    assert deepgram_server.refused_connections == 3 and deepgram_server.connections == []
    assert [e.recoverable for e in stream.errors] == [True, True, False]
    assert {getattr(e.error, "status_code", None) for e in stream.errors} == {503}


async def test_a_transient_drop_is_reconnected_by_the_plugin(
    deepgram_server: DeepgramStandin, listening: None
) -> None:
    stream = _Stream(deepgram_server, APIConnectOptions(max_retry=2, retry_interval=0.05))
    try:
        await _until(lambda: len(deepgram_server.connections) == 1)
        assert await deepgram_server.drop_connections() == 1
        await _until(lambda: len(deepgram_server.connections) == 2)
        # The new connection takes audio, and the stream is still going.
        await _until(lambda: deepgram_server.connections[1].audio_bytes > 0)
        assert not stream.reader.done()
    finally:
        await stream.aclose()

    dropped, reconnected = deepgram_server.connections
    assert dropped.dropped_at is not None and reconnected.dropped_at is None
    (error,) = stream.errors
    assert error.recoverable and getattr(error.error, "status_code", None) == DROP_CLOSE_CODE


async def test_go_down_drops_the_stream_and_refuses_it_until_come_back(
    deepgram_server: DeepgramStandin, listening: None
) -> None:
    stream = _Stream(deepgram_server, APIConnectOptions(max_retry=2, retry_interval=0.05))
    try:
        await _until(lambda: len(deepgram_server.connections) == 1)
        assert await deepgram_server.go_down() == 1
        with pytest.raises(APIConnectionError, match="after 2 attempts"):
            await asyncio.wait_for(stream.reader, 5)
    finally:
        await stream.aclose()

    (connection,) = deepgram_server.connections
    assert connection.dropped_at is not None and connection.closed_at is not None
    assert deepgram_server.refused_connections == 2  # the two retries
    codes = [getattr(e.error, "status_code", None) for e in stream.errors]
    assert codes[0] == DROP_CLOSE_CODE and codes[-1] == 503
    assert not stream.errors[-1].recoverable

    deepgram_server.come_back()
    again = _Stream(deepgram_server, APIConnectOptions(max_retry=0))
    try:
        await _until(lambda: len(deepgram_server.connections) == 2)
    finally:
        await again.aclose()
    assert again.errors == []
