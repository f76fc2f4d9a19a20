"""Shared set-up for tests that open the main window (Qt offscreen unless a display is chosen)."""

from __future__ import annotations

import os

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
from PySide6.QtCore import QSettings  # noqa: E402
from PySide6.QtWidgets import QMessageBox  # noqa: E402

from app import create_window  # noqa: E402
from app import settings as S  # noqa: E402
from engine.live import Availability  # noqa: E402

NO_AUDIO = Availability(False, False, "no audio input device was found (test)",
                        "no audio output device was found (test)")


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


def open_window(qtbot, tmp_path, monkeypatch=None, audio=NO_AUDIO, settings=None):
    """The main window with its panels, shown at 1200x800. ``audio=None`` probes the real devices.

    With ``monkeypatch``, dialogs are forbidden and the model store lives under tmp_path.
    """
    if monkeypatch is not None:
        forbid_dialogs(monkeypatch)
        monkeypatch.setenv("SONOSCOPE_MODELS", str(tmp_path / "models"))
    w = create_window(settings=settings or make_settings(tmp_path), audio=audio)
    qtbot.addWidget(w)
    w.resize(1200, 800)
    w.show()
    w.load_panels()
    qtbot.waitExposed(w)
    return w
