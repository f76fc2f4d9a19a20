"""Speakers: who spoke when in the selected file, and one track per speaker.

"Find speakers" runs ``engine.speakers.diarize.diarize`` on the selected file as a job (the number of
speakers given, or Auto); the speaker lane under the file view draws the turns (one row and colour per
speaker; click a bar to play from there, hover for the speaker and times), and the speaker list
names them: a name typed there replaces "S1" in the lane and is kept with the file (each file has
its own turns and names, for the session).

"Separate" runs ``engine.speakers.separate.separate_speakers`` (SepFormer) into a work folder and puts
the tracks into a stem player (solo / mute / volume, played in sync); "Export ticked tracks" writes
them as the Stems panel does (``export_stem_files``: ``<folder>/<track>/speakerK.<ext>``). SepFormer
is a download: without its weights the panel says so and offers the download as a job.

Which models are installed is read off the GUI thread (the GE2E encoder is an offline pack,
``ge2e-resemblyzer``; the panel says so if it is missing).
"""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

from PySide6.QtCore import Qt, Slot
from PySide6.QtWidgets import (QComboBox, QFileDialog, QFormLayout, QGroupBox, QHBoxLayout, QHeaderView,
                               QLabel, QPushButton, QTreeWidget, QTreeWidgetItem, QVBoxLayout, QWidget)

from engine.jobs import JobStatus, lazy

from .. import settings as S
from ..panel_tools import play_from, reveal, swatch
from ..threads import run_in_thread
from ..widgets.speaker_lane import SpeakerLane, speaker_color
from ..widgets.stem_player import StemPlayer

# the engine's jobs, imported on the engine thread when they first run (they import torch)
diarize = lazy("engine.speakers.diarize", "diarize")
separate_speakers = lazy("engine.speakers.separate", "separate_speakers")
export_stem_files = lazy("engine.stems.separate", "export_stem_files")

ENCODER = "ge2e-resemblyzer"        # engine.speakers.diarize.MODEL
SEPARATOR = "sepformer-wsj02mix"    # engine.speakers.separate.DEFAULT_MODEL
SHORTCUT = "Ctrl+Shift+K"
MAX_SPEAKERS = 8

COUNT = S.define("speakers/count", int, 0, "Number of speakers to find (0: estimate it)",
                 choices=(0, *range(2, MAX_SPEAKERS + 1)))
FORMAT = S.define("speakers/format", str, "wav", "Export format of speaker tracks", choices=("wav", "flac", "mp3"))
EXPORT_DIR = S.define("speakers/export_dir", str, "", "Folder last used to export speaker tracks")


# -- jobs and listings (off the GUI thread) -------------------------------------------------------
def installed_models() -> dict[str, tuple[bool, str, float]]:
    """{model id: (installed, name, size MB)} of the encoder and the separator."""
    from engine.store import default_store

    store = default_store()
    store.reload_catalog()  # installs made elsewhere (Models panel, CLI) show up
    out = {}
    for mid in (ENCODER, SEPARATOR):
        try:
            spec = store.get(mid)
            out[mid] = (store.is_installed(mid), spec.name, float(spec.size_mb or 0))
        except Exception:  # a broken catalog entry: not installed, the panel says so
            out[mid] = (False, mid, 0.0)
    return out


def download_model(state, model_id: str) -> str:
    from engine.store import default_store

    return str(default_store().download(model_id, state))


class SpeakersPanel(QWidget):
    title = "Speakers"
    area = "tab"
    shortcut = SHORTCUT

    def __init__(self, ctx, parent=None) -> None:
        super().__init__(parent)
        self.ctx = ctx
        self.setAccessibleName("Speakers")
        # who spoke when, shared with the Transcribe panel (app/speaker_book.py)
        self.turns: dict[str, list] = ctx.speakers.turns            # path -> SpeakerTurns of its last run
        self.names: dict[str, dict[str, str]] = ctx.speakers.names  # path -> {"S1": "Alice"}
        self.errors: dict[str, str] = {}
        self.jobs: dict[str, object] = {}          # path -> its running diarization
        self.separations: dict[str, object] = {}   # path -> SpeakerResult
        self.installed: dict[str, tuple[bool, str, float]] | None = None
        self.separator_model = None  # a loaded model or folder to separate with (None: the catalog's)
        self.sep_job = self.export_job = self.download_job = None
        self.sep_path: str | None = None
        self.work_dirs: list[str] = []
        self.last_export: dict | None = None
        self._listing = 0
        self._action = None

        self.file_label = QLabel("Select a file in the file list.", self)
        self.file_label.setWordWrap(True)
        self.count = QComboBox(self)
        self.count.setAccessibleName("Number of speakers")
        self.count.addItem("Auto (estimate)", 0)
        for n in range(2, MAX_SPEAKERS + 1):
            self.count.addItem(str(n), n)
        self.count.setCurrentIndex(max(0, self.count.findData(ctx.settings.get(COUNT))))
        self.find_button = QPushButton("Find speakers", self)
        self.find_button.setAccessibleName("Find who spoke when in the selected file")
        self.cancel_button = QPushButton("Cancel", self)
        self.cancel_button.setEnabled(False)
        self.encoder_note = QLabel("", self)
        self.encoder_note.setWordWrap(True)
        self.encoder_note.setAccessibleName("Speaker encoder not installed")
        self.encoder_note.hide()
        self.info = QLabel(f"Find speakers to see who spoke when in the lane under the waveform ({SHORTCUT}).", self)
        self.info.setWordWrap(True)
        self.info.setAccessibleName("Speakers status")
        self.list = QTreeWidget(self)
        self.list.setAccessibleName("Speakers")
        self.list.setHeaderLabels(["Name", "Speaker", "Talk time", "Turns"])
        self.list.setRootIsDecorated(False)
        self.list.header().setSectionResizeMode(0, QHeaderView.ResizeMode.Stretch)
        self.list.setToolTip("Double-click a name to rename the speaker")

        form = QFormLayout()
        form.addRow("File:", self.file_label)
        form.addRow("Speakers:", self.count)
        buttons = QHBoxLayout()
        buttons.addWidget(self.find_button)
        buttons.addWidget(self.cancel_button)
        buttons.addStretch(1)

        # separation
        sep = QGroupBox("One track per speaker (SepFormer, 2 speakers)", self)
        self.separate_button = QPushButton("Separate", sep)
        self.separate_button.setAccessibleName("Separate the selected file into one track per speaker")
        self.sep_cancel = QPushButton("Cancel", sep)
        self.sep_cancel.setEnabled(False)
        self.missing = QWidget(sep)
        self.missing_label = QLabel("", self.missing)
        self.missing_label.setWordWrap(True)
        self.missing_label.setAccessibleName("SepFormer not installed")
        self.download_button = QPushButton("Download", self.missing)
        self.download_button.setToolTip("Download the SepFormer weights (progress in Jobs)")
        mrow = QHBoxLayout(self.missing)
        mrow.setContentsMargins(0, 0, 0, 0)
        mrow.addWidget(self.missing_label, 1)
        mrow.addWidget(self.download_button)
        self.missing.hide()
        self.sep_status = QLabel("", sep)
        self.sep_status.setWordWrap(True)
        self.sep_status.setAccessibleName("Separation status")
        self.player = StemPlayer(ctx, sep)
        self.format_box = QComboBox(sep)
        self.format_box.setAccessibleName("Export format")
        for f in ("wav", "flac", "mp3"):
            self.format_box.addItem(f.upper(), f)
        self.format_box.setCurrentIndex(max(0, self.format_box.findData(ctx.settings.get(FORMAT))))
        self.export_button = QPushButton("Export ticked tracks", sep)
        self.export_button.setAccessibleName("Export the ticked speaker tracks")
        self.export_button.setEnabled(False)
        srow = QHBoxLayout()
        srow.addWidget(self.separate_button)
        srow.addWidget(self.sep_cancel)
        srow.addStretch(1)
        erow = QHBoxLayout()
        erow.addWidget(QLabel("Format:", sep))
        erow.addWidget(self.format_box)
        erow.addWidget(self.export_button)
        erow.addStretch(1)
        slay = QVBoxLayout(sep)
        slay.addLayout(srow)
        slay.addWidget(self.missing)
        slay.addWidget(self.sep_status)
        slay.addWidget(self.player, 1)
        slay.addLayout(erow)

        lay = QVBoxLayout(self)
        lay.addLayout(form)
        lay.addWidget(self.encoder_note)
        lay.addLayout(buttons)
        lay.addWidget(self.info)
        lay.addWidget(self.list, 1)
        lay.addWidget(sep, 2)

        # the lane lives under the file view (in the panel itself without one)
        self.lane = SpeakerLane()
        self.file_view = getattr(parent, "file_view", None)
        if self.file_view is not None and hasattr(self.file_view, "add_lane"):
            self.file_view.add_lane(self.lane)
        else:
            self.file_view = None
            lay.addWidget(self.lane)

        self.find_button.clicked.connect(lambda: self.find())
        self.cancel_button.clicked.connect(self.cancel)
        self.separate_button.clicked.connect(lambda: self.separate())
        self.sep_cancel.clicked.connect(lambda: self.sep_job is not None and self.sep_job.cancel())
        self.download_button.clicked.connect(lambda: self.download())
        self.export_button.clicked.connect(lambda: self.export())
        self.count.currentIndexChanged.connect(lambda _: ctx.settings.set(COUNT, self.count.currentData()))
        self.format_box.currentIndexChanged.connect(lambda _: ctx.settings.set(FORMAT, self.format_box.currentData()))
        self.list.itemChanged.connect(self._renamed)
        self.lane.turnClicked.connect(self.play_turn)
        self.lane.actionClicked.connect(lambda: self._action is not None and self._action())
        ctx.jobs.jobProgress.connect(self._progress)
        ctx.selectionChanged.connect(self._selection)
        ctx.speakers.changed.connect(self._book_changed)
        self._shown_turns = None
        self.refresh_models()
        self._selection([str(p) for p in ctx.selection])

    # -- models ------------------------------------------------------------------------------
    def refresh_models(self) -> None:
        """Re-read which models are installed, on a worker thread."""
        self._listing += 1
        number = self._listing
        run_in_thread(installed_models, lambda r, e: self._listed(r, e, number), self, name="sonoscope-speakers")

    def _listed(self, result, error, number: int) -> None:
        if number != self._listing:
            return
        self.installed = result if error is None else {ENCODER: (False, ENCODER, 0.0),
                                                       SEPARATOR: (False, SEPARATOR, 0.0)}
        self._update()

    def encoder_ready(self) -> bool:
        return bool(self.installed and self.installed[ENCODER][0])

    def separator_ready(self) -> bool:
        return self.separator_model is not None or bool(self.installed and self.installed[SEPARATOR][0])

    def _update(self) -> None:
        """Buttons, notes and the lane's placeholder for the selected file."""
        path = self._current()
        known = self.installed is not None
        enc_missing = known and not self.encoder_ready()
        if enc_missing:
            self.encoder_note.setText(f"The GE2E speaker encoder ({ENCODER}) is not installed: it comes with the "
                                      "offline pack 'resemblyzer' (pip install resemblyzer), then reopen this panel.")
        self.encoder_note.setVisible(enc_missing)
        self.find_button.setEnabled(path is not None and known and not enc_missing and path not in self.jobs)
        self.cancel_button.setEnabled(path is not None and path in self.jobs)
        sep_missing = known and not self.separator_ready()
        if sep_missing and self.download_job is None:
            size = self.installed[SEPARATOR][2]
            self.missing_label.setText(f"SepFormer weights are not installed: Download ({size:.0f} MB)"
                                       if size else "SepFormer weights are not installed: Download")
        self.missing.setVisible(sep_missing or self.download_job is not None)
        self.download_button.setEnabled(self.download_job is None)
        self.separate_button.setEnabled(path is not None and self.sep_job is None)
        self.sep_cancel.setEnabled(self.sep_job is not None)
        self.export_button.setEnabled(self._shown_separation() is not None and self.export_job is None)
        self._update_placeholder()

    @Slot()
    def download(self):
        """Download the SepFormer weights through the model store, as a job."""
        if self.download_job is not None:
            return None
        job = self.download_job = self.ctx.submit(f"Download {SEPARATOR}", download_model, SEPARATOR)
        self.missing_label.setText("Downloading the SepFormer weights… (progress in Jobs)")
        self._update()

        def done(j) -> None:
            self.download_job = None
            if j.status is JobStatus.DONE:
                self.ctx.status("SepFormer installed")
                self.sep_status.setText("SepFormer installed: Separate splits the file into one track per speaker.")
            else:
                self.sep_status.setText(f"Download failed: {j.error or 'cancelled'}")
                if j.status is JobStatus.FAILED:
                    self.ctx.error(f"Download of {SEPARATOR} failed: {j.error}")
            self.refresh_models()
            self._update()

        self.ctx.jobs.when_done(job, done)
        return job

    # -- finding speakers ----------------------------------------------------------------------
    def _current(self) -> str | None:
        return str(self.ctx.current_path) if self.ctx.current_path is not None else None

    @Slot(list)
    def _selection(self, paths: list) -> None:
        self.file_label.setText(Path(paths[0]).name if paths else "Select a file in the file list.")
        self.show_current()

    def find(self, path: str | None = None):
        """Find who spoke when in ``path`` (default the selected file), as a job; returns it."""
        path = str(path) if path is not None else self._current()
        if path is None:
            self.ctx.status("Select an audio file first")
            return None
        if path in self.jobs:
            return self.jobs[path]
        if self.installed is not None and not self.encoder_ready():
            self.ctx.status("The GE2E speaker encoder is not installed (Speakers panel)")
            self.reveal()
            return None
        speakers = self.count.currentData() or None
        self.errors.pop(path, None)
        job = self.ctx.submit(f"Find speakers in {Path(path).name}", diarize, path, speakers,
                              device=self.ctx.compute_device())
        self.jobs[path] = job
        self.ctx.jobs.when_done(job, lambda j, p=path: self._found(j, p))
        if path == self._current():
            self.info.setText(f"Finding speakers in {Path(path).name}…")
        self._update()
        return job

    @Slot()
    def cancel(self) -> None:
        job = self.jobs.get(self._current() or "")
        if job is not None:
            job.cancel()

    def _found(self, job, path: str) -> None:
        if self.jobs.get(path) is job:
            del self.jobs[path]
        name = Path(path).name
        if job.status is JobStatus.DONE:
            self.ctx.speakers.set_turns(path, job.result)
            n = len({t.speaker for t in job.result})
            self.ctx.status(f"{name}: {n} speaker{'' if n == 1 else 's'}, {len(job.result)} turns")
        elif job.status is JobStatus.FAILED:
            self.errors[path] = job.error or "failed"
            self.ctx.error(f"Finding speakers in {name} failed: {job.error}")
        if path == self._current():
            self.show_current()
            if job.status is JobStatus.CANCELLED:
                self.info.setText(f"{name}: cancelled")
            elif job.status is JobStatus.FAILED:
                self.info.setText(f"{name}: failed ({job.error})")
        else:
            self._update()

    @Slot(object)
    def _progress(self, job) -> None:
        if job is self.jobs.get(self._current() or ""):
            self._update_placeholder()

    # -- showing a file's speakers --------------------------------------------------------------
    @Slot(str)
    def _book_changed(self, path: str) -> None:
        if path == self._current() and self.turns.get(path) is not self._shown_turns:
            self.show_current()  # turns found elsewhere (the Transcribe panel)

    def show_current(self) -> None:
        """The selected file's turns in the lane and its speakers in the list (each file its own)."""
        path = self._current()
        turns = self._shown_turns = self.turns.get(path) if path else None
        names = self.names.get(path, {}) if path else {}
        self.lane.set_turns(turns or [], names)
        self._fill_list(turns or [], names)
        if turns is not None:
            n = len(self.lane.speakers)
            self.info.setText(f"{Path(path).name}: {n} speaker{'' if n == 1 else 's'}, {len(turns)} turns. "
                              "Click a turn in the lane to play from there; double-click a name to rename."
                              if turns else f"{Path(path).name}: no speech found.")
        elif path in self.jobs:
            self.info.setText(f"Finding speakers in {Path(path).name}…")
        elif path is not None:
            self.info.setText(f"Find speakers to see who spoke when in the lane under the waveform ({SHORTCUT}).")
        self._show_separation()
        self._update()

    def _fill_list(self, turns, names: dict[str, str]) -> None:
        self.list.blockSignals(True)
        self.list.clear()
        for spk in self.lane.speakers:
            mine = [t for t in turns if t.speaker == spk]
            talk = sum(t.duration for t in mine)
            item = QTreeWidgetItem([names.get(spk) or spk, spk, f"{talk:.1f} s", str(len(mine))])
            item.setData(0, Qt.ItemDataRole.UserRole, spk)
            item.setIcon(0, swatch(speaker_color(spk)))
            item.setFlags(item.flags() | Qt.ItemFlag.ItemIsEditable)
            for c in (2, 3):
                item.setTextAlignment(c, Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
            self.list.addTopLevelItem(item)
        for c in (1, 2, 3):
            self.list.resizeColumnToContents(c)
        self.list.blockSignals(False)

    def speaker_rows(self) -> list[tuple[str, str]]:
        """(name, label) of each row of the speaker list."""
        return [(self.list.topLevelItem(i).text(0), self.list.topLevelItem(i).text(1))
                for i in range(self.list.topLevelItemCount())]

    def _renamed(self, item: QTreeWidgetItem, column: int) -> None:
        if column == 0:
            self.rename(item.data(0, Qt.ItemDataRole.UserRole), item.text(0))

    def rename(self, speaker: str, name: str) -> None:
        """Call ``speaker`` ("S1") ``name`` in the selected file (an empty name: back to "S1")."""
        path = self._current()
        if path is None:
            return
        self.ctx.speakers.rename(path, speaker, name)
        names = self.names.get(path, {})
        self.lane.set_names(names)
        for i in range(self.list.topLevelItemCount()):  # the list shows the name (or "S1" again)
            item = self.list.topLevelItem(i)
            if item.data(0, Qt.ItemDataRole.UserRole) == speaker and item.text(0) != (names.get(speaker) or speaker):
                self.list.blockSignals(True)
                item.setText(0, names.get(speaker) or speaker)
                self.list.blockSignals(False)

    def speaker_names(self, path: str | None = None) -> dict[str, str]:
        """The names given to a file's speakers ({"S1": "Alice"}), e.g. for a transcript."""
        return dict(self.names.get(str(path) if path is not None else self._current() or "", {}))

    def _update_placeholder(self) -> None:
        path, lane = self._current(), self.lane
        if path is None:
            lane.set_placeholder("Select a file to find its speakers", enabled=False)
            self._action = None
        elif path in self.jobs:
            job = self.jobs[path]
            pct = f" {job.state.progress * 100:.0f}%" if job.state.progress > 0 else ""
            lane.set_placeholder(f"Finding speakers…{pct}", enabled=False)
            self._action = None
        elif self.turns.get(path) == []:
            lane.set_placeholder("No speech found in this file")
            self._action = self.reveal
        elif self.installed is not None and not self.encoder_ready():
            lane.set_placeholder(f"The speaker encoder is not installed: see the Speakers panel ({SHORTCUT})")
            self._action = self.reveal
        elif path in self.errors:
            lane.set_placeholder(f"Finding speakers failed: {self.errors[path]} (click to try again)")
            self._action = self.find
        else:
            lane.set_placeholder(f"Find speakers…  ({SHORTCUT})",
                                 tip="Click to find who spoke when, with the Speakers panel's settings")
            self._action = self.find

    def reveal(self) -> None:
        """Bring this panel to the front (its tab or dock)."""
        reveal(self)

    @Slot(object)
    def play_turn(self, turn) -> None:
        """Play the selected file from the turn's start (a seek when it is already the player's file)."""
        play_from(self.ctx, self.file_view, self._current(), turn.start, self.lane.name_of(turn.speaker))

    # -- separating speakers ---------------------------------------------------------------------
    def separate(self, path: str | None = None):
        """One track per speaker of ``path`` (default the selected file) into a work folder, as a job.
        Without the SepFormer weights, shows the download offer instead (returns None)."""
        path = str(path) if path is not None else self._current()
        if path is None or self.sep_job is not None:
            return None
        if self.installed is None:
            self.sep_status.setText("Checking the installed models…")
            return None
        if not self.separator_ready():
            self._update()
            self.sep_status.setText("Download the SepFormer weights first (above), then Separate.")
            return None
        work = tempfile.mkdtemp(prefix="sonoscope-speakers-")
        self.work_dirs.append(work)
        self.sep_path = path
        job = self.sep_job = self.ctx.submit(f"Separate the speakers of {Path(path).name}", separate_speakers,
                                             path, work, model=self.separator_model, fmt="wav",
                                             device=self.ctx.compute_device(), threads=self.ctx.threads() or None)
        self.sep_status.setText(f"Separating the speakers of {Path(path).name}…")
        self.ctx.jobs.when_done(job, lambda j: self._separated(j, path, work))
        self._update()
        return job

    def _separated(self, job, path: str, work: str) -> None:
        self.sep_job = None
        if job.status is not JobStatus.DONE:
            if work in self.work_dirs:  # a cancelled or failed run leaves nothing behind
                self.work_dirs.remove(work)
                shutil.rmtree(work, ignore_errors=True)
            self.sep_status.setText(job.error or "Separation failed")
            if job.status is JobStatus.FAILED:
                self.ctx.error(f"Separating speakers failed: {job.error}")
            self._update()
            return
        old = self.separations.get(path)
        self.separations[path] = job.result
        if old is not None:
            self._drop_work(old)
        if path == self._current():
            self._show_separation()
        self.ctx.status(f"Speaker tracks ready: {job.result.track}")
        self._update()

    def _drop_work(self, result) -> None:
        folder = next(iter(result.speakers.values())).parent.parent if result.speakers else None
        if folder is not None and str(folder) in self.work_dirs:
            self.work_dirs.remove(str(folder))
            shutil.rmtree(folder, ignore_errors=True)

    def _shown_separation(self):
        return self.separations.get(self._current() or "")

    def _show_separation(self) -> None:
        r = self._shown_separation()
        if r is None:
            if self.player.tracks:
                self.player.clear()
            if self.sep_job is None:
                self.sep_status.setText("")
            return
        if self.player.label != r.track or not self.player.tracks:
            self.player.set_stems(r.speakers, r.track)
        self.sep_status.setText(f"{r.track}: {len(r.speakers)} speaker tracks ({r.duration:.1f} s). "
                                "Solo / mute / volume to listen, then export.")

    @Slot()
    def export(self, folder: str | Path | None = None):
        """Export the ticked tracks into ``<folder>/<track>/`` (``folder``: asked in a dialog)."""
        r = self._shown_separation()
        if r is None or self.export_job is not None:
            return None
        chosen = self.player.chosen()
        if not chosen:
            self.ctx.error("Tick at least one track to export")
            return None
        if not folder:
            start = self.ctx.settings.get(EXPORT_DIR) or str(self.ctx.output_dir())
            folder = QFileDialog.getExistingDirectory(self, f"Export the speakers of {r.track} into", start)
            if not folder:
                return None
        self.ctx.settings.set(EXPORT_DIR, str(folder))
        job = self.export_job = self.ctx.submit(f"Export speakers of {r.track}", export_stem_files,
                                                {k: str(v) for k, v in r.speakers.items()}, str(folder), r.track,
                                                self.format_box.currentData(), chosen)
        self.ctx.jobs.when_done(job, self._exported)
        self._update()
        return job

    def _exported(self, job) -> None:
        self.export_job = None
        self._update()
        if job.status is not JobStatus.DONE:
            if job.status is JobStatus.FAILED:
                self.ctx.error(f"Export failed: {job.error}")
            return
        self.last_export = job.result
        for p in job.result.values():
            self.ctx.add_file(p)
        folder = next(iter(job.result.values())).parent
        self.sep_status.setText(f"Exported {', '.join(job.result)} to {folder}")
        self.ctx.status(f"Speaker tracks exported to {folder}")

    def showEvent(self, e) -> None:
        super().showEvent(e)
        if self.installed is not None:
            self.refresh_models()  # something may have been installed meanwhile (Models panel)

    def shutdown(self) -> None:
        for job in list(self.jobs.values()):
            job.cancel()
        if self.sep_job is not None:
            self.sep_job.cancel()
        self.player.clear()
        for d in self.work_dirs:
            shutil.rmtree(d, ignore_errors=True)
