"""Waveform of the selected file: min/max overview, zoom/scroll, time ruler, playhead, selection.

Draws only what is visible, from the decimated :class:`app.overview.Overview` (two
buckets per pixel at most), so an hour-long file draws as fast as a second of audio.
Deep zoom (fewer than ~2 samples per pixel than the overview holds) reads the visible
range from the file on a worker thread and draws the real samples.
"""

from __future__ import annotations

import threading

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import Signal, Slot
from PySide6.QtGui import QColor

from ..overview import Overview
from ..threads import emit, make_timer

WAVE_COLOR = QColor(70, 160, 255)
PLAYHEAD_COLOR = QColor(255, 200, 40)


class WaveformView(pg.PlotWidget):
    selectionChanged = Signal(float, float)   # seconds; (0, 0) = no selection
    seekRequested = Signal(float)             # a click on the ruler area
    _detail_ready = Signal(object, float, object, int)

    def __init__(self, parent=None) -> None:
        super().__init__(parent=parent, background=QColor(24, 26, 30))
        self.setAccessibleName("Waveform")
        self.setToolTip("Waveform: scroll to zoom, drag to pan, right-drag or Shift+drag to select a range")
        self.setMinimumHeight(120)
        self.overview: Overview | None = None
        pi = self.getPlotItem()
        pi.setMenuEnabled(False)
        pi.hideButtons()
        pi.showGrid(x=True, y=False, alpha=0.15)
        pi.setLabel("bottom", "time", units="s")
        pi.setLabel("left", "amplitude")
        pi.getAxis("left").setWidth(48)
        pi.showAxis("right")
        pi.getAxis("right").setStyle(showValues=False)
        pi.getAxis("right").setPen(pg.mkPen(None))
        pi.setMouseEnabled(x=True, y=False)
        pi.setYRange(-1.05, 1.05, padding=0)
        vb = pi.getViewBox()
        vb.setLimits(yMin=-1.1, yMax=1.1)
        self.curve = pg.PlotCurveItem(pen=pg.mkPen(WAVE_COLOR, width=1))
        self.line = pg.PlotCurveItem(pen=pg.mkPen(WAVE_COLOR, width=1))
        pi.addItem(self.curve)
        pi.addItem(self.line)
        self.region = pg.LinearRegionItem(values=(0, 0), brush=pg.mkBrush(255, 255, 255, 40),
                                          movable=True)
        self.region.setZValue(-10)
        self.region.hide()
        pi.addItem(self.region)
        self.playhead = pg.InfiniteLine(0, angle=90, pen=pg.mkPen(PLAYHEAD_COLOR, width=2))
        pi.addItem(self.playhead)
        self.playhead.hide()
        self.message = pg.TextItem("Drop audio files here, or File → Open (Ctrl+O)", color=(180, 180, 180),
                                   anchor=(0.5, 0.5))
        pi.addItem(self.message)
        self.message.setPos(0.5, 0)
        pi.setXRange(0, 1, padding=0)
        self._detail: tuple[float, float, np.ndarray, int] | None = None
        self._detail_token = 0
        self._redraw_timer = make_timer(self, 15, single_shot=True)
        self._redraw_timer.timeout.connect(self.redraw)
        self._detail_timer = make_timer(self, 120, single_shot=True)
        self._detail_timer.timeout.connect(self._fetch_detail)
        vb.sigXRangeChanged.connect(lambda *_: self._redraw_timer.start())
        vb.sigResized.connect(lambda *_: self._redraw_timer.start())
        self.region.sigRegionChangeFinished.connect(self._region_changed)
        self._detail_ready.connect(self._on_detail)
        self._drag_start: float | None = None

    # -- data -------------------------------------------------------------------------------
    def set_overview(self, ov: Overview | None, keep_view: bool = False) -> None:
        first = self.overview is None or ov is None or self.overview.path != ov.path
        self.overview = ov
        self._detail = None
        pi = self.getPlotItem()
        # no file (or one that cannot be read): no numbers left over from the previous file
        for name in ("bottom", "left"):
            pi.getAxis(name).setStyle(showValues=ov is not None)
        if ov is None:
            self.curve.setData([], [])
            self.line.setData([], [])
            self.message.show()
            return
        self.message.hide()
        dur = max(ov.length, 1e-3)  # the whole file's span, also while it is still decoding
        pi.getViewBox().setLimits(xMin=0, xMax=dur, minXRange=min(dur, 0.002))
        if first and not keep_view:
            self.clear_selection()
            pi.setXRange(0, dur, padding=0)
        self.redraw()

    def set_message(self, text: str) -> None:
        self.message.setText(text)
        self.message.show()
        x0, x1 = self.getPlotItem().getViewBox().viewRange()[0]
        self.message.setPos((x0 + x1) / 2, 0)

    def view_range(self) -> tuple[float, float]:
        return tuple(self.getPlotItem().getViewBox().viewRange()[0])

    def set_right_margin(self, pixels: int) -> None:
        """Reserve space on the right so the time axis lines up with a plot that has a legend."""
        self.getPlotItem().getAxis("right").setWidth(max(0, int(pixels)))

    def set_view(self, t0: float, t1: float) -> None:
        self.getPlotItem().setXRange(t0, t1, padding=0)

    @Slot()
    def redraw(self) -> None:
        ov = self.overview
        if ov is None or not ov.levels:
            return
        t0, t1 = self.view_range()
        px = max(100, int(self.getPlotItem().getViewBox().width()))
        d = self._detail
        if d is not None and d[0] <= t0 and t1 <= d[1] + 1e-9:
            x, sr = d[2], d[3]
            i0, i1 = int((t0 - d[0]) * sr), int(np.ceil((t1 - d[0]) * sr)) + 1
            seg = x[max(0, i0):i1]
            t = d[0] + (np.arange(len(seg)) + max(0, i0)) / sr
            self.curve.setData([], [])
            self.line.setData(t, seg)
            return
        times, mn, mx, size = ov.envelope(t0, t1, px)
        if size == 1:  # every sample is there: draw the signal itself
            self.curve.setData([], [])
            self.line.setData(times, mn)
        else:  # zig-zag through (min, max) of each bucket: a filled envelope without gaps
            self.line.setData([], [])
            half = size / (2 * ov.samplerate)
            xs = np.empty(2 * len(mn))
            xs[0::2], xs[1::2] = times - half / 2, times + half / 2
            ys = np.empty(2 * len(mn), np.float32)
            ys[0::2], ys[1::2] = mn, mx
            self.curve.setData(xs, ys)
        if ov.complete and (t1 - t0) * ov.samplerate < px * max(2, ov.base * 2):
            self._detail_timer.start()

    # -- deep zoom --------------------------------------------------------------------------
    @Slot()
    def _fetch_detail(self) -> None:
        ov = self.overview
        if ov is None or ov.base == 1:
            return  # level 0 already holds every sample
        t0, t1 = self.view_range()
        span = t1 - t0
        a, b = max(0.0, t0 - span), min(ov.duration, t1 + span)
        self._detail_token += 1
        token = self._detail_token
        path = ov.path

        def work() -> None:
            from .. import overview as O

            try:
                x, sr = O.detail(path, a, b)
            except Exception:
                return
            emit(self._detail_ready, token, a, x, sr)

        threading.Thread(target=work, daemon=True).start()

    @Slot(object, float, object, int)
    def _on_detail(self, token, start, x, sr) -> None:
        if token != self._detail_token or self.overview is None:
            return
        self._detail = (start, start + len(x) / sr, x, sr)
        self.redraw()

    # -- playhead and selection ---------------------------------------------------------------
    def set_playhead(self, seconds: float | None) -> None:
        if seconds is None:
            self.playhead.hide()
            return
        self.playhead.setValue(seconds)
        self.playhead.show()
        t0, t1 = self.view_range()
        if self.overview is not None and not (t0 <= seconds <= t1):
            span = t1 - t0  # follow playback page by page
            self.set_view(seconds, seconds + span)

    def selection(self) -> tuple[float, float] | None:
        if not self.region.isVisible():
            return None
        a, b = self.region.getRegion()
        return (a, b) if b - a > 1e-4 else None

    def set_selection(self, a: float, b: float) -> None:
        if b - a <= 1e-4:
            self.clear_selection()
            return
        self.region.setRegion((a, b))
        self.region.show()
        self.selectionChanged.emit(a, b)

    def clear_selection(self) -> None:
        self.region.hide()
        self.region.setRegion((0, 0))
        self.selectionChanged.emit(0.0, 0.0)

    def _region_changed(self) -> None:
        a, b = self.region.getRegion()
        self.selectionChanged.emit(a, b)

    # Shift+drag (or right-drag) selects; a plain click seeks.
    def mousePressEvent(self, ev) -> None:
        from PySide6.QtCore import Qt

        if self.overview is not None and (ev.button() == Qt.MouseButton.RightButton or
                                          ev.modifiers() & Qt.KeyboardModifier.ShiftModifier):
            self._drag_start = self._time_at(ev.position())
            ev.accept()
            return
        self._press_pos = ev.position()
        super().mousePressEvent(ev)

    def mouseMoveEvent(self, ev) -> None:
        if self._drag_start is not None:
            t = self._time_at(ev.position())
            self.region.setRegion(sorted((self._drag_start, t)))
            self.region.show()
            ev.accept()
            return
        super().mouseMoveEvent(ev)

    def mouseReleaseEvent(self, ev) -> None:
        if self._drag_start is not None:
            a, b = sorted((self._drag_start, self._time_at(ev.position())))
            self._drag_start = None
            self.set_selection(a, b)
            ev.accept()
            return
        pos = getattr(self, "_press_pos", None)
        super().mouseReleaseEvent(ev)
        if pos is not None and self.overview is not None and (ev.position() - pos).manhattanLength() < 3:
            self.seekRequested.emit(max(0.0, min(self.overview.duration, self._time_at(ev.position()))))

    def _time_at(self, pos) -> float:
        vb = self.getPlotItem().getViewBox()
        p = vb.mapSceneToView(self.mapToScene(pos.toPoint()))
        return float(p.x())
