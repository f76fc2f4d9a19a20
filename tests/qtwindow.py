"""Shared set-up for tests that open the main window (Qt offscreen unless a display is chosen)."""

from __future__ import annotations

import os

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
import numpy as np  # noqa: E402
from PySide6.QtCore import QMimeData, QPointF, QSettings, Qt, QUrl  # noqa: E402
from PySide6.QtGui import QDragEnterEvent, QDropEvent, QImage  # noqa: E402
from PySide6.QtWidgets import QApplication, QMessageBox  # noqa: E402

from app import create_window  # noqa: E402
from app import settings as S  # noqa: E402
from engine.audio.devices import Availability  # noqa: E402

NO_AUDIO = Availability(False, False, "no audio input device was found (test)",
                        "no audio output device was found (test)")


def import_panels() -> None:
    """Import every panel module now. A test that stubs engine entry points (monkeypatch) before the
    window loads its panels would otherwise have a panel bind the stub by name for the whole run."""
    import importlib

    from app.panels import PANELS  # what the window loads

    for module_name, _ in PANELS:
        importlib.import_module(module_name)


def make_settings(tmp_path) -> S.Settings:
    """Settings in a private INI file, with the session folder under tmp_path."""
    st = S.Settings(QSettings(str(tmp_path / "settings.ini"), QSettings.Format.IniFormat))
    st.set(S.OUTPUT_DIR, str(tmp_path / "session"))
    return st


def forbid_dialogs(monkeypatch) -> None:
    """No modal dialog may ever pop up in a test: it would block, so fail instead."""
    def no_dialog(*a, **k):
        raise AssertionError(f"a modal dialog was opened: {a[1:3]}")

    for name in ("critical", "warning", "information", "question"):
        monkeypatch.setattr(QMessageBox, name, no_dialog)
    # file dialogs too (a test that drives one replaces it after the window is open)
    from PySide6.QtWidgets import QFileDialog, QInputDialog

    for name in ("getOpenFileName", "getOpenFileNames", "getSaveFileName", "getExistingDirectory"):
        monkeypatch.setattr(QFileDialog, name, staticmethod(no_dialog))
    monkeypatch.setattr(QInputDialog, "getText", staticmethod(no_dialog))


def open_window(qtbot, tmp_path, monkeypatch=None, audio=NO_AUDIO, settings=None, check_compute=False):
    """The main window with its panels, shown at 1200x800. ``audio=None`` probes the real devices
    (after the first paint, off the GUI thread, as the app does) and waits for the answer.

    With ``monkeypatch``, dialogs are forbidden and the model store lives under tmp_path.
    ``check_compute``: let the window import torch to find its compute device, as the app does
    (tests that want the note call ``window.check_compute()`` themselves).
    """
    if monkeypatch is not None:
        forbid_dialogs(monkeypatch)
        monkeypatch.setenv("SONOSCOPE_MODELS", str(tmp_path / "models"))
    w = create_window(settings=settings or make_settings(tmp_path), audio=audio, check_compute=check_compute)
    qtbot.addWidget(w)
    w.resize(1200, 800)
    w.show()
    w.load_panels()
    qtbot.waitExposed(w)
    if audio is None:
        qtbot.waitUntil(lambda: w.ctx.audio_checked, timeout=20000)
    return w


def select_file(window, qtbot, path) -> None:
    """Add ``path`` to the file list and wait until it is selected and its whole overview is drawn."""
    from pathlib import Path

    window.file_list.add_paths([path])
    qtbot.waitUntil(lambda: window.ctx.current_path == Path(path), timeout=10000)
    fv = window.file_view
    qtbot.waitUntil(lambda: fv.overview is not None and fv.overview.complete and fv.overview.path == Path(path),
                    timeout=20000)


def drop(widget, paths) -> None:
    mime = QMimeData()
    mime.setUrls([QUrl.fromLocalFile(str(p)) for p in paths])
    pos = QPointF(widget.width() / 2, widget.height() / 2)
    actions = Qt.DropAction.CopyAction
    enter = QDragEnterEvent(pos.toPoint(), actions, mime, Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier)
    QApplication.sendEvent(widget, enter)
    assert enter.isAccepted()
    ev = QDropEvent(pos, actions, mime, Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier)
    QApplication.sendEvent(widget, ev)
    assert ev.isAccepted()


def colour_pixels(img: QImage, rgb, tol: int = 40) -> int:
    img = img.convertToFormat(QImage.Format.Format_RGB32)
    a = np.frombuffer(img.constBits(), np.uint8).reshape(img.height(), img.bytesPerLine() // 4, 4)
    b, g, r = a[..., 0].astype(int), a[..., 1].astype(int), a[..., 2].astype(int)
    return int(((abs(r - rgb[0]) < tol) & (abs(g - rgb[1]) < tol) & (abs(b - rgb[2]) < tol)).sum())
