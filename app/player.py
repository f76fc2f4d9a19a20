"""Qt side of playback: one shared player the whole app (and every panel) plays through.

Wraps :class:`engine.live.Playback`; polls its position with a timer and emits
``positionChanged(seconds)``. Files are streamed from disk by the engine's read-ahead
feeder, so nothing waits for a long file to decode and memory stays small. With no
output device every call is a no-op and ``available``/``unavailable_reason`` say why.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PySide6.QtCore import QObject, QTimer, Signal, Slot

from engine.errors import SonoscopeError


class PlayerController(QObject):
    positionChanged = Signal(float)       # seconds
    stateChanged = Signal(str)            # "playing", "paused", "stopped"
    sourceChanged = Signal(str, float)    # label (file path or name), duration in seconds
    error = Signal(str)

    def __init__(self, output_device: str = "", available: bool = True, reason: str = "",
                 parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.available = available
        self.unavailable_reason = reason
        self.source_label = ""
        self._playback = None
        self._device = output_device
        self._state = "stopped"
        self._timer = QTimer(self)
        self._timer.setInterval(30)
        self._timer.timeout.connect(self._poll)

    # -- helpers ----------------------------------------------------------------------------
    @property
    def playback(self):
        if self._playback is None:
            from engine.live import Playback

            self._playback = Playback(self._device or None)
        return self._playback

    def set_output_device(self, name: str) -> None:
        self._device = name
        if self._playback is not None:
            self._playback.pause()
            self._playback._close_stream()  # re-opened on the new device at the next play
            self._playback.device_name = name or None
            self._timer.stop()
            self._set_state("paused" if self._state == "playing" else self._state)

    @property
    def state(self) -> str:
        return self._state

    @property
    def position(self) -> float:
        return self._playback.position if self._playback is not None else 0.0

    @property
    def duration(self) -> float:
        return self._playback.duration if self._playback is not None else 0.0

    def _set_state(self, state: str) -> None:
        if state != self._state:
            self._state = state
            self.stateChanged.emit(state)

    def _guard(self) -> bool:
        if not self.available:
            self.error.emit(f"Playback is disabled: {self.unavailable_reason}")
            return False
        return True

    # -- API for panels ---------------------------------------------------------------------
    def play_file(self, path: str | Path, start: float = 0.0) -> None:
        """Play ``path`` from ``start`` seconds, streamed from disk."""
        if not self._guard():
            return
        path = str(path)
        if path != self.source_label or self._playback is None or self.duration <= 0:
            try:
                self.playback.load_file(path)
            except SonoscopeError as e:
                self.error.emit(str(e))
                return
            self.source_label = path
            self._set_state("stopped")
            self.sourceChanged.emit(path, self.playback.duration)
        self._start(start)

    def play_array(self, audio: np.ndarray, sr: int, start: float = 0.0, label: str = "") -> None:
        """Play an in-memory signal ``(samples,)`` or ``(channels, samples)``."""
        if not self._guard():
            return
        try:
            self.playback.load(audio, sr)
        except SonoscopeError as e:
            self.error.emit(str(e))
            return
        self.source_label = label or "(generated audio)"
        self._set_state("stopped")
        self.sourceChanged.emit(self.source_label, self.playback.duration)
        self._start(start)

    def _start(self, start: float | None) -> None:
        try:
            self.playback.play(start)
        except SonoscopeError as e:
            self._set_state("stopped")
            self.error.emit(str(e))
            return
        self._set_state("playing")
        self._timer.start()

    def toggle(self) -> None:
        if self._state == "playing":
            self.pause()
        elif self._playback is not None and self.duration > 0 and self._guard():
            self._start(None)

    def play(self) -> None:
        if self._state != "playing":
            self.toggle()

    def pause(self) -> None:
        if self._playback is not None:
            self._playback.pause()
        self._timer.stop()
        self._set_state("paused")
        self.positionChanged.emit(self.position)

    def stop(self) -> None:
        if self._playback is not None:
            self._playback.stop()
        self._timer.stop()
        self._set_state("stopped")
        self.positionChanged.emit(self.position)

    def seek(self, seconds: float) -> None:
        if self._playback is not None:
            self._playback.seek(seconds)
            self.positionChanged.emit(self.position)

    def set_loop(self, start: float | None, stop: float | None = None) -> None:
        if self._playback is not None:
            self._playback.set_loop(start, stop)

    @Slot()
    def _poll(self) -> None:
        pb = self._playback
        if pb is None:
            return
        self.positionChanged.emit(pb.position)
        if not pb.playing and self._state == "playing":
            self._timer.stop()
            self._set_state("stopped")

    def close(self) -> None:
        self._timer.stop()
        if self._playback is not None:
            self._playback.close()
