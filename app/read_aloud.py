"""Speaking text through the app's player as it is synthesised (the Speak panel's Play, "Read aloud").

    GUI: speak(text)  -> session job (own thread): load voice, ("source", StreamSource) partial
                      <- partial: ctx.player.play_stream(source)      (first sentence plays at once)
    job: synthesise sentence by sentence into the source, ("peaks", array) partials -> waveform
    GUI: stop()       -> source.close() (silent from the next audio block), job cancelled, player stopped

The job runs as a session (``ctx.start_session``): a queued transcription never delays the voice.
The GUI thread only hands over the source and draws peaks; it never loads a voice or synthesises.
"""

from __future__ import annotations

from PySide6.QtCore import QObject, Signal

from engine.jobs import lazy

from .settings import define

speak_aloud_job = lazy("engine.speech.stream", "speak_aloud_job")

# the voice everything in the app speaks with (the Speak panel sets it; "Read aloud" uses it too)
VOICE = define("speak/voice", str, "piper-en_US-joe-medium", "Voice id (catalog) for text to speech")
SPEED = define("speak/speed", float, 1.0, "Speaking rate, 1 = the voice's own")


class ReadAloud(QObject):
    started = Signal(int)          # the voice's sample rate: the first sound is on its way
    peaks = Signal(object)         # (k, 2) min/max of the block just synthesised
    finished = Signal(str)         # "done", "stopped", "cancelled" or "failed: <why>"

    def __init__(self, ctx, parent=None) -> None:
        super().__init__(parent)
        self.ctx = ctx
        self.job = None
        self.source = None
        self._stopped = False

    @property
    def active(self) -> bool:
        return self.job is not None and self.job.finished is None

    def speak(self, text: str, voice: str | None = None, speed: float = 1.0, label: str = "(speech)"):
        """Start speaking ``text``; returns the job (None when there is no output device or no text)."""
        from engine.speech.text import TextError, check_text

        if not self.ctx.player.available:
            self.ctx.status(f"Cannot play: {self.ctx.player.unavailable_reason}")
            return None
        try:
            check_text(text)
        except TextError as e:
            self.ctx.error(str(e))
            return None
        self.stop()
        self._stopped = False
        job = self.ctx.start_session(f"Speak {label}", speak_aloud_job, text, voice, speed=speed)
        job.seen = 0
        self.job = job
        self.ctx.jobs.on_partial(job, lambda j: self._partial(j, label))
        self.ctx.jobs.when_done(job, self._done)
        return job

    def _partial(self, job, label: str) -> None:
        parts = job.state.partials
        new, job.seen = parts[job.seen:], len(parts)
        if job is not self.job:
            return
        for kind, item in new:
            if kind == "source" and self._stopped:
                item.close()  # Stop came before the first sound: its producer stops too
            elif kind == "source":
                self.source = item
                self.ctx.player.play_stream(item, label)
                self.started.emit(item.samplerate)
            elif kind == "peaks":
                self.peaks.emit(item)

    def _done(self, job) -> None:
        from engine.jobs import JobStatus

        if job is not self.job:
            return
        if job.status is JobStatus.DONE:
            self.finished.emit("stopped" if job.result.get("stopped") else "done")
        elif job.status is JobStatus.FAILED:
            self.ctx.error(f"Speaking failed: {job.error}")
            self.finished.emit(f"failed: {job.error}")
        else:
            self.finished.emit("cancelled")

    def stop(self) -> None:
        """Silence now: close the stream (the callback plays silence from its next block), stop the job."""
        self._stopped = True
        if self.source is not None:
            mine = not self.source.closed  # closed already: the player went on to something else
            self.source.close()
            if mine:
                self.ctx.player.stop()
            self.source = None
        if self.job is not None and self.job.finished is None:
            self.job.cancel()
