"""Costs on the GUI thread of the drawing fixed in issue 17, side by side with what it replaced.

1. Live spectrogram, one timer tick (2 new FFT columns at 48 kHz, the usual case at ~60 ticks/s):
   the old row map (one sampled FFT bin per row) vs the new one (the loudest bin of each row's band,
   plus the max-pooled view kept for a short strip); and one paint of a 1280 px strip, 90 and 300 px tall.
2. Track lane: building a track's envelope (worker thread) with ``app.overview.compute`` as the
   file view does (with its spectrogram) vs envelopes only (``spectrogram=False``, capped buckets);
   and one paint of 4 tracks at 1200 px (whole file, and zoomed to 2 s), drawn afresh (the view
   changed) and from the lane's cached picture (only the playhead moved).

    python benchmarks/bench_lanes.py [--minutes 10]
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402
import soundfile as sf  # noqa: E402
from PySide6.QtWidgets import QApplication  # noqa: E402


def best(fn, n=50) -> float:
    """Median seconds of n calls."""
    t = []
    for _ in range(n):
        t0 = time.perf_counter()
        fn()
        t.append(time.perf_counter() - t0)
    return float(np.median(t))


class Stream:
    channels, latency, samplerate = 1, 0.0, 48000

    def __init__(self):
        from engine.audio.capture import RingBuffer

        self.ring = RingBuffer(48000 * 4, 1)

    def cursor(self):
        return self.ring.written

    def read(self, cursor):
        return self.ring.read_from(cursor)


def bench_spectrogram(rows: list) -> None:
    from app.widgets import live_spectrogram as L

    w = L.LiveSpectrogram()
    w.resize(1280, 90)
    s = Stream()
    w.attach(s)
    w._timer.stop()  # ticks driven by hand
    block = (0.3 * np.sin(2 * np.pi * 4800 * np.arange(960) / 48000)).astype(np.float32)[:, None]  # 2 columns

    def tick():
        s.ring.write(block)
        w._tick()

    new = best(tick, 300)
    # the old map: one bin per row, nearest to the row's frequency, no pooled view
    band_map = w._map
    f = w._freqs
    w._map = np.clip(np.round(f / 24000 * 512).astype(int), 0, 512)[:, None]
    saved_pool = w._pool
    w._pool = np.arange(L.ROWS)
    w._set_view_rows(L.ROWS)
    old = best(tick, 300)
    w._map, w._pool = band_map, saved_pool
    rows.append(("live spectrogram tick (2 columns, 48 kHz)", f"{old * 1e3:.3f} ms", f"{new * 1e3:.3f} ms"))
    from PySide6.QtGui import QImage

    img = QImage(1280, 300, QImage.Format.Format_RGB32)
    for h in (90, 300):
        w.resize(1280, h)
        w._set_view_rows(h)
        t = best(lambda: w.render(img), 100)
        rows.append((f"live spectrogram paint 1280x{h}", "", f"{t * 1e3:.2f} ms"))
    w.attach(None)


def bench_tracks(rows: list, minutes: float) -> None:
    from app import overview as O
    from app.widgets.track_lane import ENVELOPE_BUCKETS, TrackLane

    tmp = Path(tempfile.mkdtemp(prefix="bench-lanes-"))
    sr = 44100
    n = int(minutes * 60 * sr)
    rng = np.random.default_rng(0)
    path = tmp / "track.wav"
    sf.write(path, (0.2 * rng.standard_normal(n)).astype(np.float32), sr, subtype="FLOAT")
    t0 = time.perf_counter()
    full = O.compute(path)
    t_full = time.perf_counter() - t0
    t0 = time.perf_counter()
    env = O.compute(path, spectrogram=False, max_buckets=ENVELOPE_BUCKETS)
    t_env = time.perf_counter() - t0
    def mb(ov) -> float:
        return (sum(a.nbytes + b.nbytes for a, b in ov.levels) + (ov.spec.nbytes if ov.spec is not None else 0)) / 1e6

    rows.append((f"track envelope, {minutes:g} min 44.1 kHz (worker)", f"{t_full:.2f} s, {mb(full):.0f} MB",
                 f"{t_env:.2f} s, {mb(env):.1f} MB"))
    lane = TrackLane()
    lane.resize(1248, 240)
    lane.show()
    names = ["vocals", "drums", "bass", "other"]
    for k in names:
        lane.envelopes[str(tmp / f"{k}.wav")] = env
    lane.set_tracks({k: str(tmp / f"{k}.wav") for k in names}, n / sr)
    for label, (a, b) in (("whole file", (0, n / sr)), ("2 s zoom", (60, 62))):
        lane.getPlotItem().setXRange(a, b, padding=0)
        QApplication.processEvents()
        def fresh():
            lane.waves._key = None  # the view changed: draw the waves again
            lane.grab()

        now, cached = best(fresh, 30), best(lane.grab, 30)
        saved, lane.envelopes = lane.envelopes, {}  # the bars alone, as the lane drew before
        bars = best(fresh, 30)
        lane.envelopes = saved
        rows.append((f"track lane render, 4 tracks, {label}", f"{bars * 1e3:.1f} ms (bars)", f"{now * 1e3:.1f} ms"))
        rows.append((f"  same view again (playhead moved), {label}", "", f"{cached * 1e3:.1f} ms"))
    lane.close()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--minutes", type=float, default=10.0)
    args = ap.parse_args()
    app = QApplication.instance() or QApplication([])  # noqa: F841
    rows: list = []
    bench_spectrogram(rows)
    bench_tracks(rows, args.minutes)
    w = max(len(r[0]) for r in rows)
    print(f"| {'':{w}} | before / peer | now |")
    print(f"|{'-' * (w + 2)}|---|---|")
    for name, old, new in rows:
        print(f"| {name:{w}} | {old} | {new} |")
    print("(2 shared, contended cores: medians, indicative only)")


if __name__ == "__main__":
    main()
