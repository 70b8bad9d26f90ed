"""Writes the speech probabilities Silero VAD's own ONNX model gives each 32 ms
frame of a 16 kHz WAV file, computed by ONNX Runtime as the silero-vad package
does, for tests/vad.rs to compare Sori's tract run against.

Usage (in a venv with onnxruntime==1.32.0 numpy==2.4.6 and the silero-vad==6.2.3 wheel unpacked):
    python scripts/silero_reference.py silero_vad/data/silero_vad.onnx tests/fixtures/audio/jfk.wav \
        > tests/fixtures/audio/jfk.silero_vad.json
"""

import json
import sys
import wave

import numpy as np
import onnxruntime

FRAME, CONTEXT = 512, 64


def main(model_path: str, wav_path: str) -> None:
    session = onnxruntime.InferenceSession(model_path)
    with wave.open(wav_path) as w:
        assert w.getframerate() == 16000 and w.getnchannels() == 1 and w.getsampwidth() == 2
        audio = np.frombuffer(w.readframes(w.getnframes()), dtype=np.int16).astype(np.float32) / 32768
    state = np.zeros((2, 1, 128), np.float32)
    context = np.zeros(CONTEXT, np.float32)
    probabilities = []
    for start in range(0, len(audio) - FRAME + 1, FRAME):
        x = np.concatenate([context, audio[start : start + FRAME]])[None, :]
        context = x[0, -CONTEXT:]
        out, state = session.run(None, {"input": x, "state": state, "sr": np.array(16000, dtype=np.int64)})
        probabilities.append(round(float(out[0][0]), 6))
    json.dump(
        {
            "about": "Speech probability of each whole 512-sample frame of jfk.wav from silero-vad 6.2.3's "
            "silero_vad.onnx run by ONNX Runtime (scripts/silero_reference.py)",
            "frame_samples": FRAME,
            "probabilities": probabilities,
        },
        sys.stdout,
    )
    print()


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
