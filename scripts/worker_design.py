"""What worker processes cost and what they buy: one or two `sori serve`
binaries (say, before and after a change of the worker design) side by side on
start-up, idle memory, a single request's latency, a 20-file batch, two
overlapping requests whose reported CPU is checked against /proc, and (where
there are worker processes) the time from `kill -9` of a worker to ready again.

Run: python3 scripts/worker_design.py [--before OLD_BINARY] [--sori NEW_BINARY] [--model GGML]
(tiny.en q8_0 from models/ by default; JFK from tests/fixtures/audio).
"""
import argparse
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from compare_peers import AUDIO, ROOT, SoriHttp, rss_mb  # noqa: E402


def cpu_sec(pid):
    """utime + stime of `pid` and its children that are alive, seconds."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    own = (int(fields[11]) + int(fields[12])) / 100
    children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    return own + sum(cpu_sec(int(child)) for child in children)


def readiness(port):
    """`/readyz` as (status, body); a 503 has a body too."""
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz") as r:
            return r.status, json.load(r)
    except urllib.error.HTTPError as e:
        return e.code, json.load(e)


def recovery_sec(server):
    """Seconds from `kill -9` of the idle worker to `/readyz` 200 with a new
    one; None for a server without worker processes."""
    old = readiness(server.port)[1].get("worker_pids")
    if not old:
        return None
    started = time.perf_counter()
    os.kill(old[0], signal.SIGKILL)
    while True:
        status, body = readiness(server.port)
        if status == 200 and body["worker_pids"] and body["worker_pids"] != old:
            return time.perf_counter() - started
        time.sleep(0.005)


def measure(binary, model, clips):
    jfk, thirty = clips
    row = {}
    server = SoriHttp(binary, model, 2, "one worker")
    row["startup_sec"], row["idle_rss_mb"] = server.startup_sec, server.idle_rss_mb
    server.run(jfk)
    row["jfk_sec"] = statistics.median(server.run(jfk)["wall"] for _ in range(5))
    row["kill_9_to_ready_sec"] = recovery_sec(server)
    server.close()

    server = SoriHttp(binary, model, 1, "two workers", workers=2)
    row["idle_rss_mb_2_workers"] = server.idle_rss_mb
    before = cpu_sec(server.proc.pid)
    answers = [None, None]

    def send(i):
        answers[i] = server.run(thirty)

    threads = [threading.Thread(target=send, args=(i,)) for i in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    row["overlap_spent_cpu_sec"] = cpu_sec(server.proc.pid) - before
    row["overlap_reported_cpu_sec"] = sum(a["cpu_sec"] for a in answers)
    row["batch_20_sec"] = server.batch([jfk] * 20)
    server.close()
    return row


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--sori", default=str(ROOT / "target/release/sori"))
    parser.add_argument("--before", help="another sori binary to measure beside it")
    parser.add_argument("--model", default=str(ROOT / "models/ggml-tiny.en-q8_0.bin"))
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        jfk = AUDIO / "jfk.wav"
        thirty = Path(folder) / "jfk-x3.wav"
        subprocess.run(["sox", jfk, jfk, jfk, thirty], check=True)
        binaries = [("after", args.sori)] + ([("before", args.before)] if args.before else [])
        rows = {label: measure(binary, args.model, (jfk, thirty)) for label, binary in binaries}
    keys = list(next(iter(rows.values())))
    print("| figure | " + " | ".join(rows) + " |")
    print("|---|" + "---|" * len(rows))
    for key in keys:
        cells = ("n/a" if row[key] is None else f"{row[key]:.3f}" for row in rows.values())
        print(f"| {key} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
