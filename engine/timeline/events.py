"""Sound events placed where the sound is: the tagger's windows smear them, the audio does not.

The tagger scores 3 s windows every second, and an event spans the centres (± half a hop) of the
windows at or above the threshold: a window that holds half a second of a dog already scores
"Dog", so the event starts up to ~1.5 s before the bark and ends as long after it (measured on the
timeline test file: a 6 s dog clip came out as 10-18 s for 10.9-16.9 s). :func:`refine_events`
moves each non-speech event's edges to the audio:

1. a loudness envelope of the file (20 ms frames every 10 ms, 16 kHz mono, streamed);
2. a frame is *sounding* when it is above the file's noise floor (``floor_db`` over the 10th
   percentile, and no more than ``range_db`` under the loudest frame), within ``event_db`` of the
   loudest such frame near the event (the room tone a speech clip carries around its voice is
   not part of the next bark) and not speech (inside a speaker turn or a word, padded by
   ``speech_pad``);
3. the event becomes the span from the first to the last sounding frame within its own span
   widened by ``slack`` seconds (a short run of frames at either edge, well apart from the rest,
   is left out: :func:`_runs`). An event with no sounding frame there (a sound under speech)
   keeps its times.

Speech-like labels are left as they are (speech is placed by the VAD and the words already).
"""

from __future__ import annotations

import dataclasses
import os

import numpy as np

from ..audio import SPEECH_RATE
from ..audio import io as audio_io
from ..results import TagEvent

FRAME, HOP = 320, 160  # 20 ms frames every 10 ms at 16 kHz


def envelope_db(path: str | os.PathLike | np.ndarray, check=None) -> np.ndarray:
    """Frame loudness (dBFS, one value per 10 ms) of a file (streamed) or a 16 kHz mono array."""
    blocks = [np.asarray(path, np.float32)] if isinstance(path, np.ndarray) else \
        audio_io.stream(path, sr=SPEECH_RATE, mono=True)
    out: list[np.ndarray] = []
    tail = np.zeros(0, np.float32)
    for b in blocks:
        if check is not None:
            check()
        x = np.concatenate([tail, np.asarray(b, np.float32).reshape(-1)])
        n = max(0, (len(x) - FRAME) // HOP + 1)
        if n:
            idx = np.arange(FRAME)[None, :] + HOP * np.arange(n)[:, None]
            out.append(10 * np.log10(np.mean(x[idx] ** 2, axis=1) + 1e-12))
        tail = x[n * HOP:]
    return np.concatenate(out) if out else np.zeros(0)


def speech_mask(n: int, spans, pad: float = 0.1) -> np.ndarray:
    """(n,) bool: frames (10 ms) inside any (start, end) speech span, padded."""
    m = np.zeros(n, bool)
    for a, b in spans:
        i, j = max(0, int((a - pad) * 100)), min(n, int(np.ceil((b + pad) * 100)))
        m[i:j] = True
    return m


def refine_events(events: list[TagEvent], env_db: np.ndarray, speech_spans, skip=lambda label: False,
                  slack: float = 0.5, floor_db: float = 12.0, range_db: float = 45.0, event_db: float = 30.0,
                  speech_pad: float = 0.25) -> list[TagEvent]:
    """``events`` with the edges of each non-speech one moved to its sound (module docstring).
    ``skip(label)``: labels left alone (speech)."""
    if len(env_db) == 0:
        return list(events)
    floor = max(float(np.percentile(env_db, 10)) + floor_db, float(env_db.max()) - range_db, -70.0)
    free = ~speech_mask(len(env_db), speech_spans, speech_pad)
    sounding = (env_db > floor) & free
    out = []
    for e in events:
        if skip(e.label):
            out.append(e)
            continue
        i = max(0, int((e.start - slack) * 100))
        j = min(len(env_db), int(np.ceil((e.end + slack) * 100)))
        on = sounding[i:j]
        if on.any():  # the event's own loudness: room tone left around speech is no part of a bark
            on = on & (env_db[i:j] > env_db[i:j][on].max() - event_db)
        runs = _runs(np.flatnonzero(on))
        if not runs:
            out.append(e)
            continue
        start = (i + runs[0][0]) * HOP / SPEECH_RATE
        end = ((i + runs[-1][1]) * HOP + FRAME) / SPEECH_RATE
        out.append(dataclasses.replace(e, start=round(start, 3), end=round(end, 3)))
    return sorted(out, key=lambda e: (e.start, -e.score, e.label))


def _runs(on: np.ndarray, bridge: int = 30, sliver: int = 25, apart: int = 50) -> list[tuple[int, int]]:
    """Runs (first, last frame) of sounding frames, gaps up to ``bridge`` frames joined; a run at
    either edge shorter than ``sliver`` frames and ``apart`` frames or more from the rest is dropped
    (a click or the room tone of a neighbouring clip, not the sound)."""
    runs: list[list[int]] = []
    for k in on.tolist():
        if runs and k - runs[-1][1] <= bridge:
            runs[-1][1] = k
        else:
            runs.append([k, k])
    while len(runs) > 1 and runs[0][1] - runs[0][0] < sliver and runs[1][0] - runs[0][1] >= apart:
        runs.pop(0)
    while len(runs) > 1 and runs[-1][1] - runs[-1][0] < sliver and runs[-1][0] - runs[-2][1] >= apart:
        runs.pop()
    return [(a, b) for a, b in runs]
