"""The track lane draws each separated track's waveform (a min/max envelope per pixel column, built
on a worker thread), on the file view's time axis: a loud stretch of a track is drawn taller than
its silence, in the right columns, and zooming/scrolling the waveform moves it with the other
lanes. The window with tracks of a real recording is saved as tests/artifacts/track_lane_window.png."""

from __future__ import annotations

import os
import threading
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
from PySide6.QtGui import QImage  # noqa: E402
from PySide6.QtWidgets import QApplication  # noqa: E402

from app.widgets.tag_lane import color_for  # noqa: E402
from qtwindow import open_window  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
ARTIFACTS = ROOT / "tests" / "artifacts"
SR = 16000
REAL = Path("/usr/share/pocketsphinx/test/data/librivox/sense_and_sensibility_01_austen_64kb-0870.wav")


def _rgb(img: QImage) -> np.ndarray:
    img = img.convertToFormat(QImage.Format.Format_RGB32)
    a = np.frombuffer(img.constBits(), np.uint8).reshape(img.height(), img.bytesPerLine() // 4, 4)[:, :img.width()]
    return a[..., 2::-1].astype(int)  # BGRA -> RGB


def _heights(lane, img: np.ndarray, name: str, row: int) -> np.ndarray:
    """Per widget column: how many pixels of the row's band have the track's waveform colour."""
    c = color_for(name)
    top, bottom = int(lane.row_center(row) - (lane.row_center(1) - lane.row_center(0)) / 2), \
        int(lane.row_center(row) + (lane.row_center(1) - lane.row_center(0)) / 2)
    band = img[max(0, top):bottom]
    hit = (np.abs(band - np.array([c.red(), c.green(), c.blue()])) < 16).all(axis=2)
    return hit.sum(axis=0)


def _tracks(tmp_path) -> dict[str, str]:
    """Two 6 s tracks: "vocals" loud (0.8 peak noise) in 1-2 s, "drums" loud in 3-4 s; silent elsewhere."""
    rng = np.random.default_rng(1)
    out = {}
    for name, (s, e) in (("vocals", (1.0, 2.0)), ("drums", (3.0, 4.0))):
        y = np.zeros(6 * SR, np.float32)
        y[int(s * SR):int(e * SR)] = np.clip(0.3 * rng.standard_normal(int((e - s) * SR)), -0.8, 0.8)
        path = tmp_path / f"{name}.wav"
        sf.write(path, y, SR, subtype="FLOAT")
        out[name] = str(path)
    return out


def _window_with(qtbot, tmp_path, monkeypatch, audio: Path, tracks: dict[str, str], duration: float):
    w = open_window(qtbot, tmp_path, monkeypatch)
    w.resize(1600, 1000)
    w.file_list.add_paths([audio])
    fv = w.file_view
    qtbot.waitUntil(lambda: fv.overview is not None and fv.overview.complete and fv.overview.path == audio,
                    timeout=20000)
    lane = w.panels["TimelinePanel"].track_lane
    assert lane in fv.lanes  # under the file view, its x axis linked to the waveform's
    lane.set_tracks(tracks, duration)
    qtbot.waitUntil(lambda: lane.pending() == 0 and all(f in lane.envelopes for f in tracks.values()), timeout=20000)
    # room for two rows (the splitter squeezes the lanes otherwise), as tests/test_timeline_app.py lays them out
    fv.split.setSizes([150, 150] + [120 if fv.split.widget(i) is lane else 64 for i in range(2, fv.split.count())])
    QApplication.processEvents()
    return w, fv, lane


def test_each_track_is_drawn_as_its_waveform_in_sync_with_the_view(qtbot, tmp_path, monkeypatch):
    from app import overview as O

    threads = []
    real = O.compute

    def spy(*a, **k):
        threads.append(threading.current_thread() is threading.main_thread())
        return real(*a, **k)

    monkeypatch.setattr(O, "compute", spy)
    tracks = _tracks(tmp_path)
    mix = tmp_path / "mix.wav"
    sf.write(mix, sum(sf.read(f, dtype="float32")[0] for f in tracks.values()), SR)
    w, fv, lane = _window_with(qtbot, tmp_path, monkeypatch, mix, tracks, 6.0)
    assert threads and not any(threads)  # every file (the mix's overview and each track's envelope) off the GUI thread
    n = len(threads)
    lane.set_tracks(dict(tracks), 6.0)  # the panel calls this again whenever a job ends: nothing is recomputed
    QApplication.processEvents()
    assert len(threads) == n and lane.pending() == 0

    fv.waveform.set_view(0.0, 6.0)
    QApplication.processEvents()
    lane.repaint()
    img = _rgb(lane.grab().toImage())
    assert lane.view_range() == pytest.approx(fv.waveform.view_range())
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    lane.grab().save(str(ARTIFACTS / "track_lane.png"))
    for row, (name, (loud, quiet)) in enumerate((("vocals", (1.5, 3.5)), ("drums", (3.5, 1.5)))):
        h = _heights(lane, img, name, row)
        xl = [int(lane.x_of(t)) for t in np.linspace(loud - 0.4, loud + 0.4, 9)]
        xq = [int(lane.x_of(t)) for t in np.linspace(quiet - 0.4, quiet + 0.4, 9)]
        assert h[xl].min() >= 20, f"{name}: loud stretch heights {h[xl]}"
        assert h[xq].max() <= 2, f"{name}: silent stretch heights {h[xq]}"  # a 1 px line at zero
        # the stretch starts and ends where the track does (within a column or two)
        lit = np.flatnonzero(h >= 10)
        assert abs(lit.min() - lane.x_of(loud - 0.5)) <= 2 and abs(lit.max() - lane.x_of(loud + 0.5)) <= 2

    # zoom into 2.5-4.5 s on the waveform: the lane follows, the drums' loud second fills the middle half
    fv.waveform.set_view(2.5, 4.5)
    QApplication.processEvents()
    lane.repaint()
    assert lane.view_range() == pytest.approx((2.5, 4.5), abs=1e-6)
    img = _rgb(lane.grab().toImage())
    h = _heights(lane, img, "drums", 1)
    lit = np.flatnonzero(h >= 10)
    x3, x4 = lane.x_of(3.0), lane.x_of(4.0)
    assert abs(lit.min() - x3) <= 2 and abs(lit.max() - x4) <= 2
    assert x4 - x3 > 0.45 * lane.getPlotItem().getViewBox().width()  # drawn at the zoomed scale
    assert _heights(lane, img, "vocals", 0)[int(x3):int(x4)].max() <= 2  # the vocals are silent there
    lane.grab().save(str(ARTIFACTS / "track_lane_zoomed.png"))
    # down to single samples (fewer than the columns): still drawn, joined up
    fv.waveform.set_view(3.2, 3.21)
    QApplication.processEvents()
    lane.repaint()
    h = _heights(lane, _rgb(lane.grab().toImage()), "drums", 1)
    assert (h[int(lane.x_of(3.2)) + 60:int(lane.x_of(3.21)) - 2] >= 1).all()  # joined up, no gaps (right of the name)
    xs, top, _ = lane.waves.drawn["drums"]
    assert len(xs) >= 150 and top.max() - top.min() > 20  # through each sample, up and down the row

    # a track that cannot be read: its row keeps its band and name, the others still draw
    bad = tmp_path / "broken.wav"
    bad.write_bytes(b"RIFF\x00\x00\x00\x00WAVEjunk")
    lane.set_tracks({**tracks, "other": str(bad)}, 6.0)
    qtbot.waitUntil(lambda: lane.pending() == 0, timeout=10000)
    assert str(bad) in lane.errors and str(bad) not in lane.envelopes and len(lane.rows) == 3
    fv.waveform.set_view(0.0, 6.0)
    QApplication.processEvents()
    lane.repaint()
    assert _heights(lane, _rgb(lane.grab().toImage()), "drums", 1)[int(lane.x_of(3.5))] >= 10
    w.close()


@pytest.mark.skipif(not REAL.exists(), reason="pocketsphinx-testdata is missing")
def test_window_screenshot_with_the_tracks_of_a_real_recording(qtbot, tmp_path, monkeypatch):
    """Two "speaker" tracks cut from a real LibriVox reading (its first and second halves): each
    row shows its half's speech envelope, the other half flat."""
    x, sr = sf.read(REAL, dtype="float32")
    half = len(x) // 2
    tracks = {}
    for k, (s, e) in enumerate(((0, half), (half, len(x))), 1):
        y = np.zeros_like(x)
        y[s:e] = x[s:e]
        tracks[f"speaker{k}"] = str(tmp_path / f"speaker{k}.wav")
        sf.write(tracks[f"speaker{k}"], y, sr, subtype="FLOAT")
    w, fv, lane = _window_with(qtbot, tmp_path, monkeypatch, REAL, tracks, len(x) / sr)
    fv.zoom(None)
    QApplication.processEvents()
    lane.repaint()
    img = _rgb(lane.grab().toImage())
    mid = len(x) / sr / 2
    for row, name in enumerate(tracks):
        h = _heights(lane, img, name, row)
        on = (0.3, mid - 0.3) if row == 0 else (mid + 0.3, len(x) / sr - 0.3)
        off = (mid + 0.3, len(x) / sr - 0.3) if row == 0 else (0.3, mid - 0.3)
        x_on = slice(int(lane.x_of(on[0])), int(lane.x_of(on[1])))
        x_off = slice(int(lane.x_of(off[0])), int(lane.x_of(off[1])))
        assert h[x_on].max() >= 20 and np.mean(h[x_on]) > 4 * max(1.0, np.mean(h[x_off])), name
        assert h[x_off].max() <= 2, name
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    w.grab().save(str(ARTIFACTS / "track_lane_window.png"))
    w.close()


def test_column_envelope_holds_each_columns_samples_and_joins_sparse_ones():
    from app.widgets.track_lane import column_envelope

    rng = np.random.default_rng(3)
    y = rng.standard_normal(10000).astype(np.float32)
    x = np.arange(10000) * 0.1 + 0.05  # 10 samples per pixel column
    cols, lo, hi = column_envelope(x, y, y, 0.0, 1000.0)
    assert list(cols) == list(range(1000))
    per = y.reshape(1000, 10)
    # a column's range reaches at most towards the nearest sample of each neighbour
    prev, nxt = np.r_[y[0], y[9::10][:-1]], np.r_[y[10::10], y[-1]]
    lim_hi = np.maximum(per.max(axis=1), np.maximum(prev, nxt))
    assert (hi >= per.max(axis=1)).all() and (lo <= per.min(axis=1)).all()
    assert (hi <= lim_hi + 1e-6).all()
    # 20 samples over 200 columns: every column drawn, its range between the two samples around it
    xs = np.arange(20) * 10.0 + 5
    ys = rng.uniform(-1, 1, 20)
    cols, lo, hi = column_envelope(xs, ys, ys, 0.0, 200.0)
    assert list(cols) == list(range(5, 195))
    k = (cols - 5) // 10  # the samples either side of each column
    a, b = ys[k], ys[np.minimum(k + 1, 19)]
    assert (lo >= np.minimum(a, b) - 1e-9).all() and (hi <= np.maximum(a, b) + 1e-9).all() and (hi >= lo).all()
    assert column_envelope(np.zeros(0), np.zeros(0), np.zeros(0), 0, 10)[0].size == 0
