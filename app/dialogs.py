"""File dialogs as a desktop app has them: Open starts where the user works, Save asks where to
write and remembers the folder, and File → Open Recent lists the files opened lately.

Every export of the window and the panels goes through :func:`ask_save_path` or
:func:`ask_folder` (tests replace ``QFileDialog.getSaveFileName`` / ``getExistingDirectory``):

- the first save dialog opens in the session folder (Settings → Folders); after that in the folder
  the last export went to (``files/last_export_dir``), for every kind of export;
- the suggested name says what the file is (:func:`export_name`), so an export never looks like
  its source in the file list.
"""

from __future__ import annotations

import os
from pathlib import Path

from PySide6.QtWidgets import QApplication, QFileDialog

from . import settings as S

MAX_RECENT = 10


# -- where dialogs start ----------------------------------------------------------------------
def open_dir(ctx) -> str:
    """The folder File → Open starts in: the current file's, else the last one used, else home
    (never the program's working folder)."""
    current = ctx.current_path
    if current is not None and current.parent.is_dir():
        return str(current.parent)
    last = ctx.settings.get(S.LAST_OPEN_DIR)
    if last and Path(last).is_dir():
        return last
    return str(Path.home())


def save_dir(ctx) -> Path:
    """The folder a save dialog starts in: where the last export went, else the session folder."""
    last = ctx.settings.get(S.LAST_EXPORT_DIR)
    if last and Path(last).is_dir():
        return Path(last)
    return ctx.output_dir()


def _parent():
    return QApplication.activeWindow()


def ask_save_path(ctx, title: str, name: str, filters: str, parent=None) -> Path | None:
    """Ask where to save ``name`` (a suggested file name); returns the chosen path or None.

    ``filters`` is a Qt filter string such as ``"Subtitles (*.srt)"``. A name typed without an
    extension gets the suggested one. The chosen folder is remembered for the next export.
    """
    start = save_dir(ctx) / name
    out, _ = QFileDialog.getSaveFileName(parent or _parent(), title, str(start), filters)
    if not out:
        return None
    path = Path(out)
    if not path.suffix and Path(name).suffix:
        path = path.with_suffix(Path(name).suffix)
    ctx.settings.set(S.LAST_EXPORT_DIR, str(path.parent))
    return path


def ask_folder(ctx, title: str, parent=None) -> Path | None:
    """Ask for a folder to export into (stems); remembered like :func:`ask_save_path`."""
    out = QFileDialog.getExistingDirectory(parent or _parent(), title, str(save_dir(ctx)))
    if not out:
        return None
    ctx.settings.set(S.LAST_EXPORT_DIR, out)
    return Path(out)


def export_name(src: str | os.PathLike, ext: str, start: float | None = None, stop: float | None = None) -> str:
    """A file name for an export of ``src`` that can be told apart from it in the file list:
    ``speech 1.25-3.50 s.wav`` for a range, ``speech (export).wav`` for the whole file in its own
    format, ``speech.flac`` for the whole file in another one."""
    src = Path(src)
    ext = ext if ext.startswith(".") else "." + ext
    if start is not None and stop is not None:
        return f"{src.stem} {start:.2f}-{stop:.2f} s{ext}"
    if ext.lower() == src.suffix.lower():
        return f"{src.stem} (export){ext}"
    return f"{src.stem}{ext}"


# -- recent files ---------------------------------------------------------------------------------
def add_recent(settings, paths) -> None:
    """Put ``paths`` (files or folders the user opened) at the top of File → Open Recent."""
    recent = [str(p) for p in settings.get(S.RECENT_FILES)]
    for p in reversed([str(Path(p).absolute()) for p in paths]):
        if p in recent:
            recent.remove(p)
        recent.insert(0, p)
    settings.set(S.RECENT_FILES, recent[:MAX_RECENT])


def fill_recent_menu(menu, settings, open_paths) -> None:
    """(Re)build the Open Recent menu: one entry per path, newest first, then "Clear"."""
    menu.clear()
    recent = settings.get(S.RECENT_FILES)
    for i, p in enumerate(recent):
        name = Path(p).name.replace("&", "&&")  # a literal & in a menu text
        act = menu.addAction(f"&{i + 1} {name}" if i < 9 else name)
        act.setToolTip(p)
        act.setStatusTip(p)
        act.setData(p)
        act.triggered.connect(lambda _=False, path=p: open_paths([path]))
    if not recent:
        none = menu.addAction("No recent files")
        none.setEnabled(False)
    menu.addSeparator()
    clear = menu.addAction("&Clear recent files")
    clear.setEnabled(bool(recent))
    clear.triggered.connect(lambda: settings.set(S.RECENT_FILES, []))
