"""Long files of unseen real speech for Whisper accuracy checks (int8 vs float32), and their scoring.

Each file is real short phrases with known text (pocketsphinx-testdata speakers, the alsa-utils
voice), each phrase said twice in a row, concatenated to 60-120 s. Speakers (see tests/voices.py):
``A`` LibriVox reader, ``B`` card names, ``C`` short commands, ``D`` alsa voice, ``E`` TIDIGITS
digits. Files come in two disjoint sets: ``CHOOSE`` (the int8 split was chosen on these, by
benchmarks/bench_whisper_int8.py) and ``CHECK`` (tests/test_whisper_int8.py asserts on these):
other speaker mixes, orders, pauses and lengths. The clip pool is small, so clips recur across the
sets; no file is in both. benchmarks/bench_whisper.py's in-process set is the five LibriVox
utterances alone, without repetition.

:func:`run` transcribes a file and records every 30 s window's decoding (start, temperature,
log-prob), including windows that end up skipped as silence; :func:`coverage` is the share of each
window's Silero speech that its words (word timestamps) cover.
"""

from __future__ import annotations

import functools
import re
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import voices  # noqa: E402

RATE = 16000
# every real clip with a known text (what the alsa voice says is its file name; "something.raw" and
# the TIDIGITS file name are what they say: "something.raw" as heard, the digits from the file name)
TEXTS = {**voices.WORDS, **voices.TUNE_WORDS, **voices.ALSA_WORDS,
         "something.raw": "go somewhere and do something",
         "tidigits/dhd.2934z.raw": "two nine three four zero"}


def speaker(name: str) -> str:
    return ("A" if name.startswith("librivox") else "B" if name.startswith("cards") else
            "D" if name.startswith("alsa:") else "E" if name.startswith("tidigits") else "C")


# (name, speakers, seconds, seed)
CHOOSE = [("choose-cards-alsa", "BD", 90, 1), ("choose-reader-cards-commands", "ABC", 90, 2),
          ("choose-short-four", "BCDE", 60, 3), ("choose-all", "ABCDE", 120, 4)]
CHECK = [("check-commands-alsa-cards", "CDB", 80, 11), ("check-reader-cards-alsa-digits", "ABDE", 100, 12)]


@functools.lru_cache(maxsize=None)
def long_file(speakers: str, seconds: float, seed: int, repeat: int = 2) -> tuple[np.ndarray, str]:
    """(16 kHz audio of at least ``seconds``, its text): ``speakers``' clips in turns, each said
    ``repeat`` times in a row, the clip order reshuffled (``seed``) on every round."""
    names = [n for n in TEXTS if speaker(n) in speakers and (not n.startswith("alsa:") or voices.alsa_available())]
    rng = np.random.default_rng(seed)
    by = {s: [n for n in names if speaker(n) == s] for s in speakers}
    by = {s: list(rng.permutation(v)) for s, v in by.items() if v}
    order, total = [], 0.0
    while total < seconds:
        for _, name in voices.interleave(by, "".join(by)):
            for _ in range(repeat):
                order.append(("x", name))
                total += len(voices.clip(name)) / RATE + 0.75
            if total >= seconds:
                break
        by = {s: list(rng.permutation(v)) for s, v in by.items()}
    audio, _, _ = voices.conversation(order, seed=seed, pause_range=(0.4, 1.1))
    return audio, " ".join(TEXTS[n] for _, n in order)


def files(which: list) -> list[tuple[str, np.ndarray, str]]:
    return [(name, *long_file(spk, sec, seed)) for name, spk, sec, seed in which]


_ONES = "zero one two three four five six seven eight nine ten eleven twelve thirteen fourteen fifteen " \
        "sixteen seventeen eighteen nineteen".split()
_TENS = "_ _ twenty thirty forty fifty sixty seventy eighty ninety".split()


def _spell(m: re.Match) -> str:
    s = m.group(0)
    n = int(s)
    if len(s) > 2 or s.startswith("0") and len(s) > 1:  # digit strings ("29340") are read digit by digit
        return " ".join(_ONES[int(c)] for c in s)
    return _ONES[n] if n < 20 else _TENS[n // 10] + ("" if n % 10 == 0 else " " + _ONES[n % 10])


def spoken(text: str) -> str:
    """Numbers as the words said ("10" -> "ten", "5, 5" -> "five five", "29340" -> digit by digit)."""
    return re.sub(r"\d+", lambda m: " " + _spell(m) + " ", text)


def wer(ref: str, hyp: str) -> float:
    from engine.wer import wer as _wer

    return _wer(spoken(ref), spoken(hyp))


@dataclass
class Run:
    text: str
    seconds: float
    windows: list[dict] = field(default_factory=list)  # {start, temperature, avg_logprob, no_speech_prob}
    segments: list = field(default_factory=list)

    @property
    def fallbacks(self) -> list[float]:
        """Start (s) of each window decoded at a temperature above 0."""
        return [w["start"] for w in self.windows if w["temperature"] > 0]


def run(model, tokenizer, audio: np.ndarray, **options) -> Run:
    """Transcribe ``audio`` (English), recording each window's decoding."""
    from engine.transcribe.whisper import longform

    windows: list[dict] = []
    inner = longform.decode_with_fallback

    def recording(*a, **k):
        r = inner(*a, **k)
        seek = sys._getframe(1).f_locals.get("seek", 0)  # the caller's window start, in mel frames
        windows.append(dict(start=round(seek * 160 / RATE, 2), temperature=r.temperature,
                            avg_logprob=round(r.avg_logprob, 3), no_speech_prob=round(r.no_speech_prob, 3)))
        return r

    longform.decode_with_fallback = recording
    try:
        t = time.perf_counter()
        tr = longform.transcribe(None, model, tokenizer, audio, language="en", **options)
        seconds = time.perf_counter() - t
    finally:
        longform.decode_with_fallback = inner
    return Run(tr.text, seconds, windows, tr.segments)


def coverage(audio: np.ndarray, segments, window: float = 30.0, threshold: float = 0.5) -> list[dict]:
    """Per ``window`` seconds of the file: Silero speech seconds, and how much of it lies inside some
    word's [start, end] (word timestamps), padded by 0.2 s either side for alignment jitter."""
    from engine.audio.vad import SileroVAD

    p = SileroVAD().probabilities(audio)
    hop = 512 / RATE
    t = np.arange(len(p)) * hop + hop / 2
    speech = p >= threshold
    covered = np.zeros(len(p), bool)
    for s in segments:
        for w in s.words or []:
            covered |= (t >= w.start - 0.2) & (t <= w.end + 0.2)
    out = []
    for a in np.arange(0.0, len(audio) / RATE, window):
        inside = (t >= a) & (t < a + window)
        sp = float((speech & inside).sum() * hop)
        out.append(dict(start=float(a), speech=sp, covered=float((speech & inside & covered).sum() * hop)))
    return out
