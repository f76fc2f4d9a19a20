"""One input in a worker: the same code in the caller's process, a local pool process and a Ray actor.

:func:`process` hashes the input (unless the driver already did), runs the task into a fresh private
folder ``DIR/.batch-tmp/<random>/`` and then moves each output to its final name with ``os.replace``
(same file system: atomic). A worker killed at any moment leaves at most a staging folder, which the
next run deletes before it starts; under the final names there are only whole files. A bad input is
a record (``status: "failed"`` and the reason), never an exception; only a cancel propagates.

The pool helpers (:func:`init_pool`, :func:`pool_process`) give each worker process its torch thread
share once, report starts and progress to the driver through a queue, watch the driver's cancel
event, and end the process if the driver dies (no orphan keeps writing).
"""

from __future__ import annotations

import contextlib
import os
import secrets
import shutil
import threading
import time
import traceback
from pathlib import Path
from typing import Any

from ..errors import Cancelled, SonoscopeError
from ..jobs import JobState
from . import tasks
from .manifest import identity

STAGING = ".batch-tmp"


def final_name(rel: Path, stem: str, key: str) -> str:
    """Where a staged output goes: its leading ``stem`` (file or folder) becomes the input's key
    (``ep1.srt`` -> ``2019/ep1.srt``, ``ep1/vocals.wav`` -> ``2019/ep1/vocals.wav``)."""
    first, rest = rel.parts[0], rel.parts[1:]
    if first == stem:
        first = key
    elif first.startswith(stem + "."):
        first = key + first[len(stem):]
    else:
        first = f"{key}/{first}"
    return Path(first, *rest).as_posix()


def _failure(e: BaseException, src: Path) -> str:
    if isinstance(e, (SonoscopeError, ValueError)):
        msg = str(e)  # engine errors often start with the file's name, which the record already has
        return msg[len(src.name) + 2:] if msg.startswith(src.name + ": ") else msg
    if isinstance(e, FileNotFoundError):
        return "file not found"
    if isinstance(e, MemoryError):
        return "out of memory"
    if isinstance(e, OSError):
        return e.strerror or str(e)
    return f"{type(e).__name__}: {e}"


def process(state: JobState, task_name: str, path: str, key: str, out_dir: str, options: dict,
            known: dict | None = None) -> dict[str, Any]:
    """Run ``task_name`` on one input; the record for the manifest (without ``options``)."""
    t0 = time.monotonic()
    task = tasks.get(task_name)
    src, out = Path(path), Path(out_dir)
    rec: dict[str, Any] = {"key": key, "worker": f"pid {os.getpid()}", "outputs": {}}
    stage = out / STAGING / secrets.token_hex(8)
    try:
        if not src.is_file():
            raise FileNotFoundError(path)
        rec.update(known or identity(src))
        fn = task.resolve()
        stage.mkdir(parents=True)
        task.write(fn, state, src, stage, options)
        state.check()  # a cancel before the outputs get their final names leaves nothing
        if task.reads_audio:
            from ..audio import io as audio_io

            rec["audio_seconds"] = round(audio_io.info(src).duration, 3)
        staged = sorted(p for p in stage.rglob("*") if p.is_file() and not p.name.startswith("."))
        if not staged:
            raise SonoscopeError(f"the {task_name} task wrote nothing for {src.name}")
        for p in staged:
            rel = final_name(p.relative_to(stage), src.stem, key)
            dest = out / rel
            dest.parent.mkdir(parents=True, exist_ok=True)
            size = p.stat().st_size
            os.replace(p, dest)
            rec["outputs"][rel] = size
        rec["status"] = "done"
    except Cancelled:
        raise
    except Exception as e:  # a bad file is a record, never the end of the batch
        rec.update(status="failed", error=_failure(e, src), outputs={})
        if not isinstance(e, (SonoscopeError, ValueError, OSError)):
            rec["detail"] = traceback.format_exc(limit=6)
    finally:
        with contextlib.suppress(OSError):
            shutil.rmtree(stage)
    rec["seconds"] = round(time.monotonic() - t0, 3)
    return rec


# -- the local pool's worker processes -------------------------------------------------------------
_pool: dict[str, Any] = {}


def init_pool(threads: int | None, events, cancel) -> None:
    """Pool initializer: this process's torch threads, the driver's event queue and cancel flag."""
    from ..compute import set_threads

    set_threads(threads)
    _pool.update(events=events, cancel=cancel)
    parent = os.getppid()

    def watch() -> None:  # the driver was killed: stop rather than write for nobody
        while True:
            time.sleep(0.5)
            if os.getppid() != parent:
                os._exit(1)

    threading.Thread(target=watch, name="watch-driver", daemon=True).start()


def pool_process(index: int, task_name: str, path: str, key: str, out_dir: str, options: dict,
                 known: dict | None) -> dict[str, Any]:
    events, cancel = _pool["events"], _pool["cancel"]
    if cancel.is_set():
        return {"status": "cancelled"}
    events.put(("start", index, os.getpid()))
    last = [0.0]

    def listener(s: JobState) -> None:
        if cancel.is_set():
            s.cancel()
        now = time.monotonic()
        if now - last[0] >= 0.5:
            last[0] = now
            events.put(("progress", index, s.progress))

    try:
        return process(JobState(listener), task_name, path, key, out_dir, options, known)
    except Cancelled:
        return {"status": "cancelled"}
