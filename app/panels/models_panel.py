"""Model manager over engine.store: catalog, install/download with progress, verify, delete,
open folder, import a local folder. All store work runs as jobs (engine thread).

The Installed column says in words how each model got there ("offline pack", "downloaded",
"imported") or what installing it takes ("not installed — download 150 MB"); a failed install
says why in the row itself ("not installed — no network").
"""

from __future__ import annotations

import threading
from pathlib import Path

from PySide6.QtCore import Qt, QUrl, Signal, Slot
from PySide6.QtGui import QBrush, QColor, QDesktopServices, QGuiApplication
from PySide6.QtWidgets import (QFileDialog, QHBoxLayout, QHeaderView, QInputDialog, QLabel, QPushButton,
                               QTreeWidget, QTreeWidgetItem, QVBoxLayout, QWidget)

from ..threads import emit

COLS = ("Model", "Task", "Size", "License", "Installed", "Id")
INSTALLED_ROLE = Qt.ItemDataRole.UserRole  # on column 4: True when the model is installed


def _mb(size_mb: float | None) -> str:
    if not size_mb:
        return ""
    return f"{size_mb:.0f} MB" if size_mb >= 1 else "<1 MB"


def not_installed_text(spec, offline_now: bool) -> str:
    """What installing a model takes, in words (the Installed column of a model that is not there)."""
    kinds = set(spec.source_types)
    size = f" {_mb(spec.size_mb)}" if spec.size_mb else ""
    if kinds & {"hub", "url"}:
        return "not installed — offline mode" if offline_now else f"not installed — download{size}"
    if "pack" in kinds:
        return "not installed — needs its offline pack"
    return "not installed"


def installed_tooltip(spec, where: str | None) -> str:
    if where and where.startswith("pack:"):
        return f"From the offline pack (pip package) {where[5:]}"
    if where == "cache":
        return "Unpacked or downloaded into the model cache"
    if where == "local":
        return "A local folder you imported (never deleted by Sonoscope)"
    packs = [n for src in spec.sources if src.get("type") == "pack"
             for n in ([src["package"]] if "package" in src else src.get("packages", []))]
    hint = f"; offline: pip install {' '.join(packs)}" if packs else ""
    return f"Install downloads it{hint}" if set(spec.source_types) & {"hub", "url"} else f"pip install {' '.join(packs)}"


def _store():
    from engine.store import default_store

    return default_store()


def install_model(state, model_id: str) -> str:
    return str(_store().resolve(model_id, state))


def verify_model(state, model_id: str) -> tuple[bool, str]:
    return _store().verify(model_id, state)


def remove_model(state, model_id: str) -> str:
    return _store().remove(model_id)


def import_model(state, folder: str, model_id: str | None) -> str:
    spec = _store().import_folder(folder, model_id)
    return spec.id


class ModelsPanel(QWidget):
    title = "Models"
    area = "tab"
    _listed = Signal(object, str, int)   # rows, error, refresh number

    def __init__(self, ctx, parent=None) -> None:
        super().__init__(parent)
        self._refreshes = 0  # number of the newest listing asked for
        self.ctx = ctx
        self.setAccessibleName("Model manager")
        self.tree = QTreeWidget(self)
        self.tree.setAccessibleName("Model catalog")
        self.tree.setHeaderLabels(list(COLS))
        self.tree.setRootIsDecorated(False)
        self.tree.header().setSectionResizeMode(0, QHeaderView.ResizeMode.Stretch)
        self.summary = QLabel("", self)
        self.summary.setAccessibleName("Catalog summary")
        self.info = QLabel("", self)
        self.info.setAccessibleName("Last model action")
        self.info.setWordWrap(True)
        self.info.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)  # paths can be copied
        self._failed: dict[str, str] = {}  # model id -> why its last install failed (shown in its row)
        self.buttons: dict[str, QPushButton] = {}
        bar = QHBoxLayout()
        for name, tip, slot in (
                ("Install", "Install from an offline pack or download it (progress in Jobs)", self.install),
                ("Verify", "Check the installed files against their checksums", self.verify),
                ("Delete", "Delete the cached files (imported folders are only forgotten)", self.delete),
                ("Open folder", "Show the model's files in the file manager", self.open_folder),
                ("Import folder…", "Register a local model folder", self.import_folder),
                ("Refresh", "Re-read the catalog", self.refresh)):
            b = QPushButton(name, self)
            b.setToolTip(tip)
            b.setAccessibleName(name.rstrip("…") + " model")
            b.clicked.connect(slot)
            bar.addWidget(b)
            self.buttons[name] = b
        bar.addStretch(1)
        lay = QVBoxLayout(self)
        lay.addWidget(self.tree, 1)
        lay.addWidget(self.summary)
        lay.addWidget(self.info)
        lay.addLayout(bar)
        self.tree.itemSelectionChanged.connect(self._selected)
        self._listed.connect(self._fill)
        self._sorted_once = False
        self.refresh()
        self._selected()

    # -- listing ----------------------------------------------------------------------------
    @Slot()
    def refresh(self) -> None:
        # Refreshes run off the GUI thread and may finish out of order: only the newest one fills
        # the list, so a slow early listing cannot overwrite a later one (e.g. after an import).
        self._refreshes += 1
        number = self._refreshes

        def work() -> None:
            try:
                store = _store()
                store.reload_catalog()  # re-read the JSON files
                from engine.store import offline

                rows = []
                off = offline()
                for s in store.catalog():
                    try:
                        where = store.installed_from(s.id)
                        text = store.install_kind(s.id) or not_installed_text(s, off)
                    except Exception as e:  # one broken entry must not hide the rest
                        where, text = None, f"error: {e}"
                    rows.append((s, where, store.root, text))
                emit(self._listed, rows, "", number)
            except Exception as e:
                emit(self._listed, [], f"Cannot read the model catalog: {e}", number)

        threading.Thread(target=work, name="sonoscope-models", daemon=True).start()

    @Slot(object, str, int)
    def _fill(self, rows, error: str, number: int) -> None:
        if number != self._refreshes:
            return  # a newer refresh is on its way
        selected = self.current_id()
        self.tree.setSortingEnabled(False)
        self.tree.clear()
        for spec, where, root, text in sorted(rows, key=lambda r: (r[0].task, r[0].name.lower())):
            failed = self._failed.get(spec.id) if where is None else None
            if failed:
                text = f"not installed — {failed}"
            item = QTreeWidgetItem([spec.name, spec.task, _mb(spec.size_mb),
                                    spec.license, text, spec.id])
            item.setToolTip(0, spec.description)
            item.setData(4, INSTALLED_ROLE, where is not None)
            item.setToolTip(4, installed_tooltip(spec, where))
            if failed:
                item.setForeground(4, QBrush(QColor(230, 90, 90)))
            self.tree.addTopLevelItem(item)
            if spec.id == selected:
                item.setSelected(True)
        if not self._sorted_once:  # keep whatever order the user clicked afterwards
            self._sorted_once = True
            self.tree.sortItems(1, Qt.SortOrder.AscendingOrder)
        self.tree.setSortingEnabled(True)
        for c in range(1, len(COLS)):
            self.tree.resizeColumnToContents(c)
        if error:
            self.summary.setText(error)
        elif rows:
            self.summary.setText(f"{len(rows)} models; cache folder: {rows[0][2]}")
        else:
            self.summary.setText("The catalog is empty.")
        self._selected()

    def current_id(self) -> str | None:
        items = self.tree.selectedItems()
        return items[0].text(5) if items else None

    @Slot()
    def _selected(self) -> None:
        item = self.tree.selectedItems()[0] if self.tree.selectedItems() else None
        installed = item is not None and bool(item.data(4, INSTALLED_ROLE))
        self.buttons["Install"].setEnabled(item is not None and not installed)
        for name in ("Verify", "Delete", "Open folder"):
            self.buttons[name].setEnabled(installed)

    # -- actions ----------------------------------------------------------------------------
    def _run(self, title: str, fn, *args, done=None):
        job = self.ctx.submit(title, fn, *args)
        self.ctx.jobs.when_done(job, lambda j: (done(j) if done else None, self.refresh()))
        return job

    @Slot()
    def install(self):
        mid = self.current_id()
        if mid:
            self._failed.pop(mid, None)
            return self._run(f"Install model {mid}", install_model, mid, done=lambda j: self._installed(mid, j))

    def _installed(self, mid: str, job) -> None:
        from engine.store import NO_NETWORK

        if job.result:
            self.info.setText(f"{mid} installed in {job.result}")
            self.ctx.status(f"{mid} installed in {job.result}", 8000)
            return
        error = job.error or "failed"
        self._failed[mid] = ("no network" if error.startswith(NO_NETWORK) else
                             "cancelled" if error == "Cancelled" else "failed")
        self.info.setText(f"{mid}: {error}")
        self.ctx.status(f"{mid}: {error}", 8000)

    @Slot()
    def verify(self):
        mid = self.current_id()
        if mid:
            return self._run(f"Verify model {mid}", verify_model, mid,
                             done=lambda j: self.info.setText(j.result[1] if j.result else (j.error or "")))

    @Slot()
    def delete(self):
        mid = self.current_id()
        if mid:
            return self._run(f"Delete model {mid}", remove_model, mid,
                             done=lambda j: self.info.setText(j.result or j.error or ""))

    @Slot()
    def open_folder(self) -> None:
        mid = self.current_id()
        if not mid:
            return
        try:
            folder = _store().path(mid)
        except Exception as e:
            self.info.setText(str(e))
            return
        if folder is None:
            self.info.setText(f"{mid} has no folder yet: install it first")
            return
        # Where no file manager can be started (a bare desktop, a remote session) openUrl fails or
        # does nothing: the path is always shown (selectable) and put on the clipboard.
        opened = QDesktopServices.openUrl(QUrl.fromLocalFile(str(folder)))
        QGuiApplication.clipboard().setText(str(folder))
        self.info.setText(f"{mid} is in {folder} (path copied to the clipboard)" if opened else
                          f"No file manager could be opened. {mid} is in {folder} "
                          f"(path copied to the clipboard)")

    @Slot()
    def import_folder(self, folder: str | None = None, model_id: str | None = None):
        if folder is None:
            folder = QFileDialog.getExistingDirectory(self, "Import a model folder")
            if not folder:
                return None
            model_id, ok = QInputDialog.getText(self, "Import model", "Model id:",
                                                text=f"local/{Path(folder).name}")
            if not ok:
                return None
        return self._run(f"Import model folder {Path(folder).name}", import_model, folder, model_id or None,
                         done=lambda j: self.info.setText(f"imported {j.result}" if j.result else j.error or ""))
