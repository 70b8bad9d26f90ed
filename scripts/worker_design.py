"""What worker processes cost and what they buy: one or two `sori serve`
binaries (say, before and after a change of the worker design) side by side on
start-up, idle memory, a single request's latency, a 20-file batch, and two
overlapping requests whose reported CPU is checked against /proc.

Run: python3 scripts/worker_design.py [--before OLD_BINARY] [--sori NEW_BINARY]
(tiny.en q8_0 from models/; JFK from tests/fixtures/audio).
"""
import argparse
import statistics
import subprocess
import sys
import tempfile
import threading
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from compare_peers import AUDIO, ROOT, SoriHttp, rss_mb  # noqa: E402


def cpu_sec(pid):
    """utime + stime of `pid` and its children that are alive, seconds."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    own = (int(fields[11]) + int(fields[12])) / 100
    children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    return own + sum(cpu_sec(int(child)) for child in children)


def measure(binary, model, clips):
    jfk, thirty = clips
    row = {}
    server = SoriHttp(binary, model, 2, "one worker")
    row["startup_sec"], row["idle_rss_mb"] = server.startup_sec, server.idle_rss_mb
    server.run(jfk)
    row["jfk_sec"] = statistics.median(server.run(jfk)["wall"] for _ in range(5))
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
        print(f"| {key} | " + " | ".join(f"{row[key]:.3f}" for row in rows.values()) + " |")


if __name__ == "__main__":
    main()
