"""A TTS whose first audio must come within a bound, or the request counts as failed.

The framework bounds a stalled LLM (the first token's timeout) but not a stalled TTS: the
OpenAI plugin reads a speech response with a fixed 30 s timeout, and `tts.FallbackAdapter`
has no attempt timeout, so a TTS that accepts the request and sends nothing leaves the
caller in silence for 30 s a try. Wrapped in `FirstAudioBound`, such a request fails with
`APITimeoutError` after `seconds`, which the retry or the fallback TTS then covers.
Only the first audio is bounded: a long sentence streams at the provider's pace.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterable
from typing import Any

from livekit.agents import APIConnectOptions, APITimeoutError, tts
from livekit.agents.types import DEFAULT_API_CONNECT_OPTIONS
from livekit.agents.utils import shortuuid


class FirstAudioBound(tts.TTS):
    """`inner`, with its first audio frame due within `seconds` of each request."""

    def __init__(self, inner: tts.TTS, seconds: float) -> None:
        super().__init__(
            capabilities=tts.TTSCapabilities(streaming=False),
            sample_rate=inner.sample_rate,
            num_channels=inner.num_channels,
        )
        self.inner = inner
        self.seconds = seconds
        inner.on("metrics_collected", self._forward_metrics)

    @property
    def model(self) -> str:
        return self.inner.model

    @property
    def provider(self) -> str:
        return self.inner.provider

    @property
    def label(self) -> str:
        return self.inner.label

    def synthesize(
        self, text: str, *, conn_options: APIConnectOptions = DEFAULT_API_CONNECT_OPTIONS
    ) -> tts.ChunkedStream:
        return _BoundedStream(tts=self, input_text=text, conn_options=conn_options)

    def prewarm(self) -> None:
        self.inner.prewarm()

    async def aclose(self) -> None:
        self.inner.off("metrics_collected", self._forward_metrics)
        await self.inner.aclose()

    def _forward_metrics(self, *args: Any, **kwargs: Any) -> None:
        self.emit("metrics_collected", *args, **kwargs)


class _BoundedStream(tts.ChunkedStream):
    # The inner request has its own span; this one only forwards its frames.
    _tts_attempt_span_name = None

    def __init__(self, *, tts: FirstAudioBound, input_text: str, conn_options: APIConnectOptions):
        super().__init__(tts=tts, input_text=input_text, conn_options=conn_options)
        self._bound = tts

    async def _metrics_monitor_task(self, event_aiter: AsyncIterable[tts.SynthesizedAudio]) -> None:
        async for _ in event_aiter:  # the inner TTS reports the metrics
            pass

    async def _run(self, output_emitter: tts.AudioEmitter) -> None:
        output_emitter.initialize(
            request_id=shortuuid(),
            sample_rate=self._bound.sample_rate,
            num_channels=self._bound.num_channels,
            mime_type="audio/pcm",
        )
        # One attempt here: this stream's own loop (the caller's conn_options) retries it.
        once = APIConnectOptions(max_retry=0, timeout=self._conn_options.timeout)
        async with self._bound.inner.synthesize(self.input_text, conn_options=once) as inner:
            frames = aiter(inner)
            try:
                first = await asyncio.wait_for(anext(frames), self._bound.seconds)
            except TimeoutError:
                raise APITimeoutError(
                    f"{self._bound.label}: no audio within {self._bound.seconds:g} s"
                ) from None
            except StopAsyncIteration:
                return
            output_emitter.push_frame(first.frame)
            async for audio in frames:
                output_emitter.push_frame(audio.frame)
