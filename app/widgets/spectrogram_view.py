"""Spectrogram of the selected file: dB colour scale with a legend, linear or log frequency.

Shows the overview spectrogram (a few thousand columns for the whole file) and, when
zoomed in far enough that the overview gets blocky, recomputes just the visible range
from the file on a worker thread. The time axis is linked to the waveform view.
"""

from __future__ import annotations

import math
import threading

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import QRectF, Signal, Slot
from PySide6.QtGui import QColor

from ..overview import Overview
from ..threads import emit, make_timer

LOG_ROWS = 256
F_MIN = 20.0


class LogFrequencyAxis(pg.AxisItem):
    """Y axis of a log-frequency image: row coordinate -> Hz labels."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.f_min, self.f_max, self.log = F_MIN, 24000.0, True

    def set_scale(self, f_max: float, log: bool) -> None:
        """The image's top frequency and mapping. The axis caches its drawing and redraws it only
        when its range changes, which a new file's rate or the log switch need not do: drop it."""
        if (f_max, log) != (self.f_max, self.log):
            self.f_max, self.log = float(f_max), bool(log)
            self.picture = None
            self.update()

    # image row i (drawn over [i, i + 1]) holds f_min * (f_max / f_min) ** (i / (LOG_ROWS - 1)): see _rows
    def row_to_hz(self, y: float) -> float:
        if not self.log:
            return y
        return self.f_min * (self.f_max / self.f_min) ** ((y - 0.5) / (LOG_ROWS - 1))

    def hz_to_row(self, f: float) -> float:
        if not self.log:
            return f
        return (LOG_ROWS - 1) * math.log(f / self.f_min) / math.log(self.f_max / self.f_min) + 0.5

    def tickValues(self, minVal, maxVal, size):
        if not self.log:
            return super().tickValues(minVal, maxVal, size)
        cands = [f for f in (50, 100, 200, 500, 1000, 2000, 5000, 10000, 20000)
                 if self.f_min <= f <= self.f_max]
        return [(1.0, [self.hz_to_row(f) for f in cands])]

    def tickStrings(self, values, scale, spacing):
        out = []
        for v in values:
            f = self.row_to_hz(v) if self.log else v * scale
            out.append(f"{f / 1000:g}k" if f >= 1000 else f"{f:.0f}")
        return out


class SpectrogramView(pg.GraphicsLayoutWidget):
    _detail_ready = Signal(object, float, object, int, int)

    def __init__(self, parent=None, log_frequency: bool = True, db_range: int = 80) -> None:
        super().__init__(parent=parent)
        self.setBackground(QColor(24, 26, 30))
        self.setAccessibleName("Spectrogram")
        self.setToolTip("Spectrogram (dB): the colour bar on the right is the legend")
        self.setMinimumHeight(140)
        self.overview: Overview | None = None
        self.log_frequency = log_frequency
        self.db_range = db_range
        self.yaxis = LogFrequencyAxis("left")
        self.ci.setContentsMargins(0, 0, 0, 0)  # the plot's left edge lines up with the waveform's
        self.plot = self.addPlot(row=0, col=0, axisItems={"left": self.yaxis})
        self.plot.setMenuEnabled(False)
        self.plot.hideButtons()
        self.plot.setMouseEnabled(x=True, y=False)
        self.plot.setLabel("left", "frequency", units="Hz" if not log_frequency else None)
        self.plot.getAxis("left").setWidth(48)
        self.plot.setLabel("bottom", "time", units="s")
        self.image = pg.ImageItem(axisOrder="row-major")
        self.plot.addItem(self.image)
        cmap = pg.colormap.get("inferno")
        self.image.setColorMap(cmap)
        self.colorbar = pg.ColorBarItem(values=(-db_range, 0), colorMap=cmap, interactive=False,
                                        width=14, label="dB")
        self.colorbar.setImageItem(self.image, insert_in=None)
        self.addItem(self.colorbar, row=0, col=1)
        self.playhead = pg.InfiniteLine(0, angle=90, pen=pg.mkPen(QColor(255, 200, 40), width=2))
        self.plot.addItem(self.playhead)
        self.playhead.hide()
        self.region = pg.LinearRegionItem(values=(0, 0), brush=pg.mkBrush(255, 255, 255, 30), movable=False)
        self.region.hide()
        self.plot.addItem(self.region)
        self._detail: tuple[float, float] | None = None
        self._linked = None  # the waveform's plot item, which owns the time axis
        self._token = 0
        self._timer = make_timer(self, 150, single_shot=True)
        self._timer.timeout.connect(self._fetch_detail)
        self.plot.getViewBox().sigXRangeChanged.connect(lambda *_: self._view_changed())
        self._detail_ready.connect(self._on_detail)
        self._shown = None  # (display rows, samplerate, t0, t1) of the picture on screen
        self._repaint = make_timer(self, 30, single_shot=True)  # re-pool after a zoom or resize
        self._repaint.timeout.connect(self._paint_image)
        self.plot.getViewBox().sigResized.connect(lambda *_: self._repaint.start())

    def link_x(self, plot_item) -> None:
        self._linked = plot_item
        self.plot.setXLink(plot_item)

    def _follow_time_axis(self) -> None:
        """Take the time range from the linked waveform again. Needed after the x limits changed: the
        link copies the waveform's range when *it* changes, clamped by the limits this view had then
        (a previous file's length), and nothing re-sends it when only this view's limits change."""
        if self._linked is not None:
            self.plot.getViewBox().linkedViewChanged(self._linked.getViewBox(), pg.ViewBox.XAxis)

    def set_log_frequency(self, on: bool) -> None:
        self.log_frequency = on
        self.plot.setLabel("left", "frequency", units=None if on else "Hz")
        self._show_overview()

    def set_overview(self, ov: Overview | None) -> None:
        self.overview = ov
        self._detail = None
        self._token += 1  # a zoomed-in detail of the previous file must not land on this one
        vb = self.plot.getViewBox()
        vb.setLimits(xMin=0, xMax=max(ov.length, 1e-3) if ov is not None else None)
        for name in ("bottom", "left"):  # no file: no axis values left over from the previous one
            self.plot.getAxis(name).setStyle(showValues=ov is not None)
        self._show_overview()
        self._follow_time_axis()

    # -- drawing ----------------------------------------------------------------------------
    def _rows(self, spec: np.ndarray, sr: int) -> np.ndarray:
        """Map FFT bins (columns, bins) to display rows (rows, columns)."""
        nyq = sr / 2
        bins = spec.shape[1]
        if not self.log_frequency:
            return spec.T
        f = F_MIN * (nyq / F_MIN) ** (np.arange(LOG_ROWS) / (LOG_ROWS - 1))
        pos = f / nyq * (bins - 1)
        lo = np.clip(np.floor(pos).astype(int), 0, bins - 1)
        hi = np.clip(lo + 1, 0, bins - 1)
        w = (pos - lo).astype(np.float32)
        rows = spec[:, lo] * (1 - w) + spec[:, hi] * w
        # High rows span many FFT bins: sampling one point there would drop a narrow tone between
        # two rows (a 15 kHz tone all but vanished); such a row shows the loudest bin it covers.
        edges = F_MIN * (nyq / F_MIN) ** ((np.arange(LOG_ROWS + 1) - 0.5) / (LOG_ROWS - 1)) / nyq * (bins - 1)
        first = np.clip(np.ceil(edges[:-1]).astype(int), 0, bins)
        last = np.clip(np.floor(edges[1:]).astype(int), -1, bins - 1)
        for r in np.nonzero(last >= first)[0]:
            rows[:, r] = np.maximum(rows[:, r], spec[:, first[r]:last[r] + 1].max(axis=1))
        return rows.T

    def _draw(self, spec: np.ndarray, sr: int, t0: float, t1: float) -> None:
        if spec is None or len(spec) == 0:
            self._shown = None
            self.image.clear()
            return
        self._shown = (self._rows(spec, sr), sr, t0, t1)
        self._paint_image()

    @staticmethod
    def pool(img: np.ndarray, rows: int, cols: int) -> tuple[np.ndarray, float, float]:
        """Max-pool ``img`` (rows, columns) to at most ``rows`` x ``cols`` cells (whole factors, padded
        at the top and the right with silence). Returns the image and how much taller and wider the
        padded image is than ``img``, so that it can be placed at the same coordinates."""
        kr = max(1, -(-img.shape[0] // max(1, rows)))
        kc = max(1, -(-img.shape[1] // max(1, cols)))
        if kr == kc == 1:
            return img, 1.0, 1.0
        r, c = -(-img.shape[0] // kr) * kr, -(-img.shape[1] // kc) * kc
        padded = np.full((r, c), -120.0, np.float32)
        padded[:img.shape[0], :img.shape[1]] = img
        out = padded.reshape(r // kr, kr, c // kc, kc).max(axis=(1, 3))
        return out, r / img.shape[0], c / img.shape[1]

    @Slot()
    def _paint_image(self) -> None:
        """Put the current picture on screen with at most one image row per screen row and one column
        per screen column, keeping each cell's loudest value: drawn larger, the image would be
        sampled and a narrow tone or a short click could vanish between two sampled rows."""
        if self._shown is None:
            return
        img, sr, t0, t1 = self._shown
        vb = self.plot.getViewBox()
        v0, v1 = vb.viewRange()[0]
        span = max(t1 - t0, 1e-6)
        visible = max(1e-6, min(1.0, (v1 - v0) / span))
        img, fy, fx = self.pool(img, int(vb.height()) or img.shape[0],
                                int(max(1, vb.width()) / visible) or img.shape[1])
        top = self.overview.peak if self.overview is not None else 1.0
        vmax = 20 * math.log10(max(top, 1e-6))
        levels = (vmax - self.db_range, vmax)
        self.image.setImage(np.ascontiguousarray(img), autoLevels=False, levels=levels)
        self.colorbar.setLevels(levels)
        nyq = sr / 2
        self.yaxis.set_scale(nyq, self.log_frequency)
        height = LOG_ROWS if self.log_frequency else nyq
        self.image.setRect(QRectF(t0, 0, span * fx, height * fy))
        vb.setLimits(yMin=0, yMax=height)
        self.plot.setYRange(0, height, padding=0)

    def _show_overview(self) -> None:
        ov = self.overview
        if ov is None or ov.spec is None:
            self._shown = None
            self.image.clear()
            return
        self._draw(ov.spec, ov.samplerate, 0.0, len(ov.spec) * ov.spec_hop / ov.samplerate)

    def _view_changed(self) -> None:
        self._repaint.start()
        ov = self.overview
        if ov is None or not ov.complete or ov.spec is None:
            return
        t0, t1 = self.plot.getViewBox().viewRange()[0]
        width = max(100, int(self.plot.getViewBox().width()))
        cols_visible = (t1 - t0) * ov.samplerate / ov.spec_hop
        if cols_visible < width / 2:
            self._timer.start()
        elif self._detail is not None:
            self._detail = None
            self._show_overview()

    @Slot()
    def _fetch_detail(self) -> None:
        ov = self.overview
        if ov is None:
            return
        t0, t1 = self.plot.getViewBox().viewRange()[0]
        t0, t1 = max(0.0, t0), min(ov.duration, t1)
        if t1 <= t0:
            return
        self._token += 1
        token, path = self._token, ov.path
        width = max(200, int(self.plot.getViewBox().width()))

        def work() -> None:
            from .. import overview as O

            try:
                spec, hop, sr = O.spectrogram_range(path, t0, t1, columns=width)
            except Exception:
                return
            emit(self._detail_ready, token, t0, spec, sr, hop)

        threading.Thread(target=work, daemon=True).start()

    @Slot(object, float, object, int, int)
    def _on_detail(self, token, t0, spec, sr, hop) -> None:
        if token != self._token or self.overview is None:
            return
        self._detail = (t0, t0 + len(spec) * hop / sr)
        self._draw(spec, sr, t0, t0 + len(spec) * hop / sr)

    def set_playhead(self, seconds: float | None) -> None:
        if seconds is None:
            self.playhead.hide()
        else:
            self.playhead.setValue(seconds)
            self.playhead.show()

    def set_selection(self, a: float, b: float) -> None:
        if b - a > 1e-4:
            self.region.setRegion((a, b))
            self.region.show()
        else:
            self.region.hide()
