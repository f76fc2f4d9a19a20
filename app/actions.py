"""The window's actions (menus, toolbar, shortcuts) in one table: name -> (text, shortcut, tip)."""

from __future__ import annotations

from PySide6.QtCore import Qt
from PySide6.QtGui import QAction, QColor, QIcon, QKeySequence, QPainter, QPixmap
from PySide6.QtWidgets import QStyle

SPEC = {
    # name: (menu text, shortcut, tooltip, standard icon)
    "open": ("&Open…", "Ctrl+O", "Open audio files", "SP_DialogOpenButton"),
    "open_folder": ("Open &folder…", "Ctrl+Shift+O", "Add every audio file in a folder", "SP_DirOpenIcon"),
    "export": ("&Export…", "Ctrl+E", "Export the selected file (or the selected range) in the export format",
               "SP_DialogSaveButton"),
    "remove": ("&Remove from list", "Del", "Remove the selected files from the list (not from disk)", None),
    "settings": ("&Settings…", "Ctrl+,", "Devices, folders and formats", "SP_FileDialogDetailedView"),
    "quit": ("&Quit", "Ctrl+Q", "Quit Sonoscope", None),
    "play": ("&Play / Pause", "Space", "Play or pause the selected file (Space)", "SP_MediaPlay"),
    "stop": ("&Stop", "Shift+Space", "Stop playback and return to the start", "SP_MediaStop"),
    "loop": ("&Loop selection", "L", "Loop the selected range while playing", "SP_BrowserReload"),
    "record": ("&Record", "R", "Start / stop recording into the session folder (R)", "SP_DialogYesButton"),
    "monitor": ("&Monitor input", "M", "Show the input level and live spectrogram", None),
    "zoom_in": ("Zoom &in", "Ctrl++", "Zoom in on the time axis", None),
    "zoom_out": ("Zoom &out", "Ctrl+-", "Zoom out on the time axis", None),
    "zoom_fit": ("&Fit", "Ctrl+0", "Show the whole file", None),
    "cancel": ("&Cancel all jobs", "Esc", "Cancel running and queued jobs (Esc)", "SP_DialogCancelButton"),
    "about": ("&About Sonoscope", "", "", None),
    "batch": ("&Batch…", "Ctrl+Shift+B", "Run a task over every file in a folder (resumable)", None),
}


def record_icon() -> QIcon:
    pm = QPixmap(32, 32)
    pm.fill(Qt.GlobalColor.transparent)
    p = QPainter(pm)
    p.setRenderHint(QPainter.RenderHint.Antialiasing)
    p.setBrush(QColor(220, 40, 40))
    p.setPen(QColor(120, 20, 20))
    p.drawEllipse(5, 5, 22, 22)
    p.end()
    return QIcon(pm)


def build_actions(parent) -> dict[str, QAction]:
    style = parent.style()
    actions = {}
    for name, (text, shortcut, tip, icon) in SPEC.items():
        a = QAction(text, parent)
        if shortcut:
            a.setShortcut(QKeySequence(shortcut))
        if tip:
            a.setToolTip(f"{tip} ({shortcut})" if shortcut and shortcut not in tip else tip)
            a.setStatusTip(tip)
        a.setProperty("default_tip", a.toolTip())  # restored when a disabled action comes back
        if icon:
            a.setIcon(style.standardIcon(getattr(QStyle.StandardPixmap, icon)))
        a.setObjectName(f"action_{name}")
        actions[name] = a
    actions["record"].setIcon(record_icon())
    actions["loop"].setCheckable(True)
    actions["monitor"].setCheckable(True)
    return actions
