"""Tags: which sounds are in the selected file, and when (AudioSet tagging, EfficientAT by default).

Tagging runs on the engine thread (``engine.tags.task.tag_file``, submitted lazily: it imports
torch); the panel lists the file's top tags with their scores and the tag lane under the file
view draws the events (one colour per label, rows where they overlap; click one to play from
there). Results are kept per file: selecting another file shows that file's lane. The label
filter chooses which labels the lane draws; Export writes JSON, CSV or an Audacity label track
where the save dialog says.

The model list (installed taggers first, the others marked "download") is read off the GUI
thread. Without the offline tagger the panel says so and offers to import its folder or to
download it, both as jobs.
"""

from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import Qt, Slot
from PySide6.QtWidgets import (QComboBox, QDoubleSpinBox, QFileDialog, QFormLayout, QHBoxLayout, QHeaderView,
                               QLabel, QListWidget, QListWidgetItem, QMenu, QPushButton, QSplitter,
                               QToolButton, QTreeWidget, QTreeWidgetItem, QVBoxLayout, QWidget)

from engine.jobs import JobStatus, lazy

from .. import settings as S
from ..panel_tools import play_from, reveal, swatch
from ..threads import run_in_thread
from ..widgets.tag_lane import TagLane, color_for

# the engine's job, imported on the engine thread when it first runs (its taggers import torch)
tag_file = lazy("engine.tags.task", "tag_file")

DEFAULT_MODEL = "efficientat-mn04-as"  # engine.tags.taggers.DEFAULT_MODEL (that module imports torch)
SHORTCUT = "Ctrl+Shift+G"

MODEL = S.define("tags/model", str, DEFAULT_MODEL, "Sound tagging model id")
THRESHOLD = S.define("tags/threshold", float, 0.3, "Score a label must reach to make an event (0-1)")
HOP = S.define("tags/hop", float, 1.0, "Seconds between tagging windows")
HIDDEN = S.define("tags/hidden_labels", list, [], "Labels the tag lane does not draw")
EXPORT_DIR = S.define("tags/export_dir", str, "", "Folder last used to export tags")

EXPORTS = (("json", "JSON (tags and events)", "JSON (*.json)"), ("csv", "CSV (events)", "CSV (*.csv)"),
           ("audacity", "Audacity labels", "Audacity labels (*.txt)"))
EXTENSIONS = {"json": ".json", "csv": ".csv", "audacity": ".txt"}  # engine.tags.exports.FORMATS


# -- jobs (engine thread) and listings (a worker thread) -------------------------------------------
def list_taggers() -> list[tuple[str, str, bool, float]]:
    """(id, name, installed, size MB) of the catalog's taggers: the default first, then installed ones."""
    from engine.store import default_store

    store = default_store()
    store.reload_catalog()  # imports made elsewhere (the CLI, the Models panel) show up
    rows = []
    for spec in store.catalog("tag"):
        try:
            installed = store.is_installed(spec.id)
        except Exception:  # one broken entry must not hide the rest
            installed = False
        rows.append((spec.id, spec.name, installed, spec.size_mb))
    return sorted(rows, key=lambda r: (r[0] != DEFAULT_MODEL, not r[2], r[1].lower()))


def import_tagger_folder(state, folder: str, wanted: str | None = None) -> str:
    """Register a tagger folder in the store. A folder holding a catalog tagger's files becomes that
    tagger (the store checks its checksum); anything else is imported as ``local/<folder>``."""
    from engine.store import default_store

    store = default_store()
    root = Path(folder)
    ids = ([wanted] if wanted else []) + [s.id for s in store.catalog("tag") if s.id != wanted]
    for mid in ids:
        try:
            spec = store.get(mid)
        except Exception:
            continue
        for src in spec.sources:
            files = src.get("files") or []
            names = list(files) if isinstance(files, (dict, list)) else []
            if src.get("type") != "local" and names and all((root / n).is_file() for n in names):
                return store.import_folder(root, mid).id
    return store.import_folder(root, None, task="tag").id


def download_tagger(state, model_id: str) -> str:
    from engine.store import default_store

    return str(default_store().resolve(model_id, state))


class TagsPanel(QWidget):
    title = "Tags"
    area = "tab"
    shortcut = SHORTCUT

    def __init__(self, ctx, parent=None) -> None:
        super().__init__(parent)
        self.ctx = ctx
        self.setAccessibleName("Tags")
        self.results: dict[str, object] = {}   # path -> Tagging of the last finished run
        self.errors: dict[str, str] = {}       # path -> why its last run failed
        self.jobs: dict[str, object] = {}      # path -> its running job
        self.installed: dict[str, bool] | None = None  # model id -> installed (None: not listed yet)
        self.names: dict[str, str] = {}
        self.folders: set[str] = set()         # model folders offered with add_model
        self.hidden: set[str] = set(ctx.settings.get(HIDDEN))
        self.import_job = self.download_job = None
        self.last_export: Path | None = None
        self._listing = 0
        self._action = None

        self.model = QComboBox(self)
        self.model.setAccessibleName("Tagging model")
        self.model.addItem("Looking for taggers…", "")
        self.threshold = QDoubleSpinBox(self)
        self.threshold.setAccessibleName("Event threshold")
        self.threshold.setRange(0.01, 1.0)
        self.threshold.setSingleStep(0.05)
        self.threshold.setDecimals(2)
        self.threshold.setValue(ctx.settings.get(THRESHOLD))
        self.threshold.setToolTip("A label makes an event where its score stays at or above this")
        self.hop = QDoubleSpinBox(self)
        self.hop.setAccessibleName("Hop")
        self.hop.setRange(0.1, 10.0)
        self.hop.setSingleStep(0.25)
        self.hop.setDecimals(2)
        self.hop.setSuffix(" s")
        self.hop.setValue(ctx.settings.get(HOP))
        self.hop.setToolTip("Seconds between analysis windows: smaller finds shorter sounds, but is slower")

        self.missing = QWidget(self)
        self.missing_label = QLabel("", self.missing)
        self.missing_label.setWordWrap(True)
        self.missing_label.setAccessibleName("Tagger not installed")
        self.import_button = QPushButton("Import a tagger folder…", self.missing)
        self.import_button.setToolTip("Register a folder that holds a tagger's files (no download)")
        self.download_button = QPushButton("Download", self.missing)
        self.download_button.setToolTip("Download the model (progress in Jobs)")
        row = QHBoxLayout()
        row.setContentsMargins(0, 0, 0, 0)
        row.addWidget(self.import_button)
        row.addWidget(self.download_button)
        row.addStretch(1)
        box = QVBoxLayout(self.missing)
        box.setContentsMargins(0, 0, 0, 0)
        box.addWidget(self.missing_label)
        box.addLayout(row)
        self.missing.hide()

        self.file_label = QLabel("Select a file in the file list.", self)
        self.file_label.setWordWrap(True)
        form = QFormLayout()
        form.addRow("File:", self.file_label)
        form.addRow("Model:", self.model)
        form.addRow("Threshold:", self.threshold)
        form.addRow("Hop:", self.hop)

        self.tag_button = QPushButton("Tag sounds", self)
        self.tag_button.setAccessibleName("Tag the sounds of the selected file")
        self.cancel_button = QPushButton("Cancel", self)
        self.cancel_button.setEnabled(False)
        self.export_button = QToolButton(self)
        self.export_button.setText("Export")
        self.export_button.setAccessibleName("Export the tags")
        self.export_button.setPopupMode(QToolButton.ToolButtonPopupMode.InstantPopup)
        menu = QMenu(self.export_button)
        for fmt, text, _ in EXPORTS:
            menu.addAction(f"{text}…", lambda f=fmt: self.export(f))
        self.export_button.setMenu(menu)
        self.export_button.setEnabled(False)
        buttons = QHBoxLayout()
        buttons.addWidget(self.tag_button)
        buttons.addWidget(self.cancel_button)
        buttons.addWidget(self.export_button)
        buttons.addStretch(1)
        self.info = QLabel(f"Tag a file to see its sounds here and in the lane under the waveform ({SHORTCUT}).",
                           self)
        self.info.setWordWrap(True)
        self.info.setAccessibleName("Tags status")

        self.tags = QTreeWidget(self)
        self.tags.setAccessibleName("Top tags")
        self.tags.setHeaderLabels(["Sound", "Score"])
        self.tags.setRootIsDecorated(False)
        self.tags.header().setSectionResizeMode(0, QHeaderView.ResizeMode.Stretch)
        self.filter = QListWidget(self)
        self.filter.setAccessibleName("Labels shown in the lane")
        self.filter.setToolTip("Tick the labels the tag lane shows")
        all_button, none_button = QPushButton("All", self), QPushButton("None", self)
        all_button.clicked.connect(lambda: self.set_hidden(set()))
        none_button.clicked.connect(lambda: self.set_hidden(self._labels()))
        right = QWidget(self)
        rlay = QVBoxLayout(right)
        rlay.setContentsMargins(0, 0, 0, 0)
        rlay.addWidget(QLabel("Show in the lane:", right))
        rlay.addWidget(self.filter, 1)
        fb = QHBoxLayout()
        fb.addWidget(all_button)
        fb.addWidget(none_button)
        fb.addStretch(1)
        rlay.addLayout(fb)
        lists = QSplitter(Qt.Orientation.Horizontal, self)
        lists.addWidget(self.tags)
        lists.addWidget(right)

        lay = QVBoxLayout(self)
        lay.addLayout(form)
        lay.addWidget(self.missing)
        lay.addLayout(buttons)
        lay.addWidget(self.info)
        lay.addWidget(lists, 1)

        # the lane lives under the file view's spectrogram (in the panel itself without one)
        self.lane = TagLane()
        self.file_view = getattr(parent, "file_view", None)
        if self.file_view is not None and hasattr(self.file_view, "add_lane"):
            self.file_view.add_lane(self.lane)
        else:
            self.file_view = None
            lay.addWidget(self.lane)
        self.lane.set_hidden(self.hidden)

        self.tag_button.clicked.connect(lambda: self.tag())
        self.cancel_button.clicked.connect(self.cancel)
        self.import_button.clicked.connect(lambda: self.import_tagger())
        self.download_button.clicked.connect(lambda: self.download())
        self.model.currentIndexChanged.connect(lambda _: self._model_changed())
        self.threshold.valueChanged.connect(lambda v: ctx.settings.set(THRESHOLD, v))
        self.hop.valueChanged.connect(lambda v: ctx.settings.set(HOP, v))
        self.filter.itemChanged.connect(self._filter_changed)
        self.lane.eventClicked.connect(self.play_event)
        self.lane.actionClicked.connect(self._lane_action)
        ctx.jobs.jobProgress.connect(self._progress)
        ctx.selectionChanged.connect(self._selection)
        self.refresh_models()
        self._selection([str(p) for p in ctx.selection])

    # -- models ------------------------------------------------------------------------------
    def refresh_models(self) -> None:
        """Re-read the taggers (catalog and installed state) on a worker thread."""
        self._listing += 1
        number = self._listing
        run_in_thread(list_taggers, lambda rows, error: self._listed(rows, error, number), self,
                      name="sonoscope-taggers")

    def _listed(self, rows, error, number: int) -> None:
        if number != self._listing:
            return  # a newer listing is on its way
        want = self.model.currentData() or self.ctx.settings.get(MODEL)
        self.model.blockSignals(True)
        self.model.clear()
        if error is not None:
            self.model.addItem(f"(no catalog: {error})", "")
            rows = []
        self.installed = {mid: inst for mid, _, inst, _ in rows}
        self.names = {mid: name for mid, name, _, _ in rows}
        for mid, name, inst, size in rows:
            self.model.addItem(name if inst else f"{name}  (download{f', {size:.0f} MB' if size else ''})", mid)
        for folder in sorted(self.folders):
            self.model.addItem(Path(folder).name, folder)
        i = self.model.findData(want)
        self.model.setCurrentIndex(i if i >= 0 else max(0, self.model.findData(DEFAULT_MODEL)))
        self.model.blockSignals(False)
        self._model_changed()

    def add_model(self, folder: str, label: str | None = None) -> None:
        """Offer a tagger folder (used as it is, not imported) and select it."""
        self.folders.add(str(folder))
        i = self.model.findData(str(folder))
        if i < 0:
            self.model.addItem(label or Path(folder).name, str(folder))
            i = self.model.count() - 1
        self.model.setCurrentIndex(i)

    def usable(self, model: str | None = None) -> bool:
        model = self.model.currentData() if model is None else model
        return bool(model) and (model in self.folders or bool((self.installed or {}).get(model)))

    def _model_changed(self) -> None:
        mid = self.model.currentData()
        if mid and mid not in self.folders and self.installed is not None:
            self.ctx.settings.set(MODEL, mid)
        missing = bool(mid) and self.installed is not None and mid not in self.folders and not self.installed.get(mid)
        if missing:
            name = self.names.get(mid, mid)
            default = " the offline sound tagger" if mid == DEFAULT_MODEL else ""
            self.missing_label.setText(f"{name} ({mid}),{default} is not installed. Import its folder if you have "
                                       "a copy of its files, or download it.")
        self.missing.setVisible(missing)
        busy = self.import_job is not None or self.download_job is not None
        self.import_button.setEnabled(not busy)
        self.download_button.setEnabled(not busy)
        self._update_buttons()

    @Slot()
    def import_tagger(self, folder: str | None = None):
        """Import a tagger folder (asked with a folder dialog) into the store, as a job."""
        if self.import_job is not None:
            return None
        if folder is None:
            folder = QFileDialog.getExistingDirectory(self, "Import a tagger folder", str(Path.home()))
            if not folder:
                return None
        wanted = self.model.currentData() or DEFAULT_MODEL
        wanted = wanted if wanted not in self.folders else DEFAULT_MODEL
        job = self.import_job = self.ctx.submit(f"Import tagger folder {Path(folder).name}", import_tagger_folder,
                                                str(folder), wanted)
        self.missing_label.setText(f"Importing {folder}…")
        self._model_changed()
        self.ctx.jobs.when_done(job, self._imported)
        return job

    def _imported(self, job) -> None:
        self.import_job = None
        if job.result:
            self.ctx.settings.set(MODEL, job.result)
            self.model.blockSignals(True)
            i = self.model.findData(job.result)
            if i < 0:
                self.model.addItem(job.result, job.result)
                i = self.model.count() - 1
            self.model.setCurrentIndex(i)
            self.model.blockSignals(False)
            self.ctx.status(f"Tagger {job.result} imported")
        else:
            self.ctx.error(f"Import failed: {job.error}")
        self._model_changed()
        self.refresh_models()

    @Slot()
    def download(self):
        mid = self.model.currentData()
        if not mid or mid in self.folders or self.download_job is not None:
            return None
        job = self.download_job = self.ctx.submit(f"Download tagger {mid}", download_tagger, mid)
        self.missing_label.setText(f"Downloading {self.names.get(mid, mid)}… (progress in Jobs)")
        self._model_changed()

        def done(j) -> None:
            self.download_job = None
            if j.result:
                self.ctx.status(f"Tagger {mid} installed")
            else:
                self.ctx.error(f"Download of {mid} failed: {j.error}")
            self._model_changed()
            self.refresh_models()

        self.ctx.jobs.when_done(job, done)
        return job

    # -- tagging -----------------------------------------------------------------------------
    @Slot(list)
    def _selection(self, paths: list) -> None:
        self.file_label.setText(Path(paths[0]).name if paths else "Select a file in the file list.")
        self.show_current()

    def _current(self) -> str | None:
        return str(self.ctx.current_path) if self.ctx.current_path is not None else None

    def _update_buttons(self) -> None:
        path = self._current()
        self.tag_button.setEnabled(path is not None and self.usable() and path not in self.jobs)
        self.cancel_button.setEnabled(path is not None and path in self.jobs)
        self.export_button.setEnabled(path is not None and path in self.results)
        self._update_placeholder()

    def tag(self, paths=None) -> list:
        """Tag the selected files (each one job); returns the jobs."""
        paths = [str(p) for p in (paths if paths is not None else self.ctx.selection)]
        if not paths:
            self.ctx.status("Select an audio file first")
            return []
        model = self.model.currentData()
        if not self.usable(model):
            self.ctx.status("Install a sound tagger first (Tags panel)")
            self.reveal()
            return []
        jobs = []
        for path in paths:
            if path in self.jobs:
                continue
            self.errors.pop(path, None)
            job = self.ctx.submit(f"Tag sounds in {Path(path).name}", tag_file, path, model=model,
                                  hop=self.hop.value(), threshold=self.threshold.value(),
                                  device=self.ctx.compute_device(), threads=self.ctx.threads() or None)
            self.jobs[path] = job
            self.ctx.jobs.when_done(job, lambda j, p=path: self._done(j, p))
            jobs.append(job)
        if jobs:
            self.info.setText(f"Tagging {len(jobs)} file{'' if len(jobs) == 1 else 's'}…")
        self._update_buttons()
        return jobs

    @Slot()
    def cancel(self) -> None:
        job = self.jobs.get(self._current() or "")
        if job is not None:
            job.cancel()

    def _done(self, job, path: str) -> None:
        if self.jobs.get(path) is job:
            del self.jobs[path]
        name = Path(path).name
        if job.status is JobStatus.DONE:
            self.results[path] = job.result
            n = len(job.result.events)
            self.ctx.status(f"{name}: {n} sound event{'' if n == 1 else 's'}")
        elif job.status is JobStatus.FAILED:
            self.errors[path] = job.error or "failed"
            self.ctx.error(f"Tagging {name} failed: {job.error}")
        if path == self._current():
            self.show_current()
            if job.status is JobStatus.CANCELLED:
                self.info.setText(f"{name}: cancelled")
            elif job.status is JobStatus.FAILED:
                self.info.setText(f"{name}: failed ({job.error})")
        else:
            self._update_buttons()

    @Slot(object)
    def _progress(self, job) -> None:
        if job is self.jobs.get(self._current() or ""):
            self._update_placeholder()

    # -- showing a file's result ---------------------------------------------------------------
    def show_current(self) -> None:
        """Show the selected file's tags, filter and lane (each file keeps its own result)."""
        path = self._current()
        t = self.results.get(path) if path else None
        self.lane.set_tagging(t)
        self.tags.clear()
        for label, score in (t.tags if t is not None else []):
            item = QTreeWidgetItem([label, f"{score:.2f}"])
            item.setTextAlignment(1, Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
            item.setIcon(0, swatch(color_for(label)))
            self.tags.addTopLevelItem(item)
        self.tags.resizeColumnToContents(1)
        self._fill_filter()
        if t is not None:
            labels = len(self._labels())
            self.info.setText(f"{Path(path).name}: {len(t.events)} events of {labels} "
                              f"label{'' if labels == 1 else 's'} ({t.duration:.1f} s, {t.model}). "
                              "Click an event in the lane to play from there.")
        elif path in self.jobs:
            self.info.setText(f"Tagging {Path(path).name}…")
        self._update_buttons()

    def top_tags(self) -> list[tuple[str, str]]:
        """(label, score text) of the rows of the top tags list."""
        return [(self.tags.topLevelItem(i).text(0), self.tags.topLevelItem(i).text(1))
                for i in range(self.tags.topLevelItemCount())]

    def _labels(self) -> set[str]:
        t = self.results.get(self._current() or "")
        return {e.label for e in t.events} if t is not None else set()

    def _fill_filter(self) -> None:
        t = self.results.get(self._current() or "")
        self.filter.blockSignals(True)
        self.filter.clear()
        if t is not None:
            counts: dict[str, int] = {}
            for e in t.events:
                counts[e.label] = counts.get(e.label, 0) + 1
            rank = {label: i for i, (label, _) in enumerate(t.tags)}
            for label in sorted(counts, key=lambda lb: (rank.get(lb, len(rank)), lb)):
                item = QListWidgetItem(swatch(color_for(label)), f"{label} ({counts[label]})")
                item.setData(Qt.ItemDataRole.UserRole, label)
                item.setFlags(item.flags() | Qt.ItemFlag.ItemIsUserCheckable)
                item.setCheckState(Qt.CheckState.Unchecked if label in self.hidden else Qt.CheckState.Checked)
                self.filter.addItem(item)
        self.filter.blockSignals(False)

    def _filter_changed(self, item: QListWidgetItem) -> None:
        label = item.data(Qt.ItemDataRole.UserRole)
        hidden = set(self.hidden)
        if item.checkState() == Qt.CheckState.Checked:
            hidden.discard(label)
        else:
            hidden.add(label)
        self.set_hidden(hidden)

    def set_hidden(self, labels) -> None:
        """Hide these labels' bars in the lane (every other label shows)."""
        self.hidden = set(labels)
        self.ctx.settings.set(HIDDEN, sorted(self.hidden))
        self.lane.set_hidden(self.hidden)
        self._fill_filter()
        self._update_placeholder()

    # -- the lane ----------------------------------------------------------------------------
    def _update_placeholder(self) -> None:
        path = self._current()
        t = self.results.get(path) if path else None
        lane, keys = self.lane, SHORTCUT
        if path is None:
            lane.set_placeholder("Select a file to tag its sounds", enabled=False)
            self._action = None
        elif path in self.jobs:
            job = self.jobs[path]
            pct = f" {job.state.progress * 100:.0f}%" if job.state.progress > 0 else ""
            lane.set_placeholder(f"Tagging sounds…{pct}", enabled=False)
            self._action = None
        elif t is not None and not t.events:
            lane.set_placeholder(f"No sound reached the threshold ({self.threshold.value():.2f}): lower it in "
                                 f"the Tags panel ({keys}) and tag again")
            self._action = self.reveal
        elif t is not None:
            lane.set_placeholder(f"Every label is hidden: choose labels in the Tags panel ({keys})")
            self._action = self.reveal
        elif self.installed is not None and not self.usable():
            lane.set_placeholder(f"No sound tagger installed: import or download one in the Tags panel ({keys})")
            self._action = self.reveal
        elif path in self.errors:
            lane.set_placeholder(f"Tagging failed: {self.errors[path]} (click to try again)")
            self._action = self.tag
        else:
            lane.set_placeholder(f"Tag sounds…  ({keys})",
                                 tip="Click to tag this file's sounds with the Tags panel's settings")
            self._action = self.tag

    @Slot()
    def _lane_action(self) -> None:
        if self._action is not None:
            self._action()

    def reveal(self) -> None:
        """Bring this panel to the front (its tab or dock)."""
        reveal(self)

    @Slot(object)
    def play_event(self, event) -> None:
        """Play the selected file from the event's start (a seek when it is already the player's file)."""
        play_from(self.ctx, self.file_view, self._current(), event.start, event.label)

    # -- export ------------------------------------------------------------------------------
    def export(self, fmt: str):
        """Save the selected file's tags as ``fmt`` (json, csv, audacity) where the save dialog says;
        written atomically off the GUI thread. Returns the path chosen (None if cancelled)."""
        from engine.tags.exports import render

        path = self._current()
        t = self.results.get(path) if path else None
        if t is None:
            self.ctx.status("Tag the selected file first")
            return None
        ext = EXTENSIONS[fmt]
        folder = self.ctx.settings.get(EXPORT_DIR) or str(self.ctx.output_dir())
        pattern = next(f for key, _, f in EXPORTS if key == fmt)
        out, _ = QFileDialog.getSaveFileName(self, "Export tags", str(Path(folder) / f"{Path(path).stem}{ext}"),
                                             f"{pattern};;All files (*)")
        if not out:
            return None
        out = Path(out)
        if not out.suffix:
            out = out.with_suffix(ext)
        self.ctx.settings.set(EXPORT_DIR, str(out.parent))
        text = render(t, fmt)

        def write():
            from engine.fileio import write_text_atomic

            return write_text_atomic(out, text)

        def done(result, error) -> None:
            if error is not None:
                self.ctx.error(f"Export failed: {error}")
                return
            self.last_export = result
            self.ctx.status(f"Tags saved to {result}")

        run_in_thread(write, done, self, name="sonoscope-tags-export")
        return out

    def showEvent(self, e) -> None:
        super().showEvent(e)
        if self.installed is not None:
            self.refresh_models()  # something may have been installed meanwhile (Models panel)

    def shutdown(self) -> None:
        for job in list(self.jobs.values()):
            job.cancel()
