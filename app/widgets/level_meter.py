"""Input level meter: RMS bar, peak marker with hold, clip light, dBFS scale."""

from __future__ import annotations

import time

from PySide6.QtCore import QRectF, QTimer, Slot
from PySide6.QtGui import QColor, QPainter
from PySide6.QtWidgets import QSizePolicy, QWidget

DB_MIN = -60.0


class LevelMeter(QWidget):
    def __init__(self, parent=None, interval_ms: int = 33) -> None:
        super().__init__(parent)
        self.setAccessibleName("Input level")
        self.setToolTip("Input level (dBFS): bar = RMS, line = peak; red = clipping")
        self.setMinimumSize(120, 14)
        self.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Fixed)
        self.stream = None
        self.peak_db = self.rms_db = DB_MIN
        self._hold_db, self._hold_t = DB_MIN, 0.0
        self._clip_t = 0.0
        self._timer = QTimer(self)
        self._timer.setInterval(interval_ms)
        self._timer.timeout.connect(self._tick)

    def attach(self, stream) -> None:
        self.stream = stream
        if stream is None:
            self._timer.stop()
            self.set_levels(DB_MIN, DB_MIN)
        else:
            self._timer.start()

    @Slot()
    def _tick(self) -> None:
        if self.stream is not None:
            self.set_levels(*self.stream.level_db(0.05))

    def set_levels(self, peak_db: float, rms_db: float) -> None:
        now = time.monotonic()
        self.peak_db, self.rms_db = peak_db, rms_db
        if peak_db >= self._hold_db or now - self._hold_t > 1.5:
            self._hold_db, self._hold_t = peak_db, now
        if peak_db >= -0.1:
            self._clip_t = now
        self.setAccessibleDescription(f"peak {peak_db:.0f} dBFS")
        self.update()

    def _x(self, db: float, w: float) -> float:
        return max(0.0, min(1.0, (db - DB_MIN) / -DB_MIN)) * w

    def paintEvent(self, e) -> None:
        p = QPainter(self)
        w, h = self.width() - 14, self.height()
        p.fillRect(self.rect(), QColor(30, 32, 36))
        x = self._x(self.rms_db, w)
        green_end = self._x(-12, w)
        yellow_end = self._x(-3, w)
        p.fillRect(QRectF(0, 2, min(x, green_end), h - 4), QColor(60, 200, 90))
        if x > green_end:
            p.fillRect(QRectF(green_end, 2, min(x, yellow_end) - green_end, h - 4), QColor(230, 200, 50))
        if x > yellow_end:
            p.fillRect(QRectF(yellow_end, 2, x - yellow_end, h - 4), QColor(230, 70, 60))
        hx = self._x(self._hold_db, w)
        p.fillRect(QRectF(hx - 1, 0, 2, h), QColor(240, 240, 240))
        clip = time.monotonic() - self._clip_t < 1.0
        p.fillRect(QRectF(w + 3, 2, 10, h - 4), QColor(240, 50, 50) if clip else QColor(70, 40, 40))
        p.setPen(QColor(120, 120, 120))
        for db in (-48, -36, -24, -12, -6):
            xx = self._x(db, w)
            p.drawLine(int(xx), h - 3, int(xx), h)
        p.end()
