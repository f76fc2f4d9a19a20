"""Live scrolling spectrogram of an input stream (at ~60 updates a second).

Pulls new frames from an :class:`engine.audio.capture.InputStream` ring buffer on a GUI timer,
computes one FFT column per ``hop`` samples and writes them into a circular 8-bit
image that is painted in two pieces, so each update costs a few FFTs and one blit
(no pyqtgraph, no re-allocation). Measures its own rate and its callback-to-screen delay:
``stats()`` returns updates per second and the latency percentiles.

Thin lines survive any size: each of the ``ROWS`` image rows shows the loudest FFT bin of its
frequency band (not one sampled bin, which a pure tone between two sampled bins would miss), and
a strip shorter than ``ROWS`` pixels shows, in each pixel row, the loudest of the image rows it
covers (a nearest-neighbour scale-down would drop whole rows: a 4800 Hz tone vanished from a
90 px strip). The pooled view is kept up to date column by column and rebuilt only on resize.
"""

from __future__ import annotations

import collections
import time

import numpy as np
from PySide6.QtCore import QPoint, QRect, Qt, QTimer, Slot
from PySide6.QtGui import QColor, QFont, QImage, QPainter, QPen
from PySide6.QtWidgets import QSizePolicy, QWidget

ROWS = 192
COLUMNS = 600            # history width in columns (multiple of 4 for QImage)
N_FFT = 1024
F_MIN = 40.0
DB_FLOOR, DB_CEIL = -100.0, -10.0


def _inferno_lut() -> list[int]:
    import pyqtgraph as pg

    lut = pg.colormap.get("inferno").getLookupTable(nPts=256, alpha=False)
    return [QColor(int(r), int(g), int(b)).rgb() for r, g, b in lut]


class LiveSpectrogram(QWidget):
    def __init__(self, parent=None, interval_ms: int = 15, log_frequency: bool = True) -> None:
        super().__init__(parent)
        self.setAccessibleName("Live spectrogram")
        self.setToolTip("Live spectrogram of the input (newest on the right)")
        self.setMinimumHeight(90)
        self.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Expanding)
        self.stream = None
        self.log_frequency = log_frequency
        self._img = np.zeros((ROWS, COLUMNS), np.uint8)
        self._lut = _inferno_lut()
        self._view_rows = 0  # pixel rows of the pooled view (min(ROWS, height)); built by _set_view_rows
        self._set_view_rows(ROWS)
        self._col = 0  # next column to write
        self.has_picture = False  # columns were drawn since the last clear(): keep them readable
        self._cursor = 0
        self._carry = np.zeros(0, np.float32)
        self._window = np.hanning(N_FFT).astype(np.float32)
        self._norm = float(np.sum(self._window) / 2) ** 2
        self._map = None
        self._timer = QTimer(self)
        self._timer.setTimerType(Qt.TimerType.PreciseTimer)
        self._timer.setInterval(interval_ms)
        self._timer.timeout.connect(self._tick)
        # measurements
        self.updates = 0
        self._paint_times: collections.deque = collections.deque(maxlen=600)
        self._latencies: collections.deque = collections.deque(maxlen=600)
        self._pending_arrival: float | None = None
        self.last_column_db: np.ndarray | None = None
        self.placeholder = "Press Monitor or Record (R) to see the input"
        self.on_paint = None  # optional callable(paint_time, column_peak_db) for measurements

    # -- source -----------------------------------------------------------------------------
    def attach(self, stream) -> None:
        """Show ``stream`` (an engine.audio.capture.InputStream), or None to freeze."""
        self.stream = stream
        if stream is None:
            self._timer.stop()
            return
        self.hop = max(128, int(stream.samplerate / 100))  # ~100 columns a second
        self._cursor = stream.cursor()
        self._carry = np.zeros(0, np.float32)
        self._build_map(stream.samplerate)
        self._timer.start()

    def _build_map(self, sr: int) -> None:
        """Row r (0 = top = highest) shows the loudest bin of its band: ``self._map`` is (ROWS, K)
        bin indices, a band of fewer than K bins repeats its last bin."""
        bins = N_FFT // 2 + 1
        nyq = sr / 2
        df = nyq / (bins - 1)
        if self.log_frequency:
            f = F_MIN * (nyq / F_MIN) ** (np.arange(ROWS) / (ROWS - 1))
            mid = np.sqrt(f[:-1] * f[1:])            # geometric midpoints between row centres
            bottom = f[0] ** 2 / mid[0]              # (the lowest row's band is as wide: DC stays out)
        else:
            f = np.linspace(0, nyq, ROWS)
            mid = (f[:-1] + f[1:]) / 2
            bottom = -np.inf
        lo = np.r_[bottom, mid]                      # band of row r: [lo, hi) in Hz
        hi = np.r_[mid, np.inf]
        first = np.clip(np.ceil(lo / df), 0, bins - 1).astype(int)
        last = np.clip(np.ceil(hi / df) - 1, 0, bins - 1).astype(int)
        narrow = last < first                        # no bin centre inside: the nearest bin
        near = np.clip(np.round(f / df).astype(int), 0, bins - 1)
        first[narrow] = last[narrow] = near[narrow]
        k = int((last - first).max()) + 1
        idx = np.minimum(first[:, None] + np.arange(k)[None, :], last[:, None])  # (ROWS, K)
        self._map = idx[::-1].copy()  # row 0 = top = highest frequency
        self._freqs = f[::-1]

    def _set_view_rows(self, n: int) -> None:
        """Pool the ROWS image rows into n pixel rows (each the max of the rows it covers)."""
        n = max(1, min(ROWS, int(n)))
        if n == self._view_rows:
            return
        self._view_rows = n
        self._pool = np.floor(np.arange(n) * ROWS / n).astype(np.intp)  # first image row of each pixel row
        self._view = np.ascontiguousarray(np.maximum.reduceat(self._img, self._pool, axis=0))  # (n, COLUMNS)
        self._qimg = QImage(self._view.data, COLUMNS, n, COLUMNS, QImage.Format.Format_Indexed8)
        self._qimg.setColorTable(self._lut)

    def y_of(self, hz: float) -> int:
        """The pixel row (in this widget) where ``hz`` is drawn; needs an attached stream's map."""
        r = int(np.argmin(np.abs(self._freqs - hz)))
        if self._view_rows < ROWS:  # pooled: one view row per pixel row
            return int(np.searchsorted(self._pool, r, side="right") - 1)
        return int((r + 0.5) * self.height() / ROWS)

    def resizeEvent(self, e) -> None:
        super().resizeEvent(e)
        self._set_view_rows(self.height())

    def clear(self) -> None:
        self._img[:] = 0
        self._view[:] = 0
        self.has_picture = False
        self.update()

    # -- update loop ------------------------------------------------------------------------
    @Slot()
    def _tick(self) -> None:
        s = self.stream
        if s is None:
            return
        data, self._cursor, lost = s.read(self._cursor)
        if len(data) == 0:
            return
        arrival = s.ring.last_write_time
        x = data.mean(axis=1) if data.shape[1] > 1 else data[:, 0]
        buf = np.concatenate([self._carry, x]) if len(self._carry) else x
        n_cols = (len(buf) - N_FFT) // self.hop + 1 if len(buf) >= N_FFT else 0
        if n_cols <= 0:
            self._carry = buf
            return
        if n_cols > COLUMNS:  # we fell far behind (window hidden): keep the newest only
            skip = n_cols - COLUMNS
            buf = buf[skip * self.hop:]
            n_cols = COLUMNS
        idx = np.arange(N_FFT)[None, :] + self.hop * np.arange(n_cols)[:, None]
        frames = buf[idx] * self._window
        power = np.abs(np.fft.rfft(frames, axis=1)) ** 2 / self._norm
        db = 10 * np.log10(power + 1e-12)
        self.last_column_db = db[-1]
        band = db[:, self._map].max(axis=2)  # (n_cols, ROWS): the loudest bin of each row's band
        v = np.clip((band - DB_FLOOR) * (255.0 / (DB_CEIL - DB_FLOOR)), 0, 255).astype(np.uint8)
        c = self._col
        first = min(n_cols, COLUMNS - c)
        self._img[:, c:c + first] = v[:first].T
        self._view[:, c:c + first] = np.maximum.reduceat(self._img[:, c:c + first], self._pool, axis=0)
        if first < n_cols:
            rest = n_cols - first
            self._img[:, :rest] = v[first:].T
            self._view[:, :rest] = np.maximum.reduceat(self._img[:, :rest], self._pool, axis=0)
        self._col = (c + n_cols) % COLUMNS
        self.has_picture = True
        self._carry = buf[n_cols * self.hop:].copy()
        self._pending_arrival = arrival
        self.update()

    def paintEvent(self, event) -> None:
        p = QPainter(self)
        w, h = self.width(), self.height()
        axis_w = 44
        iw = w - axis_w
        p.fillRect(self.rect(), QColor(24, 26, 30))
        c = self._col
        # oldest part (columns c..end) on the left, newest (0..c) on the right
        left_cols = COLUMNS - c
        split = int(round(iw * left_cols / COLUMNS))
        if left_cols:
            p.drawImage(QRect(axis_w, 0, split, h), self._qimg, QRect(c, 0, left_cols, self._view_rows))
        if c:
            p.drawImage(QRect(axis_w + split, 0, iw - split, h), self._qimg, QRect(0, 0, c, self._view_rows))
        if self.stream is None and not self.has_picture:
            p.setPen(QPen(QColor(150, 150, 150)))
            p.drawText(self.rect().adjusted(axis_w, 0, 0, 0), Qt.AlignmentFlag.AlignCenter | Qt.TextFlag.TextWordWrap,
                       self.placeholder)
        elif self.stream is None:  # stopped: the last seconds stay visible, only a small note says so
            p.setPen(QPen(QColor(200, 200, 200)))
            note = p.fontMetrics().boundingRect("stopped").adjusted(-4, -2, 4, 2)
            note.moveTopRight(self.rect().topRight() + QPoint(-4, 4))
            p.fillRect(note, QColor(24, 26, 30, 200))
            p.drawText(note, Qt.AlignmentFlag.AlignCenter, "stopped")
        # frequency labels
        if self._map is not None:
            p.setPen(QPen(QColor(200, 200, 200)))
            f = QFont(self.font())
            f.setPointSizeF(max(6.0, f.pointSizeF() * 0.8))
            p.setFont(f)
            for hz in (100, 1000, 10000):
                if self._freqs[-1] <= hz <= self._freqs[0]:
                    row = int(np.argmin(np.abs(self._freqs - hz)))
                    y = int(row * h / ROWS)
                    p.drawText(2, y + 4, f"{hz // 1000}k" if hz >= 1000 else str(hz))
                    p.drawLine(axis_w - 4, y, axis_w, y)
        p.end()
        now = time.monotonic()
        self.updates += 1
        self._paint_times.append(now)
        if self._pending_arrival is not None:
            self._latencies.append(now - self._pending_arrival)
            self._pending_arrival = None
            if self.on_paint is not None and self.last_column_db is not None:
                self.on_paint(now, float(self.last_column_db.max()))

    # -- measurements -----------------------------------------------------------------------
    def stats(self) -> dict:
        """Updates per second over the recent history and callback->screen latency (seconds)."""
        t = list(self._paint_times)
        rate = (len(t) - 1) / (t[-1] - t[0]) if len(t) > 2 and t[-1] > t[0] else 0.0
        lat = np.array(self._latencies) if self._latencies else np.zeros(1)
        input_latency = float(self.stream.latency) if self.stream is not None else 0.0
        return {"updates_per_s": rate, "latency_median": float(np.median(lat)),
                "latency_p95": float(np.percentile(lat, 95)), "input_latency": input_latency,
                "block_latency": (self.hop + N_FFT / 2) / self.stream.samplerate if self.stream else 0.0}

    def reset_stats(self) -> None:
        self._paint_times.clear()
        self._latencies.clear()

    def hideEvent(self, e) -> None:
        super().hideEvent(e)

    def closeEvent(self, e) -> None:
        self._timer.stop()
        super().closeEvent(e)
