"""File info: the example panel of the extension contract (see app/panels/__init__.py).

Shows the selected file's format (from ``ctx.probe``: probed off the GUI thread, cached) and,
computed on the engine thread through ``ctx.submit``, its peak and RMS level, so it doubles as a
template for model panels.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PySide6.QtCore import Slot
from PySide6.QtWidgets import QFormLayout, QLabel, QPushButton, QVBoxLayout, QWidget


def measure_levels(state, path: str) -> dict:
    """Job: peak / RMS (dBFS) of a file, streamed block by block (bounded memory)."""
    from engine.audio import io as audio

    info = audio.info(path)
    peak, sumsq, n = 0.0, 0.0, 0
    for block in audio.stream(path, block_frames=1 << 17):
        state.check()
        peak = max(peak, float(np.abs(block).max()))
        sumsq += float(np.square(block, dtype=np.float64).sum())
        n += block.size
        state.update(progress=min(1.0, n / max(1, info.frames * info.channels)), status="measuring")
    rms = (sumsq / max(1, n)) ** 0.5
    db = lambda v: 20 * np.log10(max(v, 1e-9))  # noqa: E731
    return {"path": path, "peak_db": db(peak), "rms_db": db(rms)}


class FileInfoPanel(QWidget):
    title = "File info"
    area = "tab"

    def __init__(self, ctx, parent=None) -> None:
        super().__init__(parent)
        self.ctx = ctx
        self.setAccessibleName("File info")
        self.fields: dict[str, QLabel] = {}
        form = QFormLayout()
        for name in ("File", "Folder", "Format", "Duration", "Sample rate", "Channels", "Peak", "RMS"):
            label = QLabel("–", self)
            label.setAccessibleName(name)
            label.setWordWrap(True)
            form.addRow(name + ":", label)
            self.fields[name] = label
        self.measure_button = QPushButton("Measure levels", self)
        self.measure_button.setAccessibleName("Measure peak and RMS levels")
        self.measure_button.clicked.connect(self.measure)
        lay = QVBoxLayout(self)
        lay.addLayout(form)
        lay.addWidget(self.measure_button)
        lay.addStretch(1)
        self.job = None
        ctx.selectionChanged.connect(self._selection)
        ctx.probe.probed.connect(self._probed)
        self._selection([str(p) for p in ctx.selection])

    @Slot(list)
    def _selection(self, paths: list) -> None:
        for label in self.fields.values():
            label.setText("–")
        self.measure_button.setEnabled(bool(paths))
        if not paths:
            return
        path = Path(paths[0])
        self.fields["File"].setText(path.name)
        self.fields["Folder"].setText(str(path.parent))
        # the format comes from the window's probe cache; an unknown file is probed in the background
        self.ctx.probe.request(path)
        hit = self.ctx.probe.cached(path)
        if hit is not None:
            self._show_info(str(path), *hit)
        else:
            self.fields["Format"].setText("reading…")

    @Slot(str, object, str)
    def _probed(self, path: str, info, error: str) -> None:
        if self.ctx.current_path is not None and path == str(self.ctx.current_path):
            self._show_info(path, info, error)

    def _show_info(self, path: str, i, error: str) -> None:
        if i is None:
            self.fields["Format"].setText(error)
            for name in ("Duration", "Sample rate", "Channels"):
                self.fields[name].setText("–")
            return
        self.fields["Format"].setText(f"{i.format} {i.subtype}".strip())
        self.fields["Duration"].setText(f"{i.duration:.3f} s ({i.frames} samples)")
        self.fields["Sample rate"].setText(f"{i.samplerate} Hz")
        self.fields["Channels"].setText(str(i.channels))

    @Slot()
    def measure(self) -> None:
        path = self.ctx.current_path
        if path is None:
            return
        self.job = self.ctx.submit(f"Measure levels of {path.name}", measure_levels, str(path))
        self.ctx.jobs.when_done(self.job, self._measured)

    def _measured(self, job) -> None:
        if job.result is None or self.ctx.current_path is None or job.result["path"] != str(self.ctx.current_path):
            return
        self.fields["Peak"].setText(f"{job.result['peak_db']:.1f} dBFS")
        self.fields["RMS"].setText(f"{job.result['rms_db']:.1f} dBFS")
