"""The greeting audio cache: capture, replay, disk sharing, and failures that are misses."""

from __future__ import annotations

import asyncio
import logging
import math
import os
import random
import wave
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from livekit import rtc

from telephony.call.greeting_audio import (
    CachedAudio,
    GreetingAudioCache,
    greeting_key,
    tts_voice_identity,
)
from telephony.domain.settings import PROJECT_ROOT, ModelSettings, read_settings

TEXT = "Thank you for calling Acme. How can I help you today?"
VOICE = "openai/gpt-4o-mini-tts/ash"
KEY = greeting_key(TEXT, VOICE)
LOGGER = "telephony.call.greeting_audio"


def tts_frames(
    seconds: float = 0.5,
    sample_rate: int = 24_000,
    frame_ms: int = 10,
    num_channels: int = 1,
    seed: int = 1,
) -> list[rtc.AudioFrame]:
    """A sine with noise, in frames of `frame_ms` (the last one shorter), as a TTS yields."""
    rng = random.Random(seed)
    total = int(seconds * sample_rate)
    samples = [
        int(8000 * math.sin(2 * math.pi * 440 * i / sample_rate)) + rng.randint(-2000, 2000)
        for i in range(total)
    ]
    per_frame = sample_rate * frame_ms // 1000 + 3  # not a multiple of 20 ms
    frames = []
    for start in range(0, total, per_frame):
        chunk = samples[start : start + per_frame]
        frame = rtc.AudioFrame.create(sample_rate, num_channels, len(chunk))
        for i, value in enumerate(chunk):
            for channel in range(num_channels):
                frame.data[i * num_channels + channel] = value
        frames.append(frame)
    return frames


def pcm_of(frames: list[rtc.AudioFrame]) -> bytes:
    return b"".join(bytes(f.data.cast("B")) for f in frames)


async def source(frames: list[rtc.AudioFrame], fail_after: int | None = None):
    for i, frame in enumerate(frames):
        if i == fail_after:
            raise RuntimeError("TTS connection lost")
        await asyncio.sleep(0)
        yield frame


async def play(audio: AsyncIterator[rtc.AudioFrame]) -> list[rtc.AudioFrame]:
    return [frame async for frame in audio]


def files_in(directory: Path) -> list[str]:
    return sorted(p.name for p in directory.iterdir())


async def capture_all(cache: GreetingAudioCache, key: str, frames: list[rtc.AudioFrame]):
    return await play(cache.capture(key, source(frames)))


# -- keys ----------------------------------------------------------------------------------


def test_key_changes_with_text_and_voice_and_cannot_be_confused():
    assert greeting_key(TEXT, VOICE) == KEY
    assert greeting_key(TEXT + " ", VOICE) != KEY
    assert greeting_key(TEXT, "openai/gpt-4o-mini-tts/coral") != KEY
    assert greeting_key("ab", "c") != greeting_key("a", "bc")
    assert greeting_key('a", "b', "c") != greeting_key("a", 'b", "c')


def test_voice_identity_names_provider_model_and_voice():
    assert tts_voice_identity(ModelSettings()) == "openai/gpt-4o-mini-tts/ash"
    deepgram = read_settings({"TTS_PROVIDER": "deepgram"}).models
    assert tts_voice_identity(deepgram) == "deepgram/aura-2-andromeda-en/"
    assert tts_voice_identity(ModelSettings(tts_voice="coral")) != tts_voice_identity(
        ModelSettings()
    )


def test_keys_that_are_not_greeting_keys_are_refused():
    cache = GreetingAudioCache(None)
    for bad in ("../../etc/passwd", "", "ABCDEF0123456789ABCDEF", KEY + ".wav"):
        with pytest.raises(ValueError):
            cache.get(bad)


# -- capture and replay --------------------------------------------------------------------


async def test_capture_passes_frames_through_and_replays_the_same_audio(tmp_path: Path):
    frames = tts_frames()
    cache = GreetingAudioCache(tmp_path)
    assert cache.get(KEY) is None

    passed = await capture_all(cache, KEY, frames)
    assert passed == frames  # the very same objects, in order

    audio = cache.get(KEY)
    assert audio is not None
    assert audio.sample_rate == 24_000 and audio.num_channels == 1
    assert audio.duration == pytest.approx(0.5)
    replayed = await play(audio.frames())
    assert pcm_of(replayed) == pcm_of(frames)
    assert {f.sample_rate for f in replayed} == {24_000}
    assert [f.samples_per_channel for f in replayed[:-1]] == [480] * (len(replayed) - 1)
    assert 0 < replayed[-1].samples_per_channel <= 480


async def test_every_playback_gets_fresh_frames(tmp_path: Path):
    cache = GreetingAudioCache(tmp_path)
    await capture_all(cache, KEY, tts_frames())
    audio = cache.get(KEY)
    assert audio is not None
    first = await play(audio.frames())
    first[0].data[0] = 12345  # e.g. a volume change downstream
    second = await play(audio.frames())
    assert all(a is not b for a, b in zip(first, second, strict=True))
    assert second[0].data[0] != 12345
    assert pcm_of(second) == pcm_of(await play(audio.frames()))


async def test_captured_audio_is_a_copy_of_the_frames(tmp_path: Path):
    frames = tts_frames()
    expected = pcm_of(frames)
    cache = GreetingAudioCache(tmp_path)
    async for frame in cache.capture(KEY, source(frames)):
        frame.data[0] = 0  # the frame's buffer is changed after it was passed on
    audio = cache.get(KEY)
    assert audio is not None
    assert audio.pcm[:2] == expected[:2]
    assert audio.pcm[:2] != b"\0\0"


async def test_a_different_text_or_voice_is_a_miss(tmp_path: Path):
    cache = GreetingAudioCache(tmp_path)
    await capture_all(cache, KEY, tts_frames())
    assert cache.get(greeting_key(TEXT, "openai/gpt-4o-mini-tts/coral")) is None
    assert cache.get(greeting_key("Hello Maria, thanks for calling Acme.", VOICE)) is None
    assert cache.get(KEY) is not None


async def test_another_process_hits_from_disk(tmp_path: Path):
    frames = tts_frames(sample_rate=16_000, seed=7)
    await capture_all(GreetingAudioCache(tmp_path), KEY, frames)
    assert (tmp_path / f"{KEY}.wav").is_file()
    assert files_in(tmp_path) == [f"{KEY}.wav"]  # no temporary left

    other = GreetingAudioCache(tmp_path)
    audio = other.get(KEY)
    assert audio is not None
    assert audio.sample_rate == 16_000
    assert pcm_of(await play(audio.frames())) == pcm_of(frames)

    # A disk hit is kept in memory: it survives the file going away.
    (tmp_path / f"{KEY}.wav").unlink()
    assert other.get(KEY) == audio


async def test_the_file_is_a_plain_16_bit_wav(tmp_path: Path):
    frames = tts_frames(sample_rate=22_050)
    await capture_all(GreetingAudioCache(tmp_path), KEY, frames)
    with wave.open(str(tmp_path / f"{KEY}.wav"), "rb") as wav:
        assert (wav.getnchannels(), wav.getsampwidth(), wav.getframerate()) == (1, 2, 22_050)
        assert wav.readframes(wav.getnframes()) == pcm_of(frames)


async def test_memory_only_cache_writes_nothing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.chdir(tmp_path)
    cache = GreetingAudioCache(None)
    await capture_all(cache, KEY, tts_frames())
    assert cache.get(KEY) is not None
    assert files_in(tmp_path) == []
    assert GreetingAudioCache(None).get(KEY) is None


async def test_put_stores_a_list_of_frames(tmp_path: Path):
    frames = tts_frames(num_channels=2)
    cache = GreetingAudioCache(tmp_path)
    cache.put(KEY, frames)
    audio = GreetingAudioCache(tmp_path).get(KEY)
    assert audio is not None
    assert audio.num_channels == 2
    replayed = await play(audio.frames())
    assert pcm_of(replayed) == pcm_of(frames)
    assert all(f.num_channels == 2 for f in replayed)
    assert replayed[0].samples_per_channel == 480


# -- captures that must not be stored ------------------------------------------------------


async def test_consumer_stopping_early_stores_nothing(tmp_path: Path):
    cache = GreetingAudioCache(tmp_path)
    closed = asyncio.Event()

    async def tts():
        try:
            for frame in tts_frames():
                yield frame
        finally:
            closed.set()

    stream = cache.capture(KEY, tts())
    async for _ in stream:
        break  # interrupted after the first frame
    await stream.aclose()
    assert closed.is_set()  # the TTS stream was closed too
    assert cache.get(KEY) is None
    assert files_in(tmp_path) == []


async def test_cancelled_capture_stores_nothing(tmp_path: Path):
    cache = GreetingAudioCache(tmp_path)
    first_frame = asyncio.Event()

    async def tts():
        for frame in tts_frames():
            yield frame
            first_frame.set()
            await asyncio.sleep(0.01)

    async def speak():
        async for _ in cache.capture(KEY, tts()):
            pass

    task = asyncio.create_task(speak())
    await first_frame.wait()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert cache.get(KEY) is None
    assert files_in(tmp_path) == []


async def test_failing_tts_stores_nothing(tmp_path: Path):
    cache = GreetingAudioCache(tmp_path)
    passed = []
    with pytest.raises(RuntimeError, match="TTS connection lost"):
        async for frame in cache.capture(KEY, source(tts_frames(), fail_after=5)):
            passed.append(frame)
    assert len(passed) == 5
    assert cache.get(KEY) is None
    assert files_in(tmp_path) == []


async def test_empty_stream_stores_nothing(tmp_path: Path):
    cache = GreetingAudioCache(tmp_path)
    assert await capture_all(cache, KEY, []) == []
    assert cache.get(KEY) is None
    assert files_in(tmp_path) == []


async def test_mixed_sample_rates_are_not_stored(tmp_path: Path, caplog: pytest.LogCaptureFixture):
    frames = tts_frames(sample_rate=24_000) + tts_frames(sample_rate=16_000)
    cache = GreetingAudioCache(tmp_path)
    with caplog.at_level(logging.WARNING, logger=LOGGER):
        assert await capture_all(cache, KEY, frames) == frames
    assert cache.get(KEY) is None
    assert len(caplog.records) == 1 and KEY in caplog.text


# -- disk failures are misses --------------------------------------------------------------


def _valid_wav(tmp_path: Path) -> bytes:
    GreetingAudioCache(tmp_path / "source").put(KEY, tts_frames(seconds=0.1))
    return (tmp_path / "source" / f"{KEY}.wav").read_bytes()


@pytest.mark.parametrize(
    "damage",
    [
        lambda wav: b"",
        lambda wav: b"not a wav file at all" * 10,
        lambda wav: wav[:30],  # the header cut short
        lambda wav: wav[:-100],  # the samples cut short
        lambda wav: wav[:44],  # a header and no samples
    ],
    ids=["empty", "garbage", "short-header", "truncated", "no-samples"],
)
def test_a_corrupt_file_is_a_miss_with_a_warning(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, damage
):
    path = tmp_path / "cache" / f"{KEY}.wav"
    path.parent.mkdir()
    path.write_bytes(damage(_valid_wav(tmp_path)))
    cache = GreetingAudioCache(path.parent)
    with caplog.at_level(logging.WARNING, logger=LOGGER):
        assert cache.get(KEY) is None
    assert len(caplog.records) == 1
    assert KEY in caplog.text and TEXT not in caplog.text
    assert not path.exists()  # removed, so the next capture can replace it
    assert cache.get(KEY) is None


def test_no_truncation_of_a_file_raises(tmp_path: Path):
    wav = _valid_wav(tmp_path)
    directory = tmp_path / "cache"
    directory.mkdir()
    for length in range(len(wav)):
        (directory / f"{KEY}.wav").write_bytes(wav[:length])
        assert GreetingAudioCache(directory).get(KEY) is None, length


def test_a_wav_in_another_format_is_a_miss(tmp_path: Path, caplog: pytest.LogCaptureFixture):
    path = tmp_path / f"{KEY}.wav"
    with wave.open(str(path), "wb") as wav:
        wav.setnchannels(1)
        wav.setsampwidth(1)  # 8-bit
        wav.setframerate(8000)
        wav.writeframes(bytes(range(256)))
    with caplog.at_level(logging.WARNING, logger=LOGGER):
        assert GreetingAudioCache(tmp_path).get(KEY) is None
    assert len(caplog.records) == 1


def test_a_folder_where_the_file_should_be_is_a_miss(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
):
    (tmp_path / f"{KEY}.wav").mkdir()
    with caplog.at_level(logging.WARNING, logger=LOGGER):
        assert GreetingAudioCache(tmp_path).get(KEY) is None
    assert len(caplog.records) == 1


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes into read-only folders")
async def test_unwritable_folder_warns_and_memory_still_hits(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
):
    directory = tmp_path / "cache"
    directory.mkdir()
    directory.chmod(0o500)
    try:
        cache = GreetingAudioCache(directory)
        with caplog.at_level(logging.WARNING, logger=LOGGER):
            assert await capture_all(cache, KEY, tts_frames()) is not None
        assert len(caplog.records) == 1 and KEY in caplog.text
        assert cache.get(KEY) is not None
        assert files_in(directory) == []
    finally:
        directory.chmod(0o700)


async def test_a_failed_write_leaves_no_temporary_file(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
):
    def disk_full(src: str, dst: str) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr("telephony.call.greeting_audio.os.replace", disk_full)
    cache = GreetingAudioCache(tmp_path)
    with caplog.at_level(logging.WARNING, logger=LOGGER):
        await capture_all(cache, KEY, tts_frames())
    assert len(caplog.records) == 1 and "No space left" in caplog.text
    assert files_in(tmp_path) == []
    assert cache.get(KEY) is not None


async def test_a_file_in_place_of_the_folder_warns_and_memory_still_hits(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
):
    blocker = tmp_path / "cache"
    blocker.write_text("not a folder")
    cache = GreetingAudioCache(blocker / "greetings")
    with caplog.at_level(logging.WARNING, logger=LOGGER):
        await capture_all(cache, KEY, tts_frames())
        audio = cache.get(KEY)
    assert audio is not None
    assert pcm_of(await play(audio.frames())) == pcm_of(tts_frames())
    assert len(caplog.records) == 1  # the failed write; the read is a plain miss


# -- memory bound --------------------------------------------------------------------------


def test_memory_keeps_only_the_most_recently_used_entries():
    cache = GreetingAudioCache(None, max_entries=3)
    keys = [greeting_key(f"Hello caller {i}", VOICE) for i in range(4)]
    for key in keys[:3]:
        cache.put(key, tts_frames(seconds=0.02))
    assert cache.get(keys[0]) is not None  # now the most recently used
    cache.put(keys[3], tts_frames(seconds=0.02))
    assert cache.get(keys[1]) is None  # the least recently used went
    assert all(cache.get(k) is not None for k in (keys[0], keys[2], keys[3]))


def test_evicted_entries_come_back_from_disk(tmp_path: Path):
    cache = GreetingAudioCache(tmp_path, max_entries=1)
    first, second = (greeting_key(f"Hello caller {i}", VOICE) for i in range(2))
    cache.put(first, tts_frames(seconds=0.02, seed=1))
    cache.put(second, tts_frames(seconds=0.02, seed=2))
    audio = cache.get(first)
    assert audio is not None
    assert audio.pcm == pcm_of(tts_frames(seconds=0.02, seed=1))


# -- the setting ---------------------------------------------------------------------------


def test_greeting_audio_dir_setting():
    assert read_settings({}).greeting_audio_dir == PROJECT_ROOT / "data" / "greeting-audio"
    # Empty means the default, as for every setting; "off" keeps the audio in memory only.
    assert read_settings({"GREETING_AUDIO_DIR": ""}).greeting_audio_dir == (
        PROJECT_ROOT / "data" / "greeting-audio"
    )
    assert read_settings({"GREETING_AUDIO_DIR": "off"}).greeting_audio_dir is None
    assert read_settings({"GREETING_AUDIO_DIR": "cache/greet"}).greeting_audio_dir == (
        PROJECT_ROOT / "cache" / "greet"
    )
    absolute = read_settings({"GREETING_AUDIO_DIR": "/var/cache/greet"})
    assert absolute.greeting_audio_dir == Path("/var/cache/greet")


def test_cached_audio_duration():
    audio = CachedAudio(pcm=bytes(2 * 8000), sample_rate=16_000)
    assert audio.duration == pytest.approx(0.5)
