"""Peak memory of one transcription by the length of its audio: a real
`sori serve` (tiny.en, one worker, two threads) transcribes 1 minute, 10
minutes, 1 hour and 3 hours of speech (JFK and silence, as FLAC), one file at
a time on a fresh server each, and the table shows the response's
`ram_mb_peak` beside the kernel's high-water mark (VmHWM) of the worker process
that ran it.

Run: python3 scripts/memory_by_length.py [--lengths 60,600,3600,10800]
"""
import argparse
import json
import re
import subprocess
import tempfile
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
JFK = ROOT / "tests" / "fixtures" / "audio" / "jfk.wav"


def make_clip(seconds, out):
    """JFK (11 s) and 4 s of silence, repeated to `seconds`, as 16 kHz FLAC."""
    repeats = int(seconds // 15) + 1
    subprocess.run(["sox", str(JFK), str(out), "pad", "0", "4", "repeat", str(repeats - 1),
                    "trim", "0", str(seconds)], check=True)


def vm(pid, key):
    status = Path(f"/proc/{pid}/status").read_text()
    return int(re.search(rf"{key}:\s+(\d+)", status).group(1)) / 1024


def post(port, path):
    boundary = "sori-memory-bench"
    body = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"{path.name}\"\r\n\r\n").encode()
    body += path.read_bytes() + f"\r\n--{boundary}--\r\n".encode()
    request = urllib.request.Request(f"http://127.0.0.1:{port}/transcribe", data=body,
                                     headers={"Content-Type": f"multipart/form-data; boundary={boundary}"})
    with urllib.request.urlopen(request, timeout=3600) as response:
        return json.load(response)


def measure(sori, model, clip):
    with tempfile.TemporaryDirectory() as data:
        log = open(Path(data) / "log", "w+")
        server = subprocess.Popen([sori, "serve", "--model", model, "--port", "0", "--data-dir", data,
                                   "--threads-per-worker", "2", "--max-upload-mb", "1024"],
                                  stdout=subprocess.DEVNULL, stderr=log)
        try:
            port = None
            while port is None:
                time.sleep(0.1)
                match = re.search(r"listening on http://127.0.0.1:(\d+)", Path(log.name).read_text())
                port = match and int(match.group(1))
            while True:
                try:
                    with urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=5) as ready:
                        worker = json.load(ready)["worker_pids"][0]
                    break
                except OSError:
                    time.sleep(0.1)
            # The job runs in the worker process: its memory is the job's.
            idle = vm(worker, "VmRSS")
            answer = post(port, clip)
            return {"idle_mib": idle, "hwm_mib": vm(worker, "VmHWM"),
                    "ram_mb_peak": answer["performance"]["ram_mb_peak"],
                    "processing_sec": answer["performance"]["processing_time_sec"],
                    "audio_sec": answer["audio_duration_sec"], "words": answer["word_count"]}
        finally:
            server.terminate()
            server.wait()


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--sori", default=str(ROOT / "target/release/sori"))
    parser.add_argument("--model", default=str(ROOT / "models/ggml-tiny.en-q8_0.bin"))
    parser.add_argument("--lengths", default="60,600,3600,10800")
    args = parser.parse_args()
    print("| audio | FLAC upload | idle RSS | ram_mb_peak | VmHWM | processing | words |")
    print("|---|---|---|---|---|---|---|")
    with tempfile.TemporaryDirectory() as tmp:
        for seconds in [int(s) for s in args.lengths.split(",")]:
            clip = Path(tmp) / f"speech-{seconds}s.flac"
            make_clip(seconds, clip)
            r = measure(args.sori, args.model, clip)
            size = clip.stat().st_size / 2**20
            print(f"| {r['audio_sec'] / 60:.0f} min | {size:.1f} MiB | {r['idle_mib']:.0f} MiB | {r['ram_mb_peak']:.0f} MiB "
                  f"| {r['hwm_mib']:.0f} MiB | {r['processing_sec']:.1f} s | {r['words']} |", flush=True)
            clip.unlink()


if __name__ == "__main__":
    main()
