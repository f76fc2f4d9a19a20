"""engine.audio.chunking.overlap_add: exact reconstruction, linear models match whole-signal processing,
sink mode, progress, cancellation and bounded memory on an hour-long source."""

from __future__ import annotations

import tracemalloc

import numpy as np
import pytest

from engine.audio.chunking import ArraySource, fade_window, overlap_add, segment_starts
from engine.errors import Cancelled
from engine.jobs import JobState

RNG = np.random.default_rng(0)


class Collector:
    """A sink that records (start, length) and the data of every block."""

    def __init__(self) -> None:
        self.calls: list[tuple[int, int]] = []
        self.blocks: list[np.ndarray] = []

    def __call__(self, block: np.ndarray, start: int) -> None:
        self.calls.append((start, block.shape[-1]))
        self.blocks.append(block.copy())

    def joined(self) -> np.ndarray:
        return np.concatenate(self.blocks, axis=-1)


@pytest.mark.parametrize("length,segment,overlap", [
    (100_000, 8192, 1024), (8192, 8192, 1024), (100, 8192, 1024), (50_001, 4096, 0), (10_000, 1000, 500), (10_000, 1000, 990),
])
def test_identity_reconstructs(length, segment, overlap):
    x = RNG.standard_normal((2, length)).astype(np.float32)
    y = overlap_add(lambda c: c, x, segment, overlap)
    assert y.shape == x.shape and y.dtype == np.float32
    # exact up to float32 rounding of the summed weights (up to segment/stride terms per sample)
    tol = 1e-6 * max(1, segment // (segment - overlap))
    np.testing.assert_allclose(y, x, atol=tol, rtol=0)


def test_segment_starts_cover_everything():
    for length, seg, ov in [(100_000, 8192, 1024), (8193, 8192, 1024), (10, 8192, 0), (9000, 1000, 500)]:
        starts = segment_starts(length, seg, ov)
        assert starts[0] == 0 and starts[-1] + seg >= length
        assert all(b - a == seg - ov for a, b in zip(starts, starts[1:]))
    w = fade_window(100, 10)
    assert w.min() > 0 and w.max() == 1 and np.allclose(w[:10] + w[-10:][::-1], 2 * w[:10])


def test_linear_model_matches_whole_signal():
    """A centred FIR shorter than the overlap: equal to filtering the whole signal wherever every
    contributing segment saw the full filter context; near segment edges only the small ramp weight
    of the edge-affected samples remains."""
    x = RNG.standard_normal(100_000).astype(np.float32)
    h = np.hanning(33)[1:-1]
    h /= h.sum()
    half = len(h) // 2
    fir = lambda c: np.convolve(c, h, mode="same").astype(np.float32)  # noqa: E731
    segment, overlap = 8192, 1024
    ref = np.convolve(x, h, mode="same")
    y = overlap_add(fir, x, segment, overlap)
    assert y.shape == ref.shape
    near_edge = np.zeros(x.size, bool)
    for s in segment_starts(x.size, segment, overlap):
        for b in (s, s + segment):
            near_edge[max(0, b - half):b + half] = True
    near_edge[-half:] = False  # the signal's own end is zero-padded in both computations
    np.testing.assert_allclose(y[~near_edge], ref[~near_edge], atol=1e-5, rtol=0)
    # near an edge the damaged samples carry at most a ramp weight of (half + 0.5) / overlap
    assert np.abs(y - ref).max() < 2 * (half + 0.5) / overlap * np.abs(ref).max()
    assert near_edge.mean() < 0.02


def test_multichannel_and_ratio_outputs():
    """Leading shape may change (stems) and output may be longer than input (upsampling vocoder)."""
    x = RNG.standard_normal((2, 30_000)).astype(np.float32)
    stems = overlap_add(lambda c: np.stack([c, -2 * c]), x, 4096, 512)
    assert stems.shape == (2, 2, 30_000)
    np.testing.assert_allclose(stems[1], -2 * x, atol=1e-5)
    up = overlap_add(lambda c: np.repeat(c, 3, axis=-1), x, 4096, 512, out_length_ratio=3)
    assert up.shape == (2, 90_000)
    np.testing.assert_allclose(up, np.repeat(x, 3, axis=-1), atol=1e-6)


def test_sink_equals_array_mode():
    x = RNG.standard_normal((2, 77_777)).astype(np.float32)
    fn = lambda c: np.tanh(3 * c) * 0.5  # noqa: E731  (non-linear: exercises the cross-fade)
    whole = overlap_add(fn, x, 8000, 2000)
    sink = Collector()
    assert overlap_add(fn, ArraySource(x), 8000, 2000, sink=sink) is None
    starts = [s for s, _ in sink.calls]
    assert starts[0] == 0 and all(a + n == b for (a, n), b in zip(sink.calls, starts[1:]))  # in order, no gaps
    assert sum(n for _, n in sink.calls) == x.shape[1]
    np.testing.assert_array_equal(sink.joined(), whole)


def test_progress_monotonic_and_complete():
    seen = []
    state = JobState(listener=lambda s: seen.append(s.progress))
    overlap_add(lambda c: c, np.zeros(50_000, np.float32), 4096, 512, state=state)
    assert seen and seen[-1] == 1.0 and state.progress == 1.0
    assert all(a <= b for a, b in zip(seen, seen[1:]))
    assert len(set(seen)) == len(segment_starts(50_000, 4096, 512))


@pytest.mark.parametrize("where", ["between", "inside_model"])
def test_cancel_midway(where):
    state = JobState()
    sink = Collector()
    calls = [0]

    def model(c):
        calls[0] += 1
        if where == "inside_model" and calls[0] == 4:
            state.cancel()  # the user pressed Cancel while segment 4 was running
        return c

    def on_block(block, start):
        sink(block, start)
        if where == "between" and len(sink.calls) == 3:
            state.cancel()

    with pytest.raises(Cancelled):
        overlap_add(model, np.zeros(200_000, np.float32), 4096, 512, state=state, sink=on_block)
    assert len(sink.calls) == 3  # nothing delivered after the cancel request
    assert calls[0] == (3 if where == "between" else 4)
    assert state.progress < 1.0


def test_bad_arguments():
    x = np.zeros(1000, np.float32)
    with pytest.raises(ValueError, match="overlap"):
        overlap_add(lambda c: c, x, 100, 100)
    with pytest.raises(ValueError, match="empty"):
        overlap_add(lambda c: c, np.zeros(0, np.float32), 100, 10)
    with pytest.raises(ValueError, match="expected 100"):
        overlap_add(lambda c: c[..., :50], x, 100, 10)


class HourOfSine:
    """One hour of a 441 Hz sine at 44.1 kHz (a 100-sample period), synthesised on demand, never held whole."""

    sr = 44_100
    period = np.sin(2 * np.pi * np.arange(100) / 100).astype(np.float32) * 0.5

    def __init__(self, seconds: int = 3600) -> None:
        self.length = seconds * self.sr

    def read(self, start: int, stop: int) -> np.ndarray:
        phase = start % 100
        return np.tile(self.period, (stop - start + phase) // 100 + 1)[phase:phase + stop - start]


def test_memory_bounded_in_sink_mode():
    src = HourOfSine()
    segment, overlap = 30 * src.sr, src.sr  # 30 s segments, 1 s overlap
    total = [0, 0.0]
    last_end = [0]

    def sink(block, start):
        assert start == last_end[0]
        last_end[0] = start + block.shape[-1]
        total[0] += block.shape[-1]
        total[1] = max(total[1], float(np.abs(block).max()))
        np.testing.assert_allclose(block[:300], src.read(start, start + 300), atol=1e-6)

    tracemalloc.start()
    try:  # (its speed: benchmarks/bench_chunking.py)
        overlap_add(lambda c: c, src, segment, overlap, state=JobState(), sink=sink)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert total[0] == src.length and total[1] == pytest.approx(0.5, abs=1e-3)
    whole_output = src.length * 4  # 635 MB as float32
    assert peak < 16 * segment * 4, f"peak {peak / 1e6:.0f} MB"  # a handful of segments, not the hour
    assert peak < whole_output / 10
