"""The batch driver: :func:`run_batch` plans, dispatches and records; the manifest lives here only.

    inputs -> collect (keys) -> manifest check (skip complete ones) -> backend runs the rest:
        "serial"  this process, one file after another (the app's engine thread, --workers 1)
        "pool"    N spawned worker processes, torch threads split between them (--workers N)
        "ray"     Ray actors that keep their model loaded (--ray auto|ADDRESS; ray_backend.py)
    -> each result: manifest record (atomic), stale outputs of an earlier run removed, progress.

The driver reports through a :class:`~engine.jobs.JobState`: ``progress`` is the batch's fraction,
``status`` the progress line (files, audio hours, throughput, ETA), and each file's change of state
is a :class:`FileEvent` partial (queued, skipped, running, done, failed). Cancelling the state stops
the batch (files in flight stop at their next check and leave nothing) and raises ``Cancelled``.
"""

from __future__ import annotations

import contextlib
import multiprocessing
import os
import shutil
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

from ..errors import Cancelled, SonoscopeError
from ..jobs import JobState, null_state
from . import tasks, worker
from .inputs import Input, collect
from .manifest import Manifest, identity, locked, options_hash
from .progress import BatchProgress, clock


@dataclass(frozen=True)
class FileEvent:
    index: int       # position in the batch's inputs
    path: str
    key: str
    status: str      # queued, skipped, running, done, failed
    error: str | None = None
    outputs: tuple[str, ...] = ()
    worker: str | None = None


@dataclass
class BatchSummary:
    task: str
    out_dir: Path
    backend: str
    done: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    failed: list[tuple[str, str]] = field(default_factory=list)
    elapsed: float = 0.0
    audio_seconds: float = 0.0

    @property
    def ok(self) -> bool:
        return not self.failed

    def lines(self) -> list[str]:
        n = len(self.done) + len(self.skipped) + len(self.failed)
        rate = f", {60 * len(self.done) / self.elapsed:.1f} files/min" if self.done and self.elapsed > 0 else ""
        head = (f"{self.task}: {len(self.done)} done, {len(self.skipped)} skipped, {len(self.failed)} failed "
                f"of {n} in {clock(self.elapsed)} ({self.audio_seconds / 3600:.2f} h audio{rate}; {self.backend}) "
                f"-> {self.out_dir}")
        return [head] + [f"failed\t{p}: {why}" for p, why in self.failed]


@dataclass
class Job:
    index: int
    input: Input
    known: dict | None           # the input's identity when the driver already hashed it
    duration: float | None
    prior: dict[str, int]        # outputs an earlier run recorded for this input
    attempts: int = 0

    def args(self, task: str, out: Path, opts: dict) -> tuple:
        return task, str(self.input.path), self.input.key, str(out), opts, self.known


class Hooks:
    """What a backend calls back, in the driver's thread: start, progress, result."""

    def __init__(self, driver: "_Driver") -> None:
        self.start, self.progress, self.result = driver.on_start, driver.on_progress, driver.on_result


def default_threads(workers: int) -> int:
    return max(1, (os.cpu_count() or 1) // max(1, workers))


def run_batch(state: JobState | None, task: str, inputs: Sequence[str | os.PathLike] | Sequence[Input],
              out_dir: str | os.PathLike, options: dict | None = None, workers: int | None = None,
              ray: str | None = None, threads: int | None = None, retries: int = 1) -> BatchSummary:
    """Run ``task`` over ``inputs`` into ``out_dir``; skips what the manifest says is complete.

    ``workers``: 1 (the default) runs in this process, N > 1 in N worker processes (``threads`` torch
    threads each, default the cores divided between them). ``ray``: "auto" or a cluster address
    (``workers`` then caps the actors; default one per CPU, or per GPU). ``retries``: how often a
    file whose worker died is tried again. Raises ``Cancelled`` when the state is cancelled; bad
    files never raise.
    """
    state = state or null_state()
    workers = (0 if ray else 1) if workers is None else workers
    spec = tasks.get(task)
    reason = spec.unavailable()
    if reason:
        raise tasks.TaskNotAvailable(reason)
    opts = spec.options(options)
    out = Path(out_dir).absolute()
    items = list(inputs) if inputs and all(isinstance(i, Input) for i in inputs) else \
        collect(inputs, spec.extensions, out)  # type: ignore[arg-type]
    if not items:
        raise SonoscopeError(f"no input files for the {task} task (folders are searched for "
                             f"{', '.join(spec.extensions[:6])}...)")
    with locked(out):
        shutil.rmtree(out / worker.STAGING, ignore_errors=True)  # what a killed worker left
        driver = _Driver(state, spec, opts, out, items, Manifest(out))
        backend = "serial" if ray is None and workers <= 1 else (f"ray {ray}" if ray else f"pool of {workers}")
        driver.summary.backend = backend
        jobs = driver.plan()
        if ray is not None:
            from .ray_backend import run_ray

            run_ray(jobs, task, out, opts, Hooks(driver), state, ray, workers, retries)
        elif workers <= 1:
            run_serial(jobs, task, out, opts, Hooks(driver), state, threads)
        else:
            run_pool(jobs, task, out, opts, Hooks(driver), state, workers, threads or default_threads(workers),
                     retries)
        driver.summary.elapsed = driver.progress.elapsed
        # every worker has stopped: what is left there is a killed worker's (a rebuilt pool or a lost
        # Ray actor), never a file in progress
        shutil.rmtree(out / worker.STAGING, ignore_errors=True)
    if state.cancelled:
        raise Cancelled()
    state.update(progress=1.0, status=driver.progress.line())
    return driver.summary


class _Driver:
    def __init__(self, state: JobState, spec: tasks.Task, opts: dict, out: Path, items: list[Input],
                 manifest: Manifest) -> None:
        self.state, self.spec, self.opts, self.out, self.items, self.manifest = state, spec, opts, out, items, manifest
        self.hash = options_hash(spec.name, opts)
        self.summary = BatchSummary(spec.name, out, "")
        self.jobs: dict[int, Job] = {}
        self.progress = BatchProgress([])

    def plan(self) -> list[Job]:
        jobs, skipped = [], 0
        for i, it in enumerate(self.items):
            prior = self.manifest.get(self.spec.name, it.path)
            known = None
            if prior:
                with contextlib.suppress(OSError):
                    known = identity(it.path, prior)
                if known and self.manifest.complete(self.spec.name, it.path, known, self.hash):
                    skipped += 1
                    self.summary.skipped.append(str(it.path))
                    self.summary.audio_seconds += prior.get("audio_seconds") or 0.0
                    self._emit(FileEvent(i, str(it.path), it.key, "skipped", outputs=tuple(prior["outputs"])))
                    continue
            jobs.append(Job(i, it, known, self._duration(it.path), dict((prior or {}).get("outputs", {}))))
        self.jobs = {j.index: j for j in jobs}
        self.progress = BatchProgress([j.duration for j in jobs], skipped)
        self._pos = {j.index: k for k, j in enumerate(jobs)}
        for j in jobs:
            self._emit(FileEvent(j.index, str(j.input.path), j.input.key, "queued"))
        self._report()
        return jobs

    def _duration(self, path: Path) -> float | None:
        if not self.spec.reads_audio:
            return None
        from ..audio import io as audio_io

        try:
            return audio_io.info(path).duration  # the header only: milliseconds
        except SonoscopeError:
            return None

    # -- hooks, in the driver's thread ------------------------------------------------------------
    def on_start(self, index: int, who: str) -> None:
        j = self.jobs[index]
        self.progress.started(self._pos[index])
        self._emit(FileEvent(index, str(j.input.path), j.input.key, "running", worker=who))
        self._report()

    def on_progress(self, index: int, fraction: float) -> None:
        self.progress.advance(self._pos[index], fraction)
        self._report()

    def on_result(self, index: int, rec: dict[str, Any]) -> None:
        j = self.jobs[index]
        if rec.get("status") not in ("done", "failed"):  # cancelled: nothing is recorded
            return
        keep = set(rec.get("outputs", {}))
        for rel in set(j.prior) - keep:  # an earlier run's outputs for this input, no longer wanted
            with contextlib.suppress(OSError):
                (self.out / rel).unlink()
        self.manifest.record(self.spec.name, j.input.path, {**rec, "options": self.hash})
        ok = rec["status"] == "done"
        (self.summary.done.append(str(j.input.path)) if ok else
         self.summary.failed.append((str(j.input.path), rec.get("error") or "failed")))
        self.summary.audio_seconds += (rec.get("audio_seconds") or 0.0) if ok else 0.0
        self.progress.finish(self._pos[index], ok, rec.get("audio_seconds"))
        self._emit(FileEvent(index, str(j.input.path), j.input.key, rec["status"], rec.get("error"),
                             tuple(rec.get("outputs", {})), rec.get("worker")))
        self._report()

    def _emit(self, ev: FileEvent) -> None:
        self.state.add_partial(ev)

    def _report(self) -> None:
        with contextlib.suppress(Cancelled):  # the backends look at state.cancelled themselves
            self.state.update(progress=self.progress.fraction, status=self.progress.line())


# -- backends --------------------------------------------------------------------------------------------
def run_serial(jobs: list[Job], task: str, out: Path, opts: dict, hooks: Hooks, state: JobState,
               threads: int | None) -> None:
    """In this process, one file after another (models stay in this process's cache)."""
    if threads:
        from ..compute import set_threads

        set_threads(threads)
    for j in jobs:
        if state.cancelled:
            return
        hooks.start(j.index, f"pid {os.getpid()}")

        def listener(s: JobState, index: int = j.index) -> None:
            if state.cancelled:
                s.cancel()
            hooks.progress(index, s.progress)

        try:
            rec = worker.process(JobState(listener, min_interval=0.25), *j.args(task, out, opts))
        except Cancelled:
            return
        hooks.result(j.index, rec)


def run_pool(jobs: list[Job], task: str, out: Path, opts: dict, hooks: Hooks, state: JobState, workers: int,
             threads: int, retries: int) -> None:
    """N spawned worker processes; a pool broken by a dead worker is rebuilt and its files retried."""
    ctx = multiprocessing.get_context("spawn")
    events, cancel = ctx.Queue(), ctx.Event()
    pending = list(jobs)
    while pending and not state.cancelled:
        started: set[int] = set()
        lost: list[Job] = []
        with ProcessPoolExecutor(min(workers, len(pending)), mp_context=ctx, initializer=worker.init_pool,
                                 initargs=(threads, events, cancel)) as ex:
            futures = {ex.submit(worker.pool_process, j.index, *j.args(task, out, opts)): j for j in pending}
            pending, waiting = [], set(futures)
            while waiting:
                done, waiting = wait(waiting, timeout=0.2, return_when=FIRST_COMPLETED)
                _drain(events, hooks, started)
                if state.cancelled:
                    cancel.set()
                for f in done:
                    j = futures[f]
                    try:
                        hooks.result(j.index, f.result())
                    except BrokenProcessPool:
                        lost.append(j)
        _drain(events, hooks, started)
        flying = [j for j in lost if j.index in started] or lost  # which files were in flight when it broke
        for j in flying:
            j.attempts += 1
        for j in lost:
            if j.attempts > retries:
                hooks.result(j.index, {"status": "failed", "key": j.input.key, "outputs": {},
                                       "error": f"the worker process died {j.attempts} times on this file"})
            else:
                pending.append(j)


def _drain(events, hooks: Hooks, started: set[int]) -> None:
    import queue

    while True:
        try:
            kind, index, value = events.get_nowait()
        except Exception:  # empty (or a message a killed worker left unfinished)
            return
        if kind == "start":
            started.add(index)
            hooks.start(index, f"pid {value}")
        else:
            hooks.progress(index, value)
