"""Long-running work as plain functions reporting through a small state object.

A job is any callable ``fn(state, *args, **kwargs)``. It reports with
``state.update(progress=..., status=...)`` and ``state.add_partial(item)`` and calls
``state.check()`` often; ``check`` raises :class:`~engine.errors.Cancelled` once the
user asked to cancel. ``JobRunner`` runs jobs one at a time on a worker thread (the others
wait as "queued"), and long-lived sessions (a live transcription, a playback feeder) each on a
thread of their own, so a session never holds up the jobs. The Qt app adapts it to signals,
the CLI prints progress to stderr.
"""

from __future__ import annotations

import collections
import enum
import importlib
import itertools
import math
import queue
import threading
import time
import traceback
from dataclasses import dataclass, field
from typing import Any, Callable

from .errors import Cancelled, SonoscopeError

Listener = Callable[["JobState"], None]


class JobState:
    """Progress (0..1), status text, partial results and a cancel flag, shared between a job and its observers."""

    def __init__(self, listener: Listener | None = None, min_interval: float = 0.0) -> None:
        self.progress = 0.0
        self.status = ""
        self.partials: list[Any] = []
        self._cancel = threading.Event()
        self._lock = threading.Lock()
        self._listeners: list[Listener] = [listener] if listener else []
        self._min_interval = min_interval
        self._last_notify = float("-inf")  # the first notification always passes

    # -- called by the job -------------------------------------------------
    def update(self, progress: float | None = None, status: str | None = None) -> None:
        with self._lock:
            if progress is not None:
                self.progress = min(1.0, max(0.0, float(progress)))
            if status is not None:
                self.status = status
        self._notify(force=progress is None or progress >= 1.0)
        self.check()

    def add_partial(self, item: Any) -> None:
        with self._lock:
            self.partials.append(item)
        self._notify(force=True)

    def check(self) -> None:
        """Raise Cancelled if cancellation was requested. Call this often."""
        if self._cancel.is_set():
            raise Cancelled()

    def finish(self) -> None:
        """Mark the work complete (progress 1.0). Called by :func:`run_job` when the function returned,
        so a job that never reported progress (a live session, a quick check) does not end at 0 %.
        (No notification: the runner's "finished" event follows at once.)"""
        with self._lock:
            self.progress = 1.0

    def sub(self, start: float, stop: float) -> "SubState":
        """A view mapping this job's progress range [start, stop] to 0..1 for a sub-step."""
        return SubState(self, start, stop)

    # -- called by observers -------------------------------------------------
    def cancel(self) -> None:
        self._cancel.set()

    @property
    def cancelled(self) -> bool:
        return self._cancel.is_set()

    def add_listener(self, listener: Listener) -> None:
        self._listeners.append(listener)

    def _notify(self, force: bool = False) -> None:
        now = time.monotonic()
        if not force and now - self._last_notify < self._min_interval:
            return
        self._last_notify = now
        for listener in list(self._listeners):
            listener(self)


class SubState:
    """Maps progress of a sub-step into a slice of a parent JobState; everything else passes through."""

    def __init__(self, parent: JobState | "SubState", start: float, stop: float) -> None:
        self.parent, self.start, self.stop = parent, start, stop

    def update(self, progress: float | None = None, status: str | None = None) -> None:
        if progress is not None:
            progress = self.start + (self.stop - self.start) * min(1.0, max(0.0, progress))
        self.parent.update(progress, status)

    def add_partial(self, item: Any) -> None:
        self.parent.add_partial(item)

    def check(self) -> None:
        self.parent.check()

    def sub(self, start: float, stop: float) -> "SubState":
        return SubState(self, start, stop)

    @property
    def cancelled(self) -> bool:
        return self.parent.cancelled


def lazy(module: str, name: str) -> Callable[..., Any]:
    """The job function ``module.name``, imported when the job first runs (on the engine thread).

    A window submits ``lazy("engine.stems.separate", "separate_file")`` so that the click does not
    import torch and the model code on the GUI thread."""

    def fn(state: JobState, *args: Any, **kwargs: Any) -> Any:
        return getattr(importlib.import_module(module), name)(state, *args, **kwargs)

    fn.__name__ = name
    fn.__qualname__ = f"{module}.{name}"
    return fn


def null_state() -> JobState:
    """A state for callers that do not watch progress (library use)."""
    return JobState()


class RemainingEstimate:
    """Seconds left from a job's progress, smoothed so that the readout does not jump around.

    Jobs rarely progress at one pace (a model loads, then the audio streams, then files are written),
    so ``elapsed * (1 - p) / p`` swings (2:22, 6:10, 0:05). Here the pace is the geometric mean of the
    whole run's and the last ``window`` seconds' pace, and the shown value counts down by itself and
    follows that raw estimate with a time constant: ``tau_up`` seconds when it grows (a stall
    raises the readout slowly), ``tau_down`` when it shrinks (a job that speeds up is believed soon).
    """

    def __init__(self, window: float = 20.0, tau_up: float = 8.0, tau_down: float = 2.0) -> None:
        self.window, self.tau_up, self.tau_down = window, tau_up, tau_down
        self.samples: collections.deque[tuple[float, float]] = collections.deque()
        self.value: float | None = None
        self._t: float | None = None

    def update(self, t: float, progress: float) -> float | None:
        """The estimate at ``t`` seconds since the job started, with ``progress`` (0..1) reached."""
        p = min(1.0, max(0.0, progress))
        if p >= 1.0:
            self.value, self._t = 0.0, t
            return 0.0
        if not self.samples or p != self.samples[-1][1] or t - self.samples[-1][0] >= 1.0:
            self.samples.append((t, p))
        while len(self.samples) > 2 and self.samples[0][0] < t - self.window:
            self.samples.popleft()
        if p <= 0.01 or t <= 0.5:
            return self.value  # nothing to go on yet
        rate = p / t
        t0, p0 = self.samples[0]
        if t - t0 >= 2.0 and p > p0:
            rate = math.sqrt(rate * (p - p0) / (t - t0))
        raw = (1.0 - p) / rate
        if self.value is None or self._t is None:
            self.value = raw
        else:
            dt = max(0.0, t - self._t)
            predicted = max(0.0, self.value - dt)
            tau = self.tau_up if raw > predicted else self.tau_down
            self.value = predicted + (1.0 - math.exp(-dt / tau)) * (raw - predicted)
        self._t = t
        return self.value


class JobStatus(enum.Enum):
    QUEUED = "queued"
    RUNNING = "running"
    DONE = "done"
    FAILED = "failed"
    CANCELLED = "cancelled"


_ids = itertools.count(1)


@dataclass(eq=False)
class Job:
    """One unit of work submitted to a JobRunner."""

    name: str
    fn: Callable[..., Any]
    args: tuple = ()
    kwargs: dict = field(default_factory=dict)
    id: int = field(default_factory=lambda: next(_ids))
    state: JobState = field(default_factory=JobState)
    status: JobStatus = JobStatus.QUEUED
    result: Any = None
    error: str | None = None
    detail: str | None = None  # traceback for unexpected errors
    started: float | None = None
    finished: float | None = None
    session: bool = False  # a long-lived job on its own thread (JobRunner.start_session)
    _done: threading.Event = field(default_factory=threading.Event, repr=False)
    _eta: RemainingEstimate = field(default_factory=RemainingEstimate, repr=False)

    def cancel(self) -> None:
        self.state.cancel()

    def wait(self, timeout: float | None = None) -> bool:
        return self._done.wait(timeout)

    @property
    def elapsed(self) -> float:
        if self.started is None:
            return 0.0
        return (self.finished or time.monotonic()) - self.started

    @property
    def remaining(self) -> float | None:
        """Estimated seconds left, from progress so far, smoothed (None until there is something to go
        on). See :class:`RemainingEstimate`."""
        if self.status is not JobStatus.RUNNING:
            return None
        return self._eta.update(self.elapsed, self.state.progress)


def run_job(job: Job) -> Job:
    """Run a job in the calling thread, recording its outcome on the Job object (never raises)."""
    job.status = JobStatus.RUNNING
    job.started = time.monotonic()
    try:
        job.state.check()
        job.result = job.fn(job.state, *job.args, **job.kwargs)
        job.state.finish()
        job.status = JobStatus.DONE
    except Cancelled:
        job.status = JobStatus.CANCELLED
        job.error = "Cancelled"
    except SonoscopeError as e:
        job.status = JobStatus.FAILED
        job.error = str(e)
    except MemoryError:
        job.status = JobStatus.FAILED
        job.error = "Out of memory"
        job.detail = traceback.format_exc()
    except Exception as e:  # unexpected: keep the traceback for the details view
        job.status = JobStatus.FAILED
        job.error = f"{type(e).__name__}: {e}"
        job.detail = traceback.format_exc()
    finally:
        job.finished = time.monotonic()
        job._done.set()
    return job


class JobRunner:
    """Runs submitted jobs one after another on a single worker thread (the engine thread);
    :meth:`start_session` runs a long-lived job at once on a thread of its own.

    ``on_event(job, kind)`` is called from the worker thread with kind in
    {"started", "progress", "partial", "finished"}; the Qt adapter turns these into
    queued signals.
    """

    def __init__(self, on_event: Callable[[Job, str], None] | None = None, name: str = "engine") -> None:
        self._queue: "queue.Queue[Job | None]" = queue.Queue()
        self._on_event = on_event
        self.jobs: list[Job] = []
        self.current: Job | None = None
        self._thread = threading.Thread(target=self._loop, name=name, daemon=True)
        self._thread.start()

    def submit(self, name: str, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Job:
        """Queue ``fn(state, *args, **kwargs)`` behind the jobs before it."""
        job = self._register(Job(name, fn, args, kwargs))
        self._queue.put(job)
        return job

    def start_session(self, name: str, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Job:
        """Run a long-lived ``fn(state, ...)`` (until cancelled) now, on its own thread, beside the jobs."""
        job = self._register(Job(name, fn, args, kwargs))
        job.session = True
        threading.Thread(target=self._run, args=(job,), name=f"session-{job.id}", daemon=True).start()
        return job

    def _register(self, job: Job) -> Job:
        npartials = [0]

        def listener(state: JobState) -> None:
            if self._on_event is None:
                return
            if len(state.partials) != npartials[0]:
                npartials[0] = len(state.partials)
                self._emit(job, "partial")
            else:
                self._emit(job, "progress")

        job.state.add_listener(listener)
        self.jobs.append(job)
        return job

    def cancel_all(self) -> None:
        for job in self.jobs:
            if job.status in (JobStatus.QUEUED, JobStatus.RUNNING):
                job.cancel()

    def shutdown(self, wait: bool = True, timeout: float | None = 10.0) -> None:
        self.cancel_all()
        self._queue.put(None)
        if wait:
            self._thread.join(timeout)

    def _emit(self, job: Job, kind: str) -> None:
        if self._on_event is not None:
            try:
                self._on_event(job, kind)
            except Exception:  # an observer's bug must not kill the engine thread
                traceback.print_exc()

    def _run(self, job: Job) -> None:
        self._emit(job, "started")
        run_job(job)
        self._emit(job, "finished")

    def _loop(self) -> None:
        while True:
            job = self._queue.get()
            if job is None:
                return
            self.current = job
            self._run(job)
            self.current = None
