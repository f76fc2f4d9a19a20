"""The waveform of speech as it is synthesised: peaks appended block by block, a playhead.

Fed with ``(k, 2)`` min/max peaks (``engine.speech.stream.peaks``, one row per ``hop`` samples);
the view spans ``max(seconds so far, span)`` so that the drawing grows from the left while a
long text is synthesised, then shrinks to fit. Only the peaks are kept (bounded: 2 floats per
``hop`` samples), never the audio.
"""

from __future__ import annotations

import numpy as np
from PySide6.QtCore import QPointF, Qt
from PySide6.QtGui import QColor, QPainter, QPen, QPolygonF
from PySide6.QtWidgets import QSizePolicy, QWidget

BACKGROUND = QColor(24, 26, 30)
WAVE = QColor(90, 190, 255)
PLAYHEAD = QColor(255, 200, 60)


class SpeechWave(QWidget):
    def __init__(self, parent=None, span: float = 10.0) -> None:
        super().__init__(parent)
        self.setAccessibleName("Waveform of the speech")
        self.setMinimumHeight(90)
        self.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Expanding)
        self.span = span
        self.clear()

    def clear(self, sample_rate: int = 22050, hop: int = 256) -> None:
        self.sample_rate, self.hop = sample_rate, hop
        self._chunks: list[np.ndarray] = []
        self._peaks = np.zeros((0, 2), np.float32)
        self.playhead: float | None = None
        self.update()

    def append(self, peaks: np.ndarray) -> None:
        self._chunks.append(np.asarray(peaks, np.float32).reshape(-1, 2))
        self.update()

    @property
    def peaks(self) -> np.ndarray:
        if self._chunks:
            self._peaks = np.concatenate([self._peaks, *self._chunks])
            self._chunks = []
        return self._peaks

    @property
    def seconds(self) -> float:
        return len(self.peaks) * self.hop / self.sample_rate

    def set_playhead(self, seconds: float | None) -> None:
        self.playhead = seconds
        self.update()

    def paintEvent(self, e) -> None:
        p = QPainter(self)
        p.fillRect(self.rect(), BACKGROUND)
        w, h = self.width(), self.height()
        mid = h / 2
        p.setPen(QPen(QColor(60, 64, 72), 1))
        p.drawLine(0, int(mid), w, int(mid))
        pk = self.peaks
        total = max(self.seconds, self.span)
        if len(pk) and total > 0:
            # one column per pixel: min of mins, max of maxes of the peaks that fall in it
            per_px = total * self.sample_rate / self.hop / w
            cols = min(w, int(np.ceil(len(pk) / per_px)))
            edges = (np.arange(cols + 1) * per_px).astype(np.int64).clip(0, len(pk))
            edges[-1] = len(pk)
            lo = np.minimum.reduceat(pk[:, 0], edges[:-1].clip(max=len(pk) - 1))
            hi = np.maximum.reduceat(pk[:, 1], edges[:-1].clip(max=len(pk) - 1))
            scale = 0.95 * mid / max(1e-3, float(np.abs(pk).max()))
            top = [QPointF(x, mid - hi[x] * scale) for x in range(cols)]
            bottom = [QPointF(x, mid - lo[x] * scale + 1) for x in reversed(range(cols))]
            p.setPen(Qt.PenStyle.NoPen)
            p.setBrush(WAVE)
            p.drawPolygon(QPolygonF(top + bottom))
            if self.playhead is not None:
                x = self.playhead / total * w
                p.setPen(QPen(PLAYHEAD, 2))
                p.drawLine(QPointF(x, 0), QPointF(x, h))
        p.end()
