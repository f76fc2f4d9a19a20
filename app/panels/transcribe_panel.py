"""Transcribe: Whisper speech to text on the selected files, segments shown live, click to play, export.

Each selected file becomes one queued engine job (``engine.transcribe.task.transcribe_file``); its segments arrive as
partial results and are appended to the table while the file is decoded. Activating a segment
(double click or Enter) plays the file from the segment's start. The Export menu writes the
current file's transcript as TXT, SRT, VTT or JSON where the save dialog says.

Speakers: "Find who spoke when" also runs the speaker finder (or reuses the turns the Speakers panel
found, ``ctx.speakers``) and labels every line with its speaker, shown by the names given in the
Speakers panel; "Two talking at once" separates the voices first and transcribes each
(``engine.speakers.overlap``). The transcript itself is kept unlabelled: the labels and names are put
on when it is shown or exported, so a rename or a new speaker count shows at once.

The panel reports how long the first text of each file took to reach the screen after Transcribe was
clicked (model download and load, queueing and decoding included: what the user waited), and the
whole run, in its info line (``first_shown``, seconds per path).
"""

from __future__ import annotations

import time
from pathlib import Path

from PySide6.QtCore import Qt, Slot
from PySide6.QtWidgets import (QCheckBox, QComboBox, QFormLayout, QHBoxLayout, QLabel, QMenu, QPushButton,
                               QSpinBox, QToolButton, QTreeWidget, QTreeWidgetItem, QVBoxLayout, QWidget)

from app.settings import define
from engine import defaults as D
from engine.jobs import lazy
from engine.transcribe.task import transcribe_file

diarize = lazy("engine.speakers.diarize", "diarize")
transcribe_overlapped = lazy("engine.speakers.overlap", "transcribe_overlapped")

# the defaults are the CLI's too (engine/defaults.py)
MODEL = define("transcribe/model", str, D.TRANSCRIBE_MODEL, "Transcription model id")
LANGUAGE = define("transcribe/language", str, D.LANGUAGE, "Spoken language code, or auto")
TASK = define("transcribe/task", str, D.TASK, "transcribe or translate", ("transcribe", "translate"))
BEAM = define("transcribe/beam_size", int, D.BEAM_SIZE, "Beam search width (1 = greedy)")
WORDS = define("transcribe/word_timestamps", bool, D.WORD_TIMESTAMPS, "Word timestamps")
SPEAKER_MODES = [("off", "No"), ("auto", "Find who spoke when"), *((str(n), f"{n} speakers") for n in range(2, 7)),
                 ("overlap", "Two talking at once (separate the voices first)")]
SPEAKERS = define("transcribe/speakers", str, "off", "Label lines with speakers: off, auto, 2..6 or overlap",
                  tuple(k for k, _ in SPEAKER_MODES))

ROLE = Qt.ItemDataRole.UserRole
EXPORT_FILTERS = {"txt": "Text (*.txt)", "srt": "Subtitles (*.srt)", "vtt": "WebVTT (*.vtt)",
                  "json": "JSON with words (*.json)"}


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
        self.first_shown: dict[str, float] = {}  # path -> seconds from the click to its first segment on screen

        self.model = QComboBox(self)
        self.model.setAccessibleName("Transcription model")
        self._fill_models()
        self.language = QComboBox(self)
        self.language.setAccessibleName("Language")
        from engine.transcribe.whisper.tokenizer import LANGUAGES

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
        self.speakers = QComboBox(self)
        self.speakers.setAccessibleName("Speakers")
        for key, label in SPEAKER_MODES:
            self.speakers.addItem(label, key)
        self.speakers.setToolTip("Label every line with who said it (names from the Speakers panel). Two talking "
                                 "at once needs the SepFormer separation model (Speakers panel).")
        self.labelled: dict[str, str] = {}  # path -> the speaker mode its transcript was made with
        self._restore()

        form = QFormLayout()
        form.addRow("Model:", self.model)
        form.addRow("Language:", self.language)
        form.addRow("Task:", self.task)
        form.addRow("Beam size:", self.beam)
        form.addRow("Speakers:", self.speakers)
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
        self.read_button = QPushButton("Read aloud", self)
        self.read_button.setAccessibleName("Read the transcript aloud")
        self.read_button.setEnabled(False)
        self.read_button.clicked.connect(self.read_aloud)
        from ..read_aloud import ReadAloud

        self.reader = ReadAloud(ctx, self)  # the Speak panel's streaming playback, with its voice
        self.reader.finished.connect(lambda _: self.read_button.setText("Read aloud"))
        buttons = QHBoxLayout()
        buttons.addWidget(self.run_button)
        buttons.addWidget(self.export_button)
        buttons.addWidget(self.read_button)
        buttons.addStretch(1)

        self.segments = QTreeWidget(self)
        self.segments.setAccessibleName("Transcript segments")
        self.segments.setHeaderLabels(["File", "Start", "End", "Speaker", "Text"])
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
        ctx.speakers.changed.connect(self._speakers_changed)
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
        for combo, key in ((self.model, MODEL), (self.language, LANGUAGE), (self.task, TASK),
                           (self.speakers, SPEAKERS)):
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
        s.set(SPEAKERS, self.speakers.currentData())

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
        self.read_button.setEnabled(self.export_button.isEnabled())

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
        mode = self.speakers.currentData()
        options = self.options()
        if mode != "off":
            options["word_timestamps"] = True  # lines are split where the speaker changes
        jobs = []
        clicked = time.monotonic()
        for path in paths:
            self._clear_rows(path)
            self.first_shown.pop(path, None)
            self.labelled.pop(path, None)
            run = transcribe_overlapped if mode == "overlap" else transcribe_file
            job = self.ctx.submit(f"Transcribe {Path(path).name}", run, path, model=model,
                                  options=options, device=self.ctx.compute_device(),
                                  threads=self.ctx.threads() or None)
            job.mode = mode
            if mode not in ("off", "overlap"):
                self._find_speakers(path, None if mode == "auto" else int(mode))
            job.seen, job.clicked = 0, clicked
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

    def _find_speakers(self, path: str, count: int | None) -> None:
        """Who spoke when, unless the turns the Speakers panel (or an earlier run) found fit."""
        have = self.ctx.speakers.turns.get(path)
        if have and (count is None or len({t.speaker for t in have}) == count):
            return
        job = self.ctx.submit(f"Find speakers in {Path(path).name}", diarize, path, count,
                              device=self.ctx.compute_device())
        self.jobs.append(job)

        def found(j, p=path) -> None:
            from engine.jobs import JobStatus

            if j.status is JobStatus.DONE:
                self.ctx.speakers.set_turns(p, j.result)  # the Speakers panel's lane shows them too
            elif j.status is JobStatus.FAILED:
                self.ctx.error(f"Finding the speakers of {Path(p).name} failed: {j.error}")
        self.ctx.jobs.when_done(job, found)

    def view(self, path: str):
        """The transcript of ``path`` as shown and exported: with its speakers and their names."""
        t = self.transcripts.get(path)
        mode = self.labelled.get(path, "off")
        if t is None or mode == "off":
            return t
        names = self.ctx.speakers.names_of(path)
        if mode == "overlap":
            from engine.speakers.diarize import rename_speakers

            return rename_speakers(t, names)
        turns = self.ctx.speakers.turns.get(path)
        if not turns:
            return t
        from engine.speakers.diarize import assign_speakers

        return assign_speakers(t, turns, names)

    def _show(self, path: str) -> None:
        self._clear_rows(path)
        for seg in self.view(path).segments:
            self._add_row(path, seg)

    @Slot(str)
    def _speakers_changed(self, path: str) -> None:
        if path in self.transcripts and self.labelled.get(path, "off") != "off":
            self._show(path)  # new turns or a new name

    def _add_row(self, path: str, seg) -> None:
        item = QTreeWidgetItem([Path(path).name, _clock(seg.start), _clock(seg.end), seg.speaker or "",
                                seg.text.strip()])
        item.setData(0, ROLE, (path, float(seg.start)))
        item.setToolTip(4, seg.text.strip())
        self.segments.addTopLevelItem(item)
        self.segments.scrollToItem(item)

    def _partial(self, job, path: str) -> None:
        parts = job.state.partials
        for seg in parts[job.seen:]:
            self._add_row(path, seg)
        if parts and not job.seen:
            self.first_shown[path] = time.monotonic() - job.clicked
            self.info.setText(f"{Path(path).name}: first text after {self.first_shown[path]:.1f} s…")
        job.seen = len(parts)

    def _done(self, job, path: str) -> None:
        from engine.jobs import JobStatus

        if job.status is JobStatus.DONE:
            self.transcripts[path] = job.result
            self.labelled[path] = getattr(job, "mode", "off")
            self._show(path)  # the final list (partials could have been coalesced)
            n = len(self.view(path).segments)
            first = self.first_shown.get(path)
            when = (f"first text after {first:.1f} s, " if first is not None else "") + \
                f"done after {time.monotonic() - job.clicked:.1f} s"
            self.info.setText(f"{Path(path).name}: {n} segment{'' if n == 1 else 's'}, "
                              f"language {job.result.language} ({when})")
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

    def export(self, fmt: str, out: str | Path | None = None) -> Path | None:
        """Save the current file's transcript as ``fmt`` where the save dialog says (``out`` skips it)."""
        path = str(self.ctx.current_path) if self.ctx.current_path else None
        transcript = self.view(path) if path else None
        if transcript is None:
            self.ctx.status("Transcribe the selected file first")
            return None
        from engine.transcribe.exports import export

        from .. import dialogs

        if out is None:
            out = dialogs.ask_save_path(self.ctx, "Save the transcript", f"{Path(path).stem}.{fmt}",
                                        f"{EXPORT_FILTERS[fmt]};;All files (*)", self)
            if out is None:
                return None
        out = export(transcript, Path(out), fmt, overwrite=True)
        self.ctx.status(f"Transcript saved to {out}")
        return out

    def read_aloud(self):
        """Speak the current file's transcript (streamed, with the Speak panel's voice); again: stop."""
        if self.reader.active:
            self.reader.stop()
            self.read_button.setText("Read aloud")
            return None
        path = str(self.ctx.current_path) if self.ctx.current_path else None
        transcript = self.view(path) if path else None
        if transcript is None:
            self.ctx.status("Transcribe the selected file first")
            return None
        from ..read_aloud import SPEED, VOICE

        text = " ".join(s.text.strip() for s in transcript.segments)
        job = self.reader.speak(text, self.ctx.settings.get(VOICE), self.ctx.settings.get(SPEED),
                                label=f"transcript of {Path(path).name}")
        if job is not None:
            self.read_button.setText("Stop reading")
        return job

    def shutdown(self) -> None:
        self.reader.stop()
        for job in self.jobs:
            job.cancel()


def _clock(seconds: float) -> str:
    m, s = divmod(max(0.0, seconds), 60)
    h, m = divmod(int(m), 60)
    return f"{h}:{m:02d}:{s:05.2f}" if h else f"{m}:{s:05.2f}"
