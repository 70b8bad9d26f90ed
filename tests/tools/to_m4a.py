"""Writes an M4A (AAC, 44.1 kHz stereo) copy of an audio file, for Sori's decoder tests."""
import sys

import av

src, dst = sys.argv[1], sys.argv[2]
with av.open(src) as inp, av.open(dst, "w", format="mp4") as out:
    stream = out.add_stream("aac", rate=44100)
    resampler = av.AudioResampler(format="fltp", layout="stereo", rate=44100)
    frames = [f for frame in inp.decode(audio=0) for f in resampler.resample(frame)]
    frames += resampler.resample(None)
    for frame in frames + [None]:
        for packet in stream.encode(frame):
            out.mux(packet)
