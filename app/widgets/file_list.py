"""The session's file list: name, duration, rate, channels; drop files or folders onto it.

Files are probed on a worker thread (a folder of thousands of files never freezes the
GUI). An unreadable file becomes a red row whose text and tooltip say why -- never a
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

from engine.audio import AUDIO_EXTENSIONS

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


class FileList(QTreeWidget):
    selectionChangedPaths = Signal(list)   # list[str], ok files only
    filesAdded = Signal(list)              # list[str] of new rows
    _probed = Signal(str, object, str)     # path, AudioInfo or None, error

    def __init__(self, parent=None) -> None:
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
        self._items: dict[str, QTreeWidgetItem] = {}
        self._queue: "queue.Queue[str]" = queue.Queue()
        self._worker: threading.Thread | None = None
        self._probed.connect(self._on_probed)
        self.itemSelectionChanged.connect(self._emit_selection)
        self._pending_select: set[str] | None = None

    # -- adding -----------------------------------------------------------------------------
    def add_paths(self, paths, select: bool = True) -> list[str]:
        """Add files (folders expand to the audio files inside); returns the paths of new rows."""
        new = []
        for p in expand_paths(paths):
            key = str(p.resolve()) if p.exists() else str(p.absolute())
            if key in self._items:
                continue
            item = QTreeWidgetItem([p.name, "…", "", ""])
            item.setData(0, PATH_ROLE, key)
            item.setData(0, OK_ROLE, None)
            item.setToolTip(0, key)
            for c in (1, 2, 3):
                item.setTextAlignment(c, Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
            self.addTopLevelItem(item)
            self._items[key] = item
            self._queue.put(key)
            new.append(key)
        if new:
            self._ensure_worker()
            self.filesAdded.emit(new)
            if select:
                self._pending_select = set(new)  # select the first of these that turns out readable
        elif select:
            existing = [str(Path(p).resolve()) for p in paths if str(Path(p).resolve()) in self._items]
            if existing:
                self.select_path(existing[0])
        return new

    def _ensure_worker(self) -> None:
        if self._worker is not None and self._worker.is_alive():
            return
        self._worker = threading.Thread(target=self._probe_loop, name="sonoscope-probe", daemon=True)
        self._worker.start()

    def _probe_loop(self) -> None:
        from engine import audio
        from engine.errors import SonoscopeError

        while True:
            try:
                path = self._queue.get(timeout=1.0)
            except queue.Empty:
                return
            try:
                info = audio.info(path)
                emit(self._probed, path, info, "")
            except SonoscopeError as e:
                emit(self._probed, path, None, str(e))
            except Exception as e:  # a decoder bug must not kill the worker
                emit(self._probed, path, None, f"{type(e).__name__}: {e}")

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
            reason = error.split(": ", 1)[1] if error.startswith(Path(path).name + ":") else error
            item.setText(0, f"{Path(path).name} — {reason}")
            red = QBrush(QColor(230, 90, 90))
            for c in range(len(COLUMNS)):
                item.setForeground(c, red)
                item.setToolTip(c, error)
            item.setData(1, Qt.ItemDataRole.AccessibleTextRole, f"error: {error}")
        else:
            item.setData(0, OK_ROLE, True)
            item.setText(1, format_duration(info.duration))
            item.setText(2, f"{info.samplerate / 1000:g} kHz")
            item.setText(3, {1: "mono", 2: "stereo"}.get(info.channels, str(info.channels)))
            item.setToolTip(0, f"{path}\n{info.format} {info.subtype}".strip())
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
        return sum(1 for r in self.rows() if r["ok"] is None)

    def selected_paths(self) -> list[str]:
        return [it.data(0, PATH_ROLE) for it in self.selectedItems() if it.data(0, OK_ROLE)]

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
            e.acceptProposedAction()
        else:
            super().dropEvent(e)

    def keyPressEvent(self, e) -> None:
        if e.matches(QKeySequence.StandardKey.Delete):
            self.remove_selected()
            return
        super().keyPressEvent(e)
