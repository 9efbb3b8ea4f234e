"""An audio output that plays what the agent says in real time and notes when.

The benchmark measures the agent's first audio with it; tests wait on what was played.

It stands where the room's audio track would be: frames arrive faster than real time,
and playback takes as long as the audio lasts, so "after the goodbye was spoken"
means after its last sample would have reached the caller's ear. When the next frame of a
segment is late (a provider stalled mid-answer), the caller hears silence: noted in the
segment's `gaps`.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field

from livekit import rtc
from livekit.agents.voice import io

# A wait for the next frame of a segment longer than this is a gap the caller hears.
GAP_SECONDS = 0.1


@dataclass
class PlayedSegment:
    started_at: float  # time.monotonic() when the first frame started playing
    # time.monotonic() when the session handed the first frame to this output: where the
    # agent's audio leaves the session (a room's track would send it from here)
    handed_at: float = 0.0
    duration: float = 0.0  # seconds of audio played
    finished_at: float | None = None
    interrupted: bool = False
    # (start, end), time.monotonic(): silences within the segment, the next frame late
    gaps: list[tuple[float, float]] = field(default_factory=list)


@dataclass
class _Pending:
    frames: list[rtc.AudioFrame] = field(default_factory=list)
    flushed: bool = False


class RealTimeAudioSink(io.AudioOutput):
    def __init__(self, speed: float = 1.0) -> None:
        super().__init__(
            label="RealTimeAudioSink", capabilities=io.AudioOutputCapabilities(pause=False)
        )
        # `speed` > 1 plays faster than real time, to keep slow tests short.
        self._speed = speed
        self.segments: list[PlayedSegment] = []
        # frames with the time each was handed over; None ends a segment
        self._queue: asyncio.Queue[tuple[rtc.AudioFrame, float] | None] = asyncio.Queue()
        self._player: asyncio.Task[None] | None = None
        self._current: PlayedSegment | None = None
        self._interrupt = asyncio.Event()
        self._segment_open = False  # frames captured since the last flush or clear
        self._segment_done = asyncio.Event()
        self._played_until = 0.0  # time.monotonic() the last frame finished playing

    @property
    def seconds_played(self) -> float:
        return sum(s.duration for s in self.segments)

    async def wait_for_segments(self, count: int) -> None:
        """Until `count` segments have finished playing."""
        while sum(s.finished_at is not None for s in self.segments) < count:
            self._segment_done.clear()
            await self._segment_done.wait()

    async def capture_frame(self, frame: rtc.AudioFrame) -> None:
        handed_at = time.monotonic()
        await super().capture_frame(frame)
        self._segment_open = True
        if self._player is None:
            self._player = asyncio.create_task(self._play())
        self._queue.put_nowait((frame, handed_at))

    def flush(self) -> None:
        super().flush()
        if self._segment_open:
            self._segment_open = False
            self._queue.put_nowait(None)  # end of segment

    def clear_buffer(self) -> None:
        # Drop what has not played yet; the segment ends, interrupted.
        if not self._segment_open and self._current is None:
            return
        while not self._queue.empty():
            self._queue.get_nowait()
        self._interrupt.set()
        self._segment_open = False
        self._queue.put_nowait(None)

    async def _play(self) -> None:
        while True:
            item = await self._queue.get()
            if item is None:
                self._finish_segment()
                continue
            frame, handed_at = item
            if self._current is None:
                self._current = PlayedSegment(started_at=time.monotonic(), handed_at=handed_at)
                self._played_until = self._current.started_at
                self.segments.append(self._current)
                self.on_playback_started(created_at=time.time())
            if self._interrupt.is_set():
                continue
            self._note_gap()
            await asyncio.sleep(frame.duration / self._speed)
            self._current.duration += frame.duration
            self._played_until = time.monotonic()

    def _note_gap(self) -> None:
        """The segment's audio stopped since the last frame played: the caller heard silence."""
        now = time.monotonic()
        if self._current is not None and now - self._played_until > GAP_SECONDS:
            self._current.gaps.append((self._played_until, now))

    def _finish_segment(self) -> None:
        if not self._interrupt.is_set():
            self._note_gap()  # the end of the segment came late after its last frame
        segment, self._current = self._current, None
        interrupted = self._interrupt.is_set()
        self._interrupt.clear()
        if segment is None:
            return
        segment.finished_at = time.monotonic()
        segment.interrupted = interrupted
        self._segment_done.set()
        self.on_playback_finished(playback_position=segment.duration, interrupted=interrupted)

    async def aclose(self) -> None:
        if self._player is not None:
            self._player.cancel()
