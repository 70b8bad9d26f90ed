"""What `vad_filter` does to time and accuracy: the 79 s real-speech clip of
`make bench` (LibriVox + JFK, half-second pauses), and the same speech with 4 s
of silence between its parts, each sent to a real `sori serve` over
/v1/audio/transcriptions with and without `vad_filter`, alternating, medians
of `--runs`. Time is the server's processing_time_sec (decoding, the VAD pass
and inference); WER against the clip's transcript.
Run: python3 scripts/vad_filter_bench.py [--model tiny.en-q8_0] [--runs 3]
"""
import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import urllib.request
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from compare_peers import ROOT, SoriHttp, edit_rate, real_speech_clip, words  # noqa: E402


def with_gaps(clip, out, seconds=4.0, parts=8):
    """`clip` cut into `parts` equal parts with `seconds` of silence after each."""
    length = float(subprocess.run(["soxi", "-D", str(clip)], capture_output=True, text=True, check=True).stdout)
    gap = out.with_name("gap.wav")
    subprocess.run(["sox", "-n", "-r", "16000", "-c", "1", "-b", "16", str(gap), "trim", "0", str(seconds)], check=True)
    pieces = []
    for i in range(parts):
        piece = out.with_name(f"part-{i}.wav")
        subprocess.run(["sox", str(clip), str(piece), "trim", str(i * length / parts), str(length / parts)], check=True)
        pieces += [piece, gap]
    subprocess.run(["sox", *map(str, pieces), str(out)], check=True)
    return out


def transcribe(port, path, model, vad_filter):
    boundary = uuid.uuid4().hex
    fields = {"model": model, "language": "en", "response_format": "json", "vad_filter": str(vad_filter).lower()}
    body = b"".join(f"--{boundary}\r\nContent-Disposition: form-data; name=\"{k}\"\r\n\r\n{v}\r\n".encode()
                    for k, v in fields.items())
    body += f"--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"clip.wav\"\r\n\r\n".encode()
    body += path.read_bytes() + f"\r\n--{boundary}--\r\n".encode()
    request = urllib.request.Request(f"http://127.0.0.1:{port}/v1/audio/transcriptions", data=body,
                                     headers={"Content-Type": f"multipart/form-data; boundary={boundary}"})
    answer = json.load(urllib.request.urlopen(request, timeout=600))
    return answer["text"], answer["performance"]["processing_time_sec"]


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default="tiny.en-q8_0")
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="sori-vad-"))
    name, clip, reference = real_speech_clip(work, ROOT / "models" / ".downloads")
    gapped = with_gaps(clip, work / "gapped.wav")
    server = SoriHttp(str(ROOT / "target/release/sori"), args.model, os.cpu_count(), args.model)
    port = server.port
    try:
        print(f"model {args.model}, medians of {args.runs}")
        print("| clip | vad_filter | processing | WER |")
        print("|---|---|---|---|")
        for label, path in ((name, clip), ("the same with 4 s silences (111 s)", gapped)):
            runs = {False: [], True: []}
            for _ in range(args.runs):
                for on in (False, True):
                    runs[on].append(transcribe(port, path, args.model, on))
            for on in (False, True):
                seconds = statistics.median(t for _, t in runs[on])
                wer = edit_rate(words(reference), words(runs[on][-1][0]))
                print(f"| {label} | {'on' if on else 'off'} | {seconds:.2f} s | {wer:.3f} |")
    finally:
        server.close()


if __name__ == "__main__":
    main()
