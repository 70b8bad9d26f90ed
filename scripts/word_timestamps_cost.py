"""What word timestamps cost: the engine in-process (examples/engine_bench)
with and without --words, side by side, on the given clips; six alternating
rounds, the first dropped as warm-up, medians printed.

    cargo build --release --example engine_bench
    python3 scripts/word_timestamps_cost.py models/ggml-tiny.en-q8_0.bin tests/fixtures/audio/jfk.wav
"""
import subprocess, json, sys, statistics
model, clips = sys.argv[1], sys.argv[2:]
def start(words):
    p = subprocess.Popen(["./target/release/examples/engine_bench", "--model", model] + (["--words"] if words else []),
                         stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, stderr=subprocess.DEVNULL)
    assert p.stdout.readline().strip() == "ready"
    return p
procs = {False: start(False), True: start(True)}
res = {(c, w): [] for c in clips for w in (False, True)}
for rnd in range(6):
    for c in clips:
        for w in ((False, True) if rnd % 2 == 0 else (True, False)):
            p = procs[w]; p.stdin.write(c + "\n"); p.stdin.flush()
            r = json.loads(p.stdout.readline())
            if rnd > 0: res[(c, w)].append(r["wall"])
for c in clips:
    a, b = statistics.median(res[(c, False)]), statistics.median(res[(c, True)])
    print(f"{c}: without words {a:.3f} s, with words {b:.3f} s, +{(b/a-1)*100:.1f} %")
