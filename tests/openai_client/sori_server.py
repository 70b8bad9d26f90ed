"""A real `sori serve` for the openai client's tests: started on a free port
in a temporary folder (its log there), ready before a test runs, stopped after."""

import os
import socket
import subprocess
import tempfile
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
AUDIO = ROOT / "tests" / "fixtures" / "audio"
MODEL_DIR = Path(os.environ.get("SORI_MODEL_DIR", ROOT / "models"))


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class SoriServer:
    """`sori serve` with `args` (beside the port and data dir it is given here)."""

    def __init__(self, *args):
        self.work = tempfile.TemporaryDirectory()
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.log = open(Path(self.work.name) / "server.log", "wb")
        self.process = subprocess.Popen(
            [str(ROOT / "target/release/sori"), "serve", "--port", str(self.port),
             "--data-dir", str(Path(self.work.name) / "data"), *map(str, args)],
            stdout=self.log, stderr=subprocess.STDOUT)
        for _ in range(300):
            try:
                urllib.request.urlopen(f"{self.base}/readyz")
                return
            except OSError:
                time.sleep(0.1)
        self.stop()
        raise RuntimeError("sori never became ready")

    def stop(self):
        self.process.terminate()
        self.process.wait(30)
        self.log.close()
        self.work.cleanup()
