"""Side-by-side speed and accuracy: Sori over HTTP against faster-whisper.

Same clips, same model weights (the CTranslate2 files `sori model fetch`
downloads), same thread count, greedy decoding; runs alternate between the
peers and repeat; the table shows medians. Run it with `make bench`.
"""
import argparse
import json
import re
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
AUDIO = ROOT.parent / "shared" / "audio"
JFK = "And so my fellow Americans, ask not what your country can do for you, ask what you can do for your country."
SENTENCE = "The quick brown fox jumps over the lazy dog, and then it runs back to the old farm house."
TWO_WORDS = "Hello world."


def words(text):
    return [w for w in re.sub(r"[^a-z0-9' ]", " ", text.lower()).split() if w]


def wer(reference, hypothesis):
    r, h = words(reference), words(hypothesis)
    prev = list(range(len(h) + 1))
    for i, x in enumerate(r):
        cur = [i + 1] + [0] * len(h)
        for j, y in enumerate(h):
            cur[j + 1] = min(prev[j] + (x != y), prev[j + 1] + 1, cur[j] + 1)
        prev = cur
    return prev[-1] / max(len(r), 1)


def sox(*args):
    subprocess.run(["sox", *map(str, args)], check=True)


def speak(text, out):
    raw = out.with_suffix(".espeak.wav")
    subprocess.run(["espeak-ng", "-v", "en-us", "-s", "150", "-w", str(raw), text], check=True)
    sox(raw, "-r", "16000", "-c", "1", "-b", "16", out)


def duration(path):
    return float(subprocess.run(["soxi", "-D", str(path)], capture_output=True, text=True, check=True).stdout)


def make_clips(folder, long_audio):
    """(name, path, reference text, seconds) for each benchmark clip."""
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
        five = folder / "5min.wav"
        sox(*([jfk] * 27), five)
        clips.append(("5 min (27 x jfk)", five, " ".join([JFK] * 27)))
    clips = [(name, path, reference, duration(path)) for name, path, reference in clips]
    for name, _, _, seconds in clips:
        print(f"clip {name}: {seconds:.1f} s", file=sys.stderr)
    return clips


def rss_mb(pid):
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class SoriHttp:
    """A `sori serve` process; each run is one POST /transcribe."""

    def __init__(self, binary, model, threads, label, workers=1):
        self.label = label
        self.port = free_port()
        self.data = tempfile.mkdtemp(prefix="sori-bench-")
        started = time.perf_counter()
        self.proc = subprocess.Popen(
            [binary, "serve", "--model", str(model), "--port", str(self.port), "--data-dir", self.data,
             "--threads-per-worker", str(threads), "--workers", str(workers)],
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

    def batch(self, paths):
        """POSTs all files as one batch; returns seconds until it is complete."""
        boundary = uuid.uuid4().hex
        body = b""
        for path in paths:
            body += (f"--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"{path.name}\"\r\n\r\n").encode()
            body += path.read_bytes() + b"\r\n"
        body += f"--{boundary}--\r\n".encode()
        request = urllib.request.Request(
            f"http://127.0.0.1:{self.port}/batch", data=body,
            headers={"Content-Type": f"multipart/form-data; boundary={boundary}"},
        )
        started = time.perf_counter()
        with urllib.request.urlopen(request) as r:
            batch_id = json.load(r)["batch_id"]
        while True:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/batch/{batch_id}") as r:
                if json.load(r)["status"] == "complete":
                    return time.perf_counter() - started
            time.sleep(0.05)

    def run(self, path):
        boundary = uuid.uuid4().hex
        body = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"{path.name}\"\r\n\r\n").encode()
        body += path.read_bytes() + f"\r\n--{boundary}--\r\n".encode()
        request = urllib.request.Request(
            f"http://127.0.0.1:{self.port}/transcribe", data=body,
            headers={"Content-Type": f"multipart/form-data; boundary={boundary}"},
        )
        started = time.perf_counter()
        with urllib.request.urlopen(request, timeout=3600) as r:
            answer = json.load(r)
        wall = time.perf_counter() - started
        return wall, answer["text"], answer["performance"]["ram_mb_peak"]

    def close(self):
        self.proc.terminate()
        self.proc.wait()
        shutil.rmtree(self.data, ignore_errors=True)


FW_WORKER = """
import json, resource, sys, time
from faster_whisper import WhisperModel
model = WhisperModel(sys.argv[1], device="cpu", compute_type=sys.argv[2], cpu_threads=int(sys.argv[3]))
print("ready", flush=True)
for line in sys.stdin:
    started = time.perf_counter()
    segments, _ = model.transcribe(line.strip(), beam_size=1, language="en", vad_filter=False)
    text = " ".join(s.text.strip() for s in segments)
    wall = time.perf_counter() - started
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps({"wall": wall, "text": text, "peak_mb": peak_mb}), flush=True)
"""


class FasterWhisper:
    """faster-whisper in its own process (its peak RSS is its own); one run per line."""

    def __init__(self, python, model_dir, compute_type, threads, label):
        self.label = label
        self.proc = subprocess.Popen(
            [python, "-c", FW_WORKER, str(model_dir), compute_type, str(threads)],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
        )
        assert self.proc.stdout.readline().strip() == "ready"

    def run(self, path):
        self.proc.stdin.write(f"{path}\n")
        self.proc.stdin.flush()
        answer = json.loads(self.proc.stdout.readline())
        return answer["wall"], answer["text"], answer["peak_mb"]

    def close(self):
        self.proc.stdin.close()
        self.proc.wait()


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--sori", default=str(ROOT / "target/release/sori"))
    parser.add_argument("--models", default=str(ROOT / "models"))
    parser.add_argument("--ct2", required=True, help="the tiny.en CTranslate2 folder (model.bin, tokenizer.json)")
    parser.add_argument("--python", required=True, help="a Python with faster-whisper")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--long", action="store_true", help="add a 5-minute clip")
    parser.add_argument("--json", default=str(ROOT / "bench" / "results.json"))
    args = parser.parse_args()

    folder = Path(tempfile.mkdtemp(prefix="sori-clips-"))
    clips = make_clips(folder, args.long)
    models = Path(args.models)
    peers = [
        SoriHttp(args.sori, models / "ggml-tiny.en.bin", args.threads, "Sori HTTP f16"),
        SoriHttp(args.sori, models / "ggml-tiny.en-q8_0.bin", args.threads, "Sori HTTP q8_0"),
        SoriHttp(args.sori, models / "ggml-tiny.en-q4_0.bin", args.threads, "Sori HTTP q4_0"),
        FasterWhisper(args.python, args.ct2, "int8", args.threads, "faster-whisper int8"),
        FasterWhisper(args.python, args.ct2, "float32", args.threads, "faster-whisper f32"),
    ]
    results = {}
    try:
        for peer in peers:  # one warm-up run each, not counted
            peer.run(clips[0][1])
        for run in range(args.runs):
            for name, path, _, _ in clips:
                order = peers if run % 2 == 0 else list(reversed(peers))
                for peer in order:
                    results.setdefault((name, peer.label), []).append(peer.run(path))
    finally:
        for peer in peers:
            peer.close()
        shutil.rmtree(folder, ignore_errors=True)

    rows = []
    print("| clip | peer | median wall s | RTF | peak RSS MiB | WER | vs faster-whisper int8 |")
    print("|---|---|---|---|---|---|---|")
    for name, _, reference, seconds in clips:
        base = statistics.median(r[0] for r in results[(name, "faster-whisper int8")])
        for peer in peers:
            runs = results[(name, peer.label)]
            wall = statistics.median(r[0] for r in runs)
            row = {
                "clip": name, "peer": peer.label, "median_wall_sec": round(wall, 3), "runs": [round(r[0], 3) for r in runs],
                "rtf": round(wall / seconds, 4), "peak_rss_mb": round(max(r[2] for r in runs)),
                "wer": round(wer(reference, runs[-1][1]), 3), "ratio_vs_fw_int8": round(wall / base, 2),
                "text": runs[-1][1],
            }
            rows.append(row)
            print(f"| {name} | {peer.label} | {row['median_wall_sec']} | {row['rtf']} | {row['peak_rss_mb']} | "
                  f"{row['wer']} | {row['ratio_vs_fw_int8']} |")

    print()
    print("| Sori model | start-up to ready s | idle RSS MiB |")
    print("|---|---|---|")
    startup = []
    for model in ("ggml-tiny.en.bin", "ggml-tiny.en-q8_0.bin", "ggml-base.bin"):
        server = SoriHttp(args.sori, models / model, args.threads, model)
        startup.append({"model": model, "startup_sec": round(server.startup_sec, 3), "idle_rss_mb": round(server.idle_rss_mb)})
        print(f"| {model} | {startup[-1]['startup_sec']} | {startup[-1]['idle_rss_mb']} |")
        server.close()

    print()
    print(f"| batch of 20 clips (tiny.en f16, {args.threads} cores) | wall s | audio s per wall s |")
    print("|---|---|---|")
    folder = Path(tempfile.mkdtemp(prefix="sori-batch-"))
    batch_clips = make_clips(folder, False)
    files = [c[1] for c in batch_clips] * 5
    audio_total = sum(c[3] for c in batch_clips) * 5
    throughput = []
    for workers in (1, 2):
        server = SoriHttp(args.sori, models / "ggml-tiny.en.bin", max(args.threads // workers, 1), "batch", workers)
        wall = server.batch(files)
        server.close()
        throughput.append({"workers": workers, "wall_sec": round(wall, 2), "audio_sec_per_sec": round(audio_total / wall, 1)})
        print(f"| {workers} worker(s) x {max(args.threads // workers, 1)} threads | {round(wall, 2)} | {round(audio_total / wall, 1)} |")
    shutil.rmtree(folder, ignore_errors=True)
    Path(args.json).write_text(json.dumps(
        {"threads": args.threads, "runs": args.runs, "rows": rows, "startup": startup, "batch": throughput}, indent=2))


if __name__ == "__main__":
    main()
