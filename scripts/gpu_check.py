"""Sori's GPU figures against nvidia-smi, run once on a machine with an NVIDIA GPU.

Starts `sori serve` (a CUDA build) on the GPU and transcribes jfk.wav (twice:
cold, then warm) and clips made by repeating it (60 s, 600 s) while nvidia-smi
is read every 100 ms, with the default threads and then with one; then serves
the same clips with the GPU hidden (CUDA_VISIBLE_DEVICES=) for the CPU's
times. Checks, per GPU request:

- Sori's `gpu_vram_mb_peak` within 5 % of the largest nvidia-smi reading
  (`--query-compute-apps`) for the worker process during the request;
- Sori's `gpu_percent` within 10 points of nvidia-smi's mean `utilization.gpu`
  over the request (requests with fewer than 3 readings are not judged);
- the transcript equal to the CPU build's (`--expected`, made by
  `make cuda-bundle` with the CPU build), and reports the real-time factor on
  GPU and CPU. Writes report.json and report.md into --out; exits 1 when a
  check fails, 2 when the run could not be made.

`--expected-only` runs only the CPU part and writes the transcripts to
`--expected` (how the bundle gets them). Standard library only: it runs where
nothing can be installed.
"""

import argparse
import json
import os
import re
import signal
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
import uuid
import wave
from pathlib import Path

CLIPS = [("jfk-cold", 0), ("jfk", 0), ("jfk-60s", 60), ("jfk-600s", 600)]
# Sori's default (a long clip's pieces in one lane per thread, each lane a
# whisper.cpp state of its own on the GPU), then one lane, which also shows
# whether the lanes pay on a GPU.
GPU_PASSES = [("default threads", []), ("one thread", ["--threads-per-worker", "1"])]
VRAM_TOLERANCE = 0.05
UTIL_TOLERANCE_POINTS = 10.0
MIN_UTIL_READINGS = 3
SAMPLE_EVERY_SEC = 0.1
# The 600 s clip takes about 45 s on 2 CPU cores; on a GPU or 16 cores far less.
REQUEST_TIMEOUT_SEC = 180


def make_clip(source: Path, dest: Path, seconds: int) -> Path:
    """`source` repeated to exactly `seconds` (0: `source` itself)."""
    if seconds == 0:
        return source
    with wave.open(str(source), "rb") as r:
        params, frames = r.getparams(), r.readframes(r.getnframes())
    size = seconds * params.framerate * params.sampwidth * params.nchannels
    with wave.open(str(dest), "wb") as w:
        w.setparams(params)
        w.writeframes((frames * (size // len(frames) + 1))[:size])
    return dest


def nvidia_smi(*query: str) -> list[list[str]]:
    out = subprocess.run(
        ["nvidia-smi", *query, "--format=csv,noheader,nounits"], capture_output=True, text=True, timeout=10
    ).stdout
    return [[cell.strip() for cell in line.split(",")] for line in out.splitlines() if line.strip()]


class Sampler(threading.Thread):
    """nvidia-smi every 100 ms: each process's memory and the device's utilization."""

    def __init__(self):
        super().__init__(daemon=True)
        self.samples, self.stop = [], threading.Event()
        # Rows nvidia-smi wrote that are not numbers ("[N/A]" where the driver
        # does not count a process's memory): kept for the report, not fatal.
        self.unreadable: list[list[str]] = []

    def numbers(self, rows: list[list[str]], width: int) -> list[list[float]]:
        """The rows whose first `width` cells are numbers; the others go to `unreadable`."""
        readable = []
        for row in rows:
            try:
                if len(row) < width:
                    raise ValueError(row)
                readable.append([float(cell) for cell in row[:width]])
            except ValueError:
                self.unreadable.append(row)
        return readable

    def run(self):
        while not self.stop.is_set():
            started = time.time()
            apps = {int(pid): mib for pid, mib in self.numbers(nvidia_smi("--query-compute-apps=pid,used_memory"), 2)}
            util = [row[0] for row in self.numbers(nvidia_smi("--query-gpu=utilization.gpu"), 1)]
            self.samples.append({"t": (started + time.time()) / 2, "apps": apps, "util": util})
            self.stop.wait(max(0.0, SAMPLE_EVERY_SEC - (time.time() - started)))


class Server:
    """`sori serve` on a free port, its log in `log`."""

    def __init__(self, sori: Path, model: Path, log: Path, env: dict, extra_args: list[str]):
        self.data = tempfile.TemporaryDirectory()
        self.log = log
        args = [str(sori), "serve", "--model", str(model), "--port", "0", "--data-dir", self.data.name]
        args += ["--max-live-sessions", "0", "--sample-interval-sec", str(SAMPLE_EVERY_SEC), *extra_args]
        self.process = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=open(log, "wb"), env=env)
        deadline = time.time() + 180
        self.port = None
        while self.port is None:
            if self.process.poll() is not None or time.time() > deadline:
                raise SystemExit(f"sori serve did not start; its log:\n{log.read_text(errors='replace')[-4000:]}")
            listening = re.search(r"listening on http://127\.0\.0\.1:(\d+)", log.read_text(errors="replace"))
            self.port = listening and int(listening.group(1))
            time.sleep(0.1)
        while True:
            try:
                with urllib.request.urlopen(self.url("/readyz"), timeout=5) as r:
                    self.ready = json.load(r)
                    break
            except OSError:
                if self.process.poll() is not None or time.time() > deadline:
                    raise SystemExit(f"sori serve was not ready; its log:\n{log.read_text(errors='replace')[-4000:]}")
                time.sleep(0.2)

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def transcribe(self, clip: Path) -> dict:
        boundary = uuid.uuid4().hex
        body = b"".join(
            [
                f'--{boundary}\r\nContent-Disposition: form-data; name="language"\r\n\r\nen\r\n'.encode(),
                f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="{clip.name}"\r\n'.encode(),
                b"Content-Type: audio/wav\r\n\r\n",
                clip.read_bytes(),
                f"\r\n--{boundary}--\r\n".encode(),
            ]
        )
        request = urllib.request.Request(
            self.url("/transcribe"), data=body, headers={"Content-Type": f"multipart/form-data; boundary={boundary}"}
        )
        with urllib.request.urlopen(request, timeout=REQUEST_TIMEOUT_SEC) as r:
            return json.load(r)

    def stop(self):
        self.process.send_signal(signal.SIGTERM)
        self.process.wait(timeout=60)
        self.data.cleanup()


def serve_clips(sori, model, clips, log, env, extra_args) -> tuple[dict, list[dict]]:
    server = Server(sori, model, log, env, extra_args)
    try:
        runs = []
        for name, path in clips:
            started = time.time()
            try:
                answer, error = server.transcribe(path), None
            except urllib.error.HTTPError as e:
                answer, error = None, f"HTTP {e.code}: {e.read().decode(errors='replace')}"
            except OSError as e:  # the server died or did not answer in time
                answer, error = None, repr(e)
            runs.append({"clip": name, "t0": started, "t1": time.time(), "answer": answer, "error": error})
            if error:
                print(f"  {name}: FAILED {error}", flush=True)
                continue
            perf = answer["performance"]
            print(f"  {name}: {perf['processing_time_sec']:.3f} s, RTF {perf['real_time_factor']}", flush=True)
        return server.ready, runs
    finally:
        server.stop()


def judge(run: dict, worker: int, samples: list[dict]) -> dict:
    if run["error"]:
        return {"clip": run["clip"], "error": run["error"], "vram_ok": False, "util_ok": False}
    perf = run["answer"]["performance"]
    during = [s for s in samples if run["t0"] <= s["t"] <= run["t1"]]
    # Memory stays allocated after a request, so the readings just around it count too.
    near = [s for s in samples if run["t0"] - 0.2 <= s["t"] <= run["t1"] + 0.2]
    smi_peak = max((s["apps"][worker] for s in near if worker in s["apps"]), default=None)
    utils = [sum(s["util"]) / len(s["util"]) for s in during if s["util"]]
    smi_util = sum(utils) / len(utils) if utils else None
    vram_ok = smi_peak is not None and abs(perf["gpu_vram_mb_peak"] - smi_peak) <= VRAM_TOLERANCE * smi_peak
    util_judged = len(utils) >= MIN_UTIL_READINGS
    util_ok = (not util_judged) or abs(perf["gpu_percent"] - smi_util) <= UTIL_TOLERANCE_POINTS
    return {
        "clip": run["clip"],
        "sori_vram_mb_peak": perf["gpu_vram_mb_peak"],
        "sori_vram_mb_current": perf["gpu_vram_mb_current"],
        "smi_vram_mb_max": smi_peak,
        "vram_ok": vram_ok,
        "sori_gpu_percent": perf["gpu_percent"],
        "gpu_percent_source": perf.get("gpu_percent_source"),
        "smi_util_mean": smi_util,
        "smi_util_readings": len(utils),
        "util_judged": util_judged,
        "util_ok": util_ok,
        "processing_time_sec": perf["processing_time_sec"],
        "rtf": perf["real_time_factor"],
        "pids_seen_by_smi": sorted({pid for s in near for pid in s["apps"]}),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sori", type=Path, required=True)
    parser.add_argument("--model", type=Path, required=True)
    parser.add_argument("--audio", type=Path, required=True, help="jfk.wav")
    parser.add_argument("--expected", type=Path, required=True, help="the CPU build's transcripts (JSON)")
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--expected-only", action="store_true")
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    clip_dir = Path(tempfile.mkdtemp())
    clips = [(name, make_clip(args.audio, clip_dir / f"{name}.wav", sec)) for name, sec in CLIPS]
    cpu_env = dict(os.environ, CUDA_VISIBLE_DEVICES="")

    if args.expected_only:
        print("the CPU build's transcripts:", flush=True)
        _, runs = serve_clips(args.sori, args.model, clips, args.out / "expected-serve.log", cpu_env, [])
        args.expected.write_text(json.dumps({r["clip"]: r["answer"]["text"] for r in runs}, indent=1) + "\n")
        return 0

    expected = json.loads(args.expected.read_text())
    gpus = nvidia_smi("--query-gpu=name,driver_version,memory.total")
    print(f"GPUs: {gpus}", flush=True)
    sampler = Sampler()
    sampler.start()
    gpu_passes = []
    try:
        for name, extra in GPU_PASSES:
            print(f"on the GPU, {name}:", flush=True)
            log = args.out / f"gpu-serve-{len(gpu_passes)}.log"
            gpu_passes.append((name, *serve_clips(args.sori, args.model, clips, log, dict(os.environ), extra)))
    finally:
        sampler.stop.set()
        sampler.join()
    print("on the CPU (CUDA_VISIBLE_DEVICES=):", flush=True)
    cpu_ready, cpu_runs = serve_clips(args.sori, args.model, clips, args.out / "cpu-serve.log", cpu_env, [])

    checks = []
    for name, ready, runs in gpu_passes:
        worker = ready["worker_pids"][0]
        for gpu_run, cpu_run in zip(runs, cpu_runs):
            check = {"pass": name, "backend": ready["backend"]["device"], "worker_pid": worker}
            check.update(judge(gpu_run, worker, sampler.samples))
            text = (gpu_run["answer"] or {}).get("text")
            cpu = cpu_run["answer"] or {"text": None, "performance": {"processing_time_sec": -1, "real_time_factor": None}}
            check["transcript_equal_to_cpu_build"] = text == expected[gpu_run["clip"]]
            check["transcript_equal_to_cpu_mode"] = text == cpu["text"]
            check["cpu_processing_time_sec"] = cpu["performance"]["processing_time_sec"]
            check["cpu_rtf"] = cpu["performance"]["real_time_factor"]
            checks.append(check)
    passed = all(
        c["backend"] != "CPU" and c["vram_ok"] and c["util_ok"] and c["transcript_equal_to_cpu_build"] for c in checks
    )
    report = {
        "passed": passed,
        "gpus": gpus,
        "gpu_passes": [{"pass": name, "ready": ready, "runs": runs} for name, ready, runs in gpu_passes],
        "cpu_backend": cpu_ready["backend"],
        "checks": checks,
        "cpu_runs": cpu_runs,
        "expected": expected,
        "smi_samples": sampler.samples,
        "smi_unreadable_rows": sampler.unreadable,
    }
    (args.out / "report.json").write_text(json.dumps(report, indent=1))
    lines = [
        f"# GPU check: {'PASS' if passed else 'FAIL'}",
        "",
        f"GPUs: {gpus}; Sori's backend: {gpu_passes[0][1]['backend']}; on the CPU pass: {cpu_ready['backend']}",
        f"nvidia-smi: {len(sampler.samples)} readings, {len(sampler.unreadable)} rows that were not numbers",
        "",
        "| pass | clip | VRAM peak Sori / smi MiB | ok | GPU % Sori (source) / smi mean (readings) | ok "
        "| text = CPU build | = CPU mode | GPU s (RTF) | CPU s (RTF) |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for c in checks:
        if "error" in c:
            lines.append(f"| {c['pass']} | {c['clip']} | failed: {c['error'][:300]} | False | | | | | | |")
            continue
        smi_util = "-" if c["smi_util_mean"] is None else f"{c['smi_util_mean']:.1f}"
        lines.append(
            f"| {c['pass']} | {c['clip']} | {c['sori_vram_mb_peak']:.0f} / {c['smi_vram_mb_max']} | {c['vram_ok']} "
            f"| {c['sori_gpu_percent']:.1f} ({c['gpu_percent_source']}) / {smi_util} ({c['smi_util_readings']}) "
            f"| {c['util_ok'] if c['util_judged'] else 'not judged'} | {c['transcript_equal_to_cpu_build']} "
            f"| {c['transcript_equal_to_cpu_mode']} | {c['processing_time_sec']:.3f} ({c['rtf']}) "
            f"| {c['cpu_processing_time_sec']:.3f} ({c['cpu_rtf']}) |"
        )
    (args.out / "report.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    return 0 if passed else 1


if __name__ == "__main__":
    sys.exit(main())
