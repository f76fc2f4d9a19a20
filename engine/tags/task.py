"""The tagging job: the one function the Tags panel and ``main.py tag`` both run.

The file is streamed (decoded block by block, resampled to the model's rate, mono) and cut into
windows of the model's native length every ``hop`` seconds; windows go through the model in
small batches, so memory stays bounded whatever the length. Each window's scores (sigmoid for
multi-label AudioSet taggers, softmax for exclusive classes) give:

* **tags**: the file's top labels, scores pooled over the windows (max for multi-label models: a
  sound counts if it is heard anywhere; mean for exclusive classes);
* **events**: for each label, the stretches where its score stays at or above ``threshold``
  (each window speaks for the ``hop`` seconds around its centre; gaps of one window are bridged),
  with the peak score.

Frame classifiers (wav2vec2 frame heads) give one score vector per model frame instead; windows
then do not overlap and events have the frame resolution.
"""

from __future__ import annotations

import os
from typing import Iterator

import numpy as np

from ..audio import io as audio_io
from ..compute import pick_device, set_threads
from ..errors import SonoscopeError
from ..jobs import JobState, null_state
from ..results import TagEvent, Tagging
from .taggers import Tagger, load_tagger

BATCH = 8


def windows(blocks: Iterator[np.ndarray], window: int, hop: int) -> Iterator[tuple[int, np.ndarray]]:
    """(start, samples) windows of ``window`` samples every ``hop`` from a block stream, plus a last
    window ending at the end of the signal when the hops do not reach it. A signal shorter than a
    window is one window of its own length. Keeps at most a window and a block in memory."""
    buf = np.zeros(0, np.float32)
    base = 0  # signal index of buf[0]
    nxt = 0  # start of the next window
    last_end = 0
    for b in blocks:
        buf = np.concatenate([buf, np.asarray(b, np.float32).reshape(-1)])
        while nxt + window <= base + len(buf):
            yield nxt, buf[nxt - base:nxt - base + window].copy()
            last_end = nxt + window
            nxt += hop
        # keep what the next window needs, and the last `window` samples for a tail window
        drop = min(nxt, base + len(buf) - window) - base
        if drop > 0:
            buf, base = buf[drop:], base + drop
    end = base + len(buf)
    if end == 0:
        return
    if last_end == 0:  # shorter than one window: the whole signal (buf still holds it)
        yield 0, buf.copy()
    elif last_end < end:
        start = end - window
        yield start, buf[start - base:].copy()


def scores_of(tagger: Tagger, logits: np.ndarray) -> np.ndarray:
    """Logits -> scores along the last axis (sigmoid, or softmax for exclusive classes)."""
    x = np.asarray(logits, np.float64)
    if tagger.multi_label:
        return (1.0 / (1.0 + np.exp(-x))).astype(np.float32)
    e = np.exp(x - x.max(-1, keepdims=True))
    return (e / e.sum(-1, keepdims=True)).astype(np.float32)


def events_from_scores(labels: list[str], scores: np.ndarray, spans: np.ndarray, threshold: float,
                       bridge: int = 1) -> list[TagEvent]:
    """Events from per-step scores ``(S, C)`` over time spans ``(S, 2)``: runs at or above ``threshold``,
    runs of the same label with at most ``bridge`` steps between them joined."""
    out: list[TagEvent] = []
    above = scores >= threshold
    for c in np.flatnonzero(above.any(0)):
        idx = np.flatnonzero(above[:, c])
        run = [idx[0]]
        for i in idx[1:]:
            if i - run[-1] <= bridge + 1:
                run.append(i)
                continue
            out.append(_event(labels[c], scores[:, c], spans, run))
            run = [i]
        out.append(_event(labels[c], scores[:, c], spans, run))
    return sorted(out, key=lambda e: (e.start, -e.score, e.label))


def _event(label: str, s: np.ndarray, spans: np.ndarray, run: list[int]) -> TagEvent:
    a, b = run[0], run[-1]
    return TagEvent(label, round(float(spans[a, 0]), 3), round(float(spans[b, 1]), 3), float(s[a:b + 1].max()))


def tag_file(state: JobState | None, path: str | os.PathLike, model: str | os.PathLike | None = None,
             window: float | None = None, hop: float = 1.0, threshold: float = 0.3, top: int = 10,
             device: str | None = "auto", threads: int | None = None, tagger: Tagger | None = None) -> Tagging:
    """Tag a file (any length, streamed): top labels of the whole file and labelled events over time.

    ``model``: catalog id or folder (default: the offline EfficientAT tagger); ``window`` seconds
    (default: the model's own), ``hop`` seconds between windows, ``threshold`` for events, ``top``
    tags kept. Progress and cancel through ``state``.
    """
    state = state or null_state()
    if hop <= 0:
        raise SonoscopeError(f"the hop must be positive, not {hop}")
    if not 0.0 < threshold <= 1.0:
        raise SonoscopeError(f"the threshold is a score between 0 and 1, not {threshold}")
    info = audio_io.info(path)  # a bad input fails before a model is loaded
    if threads:
        set_threads(threads)
    if tagger is None:
        state.update(status="loading model")
        tagger = load_tagger(model, state=state.sub(0.0, 0.05), device=str(pick_device(device)))
    sr = tagger.sample_rate
    win = max(1, int(round((window or tagger.window) * sr)))
    step = win if tagger.frame_seconds else max(1, int(round(hop * sr)))
    total = max(1, int(info.frames * sr / max(1, info.samplerate)))
    sub = state.sub(0.05, 0.99)
    sub.update(progress=0.0, status=f"tagging {os.path.basename(str(path))}")

    starts: list[int] = []
    lengths: list[int] = []
    per_step: list[np.ndarray] = []  # (C,) per window, or (T, C) per window for frame classifiers
    batch: list[tuple[int, np.ndarray]] = []

    def flush() -> None:
        if not batch:
            return
        same = len({len(w) for _, w in batch}) == 1
        groups = [batch] if same else [[b] for b in batch]
        for g in groups:
            lg = tagger.logits(np.stack([w for _, w in g]))
            for (s, w), out in zip(g, scores_of(tagger, lg)):
                starts.append(s)
                lengths.append(len(w))
                per_step.append(out)
        sub.update(progress=min(1.0, (batch[-1][0] + len(batch[-1][1])) / total))
        batch.clear()

    n_read = [0]

    def blocks() -> Iterator[np.ndarray]:
        for b in audio_io.stream(path, sr=sr, mono=True):
            n_read[0] += len(b)
            yield b

    for start, w in windows(blocks(), win, step):
        state.check()
        batch.append((start, w))
        if len(batch) >= BATCH:
            flush()
    flush()
    duration = n_read[0] / sr
    labels = tagger.labels
    if not per_step:
        return Tagging([], [], duration, tagger.name, str(path))
    if tagger.frame_seconds:
        fs = tagger.frame_seconds
        frames = [(s / sr + k * fs, out_k) for s, out in zip(starts, per_step) for k, out_k in enumerate(out)]
        scores = np.stack([o for _, o in frames])
        t0 = np.array([t for t, _ in frames])
        spans = np.stack([t0, np.minimum(t0 + fs, duration)], 1)
        bridge = 0
    else:
        scores = np.stack(per_step)  # (S, C)
        centres = (np.array(starts) + np.array(lengths) / 2) / sr
        half = hop / 2
        spans = np.stack([np.maximum(0.0, centres - half), np.minimum(duration, centres + half)], 1)
        spans[0, 0], spans[-1, 1] = 0.0, duration  # the first and last windows speak for the edges
        bridge = 1
    pooled = scores.max(0) if tagger.multi_label else scores.mean(0)
    order = np.argsort(-pooled, kind="stable")[:max(0, top)]
    tags = [(labels[i], float(pooled[i])) for i in order]
    events = events_from_scores(labels, scores, spans, threshold, bridge)
    state.update(progress=1.0, status="done")
    return Tagging(tags, events, round(duration, 3), tagger.name, str(path))
