"""Recording and input monitoring for the GUI (Qt side of engine.audio.capture.InputStream / Recorder).

``RecordingController`` opens the input device (from the settings) for monitoring,
streams takes to the session folder with :class:`engine.audio.capture.Recorder` (the file on disk
is valid up to about the last second at any time), and emits ``recorded(path)`` when a
take is finished so the window can add it to the file list.
"""

from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import QObject, QTimer, Signal, Slot

from engine.errors import SonoscopeError

from . import settings as S


class RecordingController(QObject):
    streamChanged = Signal(object)     # engine.audio.capture.InputStream or None
    recordingChanged = Signal(bool)
    elapsed = Signal(float)            # seconds recorded so far
    recorded = Signal(str)             # path of a finished take
    error = Signal(str)

    def __init__(self, ctx, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.ctx = ctx
        self.stream = None
        self.recorder = None
        self.monitoring = False
        self._owners: set[int] = set()
        self._timer = QTimer(self)
        self._timer.setInterval(200)
        self._timer.timeout.connect(self._tick)

    @property
    def available(self) -> bool:
        return bool(self.ctx.audio.input_ok)

    @property
    def unavailable_reason(self) -> str:
        return self.ctx.audio.input_reason

    @property
    def recording(self) -> bool:
        return self.recorder is not None

    def _open(self) -> bool:
        if self.stream is not None:
            return True
        if not self.available:
            self.error.emit(f"Recording is disabled: {self.unavailable_reason}")
            return False
        from engine.audio import capture

        st = self.ctx.settings
        try:
            self.stream = capture.InputStream(st.get(S.INPUT_DEVICE) or None, st.get(S.RECORD_RATE),
                                           st.get(S.RECORD_CHANNELS)).start()
        except SonoscopeError as e:
            self.stream = None
            self.error.emit(str(e))
            return False
        self.streamChanged.emit(self.stream)
        return True

    # -- shared input for panels (live transcription etc.) ------------------------------------
    def acquire(self, owner: object):
        """Keep the input open for ``owner`` and return the running InputStream (None if unavailable).

        Read it with your own cursor: ``cur = stream.cursor(); frames, cur, lost = stream.read(cur)``.
        Call :meth:`release` when done. ``streamChanged`` tells when the stream is replaced or closed.
        """
        self._owners.add(id(owner))
        if not self._open():
            self._owners.discard(id(owner))
            return None
        return self.stream

    def release(self, owner: object) -> None:
        self._owners.discard(id(owner))
        if not self._owners and not self.monitoring and not self.recording:
            self._close()

    def _close(self) -> None:
        if self._owners:
            return
        if self.stream is not None:
            s, self.stream = self.stream, None
            self.streamChanged.emit(None)
            s.close()

    # -- monitoring -------------------------------------------------------------------------
    def set_monitoring(self, on: bool) -> None:
        self.monitoring = on
        if on:
            self._open()
        elif not self.recording:
            self._close()

    def reopen(self) -> None:
        """Re-open the input after the device or rate changed in the settings."""
        if self.recording:
            return
        was = self.stream is not None
        owners, self._owners = self._owners, set()
        self._close()
        self._owners = owners
        if was:
            self._open()

    # -- recording --------------------------------------------------------------------------
    def toggle(self) -> None:
        self.stop() if self.recording else self.start()

    def start(self) -> Path | None:
        if self.recording or not self._open():
            return None
        from engine.audio import capture

        path = self.ctx.timestamped_path("Recording", ".wav")
        try:
            self.recorder = capture.Recorder(self.stream, path).start()
        except SonoscopeError as e:
            self.recorder = None
            self.error.emit(str(e))
            if not self.monitoring:
                self._close()
            return None
        self._timer.start()
        self.recordingChanged.emit(True)
        self.ctx.status(f"Recording to {path}", 0)
        return path

    def stop(self) -> str | None:
        if self.recorder is None:
            return None
        rec, self.recorder = self.recorder, None
        self._timer.stop()
        path = None
        try:
            path = str(rec.stop())
        except SonoscopeError as e:
            self.error.emit(str(e))
            if rec.path.exists():
                path = str(rec.path)  # keep what was written
        if not self.monitoring:
            self._close()
        self.recordingChanged.emit(False)
        if path:
            self.ctx.status(f"Saved {Path(path).name} ({rec.duration:.1f} s)")
            self.recorded.emit(path)
        return path

    @Slot()
    def _tick(self) -> None:
        rec = self.recorder
        if rec is None:
            return
        self.elapsed.emit(rec.duration)
        if rec.error:  # disk full etc: stop and keep what is on disk
            self.error.emit(rec.error)
            self.stop()

    def shutdown(self) -> None:
        self.stop()
        self._owners.clear()
        self._close()
