"""Models in one server: what starting each costs. One `sori serve` offers
tiny.en and base in q8_0 and f16 (converted from PyPI, as `make models` does);
the first is the default and starts with the server. For every other model:
the first request's wall time (cold: it starts the model's worker process,
whose load time the answer's timings.model_load_sec gives), the median of the
next --runs requests (warm), and the resident memory of its worker processes
(Prometheus' sori_model_resident_memory_bytes, which sums /proc's VmRSS of
each). The default's load time comes from /readyz.

Run: python3 scripts/model_bench.py [--sori BINARY] [--runs 3] [--clip jfk.wav]
"""
import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from compare_peers import AUDIO, ROOT, free_port  # noqa: E402

MODELS = ["tiny.en-q8_0", "tiny.en", "base-q8_0", "base"]


def fetch(sori, name):
    out = subprocess.run([sori, "model", "fetch", name, "--model-source", "pypi", "--dest", str(ROOT / "models")],
                         check=True, capture_output=True, text=True)
    return out.stdout.strip()


def transcribe(url, audio, name, model):
    boundary = uuid.uuid4().hex
    body = b"".join([
        f"--{boundary}\r\nContent-Disposition: form-data; name=\"model\"\r\n\r\n{model}\r\n".encode(),
        f"--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"{name}\"\r\n"
        "Content-Type: application/octet-stream\r\n\r\n".encode(), audio, f"\r\n--{boundary}--\r\n".encode()])
    request = urllib.request.Request(f"{url}/transcribe", data=body,
                                     headers={"Content-Type": f"multipart/form-data; boundary={boundary}"})
    began = time.monotonic()
    with urllib.request.urlopen(request, timeout=300) as response:
        answer = json.load(response)
    return time.monotonic() - began, answer


def metric(url, name, model):
    text = urllib.request.urlopen(f"{url}/metrics").read().decode()
    prefix = f'{name}{{model="{model}"}} '
    return next(float(line[len(prefix):]) for line in text.splitlines() if line.startswith(prefix))


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--sori", default=str(ROOT / "target/release/sori"))
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--clip", default="jfk.wav")
    args = parser.parse_args()
    paths = [fetch(args.sori, name) for name in MODELS]
    audio = (AUDIO / args.clip).read_bytes()
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    with tempfile.TemporaryDirectory() as data:
        command = [args.sori, "serve", "--port", str(port), "--data-dir", data, "--workers", "1"]
        for path in paths:
            command += ["--model", path]
        server = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            for _ in range(600):
                try:
                    ready = json.load(urllib.request.urlopen(f"{url}/readyz"))
                    break
                except OSError:
                    time.sleep(0.1)
            rows = []
            default = ready["models"][0]
            for model in MODELS:
                if model == default["name"]:
                    cold, load = None, default["load_sec"]
                else:
                    cold, answer = transcribe(url, audio, args.clip, model)
                    load = answer["timings"]["model_load_sec"]
                warm = statistics.median(transcribe(url, audio, args.clip, model)[0] for _ in range(args.runs))
                rss = metric(url, "sori_model_resident_memory_bytes", model) / 2**20
                size = Path(paths[MODELS.index(model)]).stat().st_size / 2**20
                rows.append((model, size, load, cold, warm, rss))
        finally:
            server.terminate()
            server.wait(60)
    print(f"| model | file MiB | load s | first request s (cold) | next requests s (warm, median of {args.runs}) "
          "| worker RSS MiB |")
    print("|---|---|---|---|---|---|")
    for model, size, load, cold, warm, rss in rows:
        cold_text = "with the server" if cold is None else f"{cold:.2f}"
        print(f"| {model} | {size:.0f} | {load:.2f} | {cold_text} | {warm:.2f} | {rss:.0f} |")


if __name__ == "__main__":
    main()
