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

    def _device_combos(self):
        return ((self.input, "input", S.INPUT_DEVICE), (self.output, "output", S.OUTPUT_DEVICE))

    def _fill_devices(self) -> None:
        """Show the saved choices now; PortAudio lists the devices on a worker thread."""
        from ..startup import list_audio_devices
        from ..threads import run_in_thread

        self.devices_listed = False
        for combo, _kind, key in self._device_combos():
            combo.addItem("System default", "")
            current = self.settings.get(key)
            if current:
                combo.addItem(current, current)
                combo.setCurrentIndex(1)
            combo.setToolTip("Looking for audio devices…")
        run_in_thread(list_audio_devices, self._devices_found, self, "sonoscope-list-devices")

    def _devices_found(self, found, error) -> None:
        found = found or {"error": str(error)}
        for combo, kind, key in self._device_combos():
            chosen = combo.currentData()  # what is selected now (the user may have picked already)
            combo.clear()
            combo.addItem("System default", "")
            combo.setToolTip(found.get("error", ""))
            for d in found.get(kind, []):
                combo.addItem(f"{d.name} ({d.hostapi})", d.name)
            i = combo.findData(chosen)
            if i < 0 and chosen:
                combo.addItem(f"{chosen} (not connected)", chosen)
                i = combo.count() - 1
            combo.setCurrentIndex(max(0, i))
        self.devices_listed = True

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
