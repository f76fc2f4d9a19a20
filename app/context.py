"""The object every panel receives: the app's shared services, and nothing Qt-widget-specific.

``AppContext`` is the extension contract for panels (see ``app/panels/__init__.py``):

- ``ctx.settings``  -- :class:`app.settings.Settings`, typed keys (``app.settings.define`` for new ones)
- ``ctx.jobs``      -- :class:`app.engine_bridge.EngineBridge`:
  ``ctx.jobs.submit(name, fn, *args, **kwargs) -> engine.jobs.Job`` runs ``fn(state, ...)`` on
  the one engine thread; signals ``jobAdded/jobStarted/jobProgress/jobPartial/jobFinished(job)``
  arrive in the GUI thread; ``ctx.jobs.when_done(job, cb)`` and ``ctx.jobs.on_partial(job, cb)``
  call ``cb(job)`` in the GUI thread. The jobs panel shows every submitted job with progress,
  cancel and errors, so panels need not.
- ``ctx.submit(...)``  -- shorthand for ``ctx.jobs.submit``.
- ``ctx.selection`` (list of Path), ``ctx.current_path`` (Path or None) and the signal
  ``selectionChanged(list[str])`` -- the files selected in the file list.
- ``ctx.player``    -- :class:`app.player.PlayerController`: ``play_file(path, start=0.0)``,
  ``play_array(audio, sr, start=0.0, label="")``, ``toggle/pause/stop/seek(seconds)``,
  ``set_loop(a, b)``, signals ``positionChanged(float)``, ``stateChanged(str)``;
  ``ctx.player.available`` is False (and ``unavailable_reason`` says why) with no output device.
  The calls return at once: files and the device are opened on the player's own thread, so
  ``state`` says what was asked for, ``busy`` whether it is still on its way, and a failure
  arrives as ``error(str)`` (the state then falls back to "stopped").
- ``ctx.add_file(path, select=False)`` -- put a generated/exported file into the file list.
- ``ctx.status(message, timeout_ms=5000)`` -- a line in the status bar; ``ctx.error(message)``
  shows an error there too (no modal dialogs from panels, please).
- ``ctx.output_dir()`` -- the session folder (created on demand) where generated files go;
  ``ctx.new_output_path(stem, ext)`` -- a free path in it (never overwrites).
- ``ctx.input`` -- :class:`app.recording.RecordingController`, the one input device of the app:
  ``stream = ctx.input.acquire(self)`` returns the running :class:`engine.audio.capture.InputStream`
  (or None if recording is unavailable; the reason is in ``ctx.input.unavailable_reason``),
  ``ctx.input.release(self)`` when done; ``ctx.input.streamChanged(stream_or_None)`` fires
  when the device is re-opened. Pull audio with your own cursor
  (``cur = stream.cursor(); frames, cur, lost = stream.read(cur)``; frames are
  ``(n, channels)`` float32 at ``stream.samplerate``), never block in a Qt slot.
  ``ctx.input.recorded(path)`` fires when a take is finished.
- ``ctx.speakers`` -- :class:`app.speaker_book.SpeakerBook`: who spoke when per file (``turns[path]``,
  ``names[path]`` = {"S1": "Alice"}; ``set_turns``, ``rename``; ``changed(path)``), shared by the panels.
- ``ctx.probe`` -- :class:`app.probe.AudioProbe`: ``info = ctx.probe.request(path)`` gives the
  cached ``AudioInfo`` (or None) and probes unknown files on a worker thread; the answer comes as
  ``ctx.probe.probed(path, info_or_None, error)``. Never call ``engine.audio.io.info`` in a slot.
- ``ctx.audio`` -- :class:`engine.audio.devices.Availability` (input_ok/output_ok and reasons);
  PortAudio is asked after the first paint, off the GUI thread: until then ``ctx.audio_checked``
  is False and both are off; ``audioChanged(availability)`` fires when the answer is in.
  ``ctx.compute_device()`` -- "auto" / "cpu" / "cuda" and ``ctx.threads()`` (0 = automatic)
  from the settings; read them in the GUI thread and pass them to your job function.

Everything here lives in the GUI thread; call it from there only.
"""

from __future__ import annotations

import datetime as _dt
from pathlib import Path

from PySide6.QtCore import QObject, Signal

from engine.fileio import unique_path

from . import settings as S
from .engine_bridge import EngineBridge
from .player import PlayerController


class AppContext(QObject):
    selectionChanged = Signal(list)        # list[str] of selected paths
    addFileRequested = Signal(str, bool)   # path, select it
    statusMessage = Signal(str, int)       # text, timeout in ms
    errorMessage = Signal(str)
    audioChanged = Signal(object)          # engine.audio.devices.Availability

    def __init__(self, settings: S.Settings, jobs: EngineBridge, player: PlayerController,
                 audio=None, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.settings = settings
        self.jobs = jobs
        self.player = player
        from .probe import AudioProbe
        from .recording import RecordingController

        self.audio_checked = audio is not None
        if audio is None:
            from engine.audio.devices import Availability

            from .startup import AUDIO_CHECKING

            audio = Availability(False, False, AUDIO_CHECKING, AUDIO_CHECKING)
        self.audio = audio
        self.probe = AudioProbe(self)
        self.input = RecordingController(self, self)
        from .speaker_book import SpeakerBook

        self.speakers = SpeakerBook(self)  # who spoke when per file, shared by the panels
        self._selection: list[Path] = []

    # -- audio devices -----------------------------------------------------------------------
    def set_audio(self, audio) -> None:
        """The answer of the (background) device check: enables playback/recording, tells everyone."""
        self.audio = audio
        self.audio_checked = True
        self.player.available = bool(audio.output_ok)
        self.player.unavailable_reason = audio.output_reason
        self.audioChanged.emit(audio)

    # -- jobs ------------------------------------------------------------------------------
    def submit(self, name: str, fn, *args, **kwargs):
        """Queue a job on the engine thread (it waits as "queued" behind the jobs before it)."""
        return self.jobs.submit(name, fn, *args, **kwargs)

    def start_session(self, name: str, fn, *args, **kwargs):
        """Start a long-lived job (live transcription) on its own thread: it never blocks the jobs."""
        return self.jobs.start_session(name, fn, *args, **kwargs)

    # -- selection -------------------------------------------------------------------------
    @property
    def selection(self) -> list[Path]:
        return list(self._selection)

    @property
    def current_path(self) -> Path | None:
        return self._selection[0] if self._selection else None

    def set_selection(self, paths) -> None:
        new = [Path(p) for p in paths]
        if new != self._selection:
            self._selection = new
            self.selectionChanged.emit([str(p) for p in new])

    # -- files -----------------------------------------------------------------------------
    def add_file(self, path: str | Path, select: bool = False) -> None:
        self.addFileRequested.emit(str(path), bool(select))

    def output_dir(self) -> Path:
        return self.settings.output_dir()

    def new_output_path(self, stem: str, ext: str = ".wav") -> Path:
        ext = ext if ext.startswith(".") else "." + ext
        return unique_path(self.output_dir() / f"{stem}{ext}")

    def timestamped_path(self, prefix: str, ext: str = ".wav") -> Path:
        stamp = _dt.datetime.now().strftime("%Y-%m-%d %H-%M-%S")
        return self.new_output_path(f"{prefix} {stamp}", ext)

    # -- status ----------------------------------------------------------------------------
    def status(self, message: str, timeout_ms: int = 5000) -> None:
        self.statusMessage.emit(message, timeout_ms)

    def error(self, message: str) -> None:
        self.errorMessage.emit(message)

    def compute_device(self) -> str:
        """"auto", "cpu" or "cuda" (pass to ``engine.compute.pick_device`` inside the job)."""
        return self.settings.get(S.COMPUTE_DEVICE)

    def threads(self) -> int:
        """CPU threads for models, 0 = automatic (pass to ``engine.compute.set_threads`` inside the job)."""
        return self.settings.get(S.THREADS)
