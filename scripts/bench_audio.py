"""What the benchmark scripts share to make their clips: sox, a clip's length,
and downloads pinned by their hash."""
import hashlib
import subprocess
import urllib.request
from pathlib import Path


def fetch_pinned(url, sha256, downloads):
    """The file at `url`, downloaded once into `downloads` and checked against its hash."""
    path = downloads / Path(url).name
    if not path.exists():
        data = urllib.request.urlopen(url, timeout=600).read()
        assert hashlib.sha256(data).hexdigest() == sha256, f"{path.name}: checksum differs from the pinned one"
        path.write_bytes(data)
    return path


def sox(*args):
    # -R: sox's dither and noise are seeded, so a clip is the same bytes every run.
    subprocess.run(["sox", "-R", *map(str, args)], check=True)


def duration(path):
    """The clip's length, seconds."""
    return float(subprocess.run(["soxi", "-D", str(path)], capture_output=True, text=True, check=True).stdout)
