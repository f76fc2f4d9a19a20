"""Qt side of playback: one shared player the whole app (and every panel) plays through.

Wraps :class:`engine.audio.playback.Playback`; polls its position with a timer and emits
``positionChanged(seconds)``. Files are streamed from disk by the engine's read-ahead
feeder, so nothing waits for a long file to decode and memory stays small. With no
output device every call is a no-op and ``available``/``unavailable_reason`` say why.

The GUI thread never waits for the device: opening a file (probing it), opening or re-opening
the PortAudio stream and filling the first read-ahead all run, in order, on one player thread.
``state`` changes at once (what was asked for); a failure comes back as ``error(message)`` and
the state falls back to "stopped". ``busy`` is True while commands are still on their way.
"""

from __future__ import annotations

import queue
import threading
from pathlib import Path

import numpy as np
from PySide6.QtCore import QObject, QTimer, Signal, Slot

from engine.errors import SonoscopeError

from .threads import emit


class PlayerController(QObject):
    positionChanged = Signal(float)       # seconds
    stateChanged = Signal(str)            # "playing", "paused", "stopped"
    sourceChanged = Signal(str, float)    # label (file path or name), duration in seconds
    error = Signal(str)
    _report = Signal(int, str, object)    # player thread -> GUI: command number, kind, payload

    def __init__(self, output_device: str = "", available: bool = True, reason: str = "",
                 parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.available = available
        self.unavailable_reason = reason
        self.source_label = ""
        self._playback = None
        self._device = output_device
        self._state = "stopped"
        self._issued = 0      # number of the last command sent to the player thread
        self._done = 0        # number of the last command it finished
        self._transport = 0   # number of the last play / pause / stop command
        self._commands: "queue.Queue" = queue.Queue()
        self._thread: threading.Thread | None = None
        self._report.connect(self._on_report)
        self._timer = QTimer(self)
        self._timer.setInterval(30)
        self._timer.timeout.connect(self._poll)

    # -- helpers ----------------------------------------------------------------------------
    @property
    def playback(self):
        """The engine Playback (created on first use; drive it through this controller)."""
        if self._playback is None:
            from engine.audio.playback import Playback

            self._playback = Playback(self._device or None)
        return self._playback

    @property
    def busy(self) -> bool:
        """Commands (play, seek, …) are still waiting for or running on the player thread."""
        return self._done != self._issued

    def _submit(self, fn, position: bool = False) -> int:
        """Run ``fn()`` on the player thread after the commands before it."""
        self._issued += 1
        self._commands.put((self._issued, fn, position))
        if self._thread is None or not self._thread.is_alive():
            self._thread = threading.Thread(target=self._run, name="sonoscope-player", daemon=True)
            self._thread.start()
        return self._issued

    def _run(self) -> None:
        while True:
            item = self._commands.get()
            if item is None:
                return
            number, fn, position = item
            try:
                fn(number)
            except SonoscopeError as e:
                emit(self._report, number, "failed", str(e))
            except Exception as e:  # a bug must not kill the player thread
                emit(self._report, number, "failed", f"{type(e).__name__}: {e}")
            emit(self._report, number, "done", position)

    @Slot(int, str, object)
    def _on_report(self, number: int, kind: str, payload) -> None:
        if kind == "source":
            label, duration = payload
            self.sourceChanged.emit(label, duration)
        elif kind == "unloaded":  # that file could not be opened: the old source stays
            path, previous = payload
            if self.source_label == path:
                self.source_label = previous
        elif kind == "failed":
            self.error.emit(payload)
            if number == self._transport:  # no newer play / pause / stop was asked meanwhile
                self._timer.stop()
                self._set_state("stopped")
        elif kind == "done":
            self._done = number
            if payload:
                self.positionChanged.emit(self.position)

    def set_output_device(self, name: str) -> None:
        self._device = name

        def run(_):
            pb = self._playback
            if pb is not None:
                pb.pause()
                pb._close_stream()  # re-opened on the new device at the next play
                pb.device_name = name or None

        self._submit(run)
        self._timer.stop()
        self._set_state("paused" if self._state == "playing" else self._state)

    @property
    def state(self) -> str:
        return self._state

    @property
    def position(self) -> float:
        return self._playback.position if self._playback is not None else 0.0

    @property
    def duration(self) -> float:
        return self._playback.duration if self._playback is not None else 0.0

    def _set_state(self, state: str) -> None:
        if state != self._state:
            self._state = state
            self.stateChanged.emit(state)

    def _guard(self) -> bool:
        if not self.available:
            self.error.emit(f"Playback is disabled: {self.unavailable_reason}")
            return False
        return True

    # -- API for panels ---------------------------------------------------------------------
    def play_file(self, path: str | Path, start: float = 0.0) -> None:
        """Play ``path`` from ``start`` seconds, streamed from disk."""
        if not self._guard():
            return
        path = str(path)
        reload = path != self.source_label or self._playback is None or self.duration <= 0
        previous, self.source_label = self.source_label, path

        def run(number):
            pb = self.playback
            if reload:
                try:
                    pb.load_file(path)  # probes the file and starts its read-ahead
                except SonoscopeError:
                    emit(self._report, number, "unloaded", (path, previous))
                    raise
                emit(self._report, number, "source", (path, pb.duration))
            pb.play(start)

        self._begin(run)

    def play_array(self, audio: np.ndarray, sr: int, start: float = 0.0, label: str = "") -> None:
        """Play an in-memory signal ``(samples,)`` or ``(channels, samples)``.

        The array is played as it is (a ``(channels, frames)`` view of a C-contiguous
        ``(frames, channels)`` float32 buffer is not copied); do not resize it while it plays."""
        if not self._guard():
            return
        label = label or "(generated audio)"
        self.source_label = label

        def run(number):
            pb = self.playback
            pb.load(audio, sr)
            emit(self._report, number, "source", (label, pb.duration))
            pb.play(start)

        self._begin(run)

    def play_stream(self, source, label: str = "(speech)") -> None:
        """Play an :class:`engine.audio.playback.StreamSource` while its producer fills it (speech)."""
        if not self._guard():
            source.close()  # nobody will play it: let its producer stop
            return
        self.source_label = label

        def run(number):
            pb = self.playback
            pb.load_stream(source)
            emit(self._report, number, "source", (label, 0.0))
            pb.play()

        self._begin(run)

    def _begin(self, run) -> None:
        self._transport = self._submit(run)
        self._set_state("playing")
        self._timer.start()

    def toggle(self) -> None:
        if self._state == "playing":
            self.pause()
        elif self._playback is not None and self.duration > 0 and self._guard():
            self._begin(lambda _: self.playback.play(None))

    def play(self) -> None:
        if self._state != "playing":
            self.toggle()

    def pause(self) -> None:
        if self._playback is not None or self.busy:
            self._transport = self._submit(lambda _: self._playback is not None and self._playback.pause(),
                                           position=True)
        self._timer.stop()
        self._set_state("paused")

    def stop(self) -> None:
        if self._playback is not None or self.busy:
            self._transport = self._submit(lambda _: self._playback is not None and self._playback.stop(),
                                           position=True)
        self._timer.stop()
        self._set_state("stopped")

    def seek(self, seconds: float) -> None:
        if self._playback is not None or self.busy:
            self._submit(lambda _: self._playback is not None and self._playback.seek(seconds), position=True)

    def set_loop(self, start: float | None, stop: float | None = None) -> None:
        if self._playback is not None or self.busy:
            self._submit(lambda _: self._playback is not None and self._playback.set_loop(start, stop))

    @Slot()
    def _poll(self) -> None:
        pb = self._playback
        if pb is None or self.busy:
            return  # the source may be about to change: its position means nothing yet
        self.positionChanged.emit(pb.position)
        if not pb.playing and self._state == "playing":
            self._timer.stop()
            self._set_state("stopped")

    def close(self) -> None:
        self._timer.stop()
        if self._thread is not None and self._thread.is_alive():
            self._submit(lambda _: self._playback is not None and self._playback.close())
            self._commands.put(None)
            self._thread.join(3.0)
        elif self._playback is not None:
            self._playback.close()
