"""Stem player: separated stems as tracks (waveform strip, solo / mute / volume, export tick) that
play in sync through the app's one player.

The stems are float WAV files; they are memory-mapped (never decoded into RAM) and mixed with the
current gains into one buffer handed to ``ctx.player.play_array``, so they cannot drift apart.
The mix is kept up to date by a worker thread, never the GUI thread: a volume / solo / mute
change re-mixes the buffer in place block by block, starting where playback is, so the change is
heard within a block while the slider keeps moving; playback itself is not restarted. (If the
player ever copied the buffer instead of playing it, the finished mix is handed over again.)
"""

from __future__ import annotations

import struct
import threading
from pathlib import Path

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import Qt, Signal, Slot
from PySide6.QtGui import QColor
from PySide6.QtWidgets import (QCheckBox, QGridLayout, QHBoxLayout, QLabel, QPushButton, QSlider,
                               QVBoxLayout, QWidget)

from ..threads import emit

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

    def __init__(self, name: str, duration: float, parent=None) -> None:
        super().__init__(parent)
        self.name = name
        self.setAccessibleName(f"{name} track")
        self.color = COLORS.get(name, QColor(200, 200, 200))
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
        self.envelope = None  # (times, max, min) once the worker has read the stem
        self.plot.setYRange(-1, 1, padding=0)
        self.plot.setXRange(0, max(duration, 1e-3), padding=0)
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

    def set_envelope(self, env_t: np.ndarray, env_hi: np.ndarray, env_lo: np.ndarray) -> None:
        self.envelope = (env_t, env_hi, env_lo)
        self.plot.plot(env_t, env_hi, pen=pg.mkPen(self.color))
        self.plot.plot(env_t, env_lo, pen=pg.mkPen(self.color))


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


def mix_block(out: np.ndarray, stems: list[np.ndarray], gains: list[float], a: int, b: int) -> None:
    """``out[a:b] = sum(gain * stem[a:b])``, written in one copy (a reader never sees a partial sum)."""
    acc = None
    for stem, g in zip(stems, gains):
        if not g:
            continue
        part = np.asarray(stem[a:b], np.float32)
        if part.shape[1] != out.shape[1]:  # a mono stem in a stereo mix: on every channel
            part = np.broadcast_to(part.mean(axis=1, keepdims=True), (len(part), out.shape[1]))
        acc = part * np.float32(g) if acc is None else acc + part * np.float32(g)
    if acc is None:
        out[a:b] = 0
    else:
        out[a:b] = acc


class _MixState:
    """What the GUI asks the mixing thread for: the gains, where to start, and a version number."""

    def __init__(self) -> None:
        self.cond = threading.Condition()
        self.version = 0
        self.gains: list[float] = []
        self.start = 0          # frame to re-mix from first (where playback is)
        self.closed = False

    def ask(self, gains: list[float], start: int) -> int:
        with self.cond:
            self.version += 1
            self.gains, self.start = list(gains), int(start)
            self.cond.notify()
            return self.version


class StemPlayer(QWidget):
    """Tracks for ``{stem: float WAV path}``; plays their mix through ``ctx.player``."""

    exportRequested = Signal(list)  # stem names ticked for export
    mixed = Signal(int)                               # version: the whole buffer has these gains
    _head = Signal(object, int)                       # token, version: the block at the start is mixed
    _done = Signal(object, int)                       # token, version: the whole buffer is mixed
    _enveloped = Signal(object, int, object)          # token, track index, (t, hi, lo)

    BLOCK_SECONDS = 0.5

    def __init__(self, ctx, parent=None) -> None:
        super().__init__(parent)
        self.ctx = ctx
        self.setAccessibleName("Stem player")
        self.tracks: list[_Track] = []
        self.stems: dict[str, np.ndarray] = {}
        self.sr = 44100
        self.label = ""
        self.buffer: np.ndarray | None = None   # (frames, channels) float32: what plays
        self.mixed_version = -1                  # newest version fully in the buffer
        self._state: _MixState | None = None
        self._token = None
        self._pending_play: tuple[int, float] | None = None  # (version, start) waiting for its head block
        self._thread: threading.Thread | None = None
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
        self._head.connect(self._head_ready)
        self._done.connect(self._all_mixed)
        self._enveloped.connect(self._envelope_ready)
        ctx.player.positionChanged.connect(self._position)
        ctx.player.stateChanged.connect(self._state_changed)

    # -- content -------------------------------------------------------------------------------
    def set_stems(self, paths: dict[str, str | Path], label: str) -> None:
        """Show the stems (their headers are read here; samples only by the mixing thread)."""
        self.clear()
        self.label = label
        for name, path in paths.items():
            audio, sr = map_float_wav(path)
            self.sr = sr
            self.stems[name] = audio
        if not self.stems:
            return
        first = next(iter(self.stems.values()))
        frames = min(a.shape[0] for a in self.stems.values())
        for row, (name, audio) in enumerate(self.stems.items()):
            track = _Track(name, frames / self.sr, self)
            track.changed.connect(self._gains_changed)
            self.grid.addWidget(track, row, 0)
            track.show()  # now, not on a queued event: the player is whole when set_stems returns
            self.tracks.append(track)
        self._show_empty(False)
        self.buffer = np.zeros((frames, first.shape[1]), np.float32)  # pages arrive as they are mixed
        self.mixed_version = -1
        self._token = token = object()
        self._state = state = _MixState()
        state.ask(self._gain_list(), 0)
        self._thread = threading.Thread(target=self._mix_loop, name="sonoscope-stem-mixer", daemon=True,
                                        args=(token, state, list(self.stems.values()), self.buffer, self.sr))
        self._thread.start()

    def clear(self) -> None:
        if self._state is not None:
            with self._state.cond:
                self._state.closed = True
                self._state.cond.notify()
        self._state, self._token, self._pending_play = None, None, None
        for t in self.tracks:
            t.setParent(None)
            t.deleteLater()
        self.tracks.clear()
        self.stems.clear()
        self.buffer = None
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

    def _gain_list(self) -> list[float]:
        g = self.gains()
        return [g[name] for name in self.stems]

    def mix(self) -> np.ndarray:
        """The stems summed with the current gains, computed now: ``(channels, frames)`` float32.

        For tests and scripts; the player itself plays :attr:`buffer`, mixed on its thread."""
        if not self.stems:
            return np.zeros((2, 0), np.float32)
        frames = min(a.shape[0] for a in self.stems.values())
        out = np.zeros((frames, next(iter(self.stems.values())).shape[1]), np.float32)
        mix_block(out, list(self.stems.values()), self._gain_list(), 0, frames)
        return np.ascontiguousarray(out.T)

    def up_to_date(self) -> bool:
        """Whether the whole buffer holds the current gains."""
        return self._state is not None and self.mixed_version == self._state.version

    def chosen(self) -> list[str]:
        return [t.name for t in self.tracks if t.export.isChecked()]

    # -- mixing thread -------------------------------------------------------------------------
    def _mix_loop(self, token, state: _MixState, stems: list[np.ndarray], out: np.ndarray, sr: int) -> None:
        for i, stem in enumerate(stems):  # the waveform strips first: they read every stem once
            if state.closed:
                return
            emit(self._enveloped, token, i, _envelope(stem, sr))
        block = max(1024, int(self.BLOCK_SECONDS * sr))
        n = len(out)
        done = -1
        while True:
            with state.cond:
                while state.version == done and not state.closed:
                    state.cond.wait()
                if state.closed:
                    return
                version, gains, start = state.version, state.gains, min(max(0, state.start), n)
            # from where playback is to the end, then the beginning
            starts = list(range(start, n, block)) + list(range(0, start, block))
            for k, a in enumerate(starts):
                b = min(n, a + block, start if a < start else n)
                mix_block(out, stems, gains, a, b)
                if k == 0:
                    emit(self._head, token, version)
                if state.version != version or state.closed:
                    break
            else:
                done = version
                emit(self._done, token, version)

    @Slot(object, int, object)
    def _envelope_ready(self, token, index: int, env) -> None:
        if token is self._token and index < len(self.tracks):
            self.tracks[index].set_envelope(*env)

    @Slot(object, int)
    def _head_ready(self, token, version: int) -> None:
        if token is not self._token or self._pending_play is None or self._pending_play[0] != version:
            return
        start = self._pending_play[1]
        self._pending_play = None
        self._start_playback(start)

    @Slot(object, int)
    def _all_mixed(self, token, version: int) -> None:
        if token is not self._token:
            return
        self.mixed_version = version
        self.mixed.emit(version)
        p = self.ctx.player
        if (self._ours() and p.state == "playing" and not p.busy and self._state is not None
                and version == self._state.version and not self._playing_buffer()):
            self._start_playback(p.position)  # the player copied the buffer: hand it the new mix

    def _playing_buffer(self) -> bool:
        pb = getattr(self.ctx.player, "_playback", None)
        audio = getattr(pb, "audio", None) if pb is not None else None
        return audio is not None and self.buffer is not None and np.shares_memory(audio, self.buffer)

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
        if not self.stems or self._state is None:
            return
        if not self.ctx.player.available:
            self.ctx.error(f"Playback is disabled: {self.ctx.player.unavailable_reason}")
            return
        if self.up_to_date():
            self._start_playback(start)
            return
        # mix from `start` first; playback starts when that block is in the buffer
        version = self._state.ask(self._gain_list(), int(start * self.sr))
        self._pending_play = (version, start)

    def _start_playback(self, start: float) -> None:
        if self.buffer is not None:
            # (channels, frames) view of the buffer: played as it is, not copied, so re-mixes are heard
            self.ctx.player.play_array(self.buffer.T, self.sr, start=start, label=self._source_label())

    @Slot()
    def _gains_changed(self) -> None:
        if self._state is None:
            return
        p = self.ctx.player
        here = p.position if self._ours() and p.state in ("playing", "paused") else 0.0
        version = self._state.ask(self._gain_list(), int(here * self.sr))
        if self._pending_play is not None:
            self._pending_play = (version, self._pending_play[1])

    @Slot(float)
    def _position(self, seconds: float) -> None:
        if not self._ours():
            return
        for t in self.tracks:
            t.playhead.setValue(seconds)
        self.position.setText(f"{int(seconds // 60)}:{seconds % 60:04.1f}")

    @Slot(str)
    def _state_changed(self, state: str) -> None:
        self.play_button.setText("Pause stems" if state == "playing" and self._ours() else "Play stems")
