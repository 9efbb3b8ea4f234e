"""The greeting's audio, synthesized once and replayed without a TTS round trip.

The first time a greeting is spoken, `GreetingAudioCache.capture` wraps the TTS node's frame
stream: every frame passes through unchanged, and when the stream ends normally the audio is
stored under a key made of the greeting's text and the TTS voice. Later calls find it with
`get` and play `CachedAudio.frames()` through `session.say(text, audio=...)`.

Entries live in memory (least recently used evicted past a cap: a known caller's greeting
holds their name, so there can be many) and, when a directory is given, as 16-bit PCM WAV
files named `<key>.wav`, so every job process of the worker and later runs reuse them. Disk
problems never raise: they log one warning and the cache behaves as a miss.

A capture whose frames change sample rate or channel count midway is not stored (with a
warning) rather than resampled: TTS output has one format, so it would mean something odd.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import re
import tempfile
import wave
from collections import OrderedDict
from collections.abc import AsyncIterable, AsyncIterator, Iterable
from dataclasses import dataclass
from pathlib import Path

from livekit import rtc

from telephony.domain.settings import ModelSettings

logger = logging.getLogger("telephony.call.greeting_audio")

DEFAULT_MAX_ENTRIES = 64
FRAME_DURATION_MS = 20
_SAMPLE_WIDTH = 2  # bytes: 16-bit signed PCM, as rtc.AudioFrame holds it
_KEY = re.compile(r"^[0-9a-f]{16,64}$")
_SAMPLE_RATES = range(8_000, 192_001)
_MAX_CHANNELS = 8


def greeting_key(text: str, voice: str) -> str:
    """The cache key of a greeting spoken in a voice (see `tts_voice_identity`).

    A change to either gives a different key, so a new text or voice is simply a miss."""
    payload = json.dumps([text, voice], ensure_ascii=False).encode()
    return hashlib.sha256(payload).hexdigest()[:32]


def tts_voice_identity(models: ModelSettings) -> str:
    """What makes the TTS sound the way it does, e.g. "openai/gpt-4o-mini-tts/ash"."""
    return f"{models.tts_provider}/{models.tts_model}/{models.tts_voice}"


@dataclass(frozen=True)
class CachedAudio:
    """A greeting's audio: interleaved 16-bit little-endian PCM in one buffer."""

    pcm: bytes
    sample_rate: int
    num_channels: int = 1

    @property
    def samples_per_channel(self) -> int:
        return len(self.pcm) // (_SAMPLE_WIDTH * self.num_channels)

    @property
    def duration(self) -> float:
        """Seconds of audio."""
        return self.samples_per_channel / self.sample_rate

    async def frames(self) -> AsyncIterator[rtc.AudioFrame]:
        """The audio as fresh 20 ms frames (the last one may be shorter), for one playback.

        Each frame owns a writable copy of its samples, like a TTS's frames, so whatever
        changes them downstream cannot touch the cached audio."""
        samples_per_frame = self.sample_rate * FRAME_DURATION_MS // 1000
        step = samples_per_frame * self.num_channels * _SAMPLE_WIDTH
        for start in range(0, len(self.pcm), step):
            chunk = bytearray(self.pcm[start : start + step])
            yield rtc.AudioFrame(
                data=chunk,
                sample_rate=self.sample_rate,
                num_channels=self.num_channels,
                samples_per_channel=len(chunk) // (self.num_channels * _SAMPLE_WIDTH),
            )


class _Joiner:
    """Copies frames' PCM into one buffer as they arrive; notes a change of format."""

    def __init__(self) -> None:
        self.pcm = bytearray()
        self.format: tuple[int, int] | None = None  # (sample_rate, num_channels)
        self.mixed = False

    def add(self, frame: rtc.AudioFrame) -> None:
        fmt = (frame.sample_rate, frame.num_channels)
        if self.format is None:
            self.format = fmt
        elif fmt != self.format:
            self.mixed = True
        size = frame.samples_per_channel * frame.num_channels * _SAMPLE_WIDTH
        # A copy: the frame's buffer may be reused or changed once it has been played.
        self.pcm += frame.data.cast("B")[:size]

    def result(self, key: str) -> CachedAudio | None:
        """The joined audio, or None (logged) when there is none or the format changed."""
        if self.mixed:
            logger.warning(
                "greeting audio %s not cached: its frames change sample rate or channels", key
            )
            return None
        if self.format is None or not self.pcm:
            logger.debug("greeting audio %s not cached: no audio", key)
            return None
        sample_rate, num_channels = self.format
        return CachedAudio(bytes(self.pcm), sample_rate, num_channels)


class GreetingAudioCache:
    """Greeting audio by key: in memory, and in `directory` as WAV files when it is given."""

    def __init__(self, directory: Path | None, *, max_entries: int = DEFAULT_MAX_ENTRIES) -> None:
        if max_entries < 1:
            raise ValueError("max_entries must be at least 1")
        self.directory = directory
        self.max_entries = max_entries
        self._memory: OrderedDict[str, CachedAudio] = OrderedDict()

    def get(self, key: str) -> CachedAudio | None:
        """The audio stored under `key`, from memory or else from disk; None on a miss."""
        _check_key(key)
        audio = self._memory.get(key)
        if audio is not None:
            self._memory.move_to_end(key)
            return audio
        audio = self._read(key)
        if audio is not None:
            self._remember(key, audio)
        return audio

    def put(self, key: str, frames: Iterable[rtc.AudioFrame]) -> None:
        """Store these frames as the audio of `key` (in memory, then on disk)."""
        _check_key(key)
        joiner = _Joiner()
        for frame in frames:
            joiner.add(frame)
        self._store(key, joiner.result(key))

    async def capture(
        self, key: str, frames: AsyncIterable[rtc.AudioFrame]
    ) -> AsyncIterator[rtc.AudioFrame]:
        """Pass `frames` through unchanged; store them under `key` if the stream ends normally.

        Nothing is stored when the consumer stops early (closing this generator), the task
        is cancelled, or the source raises; the source is closed in every case."""
        _check_key(key)
        joiner = _Joiner()
        source = aiter(frames)
        try:
            async for frame in source:
                joiner.add(frame)
                yield frame
        finally:
            aclose = getattr(source, "aclose", None)
            if aclose is not None:
                await aclose()
        self._store(key, joiner.result(key))

    # -- internals ---------------------------------------------------------------------

    def _store(self, key: str, audio: CachedAudio | None) -> None:
        if audio is None:
            return
        self._remember(key, audio)
        self._write(key, audio)
        logger.debug("greeting audio %s cached: %.2fs", key, audio.duration)

    def _remember(self, key: str, audio: CachedAudio) -> None:
        self._memory[key] = audio
        self._memory.move_to_end(key)
        while len(self._memory) > self.max_entries:
            self._memory.popitem(last=False)

    def _path(self, key: str) -> Path | None:
        return None if self.directory is None else self.directory / f"{key}.wav"

    def _write(self, key: str, audio: CachedAudio) -> None:
        """Write atomically: a temporary file in the same folder, then a rename."""
        path = self._path(key)
        if path is None:
            return
        tmp_name: str | None = None
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            with tempfile.NamedTemporaryFile(
                dir=path.parent, prefix=f".{key}.", suffix=".tmp", delete=False
            ) as tmp:
                tmp_name = tmp.name
                with wave.open(tmp, "wb") as wav:
                    wav.setnchannels(audio.num_channels)
                    wav.setsampwidth(_SAMPLE_WIDTH)
                    wav.setframerate(audio.sample_rate)
                    wav.writeframes(audio.pcm)
            os.replace(tmp_name, path)
        except (OSError, wave.Error) as e:
            logger.warning("could not save greeting audio %s to %s: %s", key, path.parent, e)
            if tmp_name is not None:
                with contextlib.suppress(OSError):
                    os.unlink(tmp_name)

    def _read(self, key: str) -> CachedAudio | None:
        """The WAV file's audio; None when absent, unreadable or not what `_write` writes."""
        path = self._path(key)
        if path is None:
            return None
        try:
            with wave.open(str(path), "rb") as wav:
                params = wav.getparams()
                pcm = wav.readframes(params.nframes)
        except FileNotFoundError:
            return None
        except (OSError, EOFError, wave.Error, ValueError) as e:
            return self._discard(key, path, f"unreadable ({e})")
        expected = params.nframes * params.nchannels * _SAMPLE_WIDTH
        if (
            params.sampwidth != _SAMPLE_WIDTH
            or params.framerate not in _SAMPLE_RATES
            or not 1 <= params.nchannels <= _MAX_CHANNELS
        ):
            return self._discard(key, path, "not 16-bit PCM at a usable rate")
        if params.nframes == 0 or len(pcm) != expected:
            return self._discard(key, path, "empty or truncated")
        return CachedAudio(pcm, params.framerate, params.nchannels)

    def _discard(self, key: str, path: Path, reason: str) -> None:
        logger.warning("ignoring cached greeting audio %s (%s): %s", key, path, reason)
        with contextlib.suppress(OSError):
            path.unlink()
        return None


def _check_key(key: str) -> None:
    """Keys become file names: only what `greeting_key` makes is accepted."""
    if not _KEY.match(key):
        raise ValueError(f"not a greeting audio key: {key!r}")
