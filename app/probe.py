"""Audio file probing off the GUI thread, with a cache shared by the whole window.

``AudioProbe.request(path)`` returns the cached :class:`engine.audio.io.AudioInfo` at once (or
None) and, when the file was never probed, queues it on the one probe thread; the answer
arrives as ``probed(path, info_or_None, error)`` in the GUI thread. Every widget that shows a
file's format or length (the file list, the file info panel, the transport readout) listens to
the same signal, so a file is probed once however often it is selected. A cached answer is
re-checked in the background (a ``stat``, no decoding) and probed again only if the file
changed on disk.
"""

from __future__ import annotations

import collections
import threading
from pathlib import Path

from PySide6.QtCore import QObject, Signal, Slot

from .threads import emit

MAX_CACHED = 4096  # AudioInfo is tiny; this bounds a session that browses huge folders


def _stamp(path: str):
    import os

    try:
        st = os.stat(path)
        return (st.st_size, st.st_mtime_ns)
    except OSError:
        return None


class AudioProbe(QObject):
    probed = Signal(str, object, str)      # path, AudioInfo or None, error text (GUI thread)
    _result = Signal(str, object, str, object)  # worker -> GUI: path, info, error, stamp

    def __init__(self, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self._cache: "collections.OrderedDict[str, tuple]" = collections.OrderedDict()  # path -> (info, error, stamp)
        self._queue: "collections.deque[tuple[str, object]]" = collections.deque()  # (path, cached stamp)
        self._queued: set[str] = set()
        self._cond = threading.Condition()
        self._worker: threading.Thread | None = None
        self._closed = False
        self.probes = 0  # files actually probed (for tests and the curious)
        self._result.connect(self._store)

    # -- GUI thread ---------------------------------------------------------------------------
    def cached(self, path) -> tuple | None:
        """``(info, error)`` if ``path`` was probed, else None (never touches the disk)."""
        hit = self._cache.get(str(path))
        return None if hit is None else hit[:2]

    def request(self, path, urgent: bool = True):
        """The cached AudioInfo of ``path`` (None if unknown or unreadable); probes it in the
        background when needed. ``urgent`` puts it before files queued earlier (a selection
        must not wait behind a folder of thousands)."""
        key = str(path)
        hit = self._cache.get(key)
        if hit is not None:
            self._cache.move_to_end(key)
        self._enqueue(key, hit[2] if hit is not None else None, urgent)
        return hit[0] if hit is not None else None

    def _enqueue(self, key: str, stamp, urgent: bool) -> None:
        with self._cond:
            if self._closed or key in self._queued:
                return
            self._queued.add(key)
            (self._queue.appendleft if urgent else self._queue.append)((key, stamp))
            self._cond.notify()
            if self._worker is None or not self._worker.is_alive():
                self._worker = threading.Thread(target=self._loop, name="sonoscope-probe", daemon=True)
                self._worker.start()

    @Slot(str, object, str, object)
    def _store(self, path: str, info, error: str, stamp) -> None:
        with self._cond:
            self._queued.discard(path)  # in flight until its answer is in the cache
        self._cache[path] = (info, error, stamp)
        self._cache.move_to_end(path)
        while len(self._cache) > MAX_CACHED:
            self._cache.popitem(last=False)
        self.probed.emit(path, info, error)

    def close(self) -> None:
        with self._cond:
            self._closed = True
            self._queue.clear()
            self._cond.notify_all()

    # -- probe thread -----------------------------------------------------------------------
    def _loop(self) -> None:
        from engine.audio import io as audio
        from engine.errors import SonoscopeError

        while True:
            with self._cond:
                if not self._queue and not self._closed:
                    self._cond.wait(2.0)
                if self._closed or not self._queue:
                    self._worker = None  # _enqueue starts a new one (under the same lock)
                    return
                path, cached_stamp = self._queue.popleft()
            stamp = _stamp(path)
            if cached_stamp is not None and cached_stamp == stamp:
                with self._cond:
                    self._queued.discard(path)
                continue  # unchanged on disk: the cached answer stands
            self.probes += 1
            try:
                info, error = audio.info(path), ""
            except SonoscopeError as e:
                info, error = None, str(e)
            except Exception as e:  # a decoder bug must not kill the worker
                info, error = None, f"{type(e).__name__}: {e}"
            emit(self._result, path, info, error, stamp)


def describe_error(path: str, error: str) -> str:
    """The part of a probe error after the file name (the row already shows the name)."""
    name = Path(path).name
    return error.split(": ", 1)[1] if error.startswith(name + ":") else error
