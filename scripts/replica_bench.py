"""Replicas on one PostgreSQL: what the shared queue costs. A private cluster
(Debian's postgresql, as in the tests) logs every statement with its duration
(log_min_duration_statement = 0); 1, 2 and 3 `sori serve` replicas share it and
one data dir and run one batch of --files copies of JFK. From PostgreSQL's log,
read from outside Sori: the round trips per file, the claim's execution time,
and the lease renewals. Then the time from `kill -9` of a replica in the middle
of a file until another replica claims it and finishes it.

The replicas share this machine's cores (2 compute threads in all), so the
point is the overhead of the shared queue, not a speed-up.

Run: python3 scripts/replica_bench.py [--sori BINARY] [--model GGML] [--files 60] [--lease-sec 10]
(tiny.en q8_0 from models/ by default; JFK from tests/fixtures/audio).
"""
import argparse
import json
import os
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from compare_peers import AUDIO, ROOT, free_port  # noqa: E402

# One line of PostgreSQL's log: "duration: 0.123 ms  execute <unnamed>: UPDATE ..."
LOGGED = re.compile(r"duration: ([0-9.]+) ms  (parse|bind|execute|statement)[^:]*: (.*)")
# What each statement is, by its start.
KINDS = [
    ("claim", "UPDATE batch_files SET status = 'processing'"),
    ("renew", "UPDATE batch_files SET lease_until"),
    ("finish: lock the row", "SELECT 1 FROM batch_files"),
    ("finish: mark done", "UPDATE batch_files SET status = 'done'"),
    ("transaction", "START TRANSACTION"),
    ("transaction", "COMMIT"),
    ("changes poll", "SELECT now_ms.ms"),
    ("readiness", "SELECT 1"),
]


class Postgres:
    """A private cluster in a temporary folder, on a Unix socket, logging every statement."""

    def __init__(self):
        bins = sorted(Path("/usr/lib/postgresql").glob("*/bin/initdb"))
        if not bins:
            sys.exit("PostgreSQL is not installed (make test-deps installs Debian's postgresql)")
        self.bin = bins[-1].parent
        self.dir = Path(tempfile.mkdtemp(prefix="sori-pg-"))
        if os.geteuid() == 0:
            shutil.chown(self.dir, "postgres", "postgres")
        self.port = free_port()
        self.log = self.dir / "log"
        self.url = f"host={self.dir} port={self.port} user=sori dbname=postgres"
        self.run("initdb", "-D", str(self.dir / "data"), "-U", "sori", "--auth=trust", "-E", "UTF8")
        options = (f"-k {self.dir} -p {self.port} -c listen_addresses='' "
                   "-c log_min_duration_statement=0 -c log_line_prefix='%m [%p] '")
        self.run("pg_ctl", "-D", str(self.dir / "data"), "-o", options, "-l", str(self.log), "-w", "start")

    def run(self, program, *args):
        command = [str(self.bin / program), *args]
        if os.geteuid() == 0:
            command = ["runuser", "-u", "postgres", "--", *command]
        subprocess.run(command, check=True, capture_output=True)

    def statements(self, since):
        """(kind, phase, ms) of each statement logged after byte `since` of the log."""
        with open(self.log, "rb") as f:
            f.seek(since)
            text = f.read().decode(errors="replace")
        found = []
        for m in LOGGED.finditer(text):
            ms, phase, sql = float(m.group(1)), m.group(2), m.group(3).strip()
            kind = next((k for k, start in KINDS if sql.startswith(start)), "reads (the API, the bench's polls)")
            found.append((kind, phase, ms))
        return found

    def log_size(self):
        return self.log.stat().st_size

    def stop(self):
        self.run("pg_ctl", "-D", str(self.dir / "data"), "-m", "immediate", "-w", "stop")
        shutil.rmtree(self.dir, ignore_errors=True)


class Replica:
    def __init__(self, binary, model, pg, data, name, threads, lease_sec):
        self.name, self.port = name, free_port()
        env = dict(os.environ, SORI_DATABASE_URL=pg.url, SORI_REPLICA_NAME=name, SORI_LEASE_SEC=str(lease_sec))
        self.proc = subprocess.Popen(
            [binary, "serve", "--model", str(model), "--port", str(self.port), "--data-dir", data,
             "--threads-per-worker", str(threads)],
            env=env, stderr=subprocess.DEVNULL,
        )
        self.wait_ready()

    def wait_ready(self):
        for _ in range(6000):
            try:
                with urllib.request.urlopen(self.url("/readyz")) as r:
                    if r.status == 200:
                        return
            except OSError:
                time.sleep(0.01)
        sys.exit(f"replica {self.name} did not become ready")

    def url(self, path):
        return f"http://127.0.0.1:{self.port}{path}"

    def get(self, path):
        with urllib.request.urlopen(self.url(path)) as r:
            return json.load(r)

    def post_batch(self, clip, copies):
        boundary = "sori-bench-boundary"
        body = b""
        for i in range(copies):
            body += (f"--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; "
                     f"filename=\"clip-{i}.wav\"\r\n\r\n").encode() + clip + b"\r\n"
        body += f"--{boundary}--\r\n".encode()
        request = urllib.request.Request(self.url("/batch"), data=body,
                                         headers={"Content-Type": f"multipart/form-data; boundary={boundary}"})
        with urllib.request.urlopen(request) as r:
            return json.load(r)["batch_id"]

    def kill(self):
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait()

    def stop(self):
        self.proc.terminate()
        self.proc.wait()


def throughput(binary, model, clip, replicas, files, lease_sec):
    pg = Postgres()
    data = tempfile.mkdtemp(prefix="sori-bench-")
    threads = 2 if replicas == 1 else 1
    servers = [Replica(binary, model, pg, data, f"r{i + 1}", threads, lease_sec) for i in range(replicas)]
    since = pg.log_size()
    started = time.perf_counter()
    batch_id = servers[0].post_batch(clip, files)
    deadline = time.perf_counter() + 60 * files
    while (batch := servers[0].get(f"/batch/{batch_id}"))["status"] != "complete":
        if time.perf_counter() > deadline:
            sys.exit(f"the batch did not complete: {batch['progress']}")
        time.sleep(0.5)
    wall = time.perf_counter() - started
    statements = pg.statements(since)
    for s in servers:
        s.stop()
    pg.stop()
    shutil.rmtree(data, ignore_errors=True)
    by_replica = {}
    for f in batch["files"]:
        by_replica[f["replica"]] = by_replica.get(f["replica"], 0) + 1
    # A round trip: each parse (prepare), each execute (bind and run), each simple statement.
    trips = {}
    for kind, phase, _ in statements:
        if phase != "bind":
            trips[kind] = trips.get(kind, 0) + 1
    claims = [ms for kind, phase, ms in statements if kind == "claim" and phase == "execute"]
    renewals = [ms for kind, phase, ms in statements if kind == "renew" and phase == "execute"]
    return {
        "replicas": replicas, "files": files, "done": batch["progress"]["done"],
        "wall_sec": round(wall, 2), "files_by_replica": by_replica,
        "round_trips_per_file": {k: round(v / files, 2) for k, v in sorted(trips.items())},
        "queue_round_trips_per_file": round(sum(v for k, v in trips.items() if not k.startswith("reads")
                                                and k not in ("changes poll", "readiness")) / files, 2),
        "claim_execute_ms_median": round(statistics.median(claims), 3) if claims else None,
        "claim_execute_ms_max": round(max(claims), 3) if claims else None,
        "renewals": len(renewals),
        "renew_execute_ms_median": round(statistics.median(renewals), 3) if renewals else None,
    }


def takeover(binary, model, clip, lease_sec):
    """Two replicas, two files sent to the second, which takes the first file
    at once and is killed in its middle; seconds until the first replica
    claims that file, and until it is done."""
    pg = Postgres()
    data = tempfile.mkdtemp(prefix="sori-bench-")
    one, two = (Replica(binary, model, pg, data, name, 1, lease_sec) for name in ("r1", "r2"))
    batch_id = two.post_batch(clip, 2)
    deadline = time.perf_counter() + 60
    while True:
        files = one.get(f"/batch/{batch_id}")["files"]
        busy = [f for f in files if f["status"] == "processing" and f["replica"] == "r2"]
        if busy:
            break
        if time.perf_counter() > deadline:
            sys.exit(f"replica r2 took no file: {files}")
        time.sleep(0.01)
    file_id = busy[0]["file_id"]
    since = pg.log_size()
    two.kill()
    killed = time.perf_counter()
    claimed = None
    deadline = time.perf_counter() + 10 * lease_sec + 120
    while time.perf_counter() < deadline:
        f = next(f for f in one.get(f"/batch/{batch_id}")["files"] if f["file_id"] == file_id)
        if claimed is None and f["replica"] == "r1":
            claimed = time.perf_counter() - killed
        if f["status"] == "done":
            done = time.perf_counter() - killed
            break
        time.sleep(0.02)
    else:
        sys.exit(f"the file of the killed replica was not finished: {f}")
    renewals = [ms for kind, phase, ms in pg.statements(since) if kind == "renew" and phase == "execute"]
    one.stop()
    pg.stop()
    shutil.rmtree(data, ignore_errors=True)
    return {"lease_sec": lease_sec, "kill_to_claimed_sec": round(claimed, 2), "kill_to_done_sec": round(done, 2),
            "renewals_meanwhile": len(renewals)}


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sori", default=str(ROOT / "target/release/sori"))
    parser.add_argument("--model", default=str(ROOT / "models/ggml-tiny.en-q8_0.bin"))
    parser.add_argument("--files", type=int, default=60)
    parser.add_argument("--lease-sec", type=int, default=10)
    args = parser.parse_args()
    jfk = (AUDIO / "jfk.wav").read_bytes()
    for replicas in (1, 2, 3):
        print(json.dumps(throughput(args.sori, args.model, jfk, replicas, args.files, 30)), flush=True)
    # A longer file (JFK three times, 33 s), so the replica dies in its middle.
    with tempfile.TemporaryDirectory() as tmp:
        long_clip = Path(tmp) / "jfk-3x.wav"
        subprocess.run(["sox", *[str(AUDIO / "jfk.wav")] * 3, str(long_clip)], check=True)
        print(json.dumps(takeover(args.sori, args.model, long_clip.read_bytes(), args.lease_sec)), flush=True)


if __name__ == "__main__":
    main()
