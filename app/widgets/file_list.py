"""The session's file list: name, duration, rate, channels; drop files or folders onto it.

Folders are walked and files probed on worker threads (a folder of thousands of files never
freezes the GUI; probes go through the window's shared :class:`app.probe.AudioProbe`). An unreadable file becomes a red row whose text and tooltip say why -- never a
dialog, so dropping fifty bad files gives fifty rows, not fifty pop-ups.
"""

from __future__ import annotations

import os
import queue
import threading
from pathlib import Path

from PySide6.QtCore import Qt, Signal, Slot
from PySide6.QtGui import QBrush, QColor, QKeySequence
from PySide6.QtWidgets import QAbstractItemView, QHeaderView, QTreeWidget, QTreeWidgetItem

from engine.audio.io import AUDIO_EXTENSIONS

from ..probe import describe_error
from ..threads import emit

PATH_ROLE = Qt.ItemDataRole.UserRole
OK_ROLE = Qt.ItemDataRole.UserRole + 1
MAX_FOLDER_FILES = 10_000
COLUMNS = ("Name", "Duration", "Rate", "Channels")


def format_duration(seconds: float) -> str:
    if seconds < 60:
        return f"{seconds:.2f} s"
    m, s = divmod(int(round(seconds)), 60)
    h, m = divmod(m, 60)
    return f"{h}:{m:02d}:{s:02d}" if h else f"{m}:{s:02d}"


def expand_paths(paths) -> list[Path]:
    """Files as given, plus the audio files inside given folders (recursively, sorted)."""
    out: list[Path] = []
    for p in paths:
        p = Path(p)
        if p.is_dir():
            found = []
            for root, dirs, files in os.walk(p):
                dirs[:] = sorted(d for d in dirs if not d.startswith("."))
                found.extend(Path(root) / f for f in sorted(files)
                             if f.lower().endswith(AUDIO_EXTENSIONS) and not f.startswith("."))
                if len(found) >= MAX_FOLDER_FILES:
                    break
            out.extend(found[:MAX_FOLDER_FILES])
        else:
            out.append(p)
    return out


def _key(p: Path) -> str:
    return str(p.resolve()) if p.exists() else str(p.absolute())


def expand_keys(paths) -> list[str]:
    """:func:`expand_paths` as the file list's keys (resolved paths). Touches the disk: worker thread."""
    return [_key(p) for p in expand_paths(paths)]


class FileList(QTreeWidget):
    """``add_paths`` returns at once: folders are walked (and paths resolved) on a worker thread,
    then the rows appear and are probed through the shared :class:`app.probe.AudioProbe`."""

    selectionChangedPaths = Signal(list)   # list[str]: every selected row, unreadable ones too
    filesAdded = Signal(list)              # list[str] of new rows
    pathsDropped = Signal(list)            # list[str]: files and folders the user dropped here
    _expanded = Signal(list, bool)         # worker -> GUI: keys, select

    def __init__(self, parent=None, probe=None) -> None:
        super().__init__(parent)
        self.setAccessibleName("File list")
        self.setToolTip("Audio files in this session. Drop files or folders here.")
        self.setColumnCount(len(COLUMNS))
        self.setHeaderLabels(list(COLUMNS))
        self.setRootIsDecorated(False)
        self.setUniformRowHeights(True)
        self.setAlternatingRowColors(True)
        self.setSelectionMode(QAbstractItemView.SelectionMode.ExtendedSelection)
        self.setAcceptDrops(True)
        self.setDragDropMode(QAbstractItemView.DragDropMode.DropOnly)
        self.viewport().setAcceptDrops(True)
        h = self.header()
        h.setStretchLastSection(False)
        h.setSectionResizeMode(0, QHeaderView.ResizeMode.Stretch)
        for c in range(1, len(COLUMNS)):
            h.setSectionResizeMode(c, QHeaderView.ResizeMode.ResizeToContents)
        if probe is None:
            from ..probe import AudioProbe

            probe = AudioProbe(self)
        self.probe = probe
        self._items: dict[str, QTreeWidgetItem] = {}
        self._expanding = 0                     # add_paths calls still walking their folders
        self._jobs: "queue.Queue[tuple[list, bool]]" = queue.Queue()
        self._walker: threading.Thread | None = None
        self._walker_lock = threading.Lock()
        self._expanded.connect(self._add_keys)
        probe.probed.connect(self._on_probed)
        self.itemSelectionChanged.connect(self._emit_selection)
        self._pending_select: set[str] | None = None

    # -- adding -----------------------------------------------------------------------------
    def add_paths(self, paths, select: bool = True) -> None:
        """Add files (folders expand to the audio files inside). Returns at once; the rows
        appear when the folders are walked (``pending()`` counts what is not there yet)."""
        paths = [str(p) for p in paths]
        if not paths:
            return
        self._expanding += 1
        self._jobs.put((paths, select))
        with self._walker_lock:
            if self._walker is None or not self._walker.is_alive():
                self._walker = threading.Thread(target=self._walk_loop, name="sonoscope-files", daemon=True)
                self._walker.start()

    def _walk_loop(self) -> None:
        while True:
            try:
                paths, select = self._jobs.get(timeout=1.0)
            except queue.Empty:
                with self._walker_lock:
                    if self._jobs.empty():
                        self._walker = None
                        return
                continue
            try:
                keys = expand_keys(paths)
            except Exception:  # an unreadable folder etc.: add what was given, the probe says why
                keys = [str(Path(p).absolute()) for p in paths]
            emit(self._expanded, keys, select)

    @Slot(list, bool)
    def _add_keys(self, keys: list, select: bool) -> None:
        self._expanding -= 1
        new = []
        for key in keys:
            if key in self._items:
                continue
            item = QTreeWidgetItem([Path(key).name, "…", "", ""])
            item.setData(0, PATH_ROLE, key)
            item.setData(0, OK_ROLE, None)
            item.setToolTip(0, key)
            for c in (1, 2, 3):
                item.setTextAlignment(c, Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
            self.addTopLevelItem(item)
            self._items[key] = item
            new.append(key)
        for key in new:
            self.probe.request(key, urgent=False)
            hit = self.probe.cached(key)
            if hit is not None:  # probed before (removed and added again, or by a panel)
                self._on_probed(key, *hit)
        if new:
            self.filesAdded.emit(new)
            if select:
                pending = {k for k in new if self._items[k].data(0, OK_ROLE) is None}
                ready = [k for k in new if self._items[k].data(0, OK_ROLE)]
                if ready:
                    self.select_path(ready[0])
                elif pending:
                    self._pending_select = pending  # select the first of these that turns out readable
        elif select:
            existing = [k for k in keys if k in self._items]
            if existing:
                self.select_path(existing[0])

    @Slot(str, object, str)
    def _on_probed(self, path: str, info, error: str) -> None:
        item = self._items.get(path)
        if item is None:
            return
        if info is None:
            item.setData(0, OK_ROLE, False)
            item.setText(1, "error")
            item.setText(2, "")
            item.setText(3, "")
            item.setText(0, f"{Path(path).name} — {describe_error(path, error)}")
            red = QBrush(QColor(230, 90, 90))
            for c in range(len(COLUMNS)):
                item.setForeground(c, red)
                item.setToolTip(c, error)
            item.setData(1, Qt.ItemDataRole.AccessibleTextRole, f"error: {error}")
        else:
            item.setData(0, OK_ROLE, True)
            item.setText(0, Path(path).name)
            item.setText(1, format_duration(info.duration))
            item.setText(2, f"{info.samplerate / 1000:g} kHz")
            item.setText(3, {1: "mono", 2: "stereo"}.get(info.channels, str(info.channels)))
            item.setToolTip(0, f"{path}\n{info.format} {info.subtype}".strip())
            item.setData(1, Qt.ItemDataRole.AccessibleTextRole, None)
            for c in range(len(COLUMNS)):
                item.setData(c, Qt.ItemDataRole.ForegroundRole, None)
                if c:
                    item.setToolTip(c, "")
        if self._pending_select and path in self._pending_select:
            if info is not None:
                self._pending_select = None
                self.select_path(path)
            else:
                self._pending_select.discard(path)

    # -- queries ----------------------------------------------------------------------------
    def rows(self) -> list[dict]:
        """Each row's path, ok (True/False/None while probing) and column texts (for tests/tools)."""
        out = []
        for i in range(self.topLevelItemCount()):
            it = self.topLevelItem(i)
            out.append({"path": it.data(0, PATH_ROLE), "ok": it.data(0, OK_ROLE),
                        "texts": [it.text(c) for c in range(len(COLUMNS))], "tooltip": it.toolTip(1)})
        return out

    def pending(self) -> int:
        """Rows still being probed, plus added paths whose folders are still being walked."""
        return self._expanding + sum(1 for r in self.rows() if r["ok"] is None)

    def selected_paths(self) -> list[str]:
        """The selected rows' paths, readable files first. An unreadable file is selected like any
        other (the file view and File info then say what is wrong with it); jobs started on it fail
        with the same reason."""
        items = self.selectedItems()
        return [it.data(0, PATH_ROLE) for it in sorted(items, key=lambda it: it.data(0, OK_ROLE) is False)]

    def select_path(self, path: str) -> None:
        item = self._items.get(str(path))
        if item is not None:
            self.setCurrentItem(item)
            self.clearSelection()
            item.setSelected(True)
            self.scrollToItem(item)

    def remove_selected(self) -> None:
        for it in self.selectedItems():
            self._items.pop(it.data(0, PATH_ROLE), None)
            self.takeTopLevelItem(self.indexOfTopLevelItem(it))

    @Slot()
    def _emit_selection(self) -> None:
        self.selectionChangedPaths.emit(self.selected_paths())

    # -- drag and drop ----------------------------------------------------------------------
    def dragEnterEvent(self, e) -> None:
        if e.mimeData().hasUrls():
            e.acceptProposedAction()
        else:
            super().dragEnterEvent(e)

    def dragMoveEvent(self, e) -> None:
        if e.mimeData().hasUrls():
            e.acceptProposedAction()
        else:
            super().dragMoveEvent(e)

    def dropEvent(self, e) -> None:
        paths = [u.toLocalFile() for u in e.mimeData().urls() if u.isLocalFile()]
        if paths:
            self.add_paths(paths)
            self.pathsDropped.emit(paths)
            e.acceptProposedAction()
        else:
            super().dropEvent(e)

    def keyPressEvent(self, e) -> None:
        if e.matches(QKeySequence.StandardKey.Delete):
            self.remove_selected()
            return
        super().keyPressEvent(e)
