"""Qt adapter over :class:`engine.jobs.JobRunner`: one engine thread (plus one per live session),
events as queued signals.

The runner calls ``on_event(job, kind)`` from the engine thread; this bridge re-emits
them as Qt signals, which Qt delivers in the GUI thread (queued connection, because the
bridge lives there). Progress events are coalesced to at most one per job every 50 ms
so a chatty job cannot flood the event loop.
"""

from __future__ import annotations

import threading
import time
from typing import Any, Callable

from PySide6.QtCore import QObject, Signal, Slot

from engine.jobs import Job, JobRunner, JobStatus

PROGRESS_INTERVAL = 0.05


class EngineBridge(QObject):
    jobAdded = Signal(object)      # Job, GUI thread, right after submit
    jobStarted = Signal(object)    # Job
    jobProgress = Signal(object)   # Job (job.state.progress / .status)
    jobPartial = Signal(object)    # Job (job.state.partials[-1] is new)
    jobFinished = Signal(object)   # Job (job.status, job.result, job.error)
    _event = Signal(object, str)   # engine thread -> GUI thread

    def __init__(self, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self._last_progress: dict[int, float] = {}
        self._lock = threading.Lock()
        self._done_callbacks: dict[int, list[Callable[[Job], None]]] = {}
        self._partial_callbacks: dict[int, list[Callable[[Job], None]]] = {}
        self._event.connect(self._dispatch)
        self.runner = JobRunner(on_event=self._on_event, name="sonoscope-engine")

    # -- public API -------------------------------------------------------------------------
    def submit(self, name: str, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Job:
        """Queue ``fn(state, *args, **kwargs)`` on the engine thread; returns the Job at once."""
        job = self.runner.submit(name, fn, *args, **kwargs)
        self.jobAdded.emit(job)
        return job

    def start_session(self, name: str, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Job:
        """Run a long-lived ``fn(state, ...)`` (live transcription) on its own thread, beside the jobs."""
        job = self.runner.start_session(name, fn, *args, **kwargs)
        self.jobAdded.emit(job)
        return job

    def when_done(self, job: Job, callback: Callable[[Job], None]) -> None:
        """Call ``callback(job)`` in the GUI thread once ``job`` finished (done, failed or cancelled)."""
        with self._lock:
            if job.finished is None or not job._done.is_set():
                self._done_callbacks.setdefault(job.id, []).append(callback)
                return
        callback(job)  # already finished

    def on_partial(self, job: Job, callback: Callable[[Job], None]) -> None:
        """Call ``callback(job)`` in the GUI thread for each new partial result of ``job``."""
        self._partial_callbacks.setdefault(job.id, []).append(callback)

    @property
    def jobs(self) -> list[Job]:
        return list(self.runner.jobs)

    def active(self) -> list[Job]:
        return [j for j in self.runner.jobs if j.status in (JobStatus.QUEUED, JobStatus.RUNNING)]

    def cancel_all(self) -> None:
        self.runner.cancel_all()

    def shutdown(self, timeout: float = 5.0) -> None:
        self.runner.shutdown(wait=True, timeout=timeout)

    # -- engine thread ----------------------------------------------------------------------
    def _on_event(self, job: Job, kind: str) -> None:
        if kind == "progress":
            now = time.monotonic()
            with self._lock:
                if now - self._last_progress.get(job.id, 0.0) < PROGRESS_INTERVAL:
                    return
                self._last_progress[job.id] = now
        self._event.emit(job, kind)

    # -- GUI thread -------------------------------------------------------------------------
    @Slot(object, str)
    def _dispatch(self, job: Job, kind: str) -> None:
        if kind == "started":
            self.jobStarted.emit(job)
        elif kind == "progress":
            self.jobProgress.emit(job)
        elif kind == "partial":
            self.jobPartial.emit(job)
            for cb in self._partial_callbacks.get(job.id, []):
                cb(job)
        elif kind == "finished":
            self._last_progress.pop(job.id, None)
            self._partial_callbacks.pop(job.id, None)
            self.jobFinished.emit(job)
            with self._lock:
                callbacks = self._done_callbacks.pop(job.id, [])
            for cb in callbacks:
                cb(job)
