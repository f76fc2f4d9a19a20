"""Speak: text to speech. Type, paste or open a .txt, pick a voice and a speed, Play (streamed:
the first sentence is heard while the rest is synthesised, the waveform grows as it is made), Stop,
Save as… (a ``speak_file`` job, written atomically), or "Open as file" (spoken into the session
folder and put in the file list, where it can be transcribed back).

The GUI thread never loads a voice or synthesises: the voice list comes from a worker thread
(the catalog, nothing loaded), playback is :class:`app.read_aloud.ReadAloud` (a session job),
files are engine jobs.
"""

from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import Slot
from PySide6.QtWidgets import (QComboBox, QDoubleSpinBox, QFileDialog, QFormLayout, QHBoxLayout, QLabel,
                               QPlainTextEdit, QPushButton, QVBoxLayout, QWidget)

from engine.jobs import lazy

from .. import dialogs
from ..read_aloud import SPEED, VOICE, ReadAloud
from ..threads import run_in_thread
from ..widgets.speech_wave import SpeechWave

speak_file = lazy("engine.speech.task", "speak_file")

SAVE_FILTERS = "WAV audio (*.wav);;FLAC audio (*.flac);;MP3 audio (*.mp3);;OGG Vorbis (*.ogg);;All files (*)"
MAX_TEXT_BYTES = 5_000_000  # a .txt larger than this is not a text to read aloud


def _list_voices() -> list:
    from engine.speech.voices import list_voices

    return list_voices()


def _read_text(path: str) -> str:
    from engine.errors import SonoscopeError

    p = Path(path)
    if p.stat().st_size > MAX_TEXT_BYTES:
        raise SonoscopeError(f"{p.name}: {p.stat().st_size / 1e6:.1f} MB is too large for a text to speak")
    raw = p.read_bytes()
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError:
        return raw.decode("latin-1")


class SpeakPanel(QWidget):
    title = "Speak"
    area = "tab"
    shortcut = "Ctrl+Shift+P"

    def __init__(self, ctx, parent=None) -> None:
        super().__init__(parent)
        self.ctx = ctx
        self.setAccessibleName("Speak")
        self.jobs: list = []
        self.text = QPlainTextEdit(self)
        self.text.setAccessibleName("Text to speak")
        self.text.setPlaceholderText("Type or paste text here, or open a .txt file. Numbers, dates, times and "
                                     "money are read as words.")
        self.open_button = QPushButton("Open .txt…", self)
        self.open_button.clicked.connect(self.open_text)
        self.voice = QComboBox(self)
        self.voice.setAccessibleName("Voice")
        self.voice.addItem("Loading voices…", ctx.settings.get(VOICE))
        self.speed = QDoubleSpinBox(self)
        self.speed.setAccessibleName("Speed")
        self.speed.setRange(0.5, 2.0)
        self.speed.setSingleStep(0.1)
        self.speed.setSuffix(" ×")
        self.speed.setValue(min(2.0, max(0.5, ctx.settings.get(SPEED))))
        self.play_button = QPushButton("Play", self)
        self.play_button.setAccessibleName("Speak the text aloud")
        self.play_button.clicked.connect(self.play)
        self.stop_button = QPushButton("Stop", self)
        self.stop_button.setEnabled(False)
        self.stop_button.clicked.connect(self.stop)
        self.save_button = QPushButton("Save as…", self)
        self.save_button.clicked.connect(lambda: self.save_as())
        self.open_file_button = QPushButton("Open as file", self)
        self.open_file_button.setToolTip("Speak the text into the session folder and add it to the file list")
        self.open_file_button.clicked.connect(lambda: self.open_as_file())
        self.wave = SpeechWave(self)
        self.info = QLabel("", self)
        self.info.setWordWrap(True)

        form = QFormLayout()
        form.addRow("Voice:", self.voice)
        form.addRow("Speed:", self.speed)
        top = QHBoxLayout()
        top.addWidget(self.open_button)
        top.addStretch(1)
        buttons = QHBoxLayout()
        for b in (self.play_button, self.stop_button, self.save_button, self.open_file_button):
            buttons.addWidget(b)
        buttons.addStretch(1)
        lay = QVBoxLayout(self)
        lay.addLayout(top)
        lay.addWidget(self.text, 2)
        lay.addLayout(form)
        lay.addLayout(buttons)
        lay.addWidget(self.wave, 1)
        lay.addWidget(self.info)

        self.reader = ReadAloud(ctx, self)
        self.reader.started.connect(self._started)
        self.reader.peaks.connect(self.wave.append)
        self.reader.finished.connect(self._finished)
        ctx.player.positionChanged.connect(self._position)
        self.voices_loaded = False
        run_in_thread(_list_voices, self._voices, self, name="sonoscope-voices")

    # -- voices ----------------------------------------------------------------------------
    def _voices(self, voices, error) -> None:
        want = self.ctx.settings.get(VOICE)
        self.voice.clear()
        if error is not None:
            self.voice.addItem(f"Default voice (no catalog: {error})", want)
        for v in voices or ():
            self.voice.addItem(v.name if v.installed else f"{v.name}  (download to use)", v.id)
        self.voice.setCurrentIndex(max(0, self.voice.findData(want)))
        self.voices_loaded = True

    def options(self) -> dict:
        voice, speed = self.voice.currentData(), round(self.speed.value(), 2)
        self.ctx.settings.set(VOICE, voice)
        self.ctx.settings.set(SPEED, speed)
        return {"voice": voice, "speed": speed}

    # -- text ------------------------------------------------------------------------------
    @Slot()
    def open_text(self, path: str | None = None) -> None:
        if path is None:
            path, _ = QFileDialog.getOpenFileName(self, "Open a text to speak", dialogs.open_dir(self.ctx),
                                                  "Text (*.txt);;All files (*)")
            if not path:
                return

        def done(text, error) -> None:
            if error is not None:
                self.ctx.error(f"Could not open {Path(path).name}: {error}")
                return
            self.text.setPlainText(text)
            self.info.setText(f"{Path(path).name}: {len(text.split())} words")

        run_in_thread(lambda: _read_text(path), done, self, name="sonoscope-read-text")

    # -- playing ---------------------------------------------------------------------------
    @Slot()
    def play(self):
        o = self.options()
        job = self.reader.speak(self.text.toPlainText(), o["voice"], o["speed"], label="Speak panel")
        if job is not None:
            self.wave.clear()
            self.stop_button.setEnabled(True)
            self.info.setText("Synthesising…")
        return job

    @Slot()
    def stop(self) -> None:
        self.reader.stop()
        self.stop_button.setEnabled(False)

    @Slot(int)
    def _started(self, sample_rate: int) -> None:
        self.wave.clear(sample_rate)
        self.info.setText("Speaking…")

    @Slot(str)
    def _finished(self, how: str) -> None:
        seconds = self.wave.seconds
        self.info.setText({"done": f"Spoken: {seconds:.1f} s", "stopped": "Stopped", "cancelled": "Stopped"}
                          .get(how, how))
        if how != "done":
            self.stop_button.setEnabled(False)

    @Slot(float)
    def _position(self, seconds: float) -> None:
        if self.reader.source is not None and self.ctx.player.source_label == "Speak panel":
            self.wave.set_playhead(seconds)
            if self.ctx.player.state != "playing":
                self.stop_button.setEnabled(False)

    # -- files -----------------------------------------------------------------------------
    def _submit_file(self, path: Path, add: bool):
        from engine.errors import SonoscopeError
        from engine.speech.text import check_text

        text = self.text.toPlainText()
        try:
            check_text(text)
        except SonoscopeError as e:
            self.ctx.error(str(e))
            return None
        o = self.options()
        job = self.ctx.submit(f"Speak into {path.name}", speak_file, text, str(path), **o)
        self.jobs.append(job)

        def done(j) -> None:
            from engine.jobs import JobStatus

            if j.status is JobStatus.DONE:
                self.info.setText(f"Saved {j.result.duration:.1f} s to {j.result.path}")
                self.ctx.status(f"Speech saved to {j.result.path}")
                if add:
                    self.ctx.add_file(j.result.path, select=True)
            elif j.status is JobStatus.FAILED:
                self.ctx.error(f"Speaking into {path.name} failed: {j.error}")
        self.ctx.jobs.when_done(job, done)
        return job

    def save_as(self, out: str | Path | None = None):
        """Speak the text into a file the save dialog names (``out`` skips the dialog); a job."""
        if out is None:
            out = dialogs.ask_save_path(self.ctx, "Save the speech", "speech.wav", SAVE_FILTERS, self)
            if out is None:
                return None
        return self._submit_file(Path(out), add=False)

    def open_as_file(self):
        """Speak the text into a new file of the session folder and put it in the file list; a job."""
        return self._submit_file(self.ctx.new_output_path("speech", ".wav"), add=True)

    def shutdown(self) -> None:
        self.reader.stop()
        for job in self.jobs:
            job.cancel()
