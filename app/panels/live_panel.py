"""Live: transcribe the microphone (or replay the selected file) while someone speaks.

Pick the engine (Whisper with local agreement, or a CTC model: wav2vec2 / HuBERT) and the
model, then Start. Committed words appear in normal text, the tentative tail in grey, and the
view scrolls with the live spectrogram of the input. Stop finishes the stream (nothing heard
is lost); Save writes the session's audio (WAV) and transcript (TXT, SRT, JSON) to the session
folder and adds them to the file list.

The session runs as one engine job (``live_job``): updates arrive as partial results; Stop
cancels the job, which is its normal end.
"""

from __future__ import annotations

import html
from pathlib import Path

from PySide6.QtCore import Qt, Slot
from PySide6.QtWidgets import (QComboBox, QHBoxLayout, QLabel, QPushButton, QTextBrowser, QVBoxLayout,
                               QWidget)

from app.settings import define

ENGINE = define("live/engine", str, "whisper", "Live transcription engine", ("whisper", "ctc"))
SOURCE = define("live/source", str, "mic", "Live input: microphone or the selected file", ("mic", "file"))

ENGINES = {"whisper": ("Whisper (local agreement)", "whisper"), "ctc": ("CTC: wav2vec2 / HuBERT", "wav2vec2")}
TENTATIVE_COLOR = "#8a8a8a"


def live_job(state, engine: str, model: str | None, source, device: str = "auto", threads: int = 0,
             int8: bool = True):
    """Engine-thread job: load the model, then transcribe ``source`` until cancelled (Stop) or it ends."""
    from engine.devices import pick_device, set_threads
    from engine.streaming import live_transcribe, make_streamer

    if threads:
        set_threads(threads)
    dev = pick_device(device)
    state.update(status="loading model")
    streamer = make_streamer(engine, model, state=None, int8=int8 and dev.type == "cpu", device=dev.type)
    state.update(status="listening")
    return live_transcribe(state, streamer, source=source)  # a replayed file starts now


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
        self.save.setToolTip("Save the session audio (WAV) and transcript (TXT, SRT, JSON) to the session folder")
        self.save.setEnabled(False)
        self.info = QLabel("", self)

        from app.widgets.live_spectrogram import LiveSpectrogram

        self.spectrogram = LiveSpectrogram(self)
        self.spectrogram.setMaximumHeight(140)
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
        lay.addWidget(self.spectrogram)
        lay.addWidget(self.text, 1)
        lay.addWidget(self.info)

        st = ctx.settings
        i = self.engine.findData(st.get(ENGINE))
        self.engine.setCurrentIndex(max(0, i))
        i = self.source.findData(st.get(SOURCE))
        self.source.setCurrentIndex(max(0, i))
        self._fill_models()
        self.engine.currentIndexChanged.connect(self._engine_changed)
        self.start.clicked.connect(self.toggle)
        self.save.clicked.connect(self.save_session)

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
            from engine import audio as audio_io
            from engine.errors import SonoscopeError
            from engine.streaming import ReplaySource

            try:
                a, sr = audio_io.load(path, mono=True)
            except SonoscopeError as e:
                self.ctx.error(f"Live: {e}")
                return None
            source = ReplaySource(a, sr, speed=self.replay_speed)
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
        model = self.model.currentData() or None
        self.job = self.ctx.submit(f"Live transcription ({self.engine.currentText()})", live_job,
                                   self.engine.currentData(), model, source, self.ctx.compute_device(),
                                   self.ctx.threads())
        self.ctx.jobs.on_partial(self.job, self._partial)
        self.ctx.jobs.when_done(self.job, self._done)
        self.start.setText("Stop")
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

    def _done(self, job) -> None:
        if job is not self.job:
            return
        self.start.setText("Start")
        self.spectrogram.attach(None)
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

    def save_session(self) -> list[Path]:
        """Write audio (WAV) + transcript (TXT, SRT, JSON) into the session folder."""
        if not self.result:
            return []
        from engine import audio as audio_io
        from engine.streaming import session_transcript
        from engine.whisper.exports import export

        sr = self.result.get("sample_rate", 16000)
        wav = self.ctx.timestamped_path("Live", ".wav")
        audio_io.save(wav, self.result["audio"], sr)
        t = session_transcript(self.result["words"], len(self.result["audio"]) / sr, str(wav))
        paths = [wav] + [export(t, wav.with_suffix("." + fmt), fmt) for fmt in ("txt", "srt", "json")]
        for p in paths:
            self.ctx.add_file(p)
        self.ctx.status(f"Saved the live session: {wav.name} + transcript")
        return paths

    def shutdown(self) -> None:
        if self.running:
            self.job.cancel()
        if self._uses_mic:
            self.ctx.input.release(self)
