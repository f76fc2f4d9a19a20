"""Decimated views of an audio file for drawing (no Qt): a min/max pyramid and a coarse spectrogram.

One streaming pass over the file (bounded memory) produces

- ``Overview.levels``: min/max envelopes, level ``k`` holding one (min, max) pair per
  ``base * 8**k`` samples. Drawing picks the coarsest level that still has about two
  buckets per pixel, so an hour-long file draws as quickly as a short one.
- ``Overview.spec``: a dB spectrogram with at most ``max_columns`` columns; each column is
  the average power of up to 8 FFT frames spread over its span.

Zoomed-in views far below the overview's resolution read just the visible range again
from the file (:func:`detail`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np

MAX_BASE_BUCKETS = 1 << 21   # level-0 buckets at most (~16 MB of min/max)
N_FFT = 1024


@dataclass
class Overview:
    path: Path
    samplerate: int
    frames: int = 0
    base: int = 1                                   # samples per level-0 bucket
    levels: list[tuple[np.ndarray, np.ndarray]] = field(default_factory=list)
    spec: np.ndarray | None = None                  # (columns, bins) dB
    spec_hop: int = 1                               # samples per spectrogram column
    peak: float = 0.0
    complete: bool = False
    total_frames: int = 0                           # the file's length from its header (known at once)

    @property
    def duration(self) -> float:
        """Seconds decoded so far (the whole file once ``complete``)."""
        return self.frames / self.samplerate

    @property
    def length(self) -> float:
        """The file's length in seconds: from the header while decoding, then what was decoded.

        Views use this for their time axis, so a partial overview fills the left part of the
        file's whole span instead of being stretched over the full width."""
        if self.complete or not self.total_frames:
            return self.duration
        return max(self.frames, self.total_frames) / self.samplerate

    def envelope(self, t0: float, t1: float, pixels: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, int]:
        """``(times, mins, maxs, samples_per_bucket)`` for ``[t0, t1]`` s, 0.5 to 4 buckets per pixel."""
        if not self.levels:
            return np.zeros(0), np.zeros(0), np.zeros(0), 1
        s0 = max(0, int(t0 * self.samplerate))
        s1 = min(self.frames, int(np.ceil(t1 * self.samplerate)))
        want = (s1 - s0) / max(1, 4 * pixels)  # at most 4 buckets per pixel
        k = 0
        while k + 1 < len(self.levels) and self.base * 8 ** k < want:
            k += 1
        size = self.base * 8 ** k
        mn, mx = self.levels[k]
        b0, b1 = s0 // size, min(len(mn), -(-s1 // size))
        b0, b1 = max(0, b0 - 1), min(len(mn), b1 + 1)  # one bucket beyond each edge
        times = (np.arange(b0, b1) * size + (size - 1) / 2) / self.samplerate
        return times, mn[b0:b1], mx[b0:b1], size


def _levels_from(mn: np.ndarray, mx: np.ndarray) -> list[tuple[np.ndarray, np.ndarray]]:
    levels = [(mn, mx)]
    while len(levels[-1][0]) > 2048:
        a, b = levels[-1]
        n = len(a) // 8 * 8
        if n == 0:
            break
        na, nb = a[:n].reshape(-1, 8).min(axis=1), b[:n].reshape(-1, 8).max(axis=1)
        if n < len(a):
            na = np.append(na, a[n:].min())
            nb = np.append(nb, b[n:].max())
        levels.append((na, nb))
    return levels


def compute(path: str | Path, max_columns: int = 3000, progress: Callable[[Overview, float], None] | None = None,
            cancelled: Callable[[], bool] | None = None, progress_every: float = 0.3,
            spectrogram: bool = True, max_buckets: int = MAX_BASE_BUCKETS) -> Overview:
    """Stream ``path`` once and build its overview; ``progress(ov, fraction)`` gets partial results.
    ``spectrogram=False``: the min/max envelopes only (``spec`` stays empty); ``max_buckets`` caps
    level 0 (a coarser, smaller envelope)."""
    import time

    from engine.audio import io as audio

    info = audio.info(path)
    n_total = max(1, info.frames)
    base = max(1, -(-n_total // max(1, int(max_buckets))))
    hop = max(N_FFT // 4, -(-n_total // max_columns))
    ov = Overview(Path(path), info.samplerate, 0, base, total_frames=int(info.frames))
    cap_b = n_total // base + 16
    mn = np.zeros(cap_b, np.float32)
    mx = np.zeros(cap_b, np.float32)
    nb = 0
    cap_c = n_total // hop + 4
    spec = np.full((cap_c if spectrogram else 0, N_FFT // 2 + 1), -120.0, np.float32)
    nc = 0
    window = np.hanning(N_FFT).astype(np.float32)
    norm = float(np.sum(window)) / 2
    k_frames = int(min(8, max(1, hop // (N_FFT // 2))))
    offsets = np.linspace(0, max(0, hop - N_FFT), k_frames).astype(int) if hop >= N_FFT else np.zeros(1, int)
    carry_env = np.zeros(0, np.float32)
    carry_spec = np.zeros(0, np.float32)
    last = time.monotonic()
    peak = 0.0

    def flush_spec(final: bool) -> None:
        nonlocal carry_spec, nc
        need = max(hop, N_FFT)
        while len(carry_spec) >= need or (final and len(carry_spec) >= N_FFT):
            seg = carry_spec[:need]
            # the last, partial column: only frames that fit (zero padding would splatter)
            offs = offsets[offsets <= len(seg) - N_FFT] if len(seg) < need else offsets
            frames = np.stack([seg[o:o + N_FFT] for o in offs]) * window
            power = np.mean(np.abs(np.fft.rfft(frames, axis=1)) ** 2, axis=0) / norm ** 2
            if nc < cap_c:
                spec[nc] = 10 * np.log10(power + 1e-12)
                nc += 1
            carry_spec = carry_spec[hop:]
            if final and len(carry_spec) == 0:
                break

    for block in audio.stream(path, block_frames=1 << 18, mono=True):
        if cancelled is not None and cancelled():
            break
        x = block.astype(np.float32, copy=False)
        if len(x):
            peak = max(peak, float(np.abs(x).max()))
        # envelope
        x_env = np.concatenate([carry_env, x]) if len(carry_env) else x
        m = len(x_env) // base * base
        if m:
            r = x_env[:m].reshape(-1, base)
            k = len(r)
            if nb + k > len(mn):
                grow = nb + k + 1024
                mn.resize(grow, refcheck=False)
                mx.resize(grow, refcheck=False)
            mn[nb:nb + k] = r.min(axis=1)
            mx[nb:nb + k] = r.max(axis=1)
            nb += k
        carry_env = x_env[m:].copy()
        # spectrogram
        if spectrogram:
            carry_spec = np.concatenate([carry_spec, x])
            flush_spec(False)
        ov.frames += len(x)
        if progress is not None and time.monotonic() - last > progress_every:
            last = time.monotonic()
            ov.levels = _levels_from(mn[:nb].copy(), mx[:nb].copy())
            ov.spec, ov.spec_hop, ov.peak = spec[:nc].copy(), hop, peak
            progress(ov, ov.frames / n_total)
    if len(carry_env):
        if nb + 1 > len(mn):
            mn.resize(nb + 1, refcheck=False)
            mx.resize(nb + 1, refcheck=False)
        mn[nb], mx[nb] = carry_env.min(), carry_env.max()
        nb += 1
    if spectrogram:
        flush_spec(True)
    ov.levels = _levels_from(mn[:nb], mx[:nb])
    ov.spec, ov.spec_hop, ov.peak = spec[:nc], hop, peak
    ov.complete = not (cancelled is not None and cancelled())
    return ov


def detail(path: str | Path, t0: float, t1: float, sr_hint: int | None = None) -> tuple[np.ndarray, int]:
    """Mono samples of ``[t0, t1]`` seconds read from the file (for deep zoom)."""
    from engine.audio import io as audio

    a, sr = audio.load(path, mono=True, start=max(0.0, t0), stop=t1)
    return a, sr


def spectrogram_range(path: str | Path, t0: float, t1: float, columns: int = 1500) -> tuple[np.ndarray, int, int]:
    """dB spectrogram ``(columns, bins)`` of ``[t0, t1]`` seconds of a file, streamed (bounded memory).

    Returns ``(spec, hop, samplerate)``. Each column averages up to 8 frames spread over its
    hop, so a wide range is summarised rather than sampled (no aliasing in time).
    """
    from engine.audio import io as audio

    sr = audio.info(path).samplerate
    n = max(1, int((t1 - t0) * sr))
    hop = max(64, n // max(1, columns))
    need = max(hop, N_FFT)
    k = int(min(8, max(1, hop // (N_FFT // 2))))
    offsets = np.linspace(0, max(0, hop - N_FFT), k).astype(int) if hop >= N_FFT else np.zeros(1, int)
    window = np.hanning(N_FFT).astype(np.float32)
    norm = (float(np.sum(window)) / 2) ** 2
    cols: list[np.ndarray] = []
    carry = np.zeros(0, np.float32)
    for block in audio.stream(path, block_frames=1 << 16, mono=True, start=max(0.0, t0),
                              stop=t1 + N_FFT / sr, check_finite=False):
        carry = np.concatenate([carry, np.nan_to_num(block)])
        while len(carry) >= need:
            frames = np.stack([carry[o:o + N_FFT] for o in offsets]) * window
            power = np.mean(np.abs(np.fft.rfft(frames, axis=1)) ** 2, axis=0) / norm
            cols.append(10 * np.log10(power + 1e-12))
            carry = carry[hop:]
    spec = np.array(cols, np.float32) if cols else np.zeros((0, N_FFT // 2 + 1), np.float32)
    return spec, hop, sr
