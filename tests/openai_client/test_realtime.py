"""Live transcription through the official openai client's realtime
connection (`openai[realtime]`) against a real `sori serve`: jfk.wav and
ko_test.wav streamed as PCM16 at real time and faster, server VAD against the
clip's real pauses, commits, bad events, API keys and the session limits.
Run by `make test-openai`."""

import asyncio
import base64
import difflib
import json
import re
import subprocess
import sys
import time
import unittest
import urllib.request
from pathlib import Path

import openai
import srt
import websockets

sys.path.insert(0, str(Path(__file__).resolve().parent))
from sori_server import AUDIO, MODEL_DIR, SoriServer  # noqa: E402

KEY = "sk-sori-live-key"
EIGHT = ["cpu_percent_avg", "cpu_percent_max", "ram_mb_avg", "ram_mb_peak",
         "gpu_vram_mb_current", "gpu_vram_mb_peak", "gpu_percent", "processing_time_sec"]
MAX_SESSIONS = 2
IDLE_SEC = 3


def pcm16(name, rate, trailing_silence_sec=1.5):
    """The clip as 16-bit mono PCM at `rate` (sox), with silence after it so that server VAD ends the last utterance."""
    raw = subprocess.run(
        ["sox", str(AUDIO / name), "-t", "raw", "-r", str(rate), "-c", "1", "-e", "signed", "-b", "16", "-"],
        check=True, capture_output=True).stdout
    return raw + b"\0\0" * int(rate * trailing_silence_sec)


def words(text):
    return re.sub(r"[^\w\s']", " ", text.lower()).split()


def vad(**overrides):
    return {"type": "server_vad", "threshold": 0.5, "prefix_padding_ms": 300, "silence_duration_ms": 500, **overrides}


class Realtime(unittest.IsolatedAsyncioTestCase):
    @classmethod
    def setUpClass(cls):
        cls.server = SoriServer(
            "--model", MODEL_DIR / "ggml-tiny.en-q8_0.bin", "--model", MODEL_DIR / "ggml-base-q8_0.bin",
            "--vad-model", MODEL_DIR / "silero_vad_16k.onnx", "--api-key", KEY,
            "--max-live-sessions", MAX_SESSIONS, "--live-idle-timeout-sec", IDLE_SEC)
        cls.base = cls.server.base
        cls.ws_url = f"ws://127.0.0.1:{cls.server.port}/v1/realtime?intent=transcription"

    @classmethod
    def tearDownClass(cls):
        cls.server.stop()

    async def asyncSetUp(self):
        # unittest runs the loop in debug mode, which reports every slow callback; these are expected here.
        asyncio.get_running_loop().set_debug(False)

    def client(self, key=KEY):
        return openai.AsyncOpenAI(base_url=f"{self.base}/v1", api_key=key, max_retries=0)

    def file_transcript(self, name, model, language=None):
        sync = openai.OpenAI(base_url=f"{self.base}/v1", api_key=KEY, max_retries=0)
        with open(AUDIO / name, "rb") as f:
            extra = {"language": language} if language else {}
            return sync.audio.transcriptions.create(model=model, file=f, **extra).text

    async def stream(self, name, *, rate=24000, chunk_ms=20, real_time=True, model="tiny.en-q8_0",
                     language=None, turn_detection=None, save=None):
        """Streams a clip through a session; returns every server event, in order.
        With `save` (a sori.session.save event), sends it once every utterance
        has its text and reads on until its answer."""
        pcm = pcm16(name, rate)
        chunk = rate * 2 * chunk_ms // 1000
        events = []
        async with self.client().realtime.connect(extra_query={"intent": "transcription"}) as conn:
            transcription = {"model": model, **({"language": language} if language else {})}
            await conn.session.update(session={"type": "transcription", "audio": {"input": {
                "format": {"type": "audio/pcm", "rate": rate}, "transcription": transcription,
                "turn_detection": turn_detection or vad()}}})

            async def send():
                for start in range(0, len(pcm), chunk):
                    await conn.input_audio_buffer.append(audio=base64.b64encode(pcm[start:start + chunk]).decode())
                    if real_time:
                        await asyncio.sleep(chunk_ms / 1000)

            sender = asyncio.create_task(send())
            async with asyncio.timeout(120):
                async for event in conn:
                    events.append(event)
                    committed = sum(e.type == "input_audio_buffer.committed" for e in events)
                    done = sum(e.type.startswith("conversation.item.input_audio_transcription.") and
                               e.type.rsplit(".", 1)[1] in ("completed", "failed") for e in events)
                    if sender.done() and committed and done == committed and \
                            not any(e.type == "input_audio_buffer.speech_started" for e in events[-1:]):
                        in_speech = sum(e.type == "input_audio_buffer.speech_started" for e in events) > \
                            sum(e.type == "input_audio_buffer.speech_stopped" for e in events)
                        if not in_speech:
                            break
            await sender
            if save is not None:
                await conn.send(save)
                async with asyncio.timeout(30):
                    async for event in conn:
                        events.append(event)
                        if event.type in ("sori.session.saved", "error"):
                            break
        return events

    def of(self, events, kind):
        return [e for e in events if e.type == kind]

    async def test_jfk_at_real_time_follows_its_pauses_and_matches_the_file(self):
        events = await self.stream("jfk.wav")
        self.assertEqual([e.type for e in events[:2]], ["session.created", "session.updated"])
        self.assertEqual(events[1].session.audio.input.format.rate, 24000)
        started = self.of(events, "input_audio_buffer.speech_started")
        stopped = self.of(events, "input_audio_buffer.speech_stopped")
        committed = self.of(events, "input_audio_buffer.committed")
        completed = self.of(events, "conversation.item.input_audio_transcription.completed")
        self.assertGreaterEqual(len(started), 2)
        self.assertEqual(len(started), len(stopped))
        self.assertEqual([e.item_id for e in started], [e.item_id for e in stopped])
        self.assertEqual([e.item_id for e in committed], [e.item_id for e in completed])
        self.assertEqual([e.previous_item_id for e in committed[1:]], [e.item_id for e in committed[:-1]])

        # Speech starts where a word starts after a pause (jfk.words.json, timed from the
        # waveform), 300 ms of padding before it; it stops 500 ms into the pause that follows.
        onsets = [w["start"] * 1000 for w in json.loads((AUDIO / "jfk.words.json").read_text())["onsets"]]
        for event in started:
            speech = event.audio_start_ms + 300 if event.audio_start_ms > 0 else min(onsets)
            self.assertTrue(any(abs(speech - onset) <= 250 for onset in onsets),
                            f"speech started at {speech} ms, at no word onset {onsets}")
        for begin, end in zip(started, stopped):
            self.assertLess(begin.audio_start_ms, end.audio_end_ms)
            silence = (end.audio_end_ms - 500 + 100, end.audio_end_ms - 100)
            self.assertFalse(any(silence[0] < onset < silence[1] for onset in onsets),
                             f"a word starts in the silence {silence} that ended an utterance")

        live = " ".join(e.transcript for e in completed)
        reference = self.file_transcript("jfk.wav", "tiny.en-q8_0")
        similarity = difflib.SequenceMatcher(None, words(live), words(reference)).ratio()
        self.assertGreaterEqual(similarity, 0.9, f"live: {live!r}\nfile: {reference!r}")

        for event in completed:
            sori = event.model_extra["sori"]
            self.assertEqual(event.usage.type, "duration")
            self.assertAlmostEqual(event.usage.seconds, (sori["audio_end_ms"] - sori["audio_start_ms"]) / 1000, delta=0.05)
            for key in EIGHT:
                self.assertIn(key, sori["performance"])
            self.assertGreater(sori["performance"]["processing_time_sec"], 0)
            self.assertGreater(sori["latency_sec"], 0)
        totals = completed[-1].model_extra["sori"]["session"]
        self.assertEqual(totals["utterances"], len(completed))
        self.assertAlmostEqual(totals["audio_sec"], sum(e.usage.seconds for e in completed), delta=0.01)
        self.assertAlmostEqual(totals["processing_time_sec"],
                               sum(e.model_extra["sori"]["performance"]["processing_time_sec"] for e in completed),
                               delta=0.01)

        deltas = self.of(events, "conversation.item.input_audio_transcription.delta")
        for event in completed:
            text = "".join(d.delta for d in deltas if d.item_id == event.item_id)
            self.assertEqual(text.strip(), event.transcript.strip())

        metrics = urllib.request.urlopen(f"{self.base}/metrics").read().decode()
        self.assertRegex(metrics, r'sori_live_utterances_total\{model="tiny.en-q8_0",outcome="completed"\} [1-9]')
        self.assertRegex(metrics, r"sori_live_sessions_total [1-9]")
        self.assertRegex(metrics, r'sori_live_utterance_latency_seconds_count\{model="tiny.en-q8_0"\} [1-9]')
        self.assertRegex(metrics, r"sori_live_audio_seconds_total (1[2-9]|[2-9]\d|\d{3,})")

    async def test_faster_than_real_time_in_bigger_chunks_cuts_the_same_utterances(self):
        slow = await self.stream("jfk.wav", chunk_ms=20, real_time=False)
        fast = await self.stream("jfk.wav", chunk_ms=100, real_time=False)
        cuts = lambda events: [(e.type, getattr(e, "audio_start_ms", None), getattr(e, "audio_end_ms", None))
                               for e in events if e.type.startswith("input_audio_buffer.speech_")]
        self.assertEqual(cuts(slow), cuts(fast))
        self.assertEqual([e.transcript for e in self.of(slow, "conversation.item.input_audio_transcription.completed")],
                         [e.transcript for e in self.of(fast, "conversation.item.input_audio_transcription.completed")])

    async def test_a_saved_session_is_one_transcription_in_the_history(self):
        events = await self.stream("jfk.wav", chunk_ms=100, real_time=False,
                                   save={"type": "sori.session.save", "name": "JFK, live"})
        completed = self.of(events, "conversation.item.input_audio_transcription.completed")
        self.assertGreaterEqual(len(completed), 2)
        [saved] = self.of(events, "sori.session.saved")
        record = saved.model_extra["record"]
        file_id = saved.model_extra["file_id"]
        self.assertEqual((record["file_id"], record["filename"]), (file_id, "JFK, live"))
        self.assertEqual(record["live"]["utterances"], len(completed))
        self.assertIn("sums", record["live"]["figures"])
        self.assertAlmostEqual(record["live"]["speech_sec"], sum(e.usage.seconds for e in completed), delta=0.01)
        self.assertAlmostEqual(record["audio_duration_sec"],
                               completed[-1].model_extra["sori"]["audio_end_ms"] / 1000, delta=0.05)

        # The figures combine the utterances' as the record says: sums, time-weighted means, maxima.
        each = [e.model_extra["sori"]["performance"] for e in completed]
        figures = record["performance"]
        time = sum(p["processing_time_sec"] for p in each)
        self.assertAlmostEqual(figures["processing_time_sec"], time, delta=0.001)
        self.assertAlmostEqual(figures["cpu_time_sec"], sum(p["cpu_time_sec"] for p in each), delta=0.001)
        self.assertAlmostEqual(figures["cpu_percent_avg"],
                               sum(p["cpu_percent_avg"] * p["processing_time_sec"] for p in each) / time, delta=0.02)
        for peak in ("cpu_percent_max", "ram_mb_peak", "gpu_vram_mb_peak"):
            self.assertEqual(figures[peak], max(p[peak] for p in each), peak)
        self.assertAlmostEqual(figures["real_time_factor"], time / record["audio_duration_sec"], delta=0.001)

        # It is a transcription like any other: listed, its text one line an utterance, subtitles on the session's clock.
        read = lambda path: urllib.request.urlopen(urllib.request.Request(
            f"{self.base}{path}", headers={"Authorization": f"Bearer {KEY}"})).read().decode()
        listed = json.loads(read("/files?name=JFK%2C%20live"))["files"]
        self.assertEqual([f["file_id"] for f in listed], [file_id])
        self.assertEqual(read(f"/files/{file_id}/text").splitlines(), [e.transcript.strip() for e in completed])
        starts = [cue.start.total_seconds() for cue in srt.parse(read(f"/files/{file_id}/srt"))]
        self.assertGreaterEqual(len(starts), len(completed))
        self.assertEqual(starts, sorted(starts))
        last_start = completed[-1].model_extra["sori"]["audio_start_ms"] / 1000
        self.assertGreaterEqual(starts[-1], last_start - 0.05, "the last cue is timed in the session, not the utterance")
        self.assertIn("WEBVTT", read(f"/files/{file_id}/vtt"))

    async def test_saving_nothing_or_with_a_bad_name_is_refused_and_the_session_goes_on(self):
        async with self.client().realtime.connect(extra_query={"intent": "transcription"}) as conn:
            await conn.send({"type": "sori.session.save", "event_id": "save-1"})
            await conn.send({"type": "sori.session.save", "name": "x" * 201})
            await conn.send({"type": "sori.session.save", "name": 7})
            await conn.session.update(session={"type": "transcription", "audio": {"input": {"turn_detection": None}}})
            # A save is answered from the session's work queue, behind any
            # transcription still running, so its error may come after the
            # answers the event handler gives at once (names, session.updated).
            events = []
            async with asyncio.timeout(30):
                async for event in conn:
                    events.append(event)
                    if self.of(events, "session.updated") and len(self.of(events, "error")) >= 3:
                        break
        errors = [e.error for e in self.of(events, "error")]
        self.assertEqual(sorted((e.code, e.param or "") for e in errors),
                         [("invalid_value", "name"), ("invalid_value", "name"), ("session_not_saved", "")])
        not_saved = next(e for e in errors if e.code == "session_not_saved")
        self.assertEqual(not_saved.event_id, "save-1")
        self.assertIn("nothing to save", not_saved.message)
        names = [e for e in errors if e.code == "invalid_value"]
        self.assertIn("200", names[0].message)

    async def test_korean_at_16_khz_with_a_multilingual_model(self):
        events = await self.stream("ko_test.wav", rate=16000, chunk_ms=100, real_time=False,
                                   model="base-q8_0", language="ko")
        self.assertEqual(events[1].session.audio.input.format.rate, 16000)
        completed = self.of(events, "conversation.item.input_audio_transcription.completed")
        self.assertGreaterEqual(len(completed), 1)
        live = "".join(e.transcript for e in completed).replace(" ", "")
        reference = self.file_transcript("ko_test.wav", "base-q8_0", "ko").replace(" ", "")
        self.assertGreaterEqual(difflib.SequenceMatcher(None, live, reference).ratio(), 0.8, f"{live} / {reference}")
        self.assertEqual(completed[0].model_extra["sori"]["language"], "ko")

    async def test_commits_without_turn_detection_and_bad_events_leave_the_session_usable(self):
        async with self.client().realtime.connect(extra_query={"intent": "transcription"}) as conn:
            await conn.session.update(session={"type": "transcription", "audio": {"input": {"turn_detection": None}}})
            await conn.send({"type": "input_audio_buffer.append", "audio": "not base64!", "event_id": "bad-1"})
            await conn.send({"type": "input_audio_buffer.append", "audio": base64.b64encode(b"\0\0\0").decode()})
            await conn.send({"type": "response.create"})
            await conn.input_audio_buffer.commit()
            await conn.session.update(session={"type": "transcription", "audio": {"input": {"format": {"type": "audio/pcm", "rate": 44100}}}})
            await conn.session.update(session={"type": "transcription", "audio": {"input": {"turn_detection": {"type": "semantic_vad"}}}})
            await conn.session.update(session={"type": "transcription", "audio": {"input": {"transcription": {"model": "no-such-model"}}}})
            await conn.send({"type": "input_audio_buffer.append", "audio": base64.b64encode(pcm16("jfk.wav", 24000, 0)).decode()})
            await conn.input_audio_buffer.commit()
            events = []
            async with asyncio.timeout(60):
                async for event in conn:
                    events.append(event)
                    if event.type.startswith("conversation.item.input_audio_transcription.") and \
                            event.type.endswith(("completed", "failed")):
                        break
        errors = [e.error for e in self.of(events, "error")]
        self.assertEqual([(e.code, e.param) for e in errors], [
            ("invalid_value", "audio"),
            ("invalid_value", "audio"),
            ("unsupported_event", "type"),
            ("input_audio_buffer_commit_empty", None),
            ("invalid_value", "session.audio.input.format.rate"),
            ("invalid_value", "session.audio.input.turn_detection"),
            ("model_not_found", "session.audio.input.transcription.model"),
        ])
        self.assertEqual(errors[0].event_id, "bad-1")
        self.assertTrue(all(e.type == "invalid_request_error" for e in errors))
        self.assertIn("44100", errors[4].message)
        updated = self.of(events, "session.updated")
        self.assertEqual(len(updated), 1, "a refused update changes nothing and says so only by its error")
        self.assertIsNone(updated[0].session.audio.input.turn_detection)
        self.assertEqual(self.of(events, "input_audio_buffer.speech_started"), [])
        completed = self.of(events, "conversation.item.input_audio_transcription.completed")
        self.assertEqual(len(completed), 1)
        self.assertIn("ask not what your country can do for you", completed[0].transcript.lower())
        self.assertAlmostEqual(completed[0].usage.seconds, 11.0, delta=0.1)

    async def test_keys_are_checked_in_the_header_and_in_the_browser_subprotocol(self):
        with self.assertRaises(Exception) as refused:
            async with self.client("sk-wrong").realtime.connect(extra_query={"intent": "transcription"}) as conn:
                await conn.recv()
        self.assertIn("401", str(refused.exception))
        async with websockets.connect(self.ws_url, subprotocols=["realtime", f"openai-insecure-api-key.{KEY}"]) as ws:
            self.assertEqual(ws.subprotocol, "realtime")
            created = json.loads(await ws.recv())
            self.assertEqual(created["type"], "session.created")
            self.assertEqual(created["session"]["audio"]["input"]["turn_detection"]["type"], "server_vad")
        with self.assertRaises(websockets.InvalidStatus) as wrong:
            async with websockets.connect(self.ws_url, subprotocols=["realtime", "openai-insecure-api-key.nope"]):
                pass
        self.assertEqual(wrong.exception.response.status_code, 401)
        with self.assertRaises(websockets.InvalidStatus) as other_site:
            async with websockets.connect(self.ws_url, origin="https://evil.example",
                                          additional_headers={"Authorization": f"Bearer {KEY}"}):
                pass
        self.assertEqual(other_site.exception.response.status_code, 403)

    async def test_sessions_are_limited_and_an_idle_one_is_closed(self):
        auth = {"Authorization": f"Bearer {KEY}"}
        # The client library's own pings (every half second here) do not keep an idle session open.
        held = [await websockets.connect(self.ws_url, additional_headers=auth, ping_interval=0.5)
                for _ in range(MAX_SESSIONS)]
        try:
            with self.assertRaises(websockets.InvalidStatus) as full:
                async with websockets.connect(self.ws_url, additional_headers=auth):
                    pass
            self.assertEqual(full.exception.response.status_code, 503)
            self.assertIn(b"live sessions", full.exception.response.body)
            started = time.monotonic()
            with self.assertRaises(websockets.ConnectionClosedOK):
                while True:
                    await asyncio.wait_for(held[0].recv(), IDLE_SEC + 5)
            self.assertGreaterEqual(time.monotonic() - started, IDLE_SEC - 0.5)
            self.assertEqual(held[0].close_code, 1000)
        finally:
            for ws in held:
                await ws.close()
        await asyncio.sleep(0.5)
        async with websockets.connect(self.ws_url, additional_headers=auth) as ws:
            self.assertEqual(json.loads(await ws.recv())["type"], "session.created")
        with self.assertRaises(websockets.InvalidStatus) as no_intent:
            async with websockets.connect(self.ws_url.split("?")[0], additional_headers=auth):
                pass
        self.assertEqual(no_intent.exception.response.status_code, 400)


if __name__ == "__main__":
    unittest.main()
