"""Settings dialog over the typed registry: compute device, threads, audio devices, folders, formats."""

from __future__ import annotations

import os

from PySide6.QtWidgets import (QComboBox, QDialog, QDialogButtonBox, QFileDialog, QFormLayout,
                               QHBoxLayout, QLineEdit, QPushButton, QSpinBox, QWidget)

from .. import settings as S


class SettingsDialog(QDialog):
    def __init__(self, settings: S.Settings, parent=None) -> None:
        super().__init__(parent)
        self.setWindowTitle("Settings")
        self.setAccessibleName("Settings")
        self.settings = settings
        form = QFormLayout(self)
        self.compute = QComboBox(self)
        self.compute.addItems(list(S.COMPUTE_DEVICE.choices))
        self.compute.setCurrentText(settings.get(S.COMPUTE_DEVICE))
        self.compute.setAccessibleName("Compute device")
        form.addRow("Compute device:", self.compute)
        self.threads = QSpinBox(self)
        self.threads.setRange(0, os.cpu_count() or 64)
        self.threads.setSpecialValueText("automatic")
        self.threads.setValue(settings.get(S.THREADS))
        self.threads.setAccessibleName("CPU threads")
        form.addRow("CPU threads:", self.threads)
        self.input = QComboBox(self)
        self.output = QComboBox(self)
        self.input.setAccessibleName("Input device")
        self.output.setAccessibleName("Output device")
        self._fill_devices()
        form.addRow("Input device:", self.input)
        form.addRow("Output device:", self.output)
        self.rate = QComboBox(self)
        self.rate.addItems(["16000", "22050", "44100", "48000", "96000"])
        self.rate.setCurrentText(str(settings.get(S.RECORD_RATE)))
        self.rate.setAccessibleName("Recording sample rate")
        form.addRow("Recording rate (Hz):", self.rate)
        self.channels = QComboBox(self)
        self.channels.addItems(["1", "2"])
        self.channels.setCurrentText(str(settings.get(S.RECORD_CHANNELS)))
        self.channels.setAccessibleName("Recording channels")
        form.addRow("Recording channels:", self.channels)
        self.folder = QLineEdit(settings.get(S.OUTPUT_DIR), self)
        self.folder.setAccessibleName("Output folder")
        browse = QPushButton("Browse…", self)
        browse.setAccessibleName("Browse for the output folder")
        browse.clicked.connect(self._browse)
        row = QHBoxLayout()
        row.addWidget(self.folder, 1)
        row.addWidget(browse)
        w = QWidget(self)
        w.setLayout(row)
        form.addRow("Output folder:", w)
        self.format = QComboBox(self)
        self.format.addItems(list(S.EXPORT_FORMAT.choices))
        self.format.setCurrentText(settings.get(S.EXPORT_FORMAT))
        self.format.setAccessibleName("Export format")
        form.addRow("Export format:", self.format)
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Ok | QDialogButtonBox.StandardButton.Cancel, self)
        buttons.accepted.connect(self.accept)
        buttons.rejected.connect(self.reject)
        form.addRow(buttons)

    def _fill_devices(self) -> None:
        from engine import live
        from engine.errors import DeviceError

        for combo, kind, key in ((self.input, "input", S.INPUT_DEVICE), (self.output, "output", S.OUTPUT_DEVICE)):
            combo.addItem("System default", "")
            try:
                for d in live.list_devices(kind):
                    combo.addItem(f"{d.name} ({d.hostapi})", d.name)
            except DeviceError as e:
                combo.setToolTip(str(e))
            current = self.settings.get(key)
            i = combo.findData(current)
            if i < 0 and current:
                combo.addItem(f"{current} (not connected)", current)
                i = combo.count() - 1
            combo.setCurrentIndex(max(0, i))

    def _browse(self) -> None:
        d = QFileDialog.getExistingDirectory(self, "Output folder", self.folder.text())
        if d:
            self.folder.setText(d)

    def apply(self) -> None:
        st = self.settings
        st.set(S.COMPUTE_DEVICE, self.compute.currentText())
        st.set(S.THREADS, self.threads.value())
        st.set(S.INPUT_DEVICE, self.input.currentData() or "")
        st.set(S.OUTPUT_DEVICE, self.output.currentData() or "")
        st.set(S.RECORD_RATE, int(self.rate.currentText()))
        st.set(S.RECORD_CHANNELS, int(self.channels.currentText()))
        st.set(S.OUTPUT_DIR, self.folder.text().strip() or S.OUTPUT_DIR.default)
        st.set(S.EXPORT_FORMAT, self.format.currentText())
        st.sync()

    def accept(self) -> None:
        self.apply()
        super().accept()
