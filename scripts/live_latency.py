"""Live transcription's latency on real speech: the 79 s real-speech clip of
`make bench` (LibriVox + JFK) streamed to a real `sori serve` over
/v1/realtime at real time, in 20 ms chunks of 16 kHz PCM16, `--passes` times
in one session, with server VAD at OpenAI's defaults.

For each utterance: the wait from the end of its speech (where the audio it
covers ends, less the 500 ms of silence that ended it; the sender keeps real
time, so that is a wall-clock instant) to its completed event, and the
server's own `latency_sec` (from speech stopped). Then the word error rate of
the live text against the clip's transcript, beside the same clip sent as a
file. Run: python3 scripts/live_latency.py [--model tiny.en-q8_0] [--passes 3]
"""
import argparse
import asyncio
import base64
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import websockets

sys.path.insert(0, str(Path(__file__).resolve().parent))
from compare_peers import ROOT, SoriHttp, edit_rate, real_speech_clip, words  # noqa: E402

RATE = 16000
CHUNK_MS = 20
SILENCE_MS = 500


def pcm16(path):
    return subprocess.run(["sox", str(path), "-t", "raw", "-r", str(RATE), "-c", "1", "-e", "signed", "-b", "16", "-"],
                          check=True, capture_output=True).stdout


async def stream(url, pcm, model):
    """Streams `pcm` at real time; returns (utterances, transcript). Each utterance is
    (end of speech in the stream, ms; wall seconds from it to completed; server latency_sec)."""
    done, texts = [], []
    async with websockets.connect(url) as ws:
        await ws.send(json.dumps({"type": "session.update", "session": {"type": "transcription", "audio": {"input": {
            "format": {"type": "audio/pcm", "rate": RATE}, "transcription": {"model": model, "language": "en"},
            "turn_detection": {"type": "server_vad", "silence_duration_ms": SILENCE_MS}}}}}))
        started = time.monotonic()
        chunk = RATE * 2 * CHUNK_MS // 1000

        async def send():
            for i, at in enumerate(range(0, len(pcm), chunk)):
                await ws.send(json.dumps({"type": "input_audio_buffer.append",
                                          "audio": base64.b64encode(pcm[at:at + chunk]).decode()}))
                # Real time: the i-th chunk leaves at i x 20 ms, whatever the sends cost.
                await asyncio.sleep(max(0.0, started + (i + 1) * CHUNK_MS / 1000 - time.monotonic()))

        sender = asyncio.create_task(send())
        committed = 0
        while not (sender.done() and len(done) == committed):
            try:
                message = await asyncio.wait_for(ws.recv(), 1.0)
            except TimeoutError:
                continue
            event = json.loads(message)
            if event["type"] == "input_audio_buffer.committed":
                committed += 1
            elif event["type"] == "conversation.item.input_audio_transcription.completed":
                sori = event["sori"]
                speech_end_ms = sori["audio_end_ms"] - SILENCE_MS
                waited = time.monotonic() - (started + speech_end_ms / 1000)
                done.append((speech_end_ms, waited, sori["latency_sec"]))
                texts.append(event["transcript"])
            elif event["type"] == "error":
                raise RuntimeError(event["error"]["message"])
        await sender
    return done, " ".join(texts)


def percentile(values, p):
    values = sorted(values)
    return values[min(len(values) - 1, round(p / 100 * (len(values) - 1)))]


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default="tiny.en-q8_0")
    parser.add_argument("--passes", type=int, default=3)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="sori-live-"))
    downloads = ROOT / "models" / ".downloads"
    _, clip, reference = real_speech_clip(work, downloads)
    tail = work / "tail.wav"
    subprocess.run(["sox", "-n", "-r", str(RATE), "-c", "1", "-b", "16", str(tail), "trim", "0", "1"], check=True)
    one = pcm16(clip) + pcm16(tail)
    server = SoriHttp(str(ROOT / "target/release/sori"), args.model, os.cpu_count(), args.model)
    try:
        with urllib.request.urlopen(server.upload("/transcribe", [clip])) as answer:
            file_text = json.load(answer)["text"]
        url = f"ws://127.0.0.1:{server.port}/v1/realtime?intent=transcription"
        utterances, text = asyncio.run(stream(url, one * args.passes, args.model))
    finally:
        server.close()
    waits = [w for _, w, _ in utterances]
    server_side = [s for _, _, s in utterances]
    audio_sec = len(one) * args.passes / 2 / RATE
    print(f"model {args.model}, {audio_sec:.0f} s of real speech at real time, {len(utterances)} utterances")
    print("| from | p50 | p95 | max |")
    print("|---|---|---|---|")
    for label, values in (("end of speech to completed", waits), ("speech stopped to completed (server)", server_side)):
        print(f"| {label} | {statistics.median(values):.2f} s | {percentile(values, 95):.2f} s | {max(values):.2f} s |")
    live_wer = edit_rate(words(" ".join([reference] * args.passes)), words(text))
    file_wer = edit_rate(words(reference), words(file_text))
    print(f"WER live {live_wer:.3f}, as a file {file_wer:.3f}")


if __name__ == "__main__":
    main()
