"""Stem player: separated stems as tracks (waveform strip, solo / mute / volume, export tick) that
play in sync through the app's one player.

The stems are float WAV files; they are memory-mapped (never decoded into RAM) and mixed with the
current gains into one signal handed to ``ctx.player.play_array``, so they cannot drift apart.
Changing a gain while playing re-mixes and resumes at the same position.
"""

from __future__ import annotations

import struct
from pathlib import Path

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import Qt, Signal, Slot
from PySide6.QtGui import QColor
from PySide6.QtWidgets import (QCheckBox, QGridLayout, QHBoxLayout, QLabel, QPushButton, QSlider,
                               QVBoxLayout, QWidget)

COLORS = {"vocals": QColor(255, 120, 120), "accompaniment": QColor(120, 180, 255), "drums": QColor(255, 200, 80),
          "bass": QColor(150, 230, 120), "piano": QColor(210, 150, 255), "other": QColor(120, 200, 200)}
LABELS = {"accompaniment": "Accompaniment (+ everything above 11 kHz)", "other": "Other (+ everything above 11 kHz)"}


def map_float_wav(path: str | Path) -> tuple[np.ndarray, int]:
    """A float32 WAV as a read-only memory map ``(frames, channels)`` and its rate (RIFF chunk walk)."""
    with open(path, "rb") as f:
        head = f.read(12)
        if head[:4] != b"RIFF" or head[8:12] != b"WAVE":
            raise ValueError(f"{Path(path).name}: not a WAV file")
        channels = rate = bits = fmt = None
        pos = 12
        while True:
            chunk = f.read(8)
            if len(chunk) < 8:
                raise ValueError(f"{Path(path).name}: no data chunk")
            cid, size = chunk[:4], struct.unpack("<I", chunk[4:])[0]
            if cid == b"fmt ":
                body = f.read(size)
                fmt, channels, rate = struct.unpack_from("<HHI", body)
                bits = struct.unpack_from("<H", body, 14)[0]
                if fmt == 0xFFFE:  # WAVE_FORMAT_EXTENSIBLE: the sub-format's first two bytes
                    fmt = struct.unpack_from("<H", body, 24)[0]
            elif cid == b"data":
                if fmt != 3 or bits != 32:
                    raise ValueError(f"{Path(path).name}: not a 32-bit float WAV")
                frames = size // (4 * channels)
                return np.memmap(path, "<f4", "r", pos + 8, (frames, channels)), rate
            else:
                f.seek(size, 1)
            if size & 1:
                f.seek(1, 1)
            pos += 8 + size + (size & 1)


class _Track(QWidget):
    changed = Signal()

    def __init__(self, name: str, audio: np.ndarray, sr: int, parent=None) -> None:
        super().__init__(parent)
        self.name = name
        self.setAccessibleName(f"{name} track")
        color = COLORS.get(name, QColor(200, 200, 200))
        self.label = QLabel(LABELS.get(name, name.capitalize()), self)
        self.solo = QCheckBox("Solo", self)
        self.solo.setAccessibleName(f"Solo {name}")
        self.mute = QCheckBox("Mute", self)
        self.mute.setAccessibleName(f"Mute {name}")
        self.volume = QSlider(Qt.Orientation.Horizontal, self)
        self.volume.setRange(0, 150)
        self.volume.setValue(100)
        self.volume.setAccessibleName(f"{name} volume")
        self.volume.setToolTip("Volume (%)")
        self.export = QCheckBox("Export", self)
        self.export.setChecked(True)
        self.export.setAccessibleName(f"Export {name}")
        for w in (self.solo, self.mute):
            w.toggled.connect(self.changed)
        self.volume.valueChanged.connect(self.changed)
        self.plot = pg.PlotWidget(background=QColor(24, 26, 30))
        self.plot.setFixedHeight(56)
        self.plot.setMouseEnabled(x=False, y=False)
        self.plot.hideAxis("left")
        self.plot.hideAxis("bottom")
        self.plot.setMenuEnabled(False)
        self.plot.hideButtons()
        env_t, env_hi, env_lo = _envelope(audio, sr)
        self.plot.plot(env_t, env_hi, pen=pg.mkPen(color))
        self.plot.plot(env_t, env_lo, pen=pg.mkPen(color))
        self.plot.setYRange(-1, 1, padding=0)
        self.plot.setXRange(0, max(env_t[-1] if len(env_t) else 0, 1e-3), padding=0)
        self.playhead = pg.InfiniteLine(0, angle=90, pen=pg.mkPen(QColor(255, 200, 40), width=2))
        self.plot.addItem(self.playhead)
        top = QHBoxLayout()
        top.addWidget(self.label, 1)
        top.addWidget(self.solo)
        top.addWidget(self.mute)
        top.addWidget(QLabel("Vol", self))
        top.addWidget(self.volume)
        top.addWidget(self.export)
        lay = QVBoxLayout(self)
        lay.setContentsMargins(0, 0, 0, 0)
        lay.addLayout(top)
        lay.addWidget(self.plot)


def _envelope(audio: np.ndarray, sr: int, points: int = 1000) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Min/max of (a subsample of) the mono signal in ``points`` buckets: cheap even on an hour."""
    n = audio.shape[0]
    stride = max(1, n // (points * 16))
    sub = np.asarray(audio[::stride]).mean(axis=1)
    per = max(1, len(sub) // points)
    k = len(sub) // per
    if k == 0:
        return np.zeros(1), np.zeros(1), np.zeros(1)
    b = sub[: k * per].reshape(k, per)
    return np.arange(k) * per * stride / sr, b.max(1), b.min(1)


class StemPlayer(QWidget):
    """Tracks for ``{stem: float WAV path}``; plays their mix through ``ctx.player``."""

    exportRequested = Signal(list)  # stem names ticked for export

    def __init__(self, ctx, parent=None) -> None:
        super().__init__(parent)
        self.ctx = ctx
        self.setAccessibleName("Stem player")
        self.tracks: list[_Track] = []
        self.stems: dict[str, np.ndarray] = {}
        self.sr = 44100
        self.label = ""
        self.play_button = QPushButton("Play stems", self)
        self.play_button.setAccessibleName("Play or pause the stems")
        self.play_button.clicked.connect(self.toggle)
        self.position = QLabel("0:00.0", self)
        self.position.setAccessibleName("Stem playback position")
        bar = QHBoxLayout()
        bar.addWidget(self.play_button)
        bar.addWidget(self.position)
        bar.addStretch(1)
        self.grid = QGridLayout()
        self.empty = QLabel("Separate a track to hear its stems here: solo, mute and mix them, then "
                            "export the ones you want.", self)
        self.empty.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.empty.setEnabled(False)  # drawn greyed, as a hint
        lay = QVBoxLayout(self)
        lay.setContentsMargins(0, 0, 0, 0)
        lay.addLayout(bar)
        lay.addWidget(self.empty, 1)
        lay.addLayout(self.grid)
        self._show_empty(True)
        ctx.player.positionChanged.connect(self._position)
        ctx.player.stateChanged.connect(self._state)

    # -- content -------------------------------------------------------------------------------
    def set_stems(self, paths: dict[str, str | Path], label: str) -> None:
        self.clear()
        self.label = label
        for row, (name, path) in enumerate(paths.items()):
            audio, sr = map_float_wav(path)
            self.sr = sr
            self.stems[name] = audio
            track = _Track(name, audio, sr, self)
            track.changed.connect(self._gains_changed)
            self.grid.addWidget(track, row, 0)
            self.tracks.append(track)
        self._show_empty(not self.tracks)

    def clear(self) -> None:
        for t in self.tracks:
            t.setParent(None)
            t.deleteLater()
        self.tracks.clear()
        self.stems.clear()
        self._show_empty(True)

    def _show_empty(self, empty: bool) -> None:
        self.empty.setVisible(empty)
        self.play_button.setEnabled(not empty)

    def gains(self) -> dict[str, float]:
        """Effective gain of each stem: solo wins over mute, volume scales."""
        soloed = [t for t in self.tracks if t.solo.isChecked()]
        out = {}
        for t in self.tracks:
            audible = (t in soloed) if soloed else not t.mute.isChecked()
            out[t.name] = t.volume.value() / 100.0 if audible else 0.0
        return out

    def mix(self) -> np.ndarray:
        """The stems summed with the current gains: ``(channels, frames)`` float32."""
        if not self.stems:
            return np.zeros((2, 0), np.float32)
        g = self.gains()
        first = next(iter(self.stems.values()))
        out = np.zeros(first.shape, np.float32)
        for name, a in self.stems.items():
            if g[name]:
                out += np.float32(g[name]) * a
        return np.ascontiguousarray(out.T)

    def chosen(self) -> list[str]:
        return [t.name for t in self.tracks if t.export.isChecked()]

    # -- playback --------------------------------------------------------------------------------
    def _ours(self) -> bool:
        return self.ctx.player.source_label == self._source_label()

    def _source_label(self) -> str:
        return f"Stems: {self.label}"

    @Slot()
    def toggle(self) -> None:
        p = self.ctx.player
        if self._ours() and p.state == "playing":
            p.pause()
        elif self._ours() and p.state == "paused":
            p.toggle()
        else:
            self.play(0.0)

    def play(self, start: float) -> None:
        if not self.stems:
            return
        if not self.ctx.player.available:
            self.ctx.error(f"Playback is disabled: {self.ctx.player.unavailable_reason}")
            return
        self.ctx.player.play_array(self.mix(), self.sr, start=start, label=self._source_label())

    @Slot()
    def _gains_changed(self) -> None:
        if self._ours() and self.ctx.player.state == "playing":
            self.play(self.ctx.player.position)  # re-mix, resume where we are

    @Slot(float)
    def _position(self, seconds: float) -> None:
        if not self._ours():
            return
        for t in self.tracks:
            t.playhead.setValue(seconds)
        self.position.setText(f"{int(seconds // 60)}:{seconds % 60:04.1f}")

    @Slot(str)
    def _state(self, state: str) -> None:
        self.play_button.setText("Pause stems" if state == "playing" and self._ours() else "Play stems")
