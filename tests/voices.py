"""Real voices for the speaker tests: recordings of different real people, conversations built from
them, and the diarization error rate (DER).

Speakers (all real recordings, 16 kHz after resampling):

* ``A``: the LibriVox reader of *Sense and Sensibility* (pocketsphinx-testdata ``librivox/*.wav``);
* ``B``: the speaker of pocketsphinx-testdata ``cards/*.wav`` (playing-card names);
* ``C``: the speaker of pocketsphinx-testdata ``goforward.raw``, ``numbers.raw``, ``something.raw``;
* ``D``: the alsa-utils voice (``/usr/share/sounds/alsa/{Front,Rear,Side}_*.wav``; only where
  alsa-utils is installed).

Each speaker's clips are split in two: ``TUNE`` clips were used to choose the diarization
parameters (``benchmarks/bench_diarization.py``), ``TEST`` clips never were: the tests build their
conversations from ``TEST`` clips only.
"""

from __future__ import annotations

import functools
from pathlib import Path

import numpy as np

PS = Path("/usr/share/pocketsphinx/test/data")
ALSA = Path("/usr/share/sounds/alsa")
RATE = 16000

TUNE = {
    "A": ["librivox/sense_and_sensibility_01_austen_64kb-0870.wav",
          "librivox/sense_and_sensibility_01_austen_64kb-0880.wav"],
    "B": ["cards/001.wav", "cards/002.wav"],
    "C": ["goforward.raw"],
    "D": ["alsa:Front_Center.wav", "alsa:Front_Left.wav", "alsa:Front_Right.wav"],
}
TEST = {
    "A": ["librivox/sense_and_sensibility_01_austen_64kb-0890.wav",
          "librivox/sense_and_sensibility_01_austen_64kb-0920.wav",
          "librivox/sense_and_sensibility_01_austen_64kb-0930.wav"],
    "B": ["cards/003.wav", "cards/004.wav", "cards/005.wav"],
    "C": ["numbers.raw@:2.22", "numbers.raw@2.22:", "something.raw"],  # numbers.raw cut at a pause
    "D": ["alsa:Rear_Center.wav", "alsa:Rear_Left.wav", "alsa:Rear_Right.wav", "alsa:Side_Left.wav",
          "alsa:Side_Right.wav"],
}
# what the TEST clips say (pocketsphinx-testdata transcriptions; the alsa voice says its file name)
WORDS = {
    "librivox/sense_and_sensibility_01_austen_64kb-0890.wav":
        "unless to be rather cold hearted and rather selfish is to be ill disposed",
    "librivox/sense_and_sensibility_01_austen_64kb-0920.wav":
        "had he married a more amiable woman he might have been made still more respectable than he was",
    "librivox/sense_and_sensibility_01_austen_64kb-0930.wav": "he might even have been made amiable himself",
    "cards/003.wav": "seven of clubs", "cards/004.wav": "five five",
    "cards/005.wav": "eight of spades four of clubs seven of hearts",
}
# and the TUNE clips (benchmarks), where a transcript exists
TUNE_WORDS = {
    "librivox/sense_and_sensibility_01_austen_64kb-0870.wav":
        "and mister john dashwood had then leisure to consider how much there might be prudently in his power "
        "to do for them",
    "librivox/sense_and_sensibility_01_austen_64kb-0880.wav": "he was not an ill disposed young man",
    "cards/001.wav": "ten of clubs", "cards/002.wav": "four queen of clubs", "goforward.raw": "go forward ten meters",
    "alsa:Front_Center.wav": "front center", "alsa:Front_Left.wav": "front left", "alsa:Front_Right.wav": "front right",
}
ALSA_WORDS = {"alsa:Rear_Center.wav": "rear center", "alsa:Rear_Left.wav": "rear left",
              "alsa:Rear_Right.wav": "rear right", "alsa:Side_Left.wav": "side left",
              "alsa:Side_Right.wav": "side right"}


def available() -> bool:
    return (PS / "librivox").is_dir() and (PS / "cards" / "003.wav").exists() and (PS / "numbers.raw").exists()


def alsa_available() -> bool:
    return all((ALSA / n.split(":", 1)[1]).exists() for n in TUNE["D"] + TEST["D"])


@functools.lru_cache(maxsize=None)
def clip(name: str) -> np.ndarray:
    """One recording as float32 mono at 16 kHz; ``name@a:b`` is seconds a to b of it."""
    import soundfile as sf
    import soxr

    if "@" in name:
        name, _, span = name.partition("@")
        a, _, b = span.partition(":")
        x = clip(name)
        return x[int(float(a or 0) * RATE):int(float(b) * RATE) if b else len(x)]
    if name.startswith("alsa:"):
        x, sr = sf.read(str(ALSA / name[5:]), dtype="float32", always_2d=True)
        x = 0.5 * (x[:, 0] + x[:, -1])
        return soxr.resample(x, sr, RATE).astype(np.float32)
    path = PS / name
    if path.suffix == ".raw":  # headerless 16-bit little-endian PCM, 16 kHz mono
        return (np.fromfile(path, dtype="<i2").astype(np.float32) / 32768.0)
    x, sr = sf.read(str(path), dtype="float32")
    assert sr == RATE and x.ndim == 1
    return x


@functools.lru_cache(maxsize=None)
def speech_span(name: str) -> tuple[float, float]:
    """(first, last) second of speech inside a clip: its voiced span (Silero VAD on the clip alone,
    pauses inside it count as speech: the clip is one turn)."""
    from engine.audio.vad import SileroVAD

    p = SileroVAD().probabilities(clip(name))
    on = np.flatnonzero(p >= 0.5)
    assert len(on), name
    return on[0] * 512 / RATE, (on[-1] + 1) * 512 / RATE


def conversation(order: list[tuple[str, str]], pauses: list[float] | None = None, seed: int = 0,
                 pause_range: tuple[float, float] = (0.6, 1.2), lead: float = 0.5, trim: bool = False):
    """Clips one after another with pauses: (audio, reference turns [(start, end, speaker)], clip starts).

    ``order``: [(speaker, clip name)]; pauses between clips (silence, beyond the clips' own) drawn
    from ``pause_range`` unless given. ``trim``: only each clip's speech span (no silence of its own)."""
    rng = np.random.default_rng(seed)
    pauses = list(pauses) if pauses is not None else list(rng.uniform(*pause_range, len(order)))
    parts, ref, t = [np.zeros(int(lead * RATE), np.float32)], [], lead
    starts = []
    for (spk, name), pause in zip(order, pauses):
        x = clip(name)
        a, b = speech_span(name)
        if trim:
            x = x[int(a * RATE):int(b * RATE)]
            a, b = 0.0, len(x) / RATE
        ref.append((round(t + a, 3), round(t + b, 3), spk))
        starts.append(t)
        parts += [x, np.zeros(int(pause * RATE), np.float32)]
        t += len(x) / RATE + int(pause * RATE) / RATE
    return np.concatenate(parts), ref, starts


def interleave(clips: dict[str, list[str]], speakers: str) -> list[tuple[str, str]]:
    """Round-robin turns over ``speakers``, each clip once (the same speaker twice in a row only when
    nobody else has clips left)."""
    queues = {s: list(clips[s]) for s in speakers}
    order: list[tuple[str, str]] = []
    while any(queues.values()):
        added = False
        for s in speakers:
            if queues[s] and (not order or order[-1][0] != s):
                order.append((s, queues[s].pop(0)))
                added = True
        if not added:  # only the last speaker has clips left
            s = next(s for s in speakers if queues[s])
            order.append((s, queues[s].pop(0)))
    return order


# ---------------------------------------------------------------------------------------------
# diarization error rate


def der(reference: list[tuple[float, float, str]], hypothesis: list[tuple[float, float, str]],
        collar: float = 0.25, step: float = 0.01) -> dict:
    """Diarization error rate (NIST md-eval style) on a ``step`` grid: missed speech + false alarm +
    speaker confusion over the scored reference speech time, with the one-to-one mapping of
    hypothesis to reference speakers that maximises their overlap (Hungarian), and ``collar``
    seconds around every reference boundary not scored."""
    from scipy.optimize import linear_sum_assignment

    end = max([e for _, e, _ in reference] + [e for _, e, _ in hypothesis] + [0.0]) + 1.0
    n = int(np.ceil(end / step))
    rs = sorted({s for *_, s in reference})
    hs = sorted({s for *_, s in hypothesis})
    R = np.zeros((len(rs), n), bool)
    H = np.zeros((len(hs), n), bool)
    scored = np.ones(n, bool)
    for a, b, s in reference:
        R[rs.index(s), int(round(a / step)):int(round(b / step))] = True
        for x in (a, b):
            scored[max(0, int(round((x - collar) / step))):int(round((x + collar) / step))] = False
    for a, b, s in hypothesis:
        H[hs.index(s), int(round(a / step)):int(round(b / step))] = True
    R, H = R[:, scored], H[:, scored]
    nref, nhyp = R.sum(0), H.sum(0)
    overlap = R.astype(np.int64) @ H.T.astype(np.int64)  # (refs, hyps) frames together
    rows, cols = linear_sum_assignment(-overlap) if overlap.size else ([], [])
    correct = int(overlap[rows, cols].sum()) if len(rows) else 0
    total = int(nref.sum())
    missed = int(np.maximum(nref - nhyp, 0).sum())
    false_alarm = int(np.maximum(nhyp - nref, 0).sum())
    confusion = int(np.minimum(nref, nhyp).sum()) - correct
    mapping = {hs[c]: rs[r] for r, c in zip(rows, cols)}
    return {"der": (missed + false_alarm + confusion) / max(1, total), "missed": missed * step,
            "false_alarm": false_alarm * step, "confusion": confusion * step, "scored": total * step,
            "mapping": mapping}


# ---------------------------------------------------------------------------------------------
# long files of short phrases (live transcription)


def phrases(split: str = "test", seconds: float = 60.0, seed: int = 0, repeat: int = 2,
            pause_range: tuple[float, float] = (0.5, 1.0)) -> tuple[np.ndarray, str]:
    """A long file of real short phrases of several speakers, each phrase said ``repeat`` times in a row:
    (16 kHz audio of at least ``seconds``, what is said). ``split``: "test" (tests: the TEST clips that
    have a transcript, and the alsa voice's rear/side names) or "tune" (benchmarks: other clips)."""
    if split == "test":
        words = dict(WORDS)
        if alsa_available():
            words.update(ALSA_WORDS)
    else:
        words = {k: v for k, v in TUNE_WORDS.items() if not k.startswith("alsa:") or alsa_available()}
    by_speaker: dict[str, list[str]] = {}
    for name in words:
        spk = "A" if name.startswith("librivox") else "B" if name.startswith("cards") else \
            "D" if name.startswith("alsa:") else "C"
        by_speaker.setdefault(spk, []).append(name)
    rng = np.random.default_rng(seed)
    order, total = [], 0.0
    while total < seconds:
        for _, name in interleave(by_speaker, "".join(sorted(by_speaker))):
            if total >= seconds:
                break
            for _ in range(repeat):
                order.append(("x", name))
                total += len(clip(name)) / RATE + sum(pause_range) / 2
        for v in by_speaker.values():
            rng.shuffle(v)
    audio, _, _ = conversation(order, seed=seed, pause_range=pause_range)
    return audio, " ".join(words[name] for _, name in order)
