"""The Deepgram stand-in's latency counts from when the server could know the speech ended:
the audio holding the connection's endpointing silence must have reached it, as with the
real service (the benchmark's finished-turn figure depends on it)."""

from __future__ import annotations

import asyncio
import json
import time

import aiohttp
import numpy as np

from telephony.devtools.standins.deepgram_server import DeepgramStandin

RATE = 16_000
CHUNK_SECONDS = 0.05  # what the deepgram plugin sends at a time
FINAL_DELAY = 0.1


def chunk(loud_seconds: float) -> bytes:
    """50 ms of linear16: a loud tone for `loud_seconds`, then silence."""
    samples = np.zeros(round(RATE * CHUNK_SECONDS), dtype=np.int16)
    loud = round(RATE * loud_seconds)
    samples[:loud] = (8000 * np.sin(np.arange(loud) * 2 * np.pi * 440 / RATE)).astype(np.int16)
    return samples.tobytes()


async def final_after_speech(endpointing_ms: int, last_chunk_loud: float) -> tuple[float, float]:
    """Stream 0.3 s of speech ending `last_chunk_loud` s into its last chunk, then silence,
    one chunk every 50 ms; returns (seconds from the end of the last loud sample to the final
    result, seconds from the arrival of the chunk completing the endpointing silence)."""
    async with DeepgramStandin() as server:
        server.script_transcripts(["hello there"], final_delay=FINAL_DELAY)
        url = server.base_url.replace("http", "ws") + (
            f"/listen?encoding=linear16&sample_rate={RATE}&channels=1&endpointing={endpointing_ms}"
        )
        headers = {"Authorization": "Token test"}
        async with aiohttp.ClientSession() as http, http.ws_connect(url, headers=headers) as ws:
            finals: list[float] = []

            async def receive() -> None:
                async for message in ws:
                    body = json.loads(message.data)
                    words = body.get("channel", {}).get("alternatives", [{}])[0].get("transcript")
                    if body.get("is_final") and words:
                        finals.append(time.monotonic())

            receiver = asyncio.create_task(receive())
            sent: list[float] = []
            script = [chunk(CHUNK_SECONDS)] * 5 + [chunk(last_chunk_loud)] + [chunk(0)] * 8
            for data in script:
                await asyncio.sleep(CHUNK_SECONDS)  # the chunk's audio has been spoken
                await ws.send_bytes(data)
                sent.append(time.monotonic())
            await asyncio.sleep(0.2)
            receiver.cancel()
        speech_end = sent[5] - CHUNK_SECONDS + last_chunk_loud
        silence_done = speech_end + endpointing_ms / 1000
        decisive = next(t for t in sent if t >= silence_done - 0.005)
        return finals[0] - speech_end, finals[0] - decisive


async def test_the_final_result_waits_for_the_endpointing_silence_to_arrive() -> None:
    # The speech ends 40 ms into a chunk: 25 ms of silence needs the next chunk (60 ms later).
    from_speech, from_arrival = await final_after_speech(25, 0.04)
    assert 0.09 <= from_arrival <= 0.16, from_arrival
    assert from_speech >= 0.06 + FINAL_DELAY - 0.01, from_speech


async def test_a_short_endpointing_silence_completes_in_the_same_chunk() -> None:
    # The speech ends 20 ms into a chunk: 10 ms of silence is in that chunk (sent 30 ms on).
    from_speech, from_arrival = await final_after_speech(10, 0.02)
    assert 0.09 <= from_arrival <= 0.16, from_arrival
    assert 0.03 + FINAL_DELAY - 0.01 <= from_speech < 0.09 + FINAL_DELAY, from_speech
