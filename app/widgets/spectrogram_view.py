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

    def row_to_hz(self, y: float) -> float:
        if not self.log:
            return y
        return self.f_min * (self.f_max / self.f_min) ** (y / LOG_ROWS)

    def hz_to_row(self, f: float) -> float:
        if not self.log:
            return f
        return LOG_ROWS * math.log(f / self.f_min) / math.log(self.f_max / self.f_min)

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
        self._token = 0
        self._timer = make_timer(self, 150, single_shot=True)
        self._timer.timeout.connect(self._fetch_detail)
        self.plot.getViewBox().sigXRangeChanged.connect(lambda *_: self._view_changed())
        self._detail_ready.connect(self._on_detail)

    def link_x(self, plot_item) -> None:
        self.plot.setXLink(plot_item)

    def set_log_frequency(self, on: bool) -> None:
        self.log_frequency = on
        self.plot.setLabel("left", "frequency", units=None if on else "Hz")
        self._show_overview()

    def set_overview(self, ov: Overview | None) -> None:
        self.overview = ov
        self._detail = None
        self._show_overview()

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
        return (spec[:, lo] * (1 - w) + spec[:, hi] * w).T

    def _draw(self, spec: np.ndarray, sr: int, t0: float, t1: float) -> None:
        if spec is None or len(spec) == 0:
            self.image.clear()
            return
        img = self._rows(spec, sr)
        top = self.overview.peak if self.overview is not None else 1.0
        vmax = 20 * math.log10(max(top, 1e-6))
        levels = (vmax - self.db_range, vmax)
        self.image.setImage(np.ascontiguousarray(img), autoLevels=False, levels=levels)
        self.colorbar.setLevels(levels)
        nyq = sr / 2
        self.yaxis.f_max, self.yaxis.log = nyq, self.log_frequency
        height = LOG_ROWS if self.log_frequency else nyq
        self.image.setRect(QRectF(t0, 0, max(t1 - t0, 1e-6), height))
        self.plot.getViewBox().setLimits(yMin=0, yMax=height)
        self.plot.setYRange(0, height, padding=0)

    def _show_overview(self) -> None:
        ov = self.overview
        if ov is None or ov.spec is None:
            self.image.clear()
            return
        self._draw(ov.spec, ov.samplerate, 0.0, len(ov.spec) * ov.spec_hop / ov.samplerate)
        vb = self.plot.getViewBox()
        vb.setLimits(xMin=0, xMax=max(ov.duration, 1e-3))

    def _view_changed(self) -> None:
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
