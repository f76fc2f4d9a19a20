"""Stems: split the selected song into 2, 4 or 5 stems (Spleeter), hear them, export them.

Separation runs on the engine thread (progress and cancel in the jobs panel) and writes float
WAV stems to a work folder; the stem player then shows them as tracks with solo / mute / volume,
playing in sync through the app's player; "Export" asks for a folder (the last one used, at first
the session folder) and writes the ticked stems as WAV (32-bit float, as the CLI does), FLAC or MP3
to ``<folder>/<track name>/<stem>.<ext>`` without overwriting anything.
"""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

from PySide6.QtCore import Slot
from PySide6.QtWidgets import (QComboBox, QFormLayout, QHBoxLayout, QLabel, QPushButton, QVBoxLayout,
                               QWidget)

from engine import defaults as D
from engine.jobs import lazy

from .. import settings as S
from ..widgets.stem_player import StemPlayer

# the engine's jobs, imported on the engine thread when they first run (they import torch)
separate_file = lazy("engine.stems.separate", "separate_file")
export_stem_files = lazy("engine.stems.separate", "export_stem_files")

# the defaults are the CLI's too (engine/defaults.py)
STEMS = S.define("stems/count", int, D.STEMS, "Number of stems (2, 4 or 5)", choices=(2, 4, 5))
MODE = S.define("stems/mode", str, D.STEMS_MODE, "Mask mode: soft masks or Wiener filtering",
                choices=("soft", "wiener"))
FORMAT = S.define("stems/format", str, D.STEMS_FORMAT, "Export format of stems", choices=("wav", "flac", "mp3"))

HIGH_BAND = ("Spleeter's models cover 0–11 kHz. Everything above 11 kHz is kept in the "
             "accompaniment (2 stems) or 'other' stem, so the stems add up to the original.")

def _download_note(model_id: str) -> str:
    """"  (download)" for a model that a first run has to fetch, as the other panels mark them."""
    try:
        from engine.store import default_store

        return "" if default_store().is_installed(model_id) else "  (download)"
    except Exception:  # a broken catalog must not break the panel
        return ""


class StemsPanel(QWidget):
    title = "Stems"
    area = "tab"
    shortcut = "Ctrl+Shift+S"

    def __init__(self, ctx, parent=None) -> None:
        super().__init__(parent)
        self.ctx = ctx
        self.setAccessibleName("Stems")
        self.stems_box = QComboBox(self)
        self.stems_box.setAccessibleName("Number of stems")
        for n, text in ((2, "2 stems: vocals / accompaniment"), (4, "4 stems: vocals / drums / bass / other"),
                        (5, "5 stems: vocals / drums / bass / piano / other")):
            self.stems_box.addItem(text + _download_note(D.STEM_MODELS[n]), n)
        self.stems_box.setCurrentIndex(max(0, self.stems_box.findData(ctx.settings.get(STEMS))))
        self.mode_box = QComboBox(self)
        self.mode_box.setAccessibleName("Mask mode")
        self.mode_box.addItem("Soft masks (stems add up to the original)", "soft")
        self.mode_box.addItem("Wiener filtering (multichannel)", "wiener")
        self.mode_box.setCurrentIndex(max(0, self.mode_box.findData(ctx.settings.get(MODE))))
        self.format_box = QComboBox(self)
        self.format_box.setAccessibleName("Export format")
        for f in ("wav", "flac", "mp3"):
            self.format_box.addItem(f.upper(), f)
        self.format_box.setCurrentIndex(max(0, self.format_box.findData(ctx.settings.get(FORMAT))))
        self.file_label = QLabel("Select a song in the file list.", self)
        self.file_label.setWordWrap(True)
        self.separate_button = QPushButton("Separate", self)
        self.separate_button.setAccessibleName("Separate the selected file into stems")
        self.cancel_button = QPushButton("Cancel", self)
        self.cancel_button.setEnabled(False)
        self.status = QLabel("", self)
        self.status.setAccessibleName("Stems status")
        self.status.setWordWrap(True)
        note = QLabel(HIGH_BAND, self)
        note.setWordWrap(True)
        note.setAccessibleName("About the band above 11 kHz")
        self.player = StemPlayer(ctx, self)
        self.export_button = QPushButton("Export ticked stems", self)
        self.export_button.setAccessibleName("Export the ticked stems")
        self.export_button.setEnabled(False)

        form = QFormLayout()
        form.addRow("File:", self.file_label)
        form.addRow("Stems:", self.stems_box)
        form.addRow("Mode:", self.mode_box)
        buttons = QHBoxLayout()
        buttons.addWidget(self.separate_button)
        buttons.addWidget(self.cancel_button)
        buttons.addStretch(1)
        export = QHBoxLayout()
        export.addWidget(QLabel("Format:", self))
        export.addWidget(self.format_box)
        export.addWidget(self.export_button)
        export.addStretch(1)
        lay = QVBoxLayout(self)
        lay.addLayout(form)
        lay.addWidget(note)
        lay.addLayout(buttons)
        lay.addWidget(self.status)
        lay.addWidget(self.player, 1)
        lay.addLayout(export)

        self.job = None
        self.export_job = None
        self.result = None
        self.work_dirs: list[str] = []
        self._job_work: str | None = None  # the work folder of the split in progress
        self.separate_button.clicked.connect(self.separate)
        self.cancel_button.clicked.connect(self.cancel)
        self.export_button.clicked.connect(lambda: self.export())
        self.stems_box.currentIndexChanged.connect(lambda _: ctx.settings.set(STEMS, self.stems_box.currentData()))
        self.mode_box.currentIndexChanged.connect(lambda _: ctx.settings.set(MODE, self.mode_box.currentData()))
        self.format_box.currentIndexChanged.connect(lambda _: ctx.settings.set(FORMAT, self.format_box.currentData()))
        ctx.selectionChanged.connect(self._selection)
        self._selection([str(p) for p in ctx.selection])

    @Slot(list)
    def _selection(self, paths: list) -> None:
        self.separate_button.setEnabled(bool(paths) and self.job is None)
        self.file_label.setText(Path(paths[0]).name if paths else "Select a song in the file list.")

    @Slot()
    def separate(self) -> None:
        path = self.ctx.current_path
        if path is None or self.job is not None:
            return
        work = self._job_work = tempfile.mkdtemp(prefix="sonoscope-stems-")
        self.work_dirs.append(work)
        stems, mode = self.stems_box.currentData(), self.mode_box.currentData()
        self.job = self.ctx.submit(f"Split {path.name} into {stems} stems", separate_file, str(path), work,
                                   stems=stems, mode=mode, fmt="wav", device=self.ctx.compute_device(),
                                   threads=self.ctx.threads() or None)
        self.separate_button.setEnabled(False)
        self.cancel_button.setEnabled(True)
        self.status.setText(f"Separating {path.name}…")
        self.ctx.jobs.when_done(self.job, self._separated)

    @Slot()
    def cancel(self) -> None:
        if self.job is not None:
            self.job.cancel()

    def _separated(self, job) -> None:
        self.job = None
        self.cancel_button.setEnabled(False)
        self._selection([str(p) for p in self.ctx.selection])
        if job.result is None:
            work = self._job_work
            if work in self.work_dirs:  # a cancelled or failed split leaves nothing behind
                self.work_dirs.remove(work)
                shutil.rmtree(work, ignore_errors=True)
            self.status.setText(job.error or "Separation failed")
            if job.error and job.error != "Cancelled":
                self.ctx.error(f"Stems: {job.error}")
            return
        self.result = job.result
        self.player.set_stems(job.result.stems, job.result.track)
        self.export_button.setEnabled(True)
        self.status.setText(f"{job.result.track}: {', '.join(job.result.stems)} "
                            f"({job.result.duration:.1f} s). Solo / mute / volume to listen, then export.")
        self.ctx.status(f"Stems ready: {job.result.track}")

    @Slot()
    def export(self, folder: str | Path | None = None) -> None:
        """Export the ticked stems into ``<folder>/<track>/`` (``folder``: asked in a dialog)."""
        if self.result is None or self.export_job is not None:
            return
        chosen = self.player.chosen()
        if not chosen:
            self.ctx.error("Tick at least one stem to export")
            return
        if not folder:
            from .. import dialogs

            folder = dialogs.ask_folder(self.ctx, f"Export the stems of {self.result.track} into "
                                                  f"(a folder '{self.result.track}' is made there)", self)
            if folder is None:
                return
        fmt = self.format_box.currentData()
        self.export_job = self.ctx.submit(f"Export stems of {self.result.track}", export_stem_files,
                                          {k: str(v) for k, v in self.result.stems.items()},
                                          str(folder), self.result.track, fmt, chosen)
        self.export_button.setEnabled(False)
        self.ctx.jobs.when_done(self.export_job, self._exported)

    def _exported(self, job) -> None:
        self.export_job = None
        self.export_button.setEnabled(self.result is not None)
        if job.result is None:
            self.ctx.error(f"Export failed: {job.error}")
            return
        for p in job.result.values():
            self.ctx.add_file(p)
        folder = next(iter(job.result.values())).parent
        self.status.setText(f"Exported {', '.join(job.result)} to {folder}")
        self.ctx.status(f"Stems exported to {folder}")

    def shutdown(self) -> None:
        self.player.clear()
        for d in self.work_dirs:
            shutil.rmtree(d, ignore_errors=True)
