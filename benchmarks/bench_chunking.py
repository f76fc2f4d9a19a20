"""Overlap-add harness speed (engine.audio.chunking.overlap_add) on an hour of audio, in sink mode.

One hour of a 441 Hz sine at 44.1 kHz (synthesised on demand, never held whole) goes through
``overlap_add`` with an identity "model" in 30 s segments cross-faded over 1 s, blocks handed to
a sink as soon as they are final: the harness's own cost (reading, fading, adding, handing out).
Reports wall time, real-time factor and the peak of Python allocations (tracemalloc).

    python benchmarks/bench_chunking.py [--minutes 60] [--segment 30] [--overlap 1]

(tests/test_chunking.py checks the same run's output and its bounded memory; its speed is
measured here, not asserted there.)
"""

from __future__ import annotations

import argparse
import sys
import time
import tracemalloc
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from engine.audio.chunking import overlap_add  # noqa: E402
from engine.jobs import JobState  # noqa: E402


class Sine:
    sr = 44_100
    period = np.sin(2 * np.pi * np.arange(100) / 100).astype(np.float32) * 0.5

    def __init__(self, seconds: float) -> None:
        self.length = int(seconds * self.sr)

    def read(self, start: int, stop: int) -> np.ndarray:
        phase = start % 100
        return np.tile(self.period, (stop - start + phase) // 100 + 1)[phase:phase + stop - start]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--minutes", type=float, default=60.0)
    ap.add_argument("--segment", type=float, default=30.0, help="segment length, seconds")
    ap.add_argument("--overlap", type=float, default=1.0, help="cross-fade, seconds")
    args = ap.parse_args()
    src = Sine(args.minutes * 60)
    total = [0]

    def sink(block: np.ndarray, start: int) -> None:
        total[0] += block.shape[-1]

    tracemalloc.start()
    t0 = time.perf_counter()
    overlap_add(lambda c: c, src, int(args.segment * src.sr), int(args.overlap * src.sr), state=JobState(),
                sink=sink)
    elapsed = time.perf_counter() - t0
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert total[0] == src.length
    audio_s = src.length / src.sr
    print(f"{audio_s / 60:.0f} min of audio in {elapsed:.2f} s ({audio_s / elapsed:.0f}x real time), "
          f"peak Python allocations {peak / 1e6:.0f} MB")


if __name__ == "__main__":
    main()
