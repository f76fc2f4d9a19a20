"""Timeline: transcript, speakers, sound tags and separated tracks of the selected file, together.

"Analyse" runs ``engine.timeline.analyze.analyze_file`` on the selected file as one job (who spoke
when, then the words, then the sounds; sub-progress in Jobs); each lane under the file view fills
as its part finishes (the transcript lane is this panel's; the speaker and tag lanes are the
Speakers and Tags panels', which show the same results, or this panel's own when those panels are
missing). The results are saved next to the audio (``FILE.sonoscope.json``); selecting a file whose
sidecar is valid brings every lane back without running a model (the sidecar is read and its
checksum compared on a worker thread); a changed file says so.

Edits (rename a speaker, correct a word, delete a sound event) change the result, are saved to the
sidecar at once (off the GUI thread) and show in every lane and export. A speaker renamed in the
Speakers panel (``ctx.speakers.renamed``) is the same edit: applied to the file's analysis and saved
(while the sidecar is being read or the analysis runs, it waits for them; a file never analysed gets
a sidecar of its speakers alone, from the turns the Speakers panel found). Search steps through a
word's occurrences: the view scrolls to it and the player (or the playhead) goes there. Export
writes SDH or plain SRT/VTT, TXT and the JSON analysis into a folder.
"""

from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import Qt, Slot
from PySide6.QtWidgets import (QComboBox, QFileDialog, QFormLayout, QGroupBox, QHBoxLayout, QLabel, QLineEdit,
                               QMenu, QPushButton, QSizePolicy, QToolButton, QVBoxLayout, QWidget)

from engine.jobs import JobStatus, lazy
from engine.timeline import edits as E

from .. import settings as S
from ..threads import run_in_thread
from ..widgets.search_bar import SearchBar
from ..widgets.speaker_lane import SpeakerLane
from ..widgets.tag_lane import TagLane
from ..widgets.track_lane import TrackLane
from ..widgets.transcript_lane import TranscriptLane

# the engine's job, imported on the engine thread when it first runs (it imports torch)
analyze_file = lazy("engine.timeline.analyze", "analyze_file")

SHORTCUT = "Ctrl+Shift+L"
EXPORT_DIR = S.define("timeline/export_dir", str, "", "Folder last used to export captions")
EXPORTS = (("SDH subtitles (SRT, with sound cues)", ("srt",), True), ("SDH subtitles (VTT)", ("vtt",), True),
           ("Subtitles (SRT)", ("srt",), False), ("Subtitles (VTT)", ("vtt",), False),
           ("Transcript (TXT)", ("txt",), False), ("Analysis (JSON)", ("json",), False),
           ("All of them", ("srt", "vtt", "txt", "json"), True))


def open_project(path: str):
    """(state, message, Analysis or None) of a file's sidecar: worker thread (reads and checksums)."""
    from engine.timeline import project

    if not project.sidecar_path(path).exists():
        return "missing", "", None
    try:
        return "valid", "", project.load(path)
    except project.AudioChanged as e:
        return "changed", str(e), None
    except (project.ProjectError, OSError) as e:
        return "broken", str(e), None


class TimelinePanel(QWidget):
    title = "Timeline"
    area = "right"  # a dock beside the file view: its lanes, search and edits in sight together
    shortcut = SHORTCUT

    def __init__(self, ctx, parent=None) -> None:
        super().__init__(parent)
        self.ctx = ctx
        self.setAccessibleName("Timeline")
        self.analyses: dict[str, object] = {}   # path -> Analysis shown (computed or reopened)
        self.jobs: dict[str, object] = {}       # path -> its running analysis
        self.notes: dict[str, str] = {}         # path -> what the sidecar said (changed, broken)
        self.opened: set[str] = set()           # paths whose sidecar was looked for
        self.loading: set[str] = set()          # paths whose sidecar is being read
        self.partial: set[str] = set()          # paths whose analysis is still coming in, part by part
        self.hits: list[int] = []
        self.hit = None
        self.event_index: int | None = None
        self.word_index: int | None = None
        self.last_export: list | None = None
        self._to_save: dict[str, tuple] = {}  # path -> (snapshot, analysis, what): the newest edit not yet written
        self._writing: set[str] = set()  # paths whose sidecar a thread is writing
        self.sidecar_state: dict[str, str] = {}  # path -> "missing" | "valid" | "changed" | "broken"
        self._renames: dict[str, list] = {}      # path -> (label, name) given elsewhere, waiting for its analysis

        self.file_label = QLabel("Select a file in the file list.", self)
        self.file_label.setWordWrap(True)
        self.analyse_button = QPushButton("Analyse", self)
        self.analyse_button.setAccessibleName("Analyse the selected file: words, speakers and sounds")
        self.analyse_button.setToolTip("Transcribe, find who spoke when and tag the sounds, as one job")
        self.cancel_button = QPushButton("Cancel", self)
        self.cancel_button.setEnabled(False)
        self.export_button = QToolButton(self)
        self.export_button.setText("Export")
        self.export_button.setAccessibleName("Export captions")
        self.export_button.setPopupMode(QToolButton.ToolButtonPopupMode.InstantPopup)
        menu = QMenu(self.export_button)
        for text, fmts, sdh in EXPORTS:
            menu.addAction(f"{text}…", lambda f=fmts, s=sdh: self.export(f, s))
        self.export_button.setMenu(menu)
        self.export_button.setEnabled(False)
        self.info = QLabel(f"Analyse a file to see its words, speakers and sounds under the waveform ({SHORTCUT}).",
                           self)
        self.info.setWordWrap(True)
        self.info.setAccessibleName("Timeline status")
        for label in (self.file_label, self.info):  # a long file name must not widen the window past the screen
            label.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Preferred)
        self.search = SearchBar(self)

        edit = QGroupBox("Edit (saved with the file)", self)
        self.speaker_box = QComboBox(edit)
        self.speaker_box.setAccessibleName("Speaker to rename")
        self.name_edit = QLineEdit(edit)
        self.name_edit.setPlaceholderText("name")
        self.name_edit.setAccessibleName("Speaker name")
        self.rename_button = QPushButton("Rename", edit)
        self.word_edit = QLineEdit(edit)
        self.word_edit.setPlaceholderText("click a word in the lane")
        self.word_edit.setAccessibleName("Selected word")
        self.correct_button = QPushButton("Correct", edit)
        self.event_label = QLabel("click a sound in the tag lane", edit)
        self.delete_button = QPushButton("Delete event", edit)
        form = QFormLayout(edit)
        form.setRowWrapPolicy(QFormLayout.RowWrapPolicy.WrapAllRows)  # labels above: the dock stays narrow
        self.event_label.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Preferred)
        for w in (self.name_edit, self.word_edit):
            w.setMinimumWidth(60)
        self.speaker_box.setSizeAdjustPolicy(QComboBox.SizeAdjustPolicy.AdjustToMinimumContentsLengthWithIcon)
        self.speaker_box.setMinimumContentsLength(2)
        for label, widgets in (("Speaker:", (self.speaker_box, self.name_edit, self.rename_button)),
                               ("Word:", (self.word_edit, self.correct_button)),
                               ("Sound:", (self.event_label, self.delete_button))):
            row = QHBoxLayout()
            for w in widgets:
                row.addWidget(w, 1 if w in (self.name_edit, self.word_edit, self.event_label) else 0)
            form.addRow(label, row)

        buttons = QHBoxLayout()
        buttons.addWidget(self.analyse_button)
        buttons.addWidget(self.cancel_button)
        buttons.addWidget(self.export_button)
        buttons.addStretch(1)
        lay = QVBoxLayout(self)
        top = QFormLayout()
        top.addRow("File:", self.file_label)
        lay.addLayout(top)
        lay.addLayout(buttons)
        lay.addWidget(self.info)
        lay.addWidget(self.search)
        lay.addWidget(edit)
        lay.addStretch(1)

        # lanes: the transcript (ours, right under the spectrogram), the speakers' and the tags' (the
        # Speakers and Tags panels', so one lane per kind), the tracks (ours)
        self.file_view = getattr(parent, "file_view", None)
        if self.file_view is None or not hasattr(self.file_view, "add_lane"):
            self.file_view = None
        self.window_ = parent  # tabs reparent the panel: keep the window to find the other panels
        panels = getattr(parent, "panels", {}) or {}
        self.tags_panel = panels.get("TagsPanel") if hasattr(panels.get("TagsPanel"), "results") else None
        self.speakers_panel = panels.get("SpeakersPanel") if hasattr(panels.get("SpeakersPanel"), "turns") else None
        self.transcript_lane = TranscriptLane()
        self.speaker_lane = self.speakers_panel.lane if self.speakers_panel is not None else SpeakerLane()
        self.tag_lane = self.tags_panel.lane if self.tags_panel is not None else TagLane()
        self.track_lane = TrackLane()
        own = [self.transcript_lane] + ([self.speaker_lane] if self.speakers_panel is None else []) + \
              ([self.tag_lane] if self.tags_panel is None else []) + [self.track_lane]
        for lane in own:
            if self.file_view is not None:
                self.file_view.add_lane(lane)
            else:
                lay.addWidget(lane)
        if self.file_view is not None:  # the words right under the spectrogram
            self.file_view.split.insertWidget(2, self.transcript_lane)

        self.analyse_button.clicked.connect(lambda: self.analyse())
        self.cancel_button.clicked.connect(self.cancel)
        self.rename_button.clicked.connect(lambda: self.rename(self.speaker_box.currentData(), self.name_edit.text()))
        self.name_edit.returnPressed.connect(self.rename_button.click)
        self.speaker_box.currentIndexChanged.connect(lambda _: self._speaker_chosen())
        self.correct_button.clicked.connect(lambda: self.correct(self.word_index, self.word_edit.text()))
        self.word_edit.returnPressed.connect(self.correct_button.click)
        self.delete_button.clicked.connect(lambda: self.delete_event(self.event_index))
        self.transcript_lane.wordClicked.connect(self.word_clicked)
        self.transcript_lane.wordActivated.connect(self._activate_word)
        self.transcript_lane.actionClicked.connect(lambda: self.analyse())
        self.tag_lane.eventClicked.connect(self._event_clicked)
        self.track_lane.trackClicked.connect(self._play_track)
        if self.speakers_panel is None:
            self.speaker_lane.actionClicked.connect(lambda: self.analyse())
        if self.tags_panel is None:
            self.tag_lane.actionClicked.connect(lambda: self.analyse())
        self.search.searched.connect(self.find)
        self.search.stepped.connect(self.step)
        ctx.jobs.jobProgress.connect(self._progress)
        ctx.jobs.jobFinished.connect(self._any_finished)
        ctx.selectionChanged.connect(self._selection)
        # queued: the Speakers panel renames from inside its list's itemChanged, which must not be re-entered
        ctx.speakers.renamed.connect(self._renamed_elsewhere, Qt.ConnectionType.QueuedConnection)
        ctx.speakers.changed.connect(self._turns_elsewhere, Qt.ConnectionType.QueuedConnection)
        self._selection([str(p) for p in ctx.selection])

    # -- selection and reopening -------------------------------------------------------------------
    def _current(self) -> str | None:
        return str(self.ctx.current_path) if self.ctx.current_path is not None else None

    @Slot(list)
    def _selection(self, paths: list) -> None:
        self.file_label.setText(Path(paths[0]).name if paths else "Select a file in the file list.")
        path = self._current()
        if path is not None and path not in self.opened and path not in self.jobs:
            self.opened.add(path)
            self.loading.add(path)
            self.info.setText(f"Looking for saved results of {Path(path).name}…")
            run_in_thread(lambda: open_project(path), lambda r, e, p=path: self._opened(p, r, e), self,
                          name="sonoscope-sidecar")
        self.show_current()

    def _opened(self, path: str, result, error) -> None:
        self.loading.discard(path)
        if error is not None:
            self.sidecar_state[path] = "broken"
            self.notes[path] = f"its project file could not be read: {error}"
        else:
            state, message, a = result
            self.sidecar_state[path] = state
            if a is not None and (path not in self.analyses or path in self.partial) and path not in self.jobs:
                self.analyses[path] = a
                self.ctx.status(f"{Path(path).name}: saved results reopened (no model run)")
            elif message:
                self.notes[path] = message
                if state == "changed":
                    self.ctx.status(message, 10000)
        self._apply_renames(path)
        if path == self._current():
            self.show_current()

    def reopen(self, path: str | None = None) -> None:
        """Look for the file's sidecar again (e.g. after it was edited elsewhere)."""
        path = str(path) if path else self._current()
        if path:
            self.opened.discard(path)
            self.analyses.pop(path, None)
            self._selection([path])

    # -- analysing ----------------------------------------------------------------------------------
    def analyse(self, path: str | None = None):
        """Analyse ``path`` (default the selected file) as one job; returns it."""
        path = str(path) if path else self._current()
        if path is None:
            self.ctx.status("Select an audio file first")
            return None
        if path in self.jobs:
            return self.jobs[path]
        speakers = None
        if self.speakers_panel is not None and hasattr(self.speakers_panel, "count"):
            speakers = self.speakers_panel.count.currentData() or None
        job = self.ctx.submit(f"Analyse {Path(path).name}", analyze_file, path, speakers=speakers, reuse=False,
                              device=self.ctx.compute_device(), threads=self.ctx.threads() or None)
        self.jobs[path] = job
        self.notes.pop(path, None)
        self.ctx.jobs.on_partial(job, lambda j, p=path: self._partial(j, p))
        self.ctx.jobs.when_done(job, lambda j, p=path: self._done(j, p))
        self.show_current()
        return job

    @Slot()
    def cancel(self) -> None:
        job = self.jobs.get(self._current() or "")
        if job is not None:
            job.cancel()

    def _partial(self, job, path: str) -> None:
        """A part finished: its lane fills now (the analysis so far, kept until the job ends)."""
        from engine.results import Analysis

        if not job.state.partials or type(job.state.partials[-1]).__name__ != "Part":
            return  # a transcript segment as it is decoded: the lane fills when the part is done
        parts = [p for p in job.state.partials if type(p).__name__ == "Part"]
        a = self.analyses.get(path)
        if a is None or path not in self.partial:
            a = self.analyses[path] = Analysis(path, 0.0)
            self.partial.add(path)
        for p in parts:
            if p.name == "speakers":
                a.turns = p.value
            elif p.name == "transcript":
                a.transcript = p.value
            elif p.name == "tags":
                a.tagging = p.value
        if path == self._current():
            self.show_current()

    def _done(self, job, path: str) -> None:
        if self.jobs.get(path) is job:
            del self.jobs[path]
        name = Path(path).name
        was_partial = path in self.partial
        self.partial.discard(path)
        if job.status is JobStatus.DONE:
            self.analyses[path] = job.result
            a = job.result
            n = len(E.speakers(a))
            self.ctx.status(f"{name}: {len(a.transcript.words) if a.transcript else 0} words, {n} speaker"
                            f"{'' if n == 1 else 's'}, {len(a.tagging.events) if a.tagging else 0} sound events")
        else:
            if was_partial:
                self.analyses.pop(path, None)
            self.notes[path] = "analysis cancelled" if job.status is JobStatus.CANCELLED else \
                f"analysis failed: {job.error}"
            if job.status is JobStatus.FAILED:
                self.ctx.error(f"Analysing {name} failed: {job.error}")
        self._apply_renames(path)
        if path == self._current():
            self.show_current()

    @Slot(object)
    def _progress(self, job) -> None:
        if job is self.jobs.get(self._current() or ""):
            self._placeholders()

    @Slot(object)
    def _any_finished(self, job) -> None:
        if job not in self.jobs.values():
            self._show_tracks()  # a separation may have finished (Stems or Speakers panel)

    # -- showing -------------------------------------------------------------------------------------
    def analysis(self, path: str | None = None):
        return self.analyses.get(str(path) if path else self._current() or "")

    def show_current(self) -> None:
        path = self._current()
        a = self.analyses.get(path) if path else None
        self.transcript_lane.set_words(a.transcript.words if a is not None and a.transcript else [],
                                       dict(a.names) if a is not None else {})
        turns = a.turns if a is not None else None
        tagging = a.tagging if a is not None else None
        names = dict(a.names) if a is not None else {}
        if self.speakers_panel is not None:
            if turns is not None:
                self.speakers_panel.turns[path] = list(turns)
                self.speakers_panel.names[path] = names
            self.speakers_panel.show_current()
        else:
            self.speaker_lane.set_turns(turns or [], names)
        if self.tags_panel is not None:
            if tagging is not None:
                self.tags_panel.results[path] = tagging
            self.tags_panel.show_current()
        else:
            self.tag_lane.set_tagging(tagging)
        self._fill_speakers(a)
        self.word_index = self.event_index = None
        self.word_edit.clear()
        self.event_label.setText("click a sound in the tag lane")
        self.find(self.search.text())
        self._show_tracks()
        self._placeholders()
        self._update()

    def _fill_speakers(self, a) -> None:
        self.speaker_box.blockSignals(True)
        self.speaker_box.clear()
        for label in (E.speakers(a) if a is not None else []):
            name = a.names.get(label)
            self.speaker_box.addItem(f"{label} ({name})" if name else label, label)
        self.speaker_box.blockSignals(False)
        self._speaker_chosen()

    def _speaker_chosen(self) -> None:
        a, label = self.analysis(), self.speaker_box.currentData()
        self.name_edit.setText(a.names.get(label, "") if a is not None and label else "")

    def _show_tracks(self) -> None:
        path = self._current()
        tracks, duration = {}, 0.0
        stems = (getattr(self.window_, "panels", None) or {}).get("StemsPanel")
        r = getattr(stems, "result", None)
        if r is not None and str(getattr(r, "track", "")) == path:
            tracks.update({k: str(v) for k, v in r.stems.items()})
            duration = r.duration
        sep = getattr(self.speakers_panel, "separations", {}).get(path) if self.speakers_panel is not None else None
        if sep is not None:
            tracks.update({k: str(v) for k, v in sep.speakers.items()})
            duration = max(duration, sep.duration)
        self.track_lane.set_tracks(tracks, duration)

    def _placeholders(self) -> None:
        path = self._current()
        job = self.jobs.get(path or "")
        a = self.analyses.get(path) if path else None
        note = self.notes.get(path or "", "")
        if path is None:
            text, enabled = "Select a file to see its words", False
        elif job is not None:
            pct = f" {job.state.progress * 100:.0f}%" if job.state.progress > 0 else ""
            text, enabled = f"Analysing…{pct} {job.state.status}".strip(), False
        elif a is not None and a.transcript is not None and not a.transcript.words:
            text, enabled = "No words were heard (Analyse to try again)", True
        elif path in self.loading:
            text, enabled = "Looking for saved results…", False
        else:
            text, enabled = (f"Analyse…  ({SHORTCUT}): words, speakers and sounds" +
                             (" (the saved results no longer match the file)" if "changed" in note else "")), True
        self.transcript_lane.set_placeholder(text, enabled=enabled,
                                             tip="Transcribe, find speakers and tag sounds as one job")
        self.track_lane.set_placeholder("Separate tracks in the Stems or Speakers panel", enabled=False)
        if self.speakers_panel is None:
            self.speaker_lane.set_placeholder("Analyse… to find who spoke when" if job is None else "Analysing…",
                                              enabled=job is None and path is not None)
        if self.tags_panel is None:
            self.tag_lane.set_placeholder("Analyse… to tag the sounds" if job is None else "Analysing…",
                                          enabled=job is None and path is not None)

    def _update(self) -> None:
        path = self._current()
        a = self.analyses.get(path) if path else None
        done = a is not None and path not in self.partial
        running = path is not None and path in self.jobs
        self.analyse_button.setEnabled(path is not None and not running)
        self.analyse_button.setText("Analyse again" if done else "Analyse")
        self.cancel_button.setEnabled(running)
        self.export_button.setEnabled(done)
        for w in (self.rename_button, self.name_edit, self.speaker_box):
            w.setEnabled(done and self.speaker_box.count() > 0)
        self.correct_button.setEnabled(done and self.word_index is not None)
        self.word_edit.setEnabled(done)
        self.delete_button.setEnabled(done and self.event_index is not None)
        note = self.notes.get(path or "", "")
        if running:
            self.info.setText(f"Analysing {Path(path).name}… (each lane fills as its part finishes)")
        elif done:
            words = len(a.transcript.words) if a.transcript else 0
            events = len(a.tagging.events) if a.tagging else 0
            how = "reopened from its project file" if a.reused else "analysed"
            self.info.setText(f"{Path(path).name}: {how}: {words} words, {len(E.speakers(a))} speakers, {events} "
                              "sound events. Click a word to play from there; double-click to correct it.")
        elif note:
            self.info.setText(f"{Path(path).name}: {note}")

    # -- interaction ---------------------------------------------------------------------------------
    @Slot(int)
    def word_clicked(self, index: int) -> None:
        a = self.analysis()
        if a is None or a.transcript is None:
            return
        w = a.transcript.words[index]
        self.word_index = index
        self.transcript_lane.set_selected(index)
        self.word_edit.setText(w.text)
        self.seek(w.start)
        self._update()

    def _activate_word(self, index: int) -> None:
        self.word_clicked(index)
        self.word_edit.setFocus()
        self.word_edit.selectAll()

    def _event_clicked(self, event) -> None:
        a = self.analysis()
        if a is None or a.tagging is None:
            return
        idx = next((i for i, e in enumerate(a.tagging.events) if e is event), None)
        self.event_index = idx
        if idx is not None:
            self.event_label.setText(f"{event.label} ({event.start:.1f}–{event.end:.1f} s)")
        self._update()

    def _play_track(self, name: str, seconds: float) -> None:
        f = self.track_lane.tracks.get(name)
        if f and self.ctx.player.available:
            self.ctx.player.play_file(f, start=seconds)
        elif f:
            self.ctx.status(f"Cannot play: {self.ctx.player.unavailable_reason}")

    def seek(self, seconds: float) -> None:
        """Play from ``seconds`` if the player has this file, else move the playhead there."""
        if self.file_view is not None:
            self.file_view.seekRequested.emit(float(seconds))  # the transport seeks or sets the playhead
        self.transcript_lane.set_playhead(seconds)

    # -- search ----------------------------------------------------------------------------------------
    @Slot(str)
    def find(self, text: str) -> None:
        a = self.analysis()
        self.hits = E.find_words(a, text) if a is not None and text.strip() else []
        self.hit = None
        self.transcript_lane.set_marked(self.hits)
        self.search.set_count(None, len(self.hits))

    @Slot(int)
    def step(self, direction: int) -> None:
        """Go to the next (+1) or previous (-1) occurrence: the view scrolls, the player seeks."""
        if not self.hits:
            return
        self.hit = (0 if direction > 0 else len(self.hits) - 1) if self.hit is None else \
            (self.hit + direction) % len(self.hits)
        i = self.hits[self.hit]
        w = self.analysis().transcript.words[i]
        self.search.set_count(self.hit, len(self.hits))
        if self.file_view is not None:
            t0, t1 = self.file_view.waveform.view_range()
            span = t1 - t0
            if not (t0 + 0.1 * span <= w.start <= t1 - 0.1 * span):
                start = max(0.0, w.start - span / 2)
                self.file_view.waveform.set_view(start, start + span)
        self.word_index = i
        self.transcript_lane.set_selected(i)
        self.word_edit.setText(w.text)
        self.seek(w.start)
        self._update()

    # -- edits (saved off the GUI thread) -------------------------------------------------------------
    def _edited(self, a, what: str) -> None:
        """Save ``a`` (just edited) to its sidecar. One write per file at a time, the newest state
        last: two writes in flight could finish out of order and leave an older state in the file."""
        import copy

        path = a.source
        self._to_save[path] = (copy.deepcopy(a), a, what)  # the GUI may edit again while one is written
        if path not in self._writing:
            self._write(path)

    def _write(self, path: str) -> None:
        snapshot, a, what = self._to_save.pop(path)
        self._writing.add(path)

        def save():
            from engine.audio import io as audio_io
            from engine.timeline import project

            if not snapshot.duration:  # an analysis of the speakers alone (see _speakers_only)
                snapshot.duration = round(float(audio_io.info(snapshot.source).duration), 3)
            return project.save(snapshot), snapshot.duration

        def done(result, error) -> None:
            self._writing.discard(path)
            if error is not None:
                self.ctx.error(f"Saving the edit failed: {error}")
            else:
                a.duration = a.duration or result[1]
                self.ctx.status(f"{what} (saved in {Path(result[0]).name})")
            if path in self._to_save:  # edited again meanwhile: write the newest state now
                self._write(path)

        run_in_thread(save, done, self, name="sonoscope-sidecar-save")

    def saving(self) -> bool:
        return bool(self._writing or self._to_save)

    @Slot(str, str, str)
    def _renamed_elsewhere(self, path: str, label: str, name: str) -> None:
        """A speaker renamed in another panel (ctx.speakers): the same edit as ours, saved in the sidecar."""
        self._renames.setdefault(path, []).append((label, name))
        if path not in self.loading and path not in self.jobs:  # else applied when they are done
            self._apply_renames(path)
            if path == self._current():
                a = self.analyses.get(path)
                names = dict(a.names) if a is not None else {}
                self.transcript_lane.set_names(names)
                if self.speakers_panel is None:
                    self.speaker_lane.set_names(names)
                self._fill_speakers(a)
                self._update()

    def _apply_renames(self, path: str) -> None:
        """The renames waiting for ``path``'s analysis, applied and saved (nothing while it is not there)."""
        todo = self._renames.pop(path, [])
        a = self.analyses.get(path)
        if not todo or path in self.partial:
            if todo:
                self._renames[path] = todo  # the analysis is still coming in
            return
        if a is None:
            a = self._speakers_only(path)
            if a is None:
                return
        done = []
        for label, name in todo:
            if label in E.speakers(a) and a.names.get(label, "") != " ".join(name.split()):
                E.rename_speaker(a, label, name, save=False)
                done.append(f"{label} is now {a.names.get(label, label)}")
        if done:
            self._edited(a, "; ".join(done))

    @Slot(str)
    def _turns_elsewhere(self, path: str) -> None:
        """Speakers found again in another panel for a file whose sidecar holds its speakers alone:
        the new turns replace the saved ones (a full analysis keeps its own, which its words follow)."""
        a, turns = self.analyses.get(path), self.ctx.speakers.turns.get(path)
        if a is None or turns is None or set(a.models) != {"speakers"} or a.transcript is not None \
                or path in self.jobs or list(turns) == list(a.turns or []):
            return
        a.turns = list(turns)
        a.names = {k: v for k, v in self.ctx.speakers.names_of(path).items() if k in E.speakers(a)}
        self._edited(a, f"{Path(path).name}: speakers found again")

    def _speakers_only(self, path: str):
        """A file never analysed whose speakers were found (Speakers panel): an analysis of its turns
        alone, so that their names are kept in a sidecar (None when there is nothing to keep or a
        sidecar that is not ours to replace: changed or broken)."""
        from engine.results import Analysis

        turns = self.ctx.speakers.turns.get(path)
        if not turns or self.sidecar_state.get(path) != "missing":
            return None
        count = self.speakers_panel.count.currentData() if self.speakers_panel is not None else None
        a = self.analyses[path] = Analysis(path, 0.0, turns=list(turns), models={"speakers": "ge2e-resemblyzer"},
                                           options={"speakers": {"speakers": count or None}})
        return a

    def rename(self, label: str | None, name: str) -> None:
        a = self.analysis()
        if a is None or not label:
            return
        E.rename_speaker(a, label, name, save=False)
        self._edited(a, f"{label} is now {a.names.get(label, label)}")
        self.show_current()
        i = self.speaker_box.findData(label)
        self.speaker_box.setCurrentIndex(max(0, i))

    def correct(self, index: int | None, text: str) -> None:
        a = self.analysis()
        if a is None or index is None:
            return
        try:
            old = a.transcript.words[index].text
            E.correct_word(a, index, text, save=False)
        except E.EditError as e:
            self.ctx.error(str(e))
            return
        self._edited(a, f"“{old}” corrected to “{text.strip()}”")
        self.show_current()
        self.word_index = index
        self.transcript_lane.set_selected(index)
        self.word_edit.setText(a.transcript.words[index].text)
        self._update()

    def delete_event(self, index: int | None) -> None:
        a = self.analysis()
        if a is None or index is None:
            return
        label = a.tagging.events[index].label
        E.delete_tag_event(a, index, save=False)
        self._edited(a, f"sound event “{label}” deleted")
        self.show_current()

    # -- export -----------------------------------------------------------------------------------------
    def export(self, formats, sdh: bool, folder: str | None = None):
        """Write the selected file's captions/transcript/analysis into a folder (asked for unless
        given), off the GUI thread. Returns the folder (None if cancelled)."""
        a = self.analysis()
        if a is None or self._current() in self.partial:
            self.ctx.status("Analyse the selected file first")
            return None
        if folder is None:
            start = self.ctx.settings.get(EXPORT_DIR) or str(self.ctx.output_dir())
            folder = QFileDialog.getExistingDirectory(self, "Export into", start)
            if not folder:
                return None
        self.ctx.settings.set(EXPORT_DIR, str(folder))

        def write():
            from engine.timeline.analyze import export

            return export(a, folder, formats, sdh)

        def done(result, error) -> None:
            if error is not None:
                self.ctx.error(f"Export failed: {error}")
                return
            self.last_export = list(result)
            self.ctx.status(f"Saved {', '.join(Path(p).name for p in result)} in {folder}")

        run_in_thread(write, done, self, name="sonoscope-timeline-export")
        return folder

    def shutdown(self) -> None:
        for job in list(self.jobs.values()):
            job.cancel()
