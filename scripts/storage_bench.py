"""What keeping the files in a bucket costs, per file, against the data dir.
One `sori serve` (SQLite, tiny.en q8_0) with its files in the data dir, then
one with `--storage-url` on an S3-compatible server on loopback (moto's, from
.venv-s3: `make test-tools`). For each: --files single transcriptions of JFK
one after another (the client's wall time of each), a read of each
(`GET /files/{id}/json`), then one batch of --files copies (until complete).
With the bucket, the S3 server's own request log gives the requests of each
phase by method, and its listing the bytes each file keeps there.

moto answers on loopback in well under a millisecond of network; a real S3
region adds its own round trip (tens of ms) to each request counted here.

Run: python3 scripts/storage_bench.py [--sori BINARY] [--model GGML] [--files 20]
"""
import argparse
import collections
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from compare_peers import AUDIO, ROOT, free_port  # noqa: E402
from replica_bench import Replica  # noqa: E402


class Server(Replica):
    """One `sori serve` on SQLite in `data`, with the extra environment `env`."""

    def __init__(self, binary, model, data, env):
        self.name, self.port = "bench", free_port()
        self.proc = subprocess.Popen(
            [binary, "serve", "--model", str(model), "--port", str(self.port), "--data-dir", data],
            env=dict(os.environ, **env), stderr=subprocess.DEVNULL,
        )
        self.wait_ready()

BUCKET, PREFIX = "sori-bench", "files"
# One line of moto's request log: ... "PUT /sori-bench/files/x.txt HTTP/1.1" 200 -
# (werkzeug colours the lines of 4xx answers).
REQUEST = re.compile(r'"(?:\x1b\[\d+m)?([A-Z]+) (/[^ ]*) HTTP/1\.1(?:\x1b\[0m)?" (\d+)')


class S3:
    """moto's server on a free port, logging each request to a file."""

    def __init__(self):
        program = ROOT / ".venv-s3" / "bin" / "moto_server"
        if not program.exists():
            sys.exit("no .venv-s3 (make test-tools installs moto's server)")
        self.port = free_port()
        self.log = Path(tempfile.mkstemp(prefix="sori-s3-", suffix=".log")[1])
        self.proc = subprocess.Popen([str(program), "-H", "127.0.0.1", "-p", str(self.port)],
                                     stdout=subprocess.DEVNULL, stderr=open(self.log, "wb"))
        for _ in range(300):
            try:
                urllib.request.urlopen(urllib.request.Request(self.url(f"/{BUCKET}"), method="PUT"))
                return
            except OSError:
                time.sleep(0.1)
        sys.exit("moto's server did not start")

    def url(self, path):
        return f"http://127.0.0.1:{self.port}{path}"

    def mark(self):
        return self.log.stat().st_size

    def requests_since(self, mark):
        """Counts of (method, what) for the requests logged after `mark`."""
        with open(self.log, "rb") as f:
            f.seek(mark)
            text = f.read().decode(errors="replace")
        counts = collections.Counter()
        for method, path, status in REQUEST.findall(text):
            if path.endswith("?delete"):
                counts["POST ?delete (removes one object)"] += 1
                continue
            what = "an upload" if "/uploads/" in path else "a result file"
            counts[f"{method} {what}" + (f" ({status})" if status != "200" else "")] += 1
        return counts

    def sizes(self):
        """Bytes of each object under the prefix, by its name."""
        url = self.url(f"/{BUCKET}?list-type=2&prefix={PREFIX}/")
        xml = urllib.request.urlopen(url).read().decode()
        return {k: int(s) for k, s in re.findall(r"<Key>([^<]+)</Key>.*?<Size>(\d+)</Size>", xml)}

    def stop(self):
        self.proc.terminate()
        self.proc.wait()


def post_file(server, clip, path="/transcribe"):
    boundary = "sori-bench-boundary"
    body = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"jfk.wav\"\r\n\r\n").encode()
    body += clip + f"\r\n--{boundary}--\r\n".encode()
    request = urllib.request.Request(server.url(path), data=body,
                                     headers={"Content-Type": f"multipart/form-data; boundary={boundary}"})
    started = time.perf_counter()
    with urllib.request.urlopen(request) as r:
        answer = json.load(r)
    return answer, time.perf_counter() - started


def run(binary, model, clip, files, s3):
    data = tempfile.mkdtemp(prefix="sori-storage-bench-")
    env = {}
    if s3:
        env = dict(SORI_STORAGE_URL=f"s3://{BUCKET}/{PREFIX}", AWS_ENDPOINT_URL=s3.url(""),
                   AWS_ACCESS_KEY_ID="bench", AWS_SECRET_ACCESS_KEY="bench", AWS_REGION="us-east-1")
    server = Server(binary, model, data, env)
    post_file(server, clip)  # warm-up
    result = {}
    mark = s3.mark() if s3 else 0
    ids, walls, outside = [], [], []
    for _ in range(files):
        answer, wall = post_file(server, clip)
        ids.append(answer["file_id"])
        walls.append(wall)
        # Everything but the worker's own processing: receiving, the queue, writing the files.
        outside.append(wall - answer["performance"]["processing_time_sec"])
    result["single"] = (statistics.median(walls), statistics.median(outside))
    if s3:
        result["single_requests"] = s3.requests_since(mark)
        sizes = s3.sizes()
        result["bytes_per_file"] = statistics.median(
            sum(size for key, size in sizes.items() if file_id in key) for file_id in ids)
        mark = s3.mark()
    reads = []
    for file_id in ids:
        started = time.perf_counter()
        server.get(f"/files/{file_id}/json")
        reads.append(time.perf_counter() - started)
    result["read"] = statistics.median(reads)
    if s3:
        result["read_requests"] = s3.requests_since(mark)
        mark = s3.mark()
    started = time.perf_counter()
    batch_id = server.post_batch(clip, files)
    while server.get(f"/batch/{batch_id}")["status"] != "complete":
        time.sleep(0.05)
    result["batch"] = time.perf_counter() - started
    if s3:
        time.sleep(1)  # the upload removals run just after each file is marked done
        result["batch_requests"] = s3.requests_since(mark)
    server.stop()
    return result


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sori", default=str(ROOT / "target" / "release" / "sori"))
    parser.add_argument("--model", default=str(ROOT / "models" / "ggml-tiny.en-q8_0.bin"))
    parser.add_argument("--files", type=int, default=20)
    args = parser.parse_args()
    clip = (AUDIO / "jfk.wav").read_bytes()
    s3 = S3()
    try:
        folder = run(args.sori, args.model, clip, args.files, None)
        bucket = run(args.sori, args.model, clip, args.files, s3)
    finally:
        s3.stop()
    n = args.files
    print(f"{n} x JFK (11 s, {len(clip)} bytes), tiny.en q8_0, SQLite, one worker\n")
    print("| | data dir | bucket (moto on loopback) |")
    print("|---|---|---|")
    print(f"| single upload, client wall time (median) | {folder['single'][0]:.3f} s | {bucket['single'][0]:.3f} s |")
    print(f"| of which outside the worker's processing_time_sec (median) | {folder['single'][1] * 1000:.1f} ms "
          f"| {bucket['single'][1] * 1000:.1f} ms |")
    print(f"| GET /files/{{id}}/json (median) | {folder['read'] * 1000:.1f} ms | {bucket['read'] * 1000:.1f} ms |")
    print(f"| batch of {n}, until complete | {folder['batch']:.2f} s | {bucket['batch']:.2f} s |")
    print(f"\nbytes kept in the bucket per file (median): {bucket['bytes_per_file']}\n")
    print("| S3 requests per file | single upload | read (json) | batch file |")
    print("|---|---|---|---|")
    kinds = sorted(set(bucket["single_requests"]) | set(bucket["read_requests"]) | set(bucket["batch_requests"]))
    for kind in kinds:
        row = [bucket[k].get(kind, 0) / n for k in ["single_requests", "read_requests", "batch_requests"]]
        print(f"| {kind} | " + " | ".join(f"{v:g}" for v in row) + " |")


if __name__ == "__main__":
    main()
