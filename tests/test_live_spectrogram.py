"""The live spectrogram strip draws every tone of a sweep bright at its own row, however short the
strip is (a 90 px strip used to drop the 4800 Hz row: 192 image rows scaled down nearest-neighbour)
and at any sample rate (a tone between two sampled FFT bins used to be drawn dark)."""

from __future__ import annotations

import os

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
import numpy as np  # noqa: E402
import pytest  # noqa: E402
from PySide6.QtGui import QImage  # noqa: E402

from app.widgets.live_spectrogram import COLUMNS, LiveSpectrogram  # noqa: E402
from engine.audio.capture import RingBuffer  # noqa: E402

SWEEP = (300, 600, 1200, 2400, 4800)
AXIS_W = 44  # the strip's Hz axis, left of the picture


class FakeStream:  # the InputStream interface the widget reads
    channels, latency = 1, 0.0

    def __init__(self, samplerate):
        self.samplerate = samplerate
        self.ring = RingBuffer(samplerate * 4, 1)

    def cursor(self):
        return self.ring.written

    def read(self, cursor):
        return self.ring.read_from(cursor)


def luma(img: QImage) -> np.ndarray:
    a = np.frombuffer(img.convertToFormat(QImage.Format.Format_RGB32).constBits(), np.uint8)
    a = a.reshape(img.height(), -1, 4)[:, :img.width()]
    return 0.114 * a[..., 0] + 0.587 * a[..., 1] + 0.299 * a[..., 2]


@pytest.mark.parametrize("rate", [48000, 16000])
@pytest.mark.parametrize("height", [90, 300])
def test_every_tone_of_a_sweep_is_bright_at_its_row(qtbot, rate, height):
    w = LiveSpectrogram(interval_ms=5)
    qtbot.addWidget(w)
    w.resize(AXIS_W + 2 * COLUMNS, height)  # 2 px per column
    w.show()
    qtbot.waitExposed(w)
    s = FakeStream(rate)
    w.attach(s)
    t = np.arange(rate // 2) / rate
    sweep = np.concatenate([0.3 * np.sin(2 * np.pi * hz * t) for hz in SWEEP]).astype(np.float32)
    s.ring.write(np.r_[sweep, np.zeros(rate // 4, np.float32)][:, None])
    qtbot.waitUntil(lambda: w._cursor >= s.ring.written and w.has_picture, timeout=3000)
    qtbot.wait(50)
    y = luma(w.grab().toImage())
    assert y.shape[0] == height
    strip = y[:, AXIS_W:]
    far = w.y_of(10000 if rate > 20000 else 7000)  # nothing was played there
    spans = []
    for hz in SWEEP:
        row = strip[max(0, w.y_of(hz) - 1):w.y_of(hz) + 2].max(axis=0)
        lit = np.flatnonzero(row > 150)
        # 0.5 s = 50 columns = 100 px (the FFT window smears the edges by a few columns)
        assert len(lit) > 80, f"{hz} Hz at {rate} Hz, {height} px: {len(lit)} bright px in its row"
        assert strip[far, lit].mean() < 40, f"{hz} Hz lit a far row too"
        spans.append(np.median(lit))
    assert spans == sorted(spans)  # the sweep rises left (older) to right (newer)
    w.attach(None)
