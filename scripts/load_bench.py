"""Throughput under load: Sori against faster-whisper's BatchedInferencePipeline,
same machine, threads and weights (tiny.en; Sori q8_0, faster-whisper int8).

For each workers x threads layout (faster-whisper: num_workers x cpu_threads;
Sori with "+B" also B batch workers, which faster-whisper has no match for):
1. four clients at once for a minute, each sending real clips one after another:
   audio seconds per wall second, median and p95 latency;
2. a batch of 60 real files: audio seconds per wall second;
3. a single request (JFK) on an idle server, then while the 60-file batch runs:
   the median latency of each, and their ratio.

The clips are real speech: JFK, five LibriVox utterances, the 30 s pyannote
conversation and six 8 kHz telephone prompts (see conversational_clips.py).
Run it with `make bench-load`.
"""
import argparse
import json
import statistics
import subprocess
import tempfile
import threading
import time
import urllib.request
from pathlib import Path

import compare_peers as peers
import conversational_clips as conversational
from bench_audio import duration

CLIENTS = 4
CLIENT_SEC = 60
BATCH_FILES = 60
PROBES = 5
# Seconds a batch has run before the first probe (so that it is under way).
PROBE_AFTER_SEC = 3

FW_LOAD = """
import json, statistics, sys, threading, time
from faster_whisper import BatchedInferencePipeline, WhisperModel
model_dir, workers, threads, mode = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
clips = json.loads(sys.stdin.read())
model = WhisperModel(model_dir, device="cpu", compute_type="int8", cpu_threads=threads, num_workers=workers)
batched = BatchedInferencePipeline(model)

def batch_one(path):
    segments, _ = batched.transcribe(path, beam_size=1, language="en", batch_size=8)
    return " ".join(s.text for s in segments)

def single(path):
    segments, _ = model.transcribe(path, beam_size=1, language="en", vad_filter=False,
                                   condition_on_previous_text=False)
    return " ".join(s.text for s in segments)

def timed(work, path):
    started = time.perf_counter()
    work(path)
    return time.perf_counter() - started

batch_one(clips["probe"])
if mode == "clients":
    latencies, audio, lock = [], [], threading.Lock()
    started = time.perf_counter()
    def client(k):
        i = k
        while time.perf_counter() - started < clips["seconds"]:
            path, sec = clips["pool"][i % len(clips["pool"])]
            took = timed(batch_one, path)
            with lock:
                latencies.append(took); audio.append(sec)
            i += 1
    workers_ = [threading.Thread(target=client, args=(k,)) for k in range(clips["clients"])]
    [w.start() for w in workers_]; [w.join() for w in workers_]
    print(json.dumps({"wall": time.perf_counter() - started, "latencies": latencies, "audio": sum(audio)}))
elif mode == "batch":
    started = time.perf_counter()
    for path, _ in clips["batch"]:
        batch_one(path)
    print(json.dumps({"wall": time.perf_counter() - started}))
else:
    idle = [timed(single, clips["probe"]) for _ in range(clips["probes"])]
    done = threading.Event()
    def run_batch():
        for path, _ in clips["batch"]:
            batch_one(path)
        done.set()
    threading.Thread(target=run_batch).start()
    time.sleep(clips["probe_after"])
    loaded = []
    while len(loaded) < clips["probes"] and not done.is_set():
        loaded.append(timed(single, clips["probe"]))
    done.wait()
    print(json.dumps({"idle": idle, "loaded": loaded}))
"""


def real_clips(folder, downloads):
    """[(path, seconds)]: JFK, the LibriVox utterances, the pyannote conversation, six prompts."""
    paths = [peers.AUDIO / "jfk.wav"]
    paths += [wav for wav, _ in peers.librivox_utterances(folder, downloads)]
    paths.append(conversational.pyannote_conversation(folder, downloads)[1])
    paths += [wav for wav, _ in conversational.asterisk_prompts(folder, downloads)[:6]]
    return [(path, duration(path)) for path in paths]


def p95(values):
    return sorted(values)[max(0, round(0.95 * len(values)) - 1)]


def sori_clients(server, pool):
    """CLIENTS threads sending the pool's clips for CLIENT_SEC seconds."""
    latencies, audio, lock = [], [], threading.Lock()
    started = time.perf_counter()

    def client(k):
        i = k
        while time.perf_counter() - started < CLIENT_SEC:
            request = server.upload("/transcribe", [pool[i % len(pool)][0]])
            sent = time.perf_counter()
            with urllib.request.urlopen(request, timeout=600) as r:
                json.load(r)
            with lock:
                latencies.append(time.perf_counter() - sent)
                audio.append(pool[i % len(pool)][1])
            i += 1

    threads = [threading.Thread(target=client, args=(k,)) for k in range(CLIENTS)]
    [t.start() for t in threads]
    [t.join() for t in threads]
    return {"wall": time.perf_counter() - started, "latencies": latencies, "audio": sum(audio)}


def sori_probe(server, probe, batch):
    """A single request's latencies on the idle server, then beside the batch."""
    idle = [server.run(probe)["wall"] for _ in range(PROBES)]
    result = {}
    runner = threading.Thread(target=lambda: result.update(wall=server.batch(batch)))
    runner.start()
    time.sleep(PROBE_AFTER_SEC)
    loaded = []
    while len(loaded) < PROBES and runner.is_alive():
        loaded.append(server.run(probe)["wall"])
    runner.join()
    return {"idle": idle, "loaded": loaded}


def fw_run(args, ct2, workers, threads, mode, clips):
    out = subprocess.run([args.python, "-c", FW_LOAD, str(ct2), str(workers), str(threads), mode],
                         input=json.dumps(clips), capture_output=True, text=True, check=True).stdout
    return json.loads(out.strip().splitlines()[-1])


def row(label, layout, clients, batch_wall, batch_audio, probe):
    result = {
        "peer": label, "layout": layout,
        "clients_audio_per_sec": round(clients["audio"] / clients["wall"], 1),
        "clients_requests": len(clients["latencies"]),
        "clients_median_sec": round(statistics.median(clients["latencies"]), 2),
        "clients_p95_sec": round(p95(clients["latencies"]), 2),
        "batch_audio_per_sec": round(batch_audio / batch_wall, 1),
        "probe_idle_sec": round(statistics.median(probe["idle"]), 3),
        "probe_loaded_sec": round(statistics.median(probe["loaded"]), 3) if probe["loaded"] else None,
    }
    if result["probe_loaded_sec"]:
        result["probe_ratio"] = round(result["probe_loaded_sec"] / result["probe_idle_sec"], 2)
    print(f"| {label} | {layout} | {result['clients_audio_per_sec']} | {result['clients_requests']} | "
          f"{result['clients_median_sec']} | {result['clients_p95_sec']} | {result['batch_audio_per_sec']} | "
          f"{result['probe_idle_sec']} | {result['probe_loaded_sec']} | {result.get('probe_ratio')} |", flush=True)
    return result


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--sori", default=str(peers.ROOT / "target/release/sori"))
    parser.add_argument("--models", default=str(peers.ROOT / "models"))
    parser.add_argument("--python", required=True, help="a Python with faster-whisper")
    parser.add_argument("--layouts", default="1x2,2x1,1x2+1,2x1+2",
                        help="workers x threads[+batch workers], comma-separated")
    parser.add_argument("--json", default=str(peers.ROOT / "test-output" / "load-results.json"))
    args = parser.parse_args()
    models = Path(args.models)
    folder = Path(tempfile.mkdtemp(prefix="sori-load-"))
    pool = real_clips(folder, models / ".downloads")
    batch = [pool[i % len(pool)] for i in range(BATCH_FILES)]
    batch_audio = sum(sec for _, sec in batch)
    probe = peers.AUDIO / "jfk.wav"
    ct2 = peers.extract_ct2(models / ".downloads", "tiny.en", folder / "ct2-tiny.en")
    print(f"{len(pool)} clips, {round(sum(s for _, s in pool))} s; batch {BATCH_FILES} files, {round(batch_audio)} s\n")
    print("| peer | workers x threads | 4 clients: audio s per s | requests | median s | p95 s | "
          f"{BATCH_FILES}-file batch: audio s per s | single request idle s | beside the batch s | ratio |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    rows = []
    for layout in args.layouts.split(","):
        shape, _, batch_workers = layout.partition("+")
        workers, threads = map(int, shape.split("x"))
        server = peers.SoriHttp(args.sori, models / "ggml-tiny.en-q8_0.bin", threads, "Sori", workers,
                                int(batch_workers or 0))
        try:
            server.run(probe)
            clients = sori_clients(server, pool)
            batch_wall = server.batch([path for path, _ in batch])
            probe_result = sori_probe(server, probe, [path for path, _ in batch])
        finally:
            server.close()
        rows.append(row("Sori HTTP q8_0", layout, clients, batch_wall, batch_audio, probe_result))
        if batch_workers:
            continue
        work = {"pool": [(str(p), s) for p, s in pool], "batch": [(str(p), s) for p, s in batch],
                "probe": str(probe), "seconds": CLIENT_SEC, "clients": CLIENTS, "probes": PROBES,
                "probe_after": PROBE_AFTER_SEC}
        clients = fw_run(args, ct2, workers, threads, "clients", work)
        batch_wall = fw_run(args, ct2, workers, threads, "batch", work)["wall"]
        probe_result = fw_run(args, ct2, workers, threads, "probe", work)
        rows.append(row("faster-whisper int8 batched", layout, clients, batch_wall, batch_audio, probe_result))
    Path(args.json).write_text(json.dumps(rows, indent=2))


if __name__ == "__main__":
    main()
