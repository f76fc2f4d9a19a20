"""Recording strip: record and monitor buttons, elapsed time, level meter and live spectrogram."""

from __future__ import annotations

from PySide6.QtCore import Qt, Slot
from PySide6.QtWidgets import QHBoxLayout, QLabel, QToolButton, QVBoxLayout, QWidget

from .level_meter import LevelMeter
from .live_spectrogram import LiveSpectrogram


def _clock(seconds: float) -> str:
    m, s = divmod(seconds, 60)
    h, m = divmod(int(m), 60)
    return f"{h:d}:{m:02d}:{s:04.1f}"


class RecordBar(QWidget):
    def __init__(self, controller, record_action, parent=None) -> None:
        super().__init__(parent)
        self.controller = controller
        self.setAccessibleName("Recording")
        self.record_button = QToolButton(self)
        self.record_button.setDefaultAction(record_action)
        self.record_button.setToolButtonStyle(Qt.ToolButtonStyle.ToolButtonTextBesideIcon)
        self.monitor_button = QToolButton(self)
        self.monitor_button.setText("Monitor")
        self.monitor_button.setCheckable(True)
        self.monitor_button.setAccessibleName("Monitor input")
        self.monitor_button.setToolTip("Show the input level and live spectrogram without recording")
        self.time_label = QLabel("0:00:00.0", self)
        self.time_label.setAccessibleName("Recorded time")
        self.time_label.setMinimumWidth(80)
        self.state_label = QLabel("", self)
        self.meter = LevelMeter(self)
        self.spectrogram = LiveSpectrogram(self)
        top = QHBoxLayout()
        top.setContentsMargins(0, 0, 0, 0)
        top.addWidget(self.record_button)
        top.addWidget(self.monitor_button)
        top.addWidget(self.time_label)
        top.addWidget(self.meter, 1)
        top.addWidget(self.state_label)
        lay = QVBoxLayout(self)
        lay.setContentsMargins(4, 4, 4, 4)
        lay.addLayout(top)
        lay.addWidget(self.spectrogram, 1)
        self.monitor_button.toggled.connect(controller.set_monitoring)
        controller.streamChanged.connect(self._stream_changed)
        controller.elapsed.connect(lambda s: self.time_label.setText(_clock(s)))
        controller.recordingChanged.connect(self._recording_changed)
        self._placeholder = self.spectrogram.placeholder
        self.update_availability()

    def update_availability(self) -> None:
        """Enable monitoring (or say why not) from the controller's current device answer."""
        c = self.controller
        if c.available:
            self.monitor_button.setEnabled(True)
            self.monitor_button.setToolTip("Show the input level and live spectrogram without recording")
            if not c.recording:
                self.state_label.setText("")
            self.state_label.setToolTip("")
            self.spectrogram.placeholder = self._placeholder
        else:
            checking = not c.ctx.audio_checked
            why = (f"Waiting: {c.unavailable_reason}" if checking else
                   f"Recording is disabled: {c.unavailable_reason}")
            self.monitor_button.setEnabled(False)
            self.monitor_button.setToolTip(why)
            self.state_label.setText("checking input…" if checking else "no input device")
            self.state_label.setToolTip(why)
            self.spectrogram.placeholder = why
        self.spectrogram.update()

    @Slot(object)
    def _stream_changed(self, stream) -> None:
        self.meter.attach(stream)
        self.spectrogram.attach(stream)
        if stream is not None:
            ch = {1: "mono", 2: "stereo"}.get(stream.channels, f"{stream.channels} ch")
            self.state_label.setToolTip(f"Input: {stream.samplerate / 1000:g} kHz {ch}, "
                                        f"latency {stream.latency * 1000:.0f} ms")

    @Slot(bool)
    def _recording_changed(self, on: bool) -> None:
        self.state_label.setText("● REC" if on else "")
        self.state_label.setStyleSheet("color: #ff5050; font-weight: bold" if on else "")
        if on:
            self.time_label.setText(_clock(0))
