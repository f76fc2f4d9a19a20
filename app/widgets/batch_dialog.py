"""File → Batch…: one task over every media file of a folder, with a queue of per-file status.

The run is one job on the engine thread (``ctx.submit``) calling the engine's batch runner
(``engine.batch.run_batch``): the folder is walked, the manifest read and the files processed there,
never in the GUI thread. Each file's change of state arrives as a partial
(:class:`engine.batch.runner.FileEvent`) and updates its row; the job's progress and status line
(files, audio hours, throughput, ETA) drive the bar. Cancel stops the batch (finished files stay
done; a rerun skips them); "Open output folder" shows the results.
"""

from __future__ import annotations

import os
from pathlib import Path

from PySide6.QtCore import Qt, QUrl, Slot
from PySide6.QtGui import QColor, QDesktopServices
from PySide6.QtWidgets import (QAbstractItemView, QComboBox, QDialog, QFileDialog, QFormLayout, QHBoxLayout,
                               QHeaderView, QLabel, QLineEdit, QProgressBar, QPushButton, QSpinBox,
                               QTableWidget, QTableWidgetItem, QVBoxLayout, QWidget)

STATUS_COLOURS = {"queued": "#777777", "running": "#1f6fd1", "done": "#2e8b3a", "skipped": "#5c8a66",
                  "failed": "#c0392b", "cancelled": "#a06000"}


class BatchDialog(QDialog):
    def __init__(self, ctx, parent=None) -> None:
        super().__init__(parent)
        from engine.batch.tasks import TASKS  # light: no torch, the task modules are found, not imported

        self.ctx = ctx
        self.job = None
        self._seen = 0
        self._rows: dict[int, int] = {}
        self.setWindowTitle("Batch")
        self.setAccessibleName("Batch")
        self.resize(760, 520)

        self.folder = QLineEdit(self)
        self.folder.setAccessibleName("Input folder")
        self.folder.setPlaceholderText("a folder of audio or video files (searched with its subfolders)")
        self.folder.textChanged.connect(self._suggest_output)
        choose = QPushButton("Choose…", self)
        choose.clicked.connect(self.choose_folder)
        self.out = QLineEdit(self)
        self.out.setAccessibleName("Output folder")
        self.task = QComboBox(self)
        self.task.setAccessibleName("Task")
        for name, spec in TASKS.items():
            self.task.addItem(name, name)
            i = self.task.count() - 1
            reason = spec.unavailable()
            self.task.setItemData(i, reason or spec.help, Qt.ItemDataRole.ToolTipRole)
            if reason:
                self.task.model().item(i).setEnabled(False)
        self.task.setCurrentText("transcribe")
        self.task.currentTextChanged.connect(lambda _: self._suggest_output(self.folder.text()))
        self.workers = QSpinBox(self)
        self.workers.setAccessibleName("Worker processes")
        self.workers.setRange(1, max(1, os.cpu_count() or 1))
        self.workers.setToolTip("1: in the app's engine; more: worker processes, each with its own model")

        form = QFormLayout()
        row = QHBoxLayout()
        row.addWidget(self.folder, 1)
        row.addWidget(choose)
        holder = QWidget(self)
        holder.setLayout(row)
        row.setContentsMargins(0, 0, 0, 0)
        form.addRow("Folder:", holder)
        form.addRow("Task:", self.task)
        form.addRow("Output folder:", self.out)
        form.addRow("Workers:", self.workers)

        self.queue = QTableWidget(0, 3, self)
        self.queue.setAccessibleName("Batch queue")
        self.queue.setHorizontalHeaderLabels(["File", "Status", "Detail"])
        self.queue.horizontalHeader().setSectionResizeMode(0, QHeaderView.ResizeMode.Stretch)
        self.queue.horizontalHeader().setSectionResizeMode(2, QHeaderView.ResizeMode.Stretch)
        self.queue.verticalHeader().setVisible(False)
        self.queue.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.bar = QProgressBar(self)
        self.bar.setRange(0, 1000)
        self.bar.setAccessibleName("Batch progress")
        self.line = QLabel("", self)
        self.line.setAccessibleName("Batch status")

        self.start_button = QPushButton("Start", self)
        self.start_button.clicked.connect(self.start)
        self.cancel_button = QPushButton("Cancel", self)
        self.cancel_button.setEnabled(False)
        self.cancel_button.clicked.connect(self.cancel)
        self.open_button = QPushButton("Open output folder", self)
        self.open_button.clicked.connect(self.open_output)
        close = QPushButton("Close", self)
        close.clicked.connect(self.hide)
        buttons = QHBoxLayout()
        for b in (self.start_button, self.cancel_button, self.open_button):
            buttons.addWidget(b)
        buttons.addStretch(1)
        buttons.addWidget(close)

        lay = QVBoxLayout(self)
        lay.addLayout(form)
        lay.addWidget(self.queue, 1)
        lay.addWidget(self.bar)
        lay.addWidget(self.line)
        lay.addLayout(buttons)
        ctx.jobs.jobProgress.connect(self._on_progress)

    # -- choosing --------------------------------------------------------------------------------
    @Slot()
    def choose_folder(self) -> None:
        from .. import dialogs

        d = QFileDialog.getExistingDirectory(self, "Batch: choose a folder", dialogs.open_dir(self.ctx))
        if d:
            self.folder.setText(d)

    def _suggest_output(self, folder: str) -> None:
        if folder and (not self.out.text() or self.out.property("suggested")):
            self.out.setText(str(Path(folder).with_name(f"{Path(folder).name}-{self.task.currentData()}")))
            self.out.setProperty("suggested", True)

    # -- running ---------------------------------------------------------------------------------
    @Slot()
    def start(self):
        """Submit the batch as one engine job; returns it (None when the form is incomplete)."""
        from engine.jobs import lazy

        folder, out, task = self.folder.text().strip(), self.out.text().strip(), self.task.currentData()
        if not folder or not out:
            self.line.setText("Choose a folder and an output folder first.")
            return None
        self.queue.setRowCount(0)
        self._rows.clear()
        self._seen = 0
        threads = self.ctx.threads() or None
        self.job = job = self.ctx.submit(f"Batch {task}: {Path(folder).name}", lazy("engine.batch.runner", "run_batch"),
                                         task, [folder], out, None, workers=self.workers.value(),
                                         threads=threads if self.workers.value() == 1 else None)
        self.ctx.jobs.on_partial(job, self._on_partial)
        self.ctx.jobs.when_done(job, self._finished)
        self.start_button.setEnabled(False)
        self.cancel_button.setEnabled(True)
        self.line.setText("starting…")
        return job

    @Slot()
    def cancel(self) -> None:
        if self.job is not None:
            self.job.cancel()
            self.line.setText("cancelling…")

    @Slot()
    def open_output(self) -> None:
        out = self.out.text().strip()
        if out:
            QDesktopServices.openUrl(QUrl.fromLocalFile(out))

    # -- engine events (GUI thread) ----------------------------------------------------------------
    def _on_partial(self, job) -> None:
        events = list(job.state.partials)
        for ev in events[self._seen:]:
            self._show(ev)
        self._seen = len(events)

    def _show(self, ev) -> None:
        row = self._rows.get(ev.index)
        if row is None:
            row = self._rows[ev.index] = self.queue.rowCount()
            self.queue.insertRow(row)
            self.queue.setItem(row, 0, QTableWidgetItem(ev.key))
            self.queue.item(row, 0).setToolTip(ev.path)
        status = QTableWidgetItem(ev.status)
        status.setForeground(QColor(STATUS_COLOURS.get(ev.status, "#000000")))
        self.queue.setItem(row, 1, status)
        detail = ev.error or ", ".join(ev.outputs) or (ev.worker or "")
        self.queue.setItem(row, 2, QTableWidgetItem(detail))
        if ev.status == "running":
            self.queue.scrollToItem(status)

    def _on_progress(self, job) -> None:
        if job is self.job:
            self.bar.setValue(int(job.state.progress * 1000))
            self.line.setText(job.state.status)

    def _finished(self, job) -> None:
        self._on_partial(job)
        self.start_button.setEnabled(True)
        self.cancel_button.setEnabled(False)
        if job.result is not None:
            s = job.result
            self.bar.setValue(1000)
            self.line.setText(f"{len(s.done)} done, {len(s.skipped)} skipped, {len(s.failed)} failed "
                              f"({job.state.status})")
        else:
            for ev_row in range(self.queue.rowCount()):  # what never ran
                item = self.queue.item(ev_row, 1)
                if item is not None and item.text() in ("queued", "running"):
                    item.setText("cancelled" if job.error == "Cancelled" else "not run")
                    item.setForeground(QColor(STATUS_COLOURS["cancelled"]))
            self.line.setText(job.error or "stopped")
