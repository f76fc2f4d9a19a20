"""Live: transcribe the microphone (or replay the selected file) while someone speaks.

Pick the engine (Whisper with local agreement, or a CTC model: wav2vec2 / HuBERT) and the
model, then Start. Committed words appear in normal text, the tentative tail in grey, and the
view scrolls with the live spectrogram of the input. Stop finishes the stream (nothing heard
is lost); Save asks where to write the session's audio (WAV) and puts its transcript (TXT, SRT,
JSON) beside it, and adds them to the file list. Without a microphone the panel says why, in the
panel, and offers the replay of a file instead. With the offline sound tagger installed, a row
under the spectrogram names the top 3 sounds of the input once a second (app/widgets/live_tags.py).

The session runs as one engine job (``engine.transcribe.live.live_session``): updates arrive as partial results; Stop
cancels the job, which is its normal end.
"""

from __future__ import annotations

import html
from pathlib import Path

from PySide6.QtCore import Slot
from PySide6.QtWidgets import (QComboBox, QHBoxLayout, QLabel, QPushButton, QTextBrowser, QVBoxLayout,
                               QWidget)

from app.settings import define
from engine import defaults as D
from engine.jobs import lazy

live_session = lazy("engine.transcribe.live", "live_session")  # imports torch: on the engine thread

ENGINE = define("live/engine", str, D.LIVE_ENGINE, "Live transcription engine", ("whisper", "ctc"))
SOURCE = define("live/source", str, "mic", "Live input: microphone or the selected file", ("mic", "file"))

ENGINES = {"whisper": ("Whisper (local agreement)", "whisper"), "ctc": ("CTC: wav2vec2 / HuBERT", "wav2vec2")}
TENTATIVE_COLOR = "#8a8a8a"


LAG_OK, LAG_SLOW, LAG_BAD = "#3a9d4a", "#d08a10", "#d03030"


class LivePanel(QWidget):
    title = "Live"
    area = "tab"
    shortcut = "Ctrl+L"

    def __init__(self, ctx, parent=None) -> None:
        super().__init__(parent)
        self.ctx = ctx
        self.setAccessibleName("Live transcription")
        self.job = None
        self.result: dict | None = None
        self.last = None  # the last StreamUpdate shown
        self.replay_speed = 1.0
        self._source = None
        self._uses_mic = False
        self._extra_models: list[tuple[str, str, str]] = []  # (engine, id/folder, label)

        self.engine = QComboBox(self)
        self.engine.setAccessibleName("Live engine")
        for key, (label, _) in ENGINES.items():
            self.engine.addItem(label, key)
        self.model = QComboBox(self)
        self.model.setAccessibleName("Live model")
        self.source = QComboBox(self)
        self.source.setAccessibleName("Live input")
        self.source.addItem("Microphone", "mic")
        self.source.addItem("Selected file (replay)", "file")
        self.start = QPushButton("Start", self)
        self.start.setAccessibleName("Start or stop live transcription")
        self.save = QPushButton("Save…", self)
        self.save.setAccessibleName("Save the session")
        self.save.setToolTip("Save the session audio (WAV) and, beside it, its transcript (TXT, SRT, JSON)")
        self.save.setEnabled(False)
        self.info = QLabel("", self)
        self.lag = QLabel("", self)  # how far behind real time the engine is (the session clock's lag)
        self.lag.setAccessibleName("Behind real time")
        self.lag.setToolTip("How far the transcription is behind the audio: the time since the newest audio "
                            "it has processed was heard")
        self.mic_note = QLabel("", self)  # why the microphone cannot be used: said here, not only in the status bar
        self.mic_note.setAccessibleName("Microphone status")
        self.mic_note.setWordWrap(True)
        self.mic_note.setStyleSheet("color: #e07050")
        self.mic_note.hide()

        from app.widgets.live_spectrogram import LiveSpectrogram

        self.spectrogram = LiveSpectrogram(self)
        self.spectrogram.setMaximumHeight(140)
        from app.widgets.live_tags import LiveTags

        self.tags = LiveTags(self)  # top 3 sound labels of the input (hidden without the offline tagger)
        self.text = QTextBrowser(self)
        self.text.setAccessibleName("Live transcript")
        self.text.setPlaceholderText("Press Start and speak: committed words appear here, the uncertain "
                                     "tail in grey.")

        top = QHBoxLayout()
        for w in (QLabel("Engine:"), self.engine, QLabel("Model:"), self.model, QLabel("Input:"), self.source):
            top.addWidget(w)
        top.addStretch(1)
        top.addWidget(self.start)
        top.addWidget(self.save)
        lay = QVBoxLayout(self)
        lay.addLayout(top)
        lay.addWidget(self.mic_note)
        lay.addWidget(self.spectrogram)
        lay.addWidget(self.tags)
        lay.addWidget(self.text, 1)
        bottom = QHBoxLayout()
        bottom.addWidget(self.info, 1)
        bottom.addWidget(self.lag)
        lay.addLayout(bottom)

        st = ctx.settings
        i = self.engine.findData(st.get(ENGINE))
        self.engine.setCurrentIndex(max(0, i))
        i = self.source.findData(st.get(SOURCE))
        self.source.setCurrentIndex(max(0, i))
        self._fill_models()
        self.engine.currentIndexChanged.connect(self._engine_changed)
        self.start.clicked.connect(self.toggle)
        self.save.clicked.connect(lambda: self.save_session())
        self.source.currentIndexChanged.connect(lambda _: self._input_changed())
        ctx.audioChanged.connect(lambda _: self._input_changed())
        self._input_changed()

    # -- input ------------------------------------------------------------------------------------
    def _input_changed(self) -> None:
        """Say in the panel whether the chosen input can be used, and why not."""
        if self.running:
            return
        mic = self.source.currentData() == "mic"
        note = ""
        if mic and not self.ctx.audio_checked:
            note = "Checking the audio devices…"
        elif mic and not self.ctx.input.available:
            note = (f"No microphone: {self.ctx.input.unavailable_reason}. Choose Input: “Selected file "
                    f"(replay)” to try live transcription on a recording.")
        self.mic_note.setText(note)
        self.mic_note.setVisible(bool(note))
        self.start.setEnabled(not note)
        self.start.setToolTip(note or ("Transcribe the microphone as you speak" if mic else
                                       "Replay the selected file as if it were spoken now"))
        short = "Checking the audio devices…" if not self.ctx.audio_checked else "No microphone (see above)"
        self.spectrogram.placeholder = ((short if note else "Press Start and speak: the input shows here") if mic
                                        else "Press Start to replay the selected file")
        self.spectrogram.update()

    # -- models -------------------------------------------------------------------------------
    def _fill_models(self) -> None:
        self.model.clear()
        engine = self.engine.currentData()
        family = ENGINES[engine][1]
        try:
            from engine.store import default_store

            store = default_store()
            for spec in store.catalog("transcribe"):
                if spec.family != family:
                    continue
                try:
                    installed = store.is_installed(spec.id)
                except Exception:
                    installed = False
                self.model.addItem(spec.name + ("" if installed else " (download)"), spec.id)
        except Exception as e:  # a broken catalog must not break the panel
            self.model.addItem(f"(no catalog: {e})", "")
        for eng, ident, label in self._extra_models:
            if eng == engine:
                self.model.addItem(label, ident)
        i = self.model.findData(D.LIVE_MODELS.get(engine))  # the CLI's `live` default too
        if i >= 0:
            self.model.setCurrentIndex(i)

    def add_model(self, engine: str, ident: str, label: str) -> None:
        """Offer a local model folder (or id) for ``engine`` and select it."""
        self._extra_models.append((engine, ident, label))
        self.engine.setCurrentIndex(self.engine.findData(engine))
        self._fill_models()
        self.model.setCurrentIndex(self.model.findData(ident))

    @Slot()
    def _engine_changed(self) -> None:
        self.ctx.settings.set(ENGINE, self.engine.currentData())
        self._fill_models()

    # -- session ------------------------------------------------------------------------------
    @property
    def running(self) -> bool:
        return self.job is not None and self.job.finished is None

    @Slot()
    def toggle(self) -> None:
        if self.running:
            self.stop_session()
        else:
            self.start_session()

    def start_session(self):
        src_kind = self.source.currentData()
        self.ctx.settings.set(SOURCE, src_kind)
        if src_kind == "file":
            path = self.ctx.current_path
            if path is None:
                self.ctx.error("Live: select an audio file to replay first")
                return None
            from engine.audio.capture import ReplaySource

            source = ReplaySource(path, speed=self.replay_speed)  # decoded by the session, not here
            self._uses_mic = False
        else:
            source = self.ctx.input.acquire(self)
            if source is None:
                self.ctx.error(f"Live: no microphone ({self.ctx.input.unavailable_reason})")
                return None
            self._uses_mic = True
        self._source = source
        self.result, self.last = None, None
        self.text.clear()
        self.save.setEnabled(False)
        self.spectrogram.attach(source)
        self.tags.attach(source)
        model = self.model.currentData() or None
        self.job = self.ctx.start_session(f"Live transcription ({self.engine.currentText()})", live_session,
                                          engine=self.engine.currentData(), model=model, source=source,
                                          device=self.ctx.compute_device(), threads=self.ctx.threads() or None)
        self.ctx.jobs.on_partial(self.job, self._partial)
        self.ctx.jobs.when_done(self.job, self._done)
        self.start.setText("Stop")
        self.start.setEnabled(True)
        self.info.setText("starting…")
        return self.job

    def stop_session(self) -> None:
        if self.job is not None:
            self.job.cancel()
        self.info.setText("finishing…")

    def _partial(self, job) -> None:
        if job is not self.job or not job.state.partials:
            return
        self.show_update(job.state.partials[-1])

    def show_update(self, u) -> None:
        self.last = u
        body = html.escape(u.committed)
        if u.tentative:
            body += (" " if body else "") + f'<span style="color:{TENTATIVE_COLOR}">{html.escape(u.tentative)}</span>'
        self.text.setHtml(f"<p>{body}</p>")
        bar = self.text.verticalScrollBar()
        bar.setValue(bar.maximum())  # scroll with the input
        self.info.setText(f"{u.audio_time:.1f} s heard, final up to {u.final_time:.1f} s")
        self.show_lag(getattr(u, "lag", None))

    def show_lag(self, lag: float | None) -> None:
        """"0.4 s behind" in green under a second, amber under 3 s, red beyond (the engine cannot keep up)."""
        if lag is None:
            self.lag.setText("")
            return
        color = LAG_OK if lag < 1.0 else LAG_SLOW if lag < 3.0 else LAG_BAD
        self.lag.setText(f"{lag:.1f} s behind real time")
        self.lag.setStyleSheet(f"color: {color}; font-weight: bold")

    def _done(self, job) -> None:
        if job is not self.job:
            return
        self.start.setText("Start")
        self.spectrogram.attach(None)
        self.tags.attach(None)
        self._input_changed()
        if self._uses_mic:
            self.ctx.input.release(self)
        elif self._source is not None:
            self._source.close()
        self._source = None
        from engine.jobs import JobStatus

        if job.status is JobStatus.DONE and job.result:
            self.result = job.result
            if job.result.get("updates"):
                self.show_update(job.result["updates"][-1])
            self.save.setEnabled(bool(len(self.result["audio"])))
            sr = self.result.get("sample_rate", 16000)
            self.info.setText(f"{len(self.result['words'])} words, "
                              f"{len(self.result['audio']) / sr:.1f} s — Save to keep the session")
        elif job.status is JobStatus.FAILED:
            self.ctx.error(f"Live transcription failed: {job.error}")
            self.info.setText(job.error or "failed")
        else:
            self.info.setText("stopped")

    def save_session(self, wav: str | Path | None = None) -> list[Path]:
        """Write the audio as WAV where the save dialog says (``wav`` skips it) and the transcript
        beside it (TXT, SRT, JSON, same name)."""
        if not self.result:
            return []
        from engine.audio import io as audio_io
        from engine.transcribe.exports import export

        from .. import dialogs

        if wav is None:
            name = self.ctx.timestamped_path("Live", ".wav").name
            wav = dialogs.ask_save_path(self.ctx, "Save the live session", name, "WAV audio (*.wav)", self)
            if wav is None:
                return []
        wav = Path(wav)
        sr = self.result.get("sample_rate", 16000)
        audio_io.save(wav, self.result["audio"], sr)
        t = self.result["transcript"]
        t.source = str(wav)
        paths = [wav] + [export(t, wav.with_suffix("." + fmt), fmt) for fmt in ("txt", "srt", "json")]
        for p in paths:
            self.ctx.add_file(p)
        self.ctx.status(f"Saved the live session: {wav.name} + transcript")
        return paths

    def shutdown(self) -> None:
        self.tags.attach(None)
        if self.running:
            self.job.cancel()
        if self._uses_mic:
            self.ctx.input.release(self)
