"""The main window: wiring only -- widgets, panels, actions and the signals between them."""

from __future__ import annotations

import importlib
import logging
from pathlib import Path

from PySide6.QtCore import Qt, QTimer, Signal, Slot
from PySide6.QtWidgets import (QDockWidget, QFileDialog, QLabel, QMainWindow, QMenu, QMessageBox, QSplitter,
                               QTabWidget, QTextEdit, QToolBar)

from engine.audio.io import AUDIO_EXTENSIONS

from . import dialogs
from . import settings as S
from .actions import build_actions
from .panels import PANELS
from .startup import AUDIO_CHECKING, COMPUTE_CHECKING, ComputeCheck
from .transport import TransportController
from .widgets.file_list import FileList
from .widgets.file_view import FileView
from .widgets.record_bar import RecordBar
from .widgets.settings_dialog import SettingsDialog
from .widgets.transport_bar import TransportBar

log = logging.getLogger(__name__)


class MainWindow(QMainWindow):
    firstPaint = Signal()
    computeChecked = Signal(str)   # the compute note, once torch answered

    def __init__(self, ctx) -> None:
        super().__init__()
        self.ctx = ctx
        self.setWindowTitle("Sonoscope")
        self.setAcceptDrops(True)
        self.resize(1280, 820)
        self.panels: dict[str, object] = {}
        self._painted = False
        self.actions_ = a = build_actions(self)

        # -- central area: file list | file view + panel tabs
        self.file_list = FileList(self, probe=ctx.probe)
        self.file_view = FileView(self, ctx.settings.get(S.LOG_FREQUENCY), ctx.settings.get(S.DB_RANGE))
        self.tabs = QTabWidget(self)
        self.tabs.setAccessibleName("Views")
        self.tabs.addTab(self.file_view, "Waveform && spectrogram")
        split = QSplitter(Qt.Orientation.Horizontal, self)
        split.addWidget(self.file_list)
        split.addWidget(self.tabs)
        split.setStretchFactor(1, 1)
        split.setSizes([330, 950])
        self.setCentralWidget(split)

        # -- recording dock
        self.recording = ctx.input
        self.record_bar = RecordBar(self.recording, a["record"], self)
        self.record_dock = self._dock("Recording", self.record_bar, Qt.DockWidgetArea.BottomDockWidgetArea)

        # -- toolbar, menus, status bar
        self.transport = TransportBar(a, self)
        tb = QToolBar("Main", self)
        tb.setObjectName("toolbar_main")
        tb.setMovable(False)
        for name in ("open", "export"):
            tb.addAction(a[name])
        tb.addSeparator()
        tb.addWidget(self.transport)
        tb.addSeparator()
        tb.addAction(a["record"])
        self.addToolBar(tb)
        mb = self.menuBar()
        menus = {"&File": ["open", "open_folder", "export", "remove", None, "settings", None, "quit"],
                 "&Playback": ["play", "stop", "loop"],
                 "&Record": ["record", "monitor"],
                 "&View": ["zoom_in", "zoom_out", "zoom_fit"],
                 "&Jobs": ["cancel"], "&Help": ["about"]}
        self.menus = {}
        for title, names in menus.items():
            m = mb.addMenu(title)
            self.menus[title.strip("&")] = m
            for n in names:
                m.addSeparator() if n is None else m.addAction(a[n])
        # File → Open Recent (persisted in the settings), rebuilt each time it opens
        self.recent_menu = QMenu("Open &Recent", self)
        self.recent_menu.setObjectName("menu_recent")
        self.menus["File"].insertMenu(a["export"], self.recent_menu)
        self.recent_menu.aboutToShow.connect(self.fill_recent_menu)
        self.fill_recent_menu()
        self.menus["File"].insertAction(a["settings"], a["batch"])  # File → Batch…
        # View → Recording: a closed dock comes back from here (and after a restart that kept it closed)
        view = self.menus["View"]
        view.addSeparator()
        toggle = self.record_dock.toggleViewAction()
        toggle.setText("&Recording")
        toggle.setToolTip("Show or hide the recording strip (level meter and live spectrogram)")
        view.addAction(toggle)
        for act in a.values():
            self.addAction(act)  # shortcuts work wherever the focus is
        self.compute_label = QLabel(COMPUTE_CHECKING, self)
        self.compute_label.setAccessibleName("Compute device")
        self.audio_label = QLabel("", self)
        self.audio_label.setAccessibleName("Audio devices")
        self.statusBar().addPermanentWidget(self.audio_label)
        self.statusBar().addPermanentWidget(self.compute_label)

        # -- wiring
        p, rec, fl, fv = ctx.player, self.recording, self.file_list, self.file_view
        a["open"].triggered.connect(self.open_files)
        a["open_folder"].triggered.connect(self.open_folder)
        a["export"].triggered.connect(self.export)
        a["remove"].triggered.connect(fl.remove_selected)
        a["settings"].triggered.connect(self.edit_settings)
        a["quit"].triggered.connect(self.close)
        self.transport_control = tc = TransportController(ctx, fv, a["loop"], self.transport, self)
        a["play"].triggered.connect(tc.play_pause)
        a["stop"].triggered.connect(p.stop)
        a["record"].triggered.connect(rec.toggle)
        a["monitor"].toggled.connect(self.record_bar.monitor_button.setChecked)
        self.record_bar.monitor_button.toggled.connect(a["monitor"].setChecked)
        a["zoom_in"].triggered.connect(lambda: fv.zoom(0.5))
        a["zoom_out"].triggered.connect(lambda: fv.zoom(2.0))
        a["zoom_fit"].triggered.connect(lambda: fv.zoom(None))
        a["cancel"].triggered.connect(ctx.jobs.cancel_all)
        a["about"].triggered.connect(self.about)
        a["batch"].triggered.connect(self.open_batch)
        fl.selectionChangedPaths.connect(ctx.set_selection)
        fl.pathsDropped.connect(lambda paths: dialogs.add_recent(ctx.settings, paths))
        ctx.selectionChanged.connect(lambda paths: fv.show_file(paths[0] if paths else None))
        ctx.addFileRequested.connect(lambda path, select: fl.add_paths([path], select=select))
        ctx.statusMessage.connect(lambda text, ms: self.statusBar().showMessage(text, ms))
        ctx.errorMessage.connect(self.show_error)
        p.error.connect(self.show_error)
        rec.recorded.connect(lambda path: fl.add_paths([path], select=True))
        rec.recordingChanged.connect(self._recording_state)
        rec.error.connect(self.show_error)
        ctx.audioChanged.connect(self._apply_audio_availability)
        self._compute = None
        self._apply_audio_availability()
        self._restore_geometry()

    # -- construction helpers ----------------------------------------------------------------
    def _dock(self, title: str, widget, area) -> QDockWidget:
        dock = QDockWidget(title, self)
        dock.setObjectName(f"dock_{title.lower().replace(' ', '_')}")
        dock.setWidget(widget)
        dock.setAccessibleName(title)
        self.addDockWidget(area, dock)
        return dock

    def load_panels(self) -> None:
        """Create the registered panels (after the first paint: they may import heavier code)."""
        bottom_docks = [self.record_dock]
        view_menu = self.menus["View"]
        view_menu.addSeparator()
        for module_name, class_name in PANELS:
            try:
                module = importlib.import_module(module_name)
            except ModuleNotFoundError as e:
                if e.name == module_name:
                    continue  # registered but not written yet
                panel, title, area = self._error_panel(module_name, e), class_name, "tab"
            except Exception as e:
                panel, title, area = self._error_panel(module_name, e), class_name, "tab"
            else:
                try:
                    cls = getattr(module, class_name)
                    panel = cls(self.ctx, self)
                    title, area = cls.title, getattr(cls, "area", "tab")
                except Exception as e:
                    log.exception("panel %s failed", class_name)
                    panel, title, area = self._error_panel(f"{module_name}.{class_name}", e), class_name, "tab"
            self.panels[class_name] = panel
            if area == "tab":
                index = self.tabs.addTab(panel, title)
                show = lambda _=False, i=index: self.tabs.setCurrentIndex(i)  # noqa: E731
            else:
                where = (Qt.DockWidgetArea.RightDockWidgetArea if area == "right"
                         else Qt.DockWidgetArea.BottomDockWidgetArea)
                dock = self._dock(title, panel, where)
                if area == "bottom":
                    self.tabifyDockWidget(bottom_docks[-1], dock)
                    bottom_docks.append(dock)
                show = lambda _=False, d=dock: (d.show(), d.raise_())  # noqa: E731
            act = view_menu.addAction(title)
            shortcut = getattr(panel, "shortcut", "")
            if shortcut:
                act.setShortcut(shortcut)
            act.triggered.connect(show)
        self.record_dock.raise_()
        self._restore_state()

    @staticmethod
    def _error_panel(name: str, error: Exception):
        w = QTextEdit()
        w.setReadOnly(True)
        w.setPlainText(f"The panel {name} could not be loaded:\n\n{type(error).__name__}: {error}")
        return w

    def _apply_audio_availability(self, _=None) -> None:
        audio, a = self.ctx.audio, self.actions_
        self.record_bar.update_availability()
        if not self.ctx.audio_checked:
            for name in ("play", "stop", "loop", "record", "monitor"):
                a[name].setEnabled(False)
                a[name].setToolTip(f"Waiting: {AUDIO_CHECKING}")
            self.audio_label.setText(AUDIO_CHECKING)
            return
        for name in ("play", "stop", "loop"):
            a[name].setEnabled(audio.output_ok)
            a[name].setToolTip(a[name].property("default_tip") if audio.output_ok else
                               f"Playback is disabled: {audio.output_reason}")
        for name in ("record", "monitor"):
            a[name].setEnabled(audio.input_ok)
            a[name].setToolTip(a[name].property("default_tip") if audio.input_ok else
                               f"Recording is disabled: {audio.input_reason}")
        parts = []
        if not audio.output_ok:
            parts.append("no playback device")
        if not audio.input_ok:
            parts.append("no recording device")
        self.audio_label.setText(", ".join(parts))
        self.audio_label.setToolTip("\n".join(r for r in (audio.output_reason, audio.input_reason) if r))

    # -- file actions ------------------------------------------------------------------------
    def add_paths(self, paths, select: bool = True, recent: bool = True) -> None:
        """Add files and folders to the list (walked and probed in the background); what the user
        opened goes to File → Open Recent."""
        if recent and paths:
            dialogs.add_recent(self.ctx.settings, paths)
        self.file_list.add_paths(paths, select=select)

    @Slot()
    def fill_recent_menu(self) -> None:
        dialogs.fill_recent_menu(self.recent_menu, self.ctx.settings, self.add_paths)

    @Slot()
    def open_files(self) -> None:
        st = self.ctx.settings
        patterns = " ".join(f"*{e}" for e in AUDIO_EXTENSIONS)
        files, _ = QFileDialog.getOpenFileNames(self, "Open audio", dialogs.open_dir(self.ctx),
                                                f"Audio ({patterns});;All files (*)")
        if files:
            st.set(S.LAST_OPEN_DIR, str(Path(files[0]).parent))
            self.add_paths(files)

    @Slot()
    def open_folder(self) -> None:
        d = QFileDialog.getExistingDirectory(self, "Add a folder", dialogs.open_dir(self.ctx))
        if d:
            self.ctx.settings.set(S.LAST_OPEN_DIR, d)
            self.add_paths([d])

    @Slot()
    def export(self, path: str | Path | None = None):
        """File → Export: the current file (or its selected range) where the save dialog says
        (``path`` skips the dialog). Returns the job, or None."""
        from .tasks import export_selection

        return export_selection(self.ctx, self.file_view.selection() if self.file_view.path == self.ctx.current_path
                                else None, path=path, parent=self)

    @Slot()
    def open_batch(self):
        """File → Batch…: the batch dialog (one per window, kept between uses). Returns it."""
        from .widgets.batch_dialog import BatchDialog

        if getattr(self, "batch_dialog", None) is None:
            self.batch_dialog = BatchDialog(self.ctx, self)
        self.batch_dialog.show()
        self.batch_dialog.raise_()
        return self.batch_dialog

    @Slot()
    def edit_settings(self) -> None:
        dlg = SettingsDialog(self.ctx.settings, self)
        before = self.ctx.compute_device()
        if dlg.exec():
            self.ctx.player.set_output_device(self.ctx.settings.get(S.OUTPUT_DEVICE))
            self.recording.reopen()
            if self.ctx.compute_device() != before:
                self.check_compute()

    def check_compute(self) -> None:
        """Show in the status bar where models will run (asked off the GUI thread: ComputeCheck)."""
        if self._compute is not None:
            self._compute.close()
        self._compute = ComputeCheck(self, self.ctx.compute_device())

    @Slot(bool)
    def _recording_state(self, on: bool) -> None:
        a = self.actions_["record"]
        a.setText("Stop &recording" if on else "&Record")
        self.record_dock.show()
        self.record_dock.raise_()

    # -- messages ------------------------------------------------------------------------------
    @Slot(str)
    def show_error(self, message: str) -> None:
        log.warning("%s", message)
        self.statusBar().showMessage(f"⚠ {message}", 15000)

    def about(self) -> None:
        from engine import __version__

        QMessageBox.about(self, "About Sonoscope",
                          f"Sonoscope {__version__}\nAn open-source desktop AI audio workstation.")

    # -- drag and drop anywhere on the window ---------------------------------------------------
    def dragEnterEvent(self, e) -> None:
        if e.mimeData().hasUrls():
            e.acceptProposedAction()

    def dragMoveEvent(self, e) -> None:
        if e.mimeData().hasUrls():
            e.acceptProposedAction()

    def dropEvent(self, e) -> None:
        paths = [u.toLocalFile() for u in e.mimeData().urls() if u.isLocalFile()]
        if paths:
            self.add_paths(paths)
            e.acceptProposedAction()

    # -- lifecycle -----------------------------------------------------------------------------
    def paintEvent(self, e) -> None:
        super().paintEvent(e)
        if not self._painted:
            self._painted = True
            QTimer.singleShot(0, self.firstPaint.emit)

    def _restore_geometry(self) -> None:
        g = self.ctx.settings.get(S.WINDOW_GEOMETRY)
        if g:
            self.restoreGeometry(g)

    def _restore_state(self) -> None:
        s = self.ctx.settings.get(S.WINDOW_STATE)
        if s:
            self.restoreState(s)

    def closeEvent(self, e) -> None:
        st = self.ctx.settings
        st.set(S.WINDOW_GEOMETRY, bytes(self.saveGeometry()))
        st.set(S.WINDOW_STATE, bytes(self.saveState()))
        st.sync()
        self.recording.shutdown()
        self.ctx.player.close()
        self.ctx.probe.close()
        for panel in self.panels.values():
            hook = getattr(panel, "shutdown", None)
            if callable(hook):
                try:
                    hook()
                except Exception:
                    log.exception("panel shutdown failed")
        self.ctx.jobs.shutdown(timeout=3.0)
        if self._compute is not None:
            self._compute.close()
        super().closeEvent(e)
