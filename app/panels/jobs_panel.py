"""Jobs panel: every job with status, a progress bar, elapsed / remaining time, cancel, errors."""

from __future__ import annotations

from PySide6.QtCore import Qt, Slot
from PySide6.QtWidgets import (QHBoxLayout, QHeaderView, QProgressBar, QPushButton, QTreeWidget,
                               QTreeWidgetItem, QVBoxLayout, QWidget)

from engine.jobs import Job, JobStatus

from ..threads import make_timer

COLS = ("Job", "Status", "Progress", "Elapsed", "Remaining", "")


def _t(seconds: float | None) -> str:
    if seconds is None:
        return "–"
    seconds = int(round(seconds))
    m, s = divmod(seconds, 60)
    h, m = divmod(m, 60)
    return f"{h}:{m:02d}:{s:02d}" if h else f"{m}:{s:02d}"


class JobsPanel(QWidget):
    title = "Jobs"
    area = "bottom"

    def __init__(self, ctx, parent=None) -> None:
        super().__init__(parent)
        self.ctx = ctx
        self.setAccessibleName("Jobs")
        self.tree = QTreeWidget(self)
        self.tree.setAccessibleName("Job list")
        self.tree.setColumnCount(len(COLS))
        self.tree.setHeaderLabels(list(COLS))
        self.tree.setRootIsDecorated(False)
        h = self.tree.header()
        h.setSectionResizeMode(0, QHeaderView.ResizeMode.Stretch)
        h.setStretchLastSection(False)
        h.setSectionResizeMode(1, QHeaderView.ResizeMode.Interactive)
        h.resizeSection(1, 260)
        for col, width in ((2, 160), (3, 70), (4, 80), (5, 90)):
            h.setSectionResizeMode(col, QHeaderView.ResizeMode.Fixed)
            h.resizeSection(col, width)
        self.clear_button = QPushButton("Clear finished", self)
        self.clear_button.setAccessibleName("Clear finished jobs")
        self.clear_button.clicked.connect(self.clear_finished)
        bar = QHBoxLayout()
        bar.addStretch(1)
        bar.addWidget(self.clear_button)
        lay = QVBoxLayout(self)
        lay.setContentsMargins(2, 2, 2, 2)
        lay.addWidget(self.tree)
        lay.addLayout(bar)
        self._rows: dict[int, tuple[QTreeWidgetItem, QProgressBar, QPushButton, Job]] = {}
        ctx.jobs.jobAdded.connect(self._add)
        for sig in (ctx.jobs.jobStarted, ctx.jobs.jobProgress, ctx.jobs.jobPartial, ctx.jobs.jobFinished):
            sig.connect(self._refresh)
        self._clock = make_timer(self, 500)
        self._clock.timeout.connect(self._tick)
        self._clock.start()
        for job in ctx.jobs.jobs:
            self._add(job)

    @Slot(object)
    def _add(self, job: Job) -> None:
        if job.id in self._rows:
            return
        item = QTreeWidgetItem([job.name, "queued", "", "", "", ""])
        self.tree.addTopLevelItem(item)
        bar = QProgressBar()
        bar.setRange(0, 1000)
        bar.setAccessibleName(f"Progress of {job.name}")
        bar.setTextVisible(True)
        self.tree.setItemWidget(item, 2, bar)
        cancel = QPushButton("Cancel")
        cancel.setAccessibleName(f"Cancel {job.name}")
        cancel.setToolTip("Cancel this job (Esc cancels all)")
        cancel.clicked.connect(job.cancel)
        self.tree.setItemWidget(item, 5, cancel)
        self._rows[job.id] = (item, bar, cancel, job)
        self._refresh(job)

    @Slot(object)
    def _refresh(self, job: Job) -> None:
        row = self._rows.get(job.id)
        if row is None:
            self._add(job)
            return
        item, bar, cancel, _ = row
        status = job.status
        text = {JobStatus.QUEUED: "queued", JobStatus.RUNNING: job.state.status or "running",
                JobStatus.DONE: "done", JobStatus.CANCELLED: "cancelled",
                JobStatus.FAILED: f"failed: {job.error}"}[status]
        if job.state.cancelled and status in (JobStatus.QUEUED, JobStatus.RUNNING):
            text = "cancelling…"
        item.setText(1, text)
        item.setToolTip(1, job.detail or job.error or text)
        bar.setValue(int(job.state.progress * 1000) if status is not JobStatus.DONE else 1000)
        bar.setFormat(f"{job.state.progress * 100:.0f}%")
        item.setText(3, _t(job.elapsed) if job.started else "")
        item.setText(4, _t(job.remaining) if status is JobStatus.RUNNING else "")
        finished = status in (JobStatus.DONE, JobStatus.FAILED, JobStatus.CANCELLED)
        cancel.setEnabled(not finished)
        if status is JobStatus.FAILED:
            for c in range(len(COLS)):
                item.setForeground(c, Qt.GlobalColor.red)
            self.ctx.status(f"{job.name} failed: {job.error}", 10000)

    @Slot()
    def _tick(self) -> None:
        for item, bar, cancel, job in self._rows.values():
            if job.status is JobStatus.RUNNING:
                item.setText(3, _t(job.elapsed))
                item.setText(4, _t(job.remaining))

    def rows(self) -> list[dict]:
        return [{"name": it.text(0), "status": it.text(1), "progress": bar.value() / 1000, "shown": bar.text(),
                 "remaining": it.text(4), "cancel_enabled": c.isEnabled(), "job": j}
                for it, bar, c, j in self._rows.values()]

    @Slot()
    def clear_finished(self) -> None:
        for jid, (item, bar, cancel, job) in list(self._rows.items()):
            if job.status in (JobStatus.DONE, JobStatus.FAILED, JobStatus.CANCELLED):
                self.tree.takeTopLevelItem(self.tree.indexOfTopLevelItem(item))
                del self._rows[jid]
