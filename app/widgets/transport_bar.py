"""Transport: play/pause, stop, loop selection, position / duration readout."""

from __future__ import annotations

from PySide6.QtCore import Slot
from PySide6.QtWidgets import QHBoxLayout, QLabel, QStyle, QToolButton, QWidget


def _fmt(t: float) -> str:
    m, s = divmod(max(0.0, t), 60)
    return f"{int(m):d}:{s:06.3f}"


class TransportBar(QWidget):
    def __init__(self, actions: dict, parent=None) -> None:
        super().__init__(parent)
        self.setAccessibleName("Transport")
        self.actions = actions
        lay = QHBoxLayout(self)
        lay.setContentsMargins(4, 0, 4, 0)
        for name in ("play", "stop", "loop"):
            b = QToolButton(self)
            b.setDefaultAction(actions[name])
            lay.addWidget(b)
        self.position = QLabel("0:00.000 / 0:00.000", self)
        self.position.setAccessibleName("Playback position")
        self.position.setMinimumWidth(150)
        lay.addWidget(self.position)
        self.duration = 0.0
        self._pos = 0.0

    @Slot(float)
    def set_position(self, t: float) -> None:
        self._pos = t
        self.position.setText(f"{_fmt(t)} / {_fmt(self.duration)}")

    def set_playing(self, playing: bool) -> None:
        """Show a pause icon while playing."""
        a = self.actions["play"]
        icon = QStyle.StandardPixmap.SP_MediaPause if playing else QStyle.StandardPixmap.SP_MediaPlay
        a.setIcon(self.style().standardIcon(icon))

    @Slot(str, float)
    def set_duration(self, label: str, duration: float) -> None:
        self.duration = duration
        self.set_position(self._pos)
