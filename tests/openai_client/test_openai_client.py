"""The official openai Python client against a real `sori serve` (base model,
an API key set): every response format, words, streaming, translation,
models, the error classes, and silence. Subtitles are read by the `srt` and
`webvtt-py` parsers. Run by `make test-openai`."""

import io
import re
import sys
import unittest
import urllib.request
import wave
from pathlib import Path

import openai
import srt
import webvtt

sys.path.insert(0, str(Path(__file__).resolve().parent))
from sori_server import AUDIO, MODEL_DIR, SoriServer  # noqa: E402

KEY = "sk-sori-test-key"
EIGHT = ["cpu_percent_avg", "cpu_percent_max", "ram_mb_avg", "ram_mb_peak",
         "gpu_vram_mb_current", "gpu_vram_mb_peak", "gpu_percent", "processing_time_sec"]


def silent_wav(seconds):
    buffer = io.BytesIO()
    with wave.open(buffer, "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(16000)
        w.writeframes(b"\0\0" * int(16000 * seconds))
    return buffer.getvalue()


def with_silences(name, seconds):
    """The clip between and after silences of `seconds`, twice: silence, clip, silence, clip, silence."""
    with wave.open(str(AUDIO / name)) as w:
        rate, frames = w.getframerate(), w.readframes(w.getnframes())
    quiet = b"\0\0" * int(rate * seconds)
    buffer = io.BytesIO()
    with wave.open(buffer, "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(quiet + frames + quiet + frames + quiet)
    return buffer.getvalue()


class OpenAiClient(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        model = MODEL_DIR / "ggml-base-q8_0.bin"
        second = MODEL_DIR / "ggml-tiny.en-q8_0.bin"
        cls.server = SoriServer("--model", model, "--model", second, "--api-key", KEY,
                                "--vad-model", MODEL_DIR / "silero_vad_16k.onnx")
        cls.base = cls.server.base
        cls.client = openai.OpenAI(base_url=f"{cls.base}/v1", api_key=KEY, max_retries=0)
        cls.served = model.stem.removeprefix("ggml-")
        cls.second = second.stem.removeprefix("ggml-")

    @classmethod
    def tearDownClass(cls):
        cls.server.stop()

    def transcribe(self, name="jfk.wav", **kwargs):
        with open(AUDIO / name, "rb") as f:
            return self.client.audio.transcriptions.create(model="whisper-1", file=f, **kwargs)

    def test_json_has_text_usage_and_sori_figures(self):
        result = self.transcribe(language="en")
        self.assertIn("ask not what your country can do for you", result.text.lower())
        self.assertEqual(result.usage.type, "duration")
        self.assertAlmostEqual(result.usage.seconds, 11.0, delta=0.1)
        extra = result.model_extra
        for key in EIGHT:
            self.assertIn(key, extra["performance"])
        self.assertGreater(extra["performance"]["processing_time_sec"], 0)
        self.assertRegex(extra["file_id"], r"^[0-9a-f-]{36}$")
        self.assertRegex(extra["trace_id"], r"^[0-9a-f]{32}$")

    def test_text_is_the_bare_transcript(self):
        text = self.transcribe(response_format="text")
        self.assertIsInstance(text, str)
        self.assertIn("your country", text.lower())
        self.assertNotIn("{", text)

    def test_text_formats_carry_the_figures_as_headers(self):
        with open(AUDIO / "jfk.wav", "rb") as f:
            raw = self.client.audio.transcriptions.with_raw_response.create(
                model="whisper-1", file=f, response_format="srt")
        self.assertEqual(raw.headers["content-type"], "application/x-subrip")
        self.assertGreater(float(raw.headers["x-sori-processing-time"]), 0)
        self.assertRegex(raw.headers["traceparent"], r"^00-[0-9a-f]{32}-[0-9a-f]{16}-0[01]$")
        self.assertRegex(raw.headers["x-sori-file-id"], r"^[0-9a-f-]{36}$")

    def test_srt_parses_with_a_real_parser(self):
        body = self.transcribe(response_format="srt")
        cues = list(srt.parse(body))
        self.assertGreaterEqual(len(cues), 1)
        self.assertEqual([c.index for c in cues], list(range(1, len(cues) + 1)))
        joined = " ".join(c.content.replace("\n", " ") for c in cues).lower()
        self.assertIn("ask not what your country", joined)
        for cue in cues:
            self.assertLess(cue.start, cue.end)
            self.assertLessEqual((cue.end - cue.start).total_seconds(), 7.0)
            self.assertTrue(all(len(line) <= 50 for line in cue.content.split("\n")), cue.content)
        self.assertTrue(all(a.end <= b.start for a, b in zip(cues, cues[1:])))

    def test_vtt_parses_with_a_real_parser(self):
        body = self.transcribe(response_format="vtt")
        captions = webvtt.from_buffer(io.StringIO(body)).captions
        self.assertGreaterEqual(len(captions), 1)
        self.assertRegex(captions[0].start, r"^\d\d:\d\d:\d\d\.\d{3}$")
        self.assertIn("your country", " ".join(c.text for c in captions).lower())

    def test_verbose_json_has_real_segment_figures_and_words(self):
        result = self.transcribe(response_format="verbose_json", timestamp_granularities=["word", "segment"])
        self.assertEqual(result.language, "english")
        self.assertEqual(result.model_extra["task"], "transcribe")
        self.assertAlmostEqual(result.duration, 11.0, delta=0.1)
        self.assertGreaterEqual(len(result.segments), 1)
        for i, segment in enumerate(result.segments):
            self.assertEqual(segment.id, i)
            self.assertLess(segment.start, segment.end)
            self.assertTrue(segment.tokens and all(isinstance(t, int) for t in segment.tokens))
            self.assertLess(segment.avg_logprob, 0)
            self.assertGreater(segment.compression_ratio, 0.5)
            self.assertTrue(0 <= segment.no_speech_prob <= 1)
            self.assertEqual(segment.temperature, 0.0)
        words = result.words
        self.assertGreaterEqual(len(words), 20)
        spoken = [re.sub(r"[^a-z]", "", w.word.lower()) for w in words]
        self.assertEqual(spoken[:4], ["and", "so", "my", "fellow"])
        self.assertTrue(all(not w.word.startswith(" ") for w in words))
        starts = [w.start for w in words]
        self.assertEqual(starts, sorted(starts))
        self.assertTrue(all(w.start <= w.end <= result.duration for w in words))
        first, last = result.segments[0], result.segments[-1]
        self.assertTrue(first.start <= words[0].start and words[-1].end <= last.end)

    def test_a_fixed_temperature_is_the_one_reported(self):
        result = self.transcribe(response_format="verbose_json", temperature=0.5, language="en")
        self.assertTrue(result.segments)
        self.assertTrue(all(s.temperature == 0.5 for s in result.segments), result.segments)
        with self.assertRaises(openai.BadRequestError) as caught:
            self.transcribe(temperature=1.5)
        self.assertEqual(caught.exception.body["param"], "temperature")

    def test_words_alone_leave_out_segments(self):
        result = self.transcribe(response_format="verbose_json", timestamp_granularities=["word"])
        self.assertTrue(result.words)
        self.assertIsNone(result.segments)

    def test_streaming_sends_deltas_then_the_whole_text(self):
        events = list(self.transcribe(stream=True))
        deltas = [e for e in events if e.type == "transcript.text.delta"]
        done = [e for e in events if e.type == "transcript.text.done"]
        self.assertGreaterEqual(len(deltas), 1)
        self.assertEqual(len(done), 1)
        self.assertIs(events[-1], done[0])
        self.assertEqual("".join(d.delta for d in deltas), done[0].text)
        self.assertIn("your country", done[0].text.lower())
        self.assertIn("processing_time_sec", done[0].model_extra["performance"])

    def test_translation_turns_korean_into_english(self):
        with open(AUDIO / "ko_test.wav", "rb") as f:
            result = self.client.audio.translations.create(model="whisper-1", file=f)
        self.assertRegex(result.text, r"[A-Za-z]{2,}")
        self.assertIsNone(re.search(r"[\uac00-\ud7a3]", result.text), result.text)

    def test_models_lists_the_offered_models_and_the_alias_and_each_is_chosen_by_name(self):
        ids = [m.id for m in self.client.models.list()]
        self.assertEqual(ids, [self.served, self.second, "whisper-1"])
        self.assertEqual(self.client.models.retrieve("whisper-1").owned_by, "sori")
        self.assertEqual(self.client.models.retrieve(self.second).id, self.second)
        with open(AUDIO / "jfk.wav", "rb") as f:
            result = self.client.audio.transcriptions.create(
                model=self.second, file=f, response_format="verbose_json")
        self.assertEqual(result.model_extra["model"], self.second)
        self.assertIn("country", result.text.lower())

    def test_an_unknown_model_is_not_found(self):
        with self.assertRaises(openai.NotFoundError) as caught:
            with open(AUDIO / "jfk.wav", "rb") as f:
                self.client.audio.transcriptions.create(model="gpt-99-transcribe", file=f)
        self.assertIn("not served here", caught.exception.message)
        self.assertEqual(caught.exception.code, "model_not_found")

    def test_a_file_that_is_not_audio_is_a_bad_request(self):
        with self.assertRaises(openai.BadRequestError) as caught:
            self.client.audio.transcriptions.create(
                model="whisper-1", file=("notes.wav", b"just some text, not audio\n" * 20))
        self.assertIn("not audio", caught.exception.message)
        self.assertEqual(caught.exception.body["param"], "file")

    def test_a_wrong_key_is_refused(self):
        wrong = openai.OpenAI(base_url=f"{self.base}/v1", api_key="sk-wrong", max_retries=0)
        with self.assertRaises(openai.AuthenticationError) as caught:
            wrong.models.list()
        self.assertIn("not valid", caught.exception.message)
        with self.assertRaises(openai.AuthenticationError):
            with open(AUDIO / "jfk.wav", "rb") as f:
                wrong.audio.transcriptions.create(model="whisper-1", file=f)
        # Probes and the scrape target stay open.
        for path in ["/healthz", "/readyz", "/metrics"]:
            self.assertEqual(urllib.request.urlopen(f"{self.base}{path}").status, 200)
        with self.assertRaises(urllib.error.HTTPError) as refused:
            urllib.request.urlopen(f"{self.base}/batches")
        self.assertEqual(refused.exception.code, 401)

    def test_silence_is_empty_in_every_format(self):
        audio = silent_wav(2.0)
        ask = lambda **kw: self.client.audio.transcriptions.create(
            model="whisper-1", file=("silence.wav", audio), **kw)
        self.assertEqual(ask().text, "")
        self.assertEqual(ask(response_format="text").strip(), "")
        self.assertEqual(list(srt.parse(ask(response_format="srt"))), [])
        self.assertEqual(webvtt.from_buffer(io.StringIO(ask(response_format="vtt"))).captions, [])
        verbose = ask(response_format="verbose_json", timestamp_granularities=["word", "segment"])
        self.assertEqual((verbose.text, verbose.segments, verbose.words), ("", [], []))


    def test_vad_filter_skips_long_silences_and_keeps_the_original_times(self):
        audio = with_silences("jfk.wav", 5)
        plain, filtered = (self.client.audio.transcriptions.create(
            model="tiny.en-q8_0", file=("gaps.wav", audio), response_format="verbose_json", language="en",
            extra_body={"vad_filter": on}) for on in ("false", "true"))
        # The speech starts 5.29 s in: the filter keeps 0.4 s before it, and times are the original's.
        self.assertTrue(4.6 <= filtered.segments[0].start <= 5.3, filtered.segments[0].start)
        self.assertEqual(filtered.text.lower().count("your country"), 4, filtered.text)
        self.assertAlmostEqual(filtered.duration, plain.duration, delta=0.01)
        self.assertLessEqual(filtered.segments[-1].end, 32.5, "the last words end in the second clip, not in the silence after it")
        for segment in filtered.segments:
            self.assertLessEqual(segment.start, segment.end)
        with self.assertRaises(openai.BadRequestError) as bad:
            self.client.audio.transcriptions.create(model="whisper-1", file=("gaps.wav", audio),
                                                    extra_body={"vad_filter": "maybe"})
        self.assertIn("vad_filter", str(bad.exception))


if __name__ == "__main__":
    unittest.main(verbosity=2)
