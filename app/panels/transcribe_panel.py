"""Transcribe: Whisper speech to text on the selected files, segments shown live, click to play, export.

Each selected file becomes one queued engine job (``transcribe_job``); its segments arrive as
partial results and are appended to the table while the file is decoded. Activating a segment
(double click or Enter) plays the file from the segment's start. The Export menu writes the
current file's transcript as TXT, SRT, VTT or JSON into the session folder.
"""

from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import Qt, Slot
from PySide6.QtWidgets import (QCheckBox, QComboBox, QFormLayout, QHBoxLayout, QLabel, QMenu, QPushButton,
                               QSpinBox, QToolButton, QTreeWidget, QTreeWidgetItem, QVBoxLayout, QWidget)

from app.settings import define

MODEL = define("transcribe/model", str, "whisper-base", "Transcription model id")
LANGUAGE = define("transcribe/language", str, "auto", "Spoken language code, or auto")
TASK = define("transcribe/task", str, "transcribe", "transcribe or translate", ("transcribe", "translate"))
BEAM = define("transcribe/beam_size", int, 1, "Beam search width (1 = greedy)")
WORDS = define("transcribe/word_timestamps", bool, False, "Word timestamps")

ROLE = Qt.ItemDataRole.UserRole


def transcribe_job(state, path: str, model: str, options: dict, device: str = "auto", threads: int = 0):
    """Engine-thread job: load (cached) and transcribe one file; segments go to ``state.add_partial``."""
    from engine.devices import pick_device, set_threads
    from engine.whisper.loading import load
    from engine.whisper.transcribe import transcribe

    if threads:
        set_threads(threads)
    dev = pick_device(device)
    m, tk = load(model, state=state.sub(0.0, 0.05), device=dev.type)
    return transcribe(state.sub(0.05, 1.0), m, tk, path, **options)


class TranscribePanel(QWidget):
    title = "Transcribe"
    area = "tab"
    shortcut = "Ctrl+T"

    def __init__(self, ctx, parent=None) -> None:
        super().__init__(parent)
        self.ctx = ctx
        self.setAccessibleName("Transcribe")
        self.transcripts: dict[str, object] = {}  # path -> Transcript of the last finished run
        self.jobs: list = []

        self.model = QComboBox(self)
        self.model.setAccessibleName("Transcription model")
        self._fill_models()
        self.language = QComboBox(self)
        self.language.setAccessibleName("Language")
        from engine.whisper.tokenizer import LANGUAGES

        self.language.addItem("Detect automatically", "auto")
        for code, name in sorted(LANGUAGES.items(), key=lambda kv: kv[1]):
            self.language.addItem(f"{name.title()} ({code})", code)
        self.task = QComboBox(self)
        self.task.setAccessibleName("Task")
        self.task.addItem("Transcribe", "transcribe")
        self.task.addItem("Translate to English", "translate")
        self.beam = QSpinBox(self)
        self.beam.setAccessibleName("Beam size")
        self.beam.setRange(1, 10)
        self.beam.setToolTip("1 = greedy decoding (fastest); 5 = beam search (slightly more accurate)")
        self.words = QCheckBox("Word timestamps", self)
        self._restore()

        form = QFormLayout()
        form.addRow("Model:", self.model)
        form.addRow("Language:", self.language)
        form.addRow("Task:", self.task)
        form.addRow("Beam size:", self.beam)
        form.addRow("", self.words)

        self.run_button = QPushButton("Transcribe selected files", self)
        self.run_button.setAccessibleName("Transcribe the selected files")
        self.run_button.clicked.connect(self.run)
        self.export_button = QToolButton(self)
        self.export_button.setText("Export")
        self.export_button.setAccessibleName("Export the transcript")
        self.export_button.setPopupMode(QToolButton.ToolButtonPopupMode.InstantPopup)
        menu = QMenu(self.export_button)
        for fmt, label in (("txt", "Text (.txt)"), ("srt", "Subtitles (.srt)"), ("vtt", "WebVTT (.vtt)"),
                           ("json", "JSON with words (.json)")):
            menu.addAction(label, lambda f=fmt: self.export(f))
        self.export_button.setMenu(menu)
        self.export_button.setEnabled(False)
        buttons = QHBoxLayout()
        buttons.addWidget(self.run_button)
        buttons.addWidget(self.export_button)
        buttons.addStretch(1)

        self.segments = QTreeWidget(self)
        self.segments.setAccessibleName("Transcript segments")
        self.segments.setHeaderLabels(["File", "Start", "End", "Text"])
        self.segments.setRootIsDecorated(False)
        self.segments.setAlternatingRowColors(True)
        self.segments.itemActivated.connect(self._play_item)
        self.segments.itemDoubleClicked.connect(self._play_item)
        self.info = QLabel("Select audio files, then Transcribe. Double-click a segment to play from there.", self)
        self.info.setWordWrap(True)

        lay = QVBoxLayout(self)
        lay.addLayout(form)
        lay.addLayout(buttons)
        lay.addWidget(self.segments, 1)
        lay.addWidget(self.info)
        ctx.selectionChanged.connect(self._selection)
        self._selection([str(p) for p in ctx.selection])

    # -- settings --------------------------------------------------------------------------
    def _fill_models(self) -> None:
        try:
            from engine.store import default_store

            store = default_store()
            specs = store.catalog("transcribe")
        except Exception as e:  # a broken catalog must not break the panel
            self.model.addItem(f"(no catalog: {e})", "")
            return
        for spec in specs:
            if spec.family != "whisper":
                continue
            try:
                installed = store.is_installed(spec.id)
            except Exception:
                installed = False
            self.model.addItem(f"{spec.name}{'' if installed else '  (download)'}", spec.id)

    def add_model(self, path_or_id: str, label: str | None = None) -> None:
        """Offer a local model folder (or id) and select it."""
        i = self.model.findData(path_or_id)
        if i < 0:
            self.model.addItem(label or Path(path_or_id).name, path_or_id)
            i = self.model.count() - 1
        self.model.setCurrentIndex(i)

    def _restore(self) -> None:
        s = self.ctx.settings
        for combo, key in ((self.model, MODEL), (self.language, LANGUAGE), (self.task, TASK)):
            i = combo.findData(s.get(key))
            if i >= 0:
                combo.setCurrentIndex(i)
        self.beam.setValue(max(1, s.get(BEAM)))
        self.words.setChecked(s.get(WORDS))

    def _save(self) -> None:
        s = self.ctx.settings
        if self.model.currentData() and not Path(self.model.currentData()).exists():
            s.set(MODEL, self.model.currentData())
        s.set(LANGUAGE, self.language.currentData())
        s.set(TASK, self.task.currentData())
        s.set(BEAM, self.beam.value())
        s.set(WORDS, self.words.isChecked())

    def options(self) -> dict:
        lang = self.language.currentData()
        return dict(language=None if lang == "auto" else lang, task=self.task.currentData(),
                    beam_size=self.beam.value() if self.beam.value() > 1 else None,
                    word_timestamps=self.words.isChecked())

    # -- running ---------------------------------------------------------------------------
    @Slot(list)
    def _selection(self, paths: list) -> None:
        self.run_button.setEnabled(bool(paths))
        self.export_button.setEnabled(bool(paths) and str(paths[0]) in self.transcripts)

    @Slot()
    def run(self) -> list:
        paths = [str(p) for p in self.ctx.selection]
        if not paths:
            self.ctx.status("Select one or more audio files first")
            return []
        model = self.model.currentData()
        if not model:
            self.ctx.error("No transcription model is available")
            return []
        self._save()
        jobs = []
        for path in paths:
            self._clear_rows(path)
            job = self.ctx.submit(f"Transcribe {Path(path).name}", transcribe_job, path, model, self.options(),
                                  self.ctx.compute_device(), self.ctx.threads())
            job.seen = 0
            self.ctx.jobs.on_partial(job, lambda j, p=path: self._partial(j, p))
            self.ctx.jobs.when_done(job, lambda j, p=path: self._done(j, p))
            jobs.append(job)
        self.jobs += jobs
        self.info.setText(f"Transcribing {len(paths)} file(s)…")
        return jobs

    def _clear_rows(self, path: str) -> None:
        for i in reversed(range(self.segments.topLevelItemCount())):
            if self.segments.topLevelItem(i).data(0, ROLE)[0] == path:
                self.segments.takeTopLevelItem(i)

    def _add_row(self, path: str, seg) -> None:
        item = QTreeWidgetItem([Path(path).name, _clock(seg.start), _clock(seg.end), seg.text.strip()])
        item.setData(0, ROLE, (path, float(seg.start)))
        item.setToolTip(3, seg.text.strip())
        self.segments.addTopLevelItem(item)
        self.segments.scrollToItem(item)

    def _partial(self, job, path: str) -> None:
        parts = job.state.partials
        for seg in parts[job.seen:]:
            self._add_row(path, seg)
        job.seen = len(parts)

    def _done(self, job, path: str) -> None:
        from engine.jobs import JobStatus

        if job.status is JobStatus.DONE:
            self._clear_rows(path)  # the final list (partials could have been coalesced)
            for seg in job.result.segments:
                self._add_row(path, seg)
            self.transcripts[path] = job.result
            n = len(job.result.segments)
            self.info.setText(f"{Path(path).name}: {n} segment{'' if n == 1 else 's'}, "
                              f"language {job.result.language}")
            self._selection([str(p) for p in self.ctx.selection])
        elif job.status is JobStatus.FAILED:
            self.ctx.error(f"Transcription of {Path(path).name} failed: {job.error}")
            self.info.setText(f"{Path(path).name}: failed ({job.error})")
        else:
            self.info.setText(f"{Path(path).name}: cancelled")

    # -- playing and exporting -------------------------------------------------------------
    @Slot(QTreeWidgetItem)
    def _play_item(self, item: QTreeWidgetItem, column: int = 0) -> None:
        path, start = item.data(0, ROLE)
        if not self.ctx.player.available:
            self.ctx.status(f"Cannot play: {self.ctx.player.unavailable_reason}")
            return
        self.ctx.player.play_file(path, start=start)

    def export(self, fmt: str) -> Path | None:
        path = str(self.ctx.current_path) if self.ctx.current_path else None
        transcript = self.transcripts.get(path) if path else None
        if transcript is None:
            self.ctx.status("Transcribe the selected file first")
            return None
        from engine.whisper.exports import export

        out = export(transcript, self.ctx.new_output_path(Path(path).stem, "." + fmt), fmt)
        self.ctx.status(f"Transcript saved to {out}")
        return out

    def shutdown(self) -> None:
        for job in self.jobs:
            job.cancel()


def _clock(seconds: float) -> str:
    m, s = divmod(max(0.0, seconds), 60)
    h, m = divmod(int(m), 60)
    return f"{h}:{m:02d}:{s:05.2f}" if h else f"{m}:{s:05.2f}"
