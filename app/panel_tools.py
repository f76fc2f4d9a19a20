"""Small pieces the panels share: bring a panel to the front, a colour swatch icon, play from a time."""

from __future__ import annotations

from PySide6.QtGui import QColor, QIcon, QPixmap
from PySide6.QtWidgets import QDockWidget, QTabWidget, QWidget


def reveal(panel: QWidget) -> None:
    """Bring ``panel`` to the front: the current tab of its tab widget, or its dock shown and raised."""
    w = panel.parentWidget()
    while w is not None:
        if isinstance(w, QTabWidget):
            w.setCurrentWidget(panel)
            return
        if isinstance(w, QDockWidget):
            w.show()
            w.raise_()
            return
        w = w.parentWidget()


def swatch(color: QColor) -> QIcon:
    """A 12 x 12 icon filled with ``color`` (a speaker's or a sound label's colour in a list)."""
    pm = QPixmap(12, 12)
    pm.fill(color)
    return QIcon(pm)


def play_from(ctx, file_view, path: str | None, start: float, what: str) -> None:
    """Play ``path`` (the selected file) from ``start`` seconds: a seek when it is already the player's
    file. Without an output device the playhead moves there instead (Space plays from it) and the status
    says why. ``what`` names the thing played in the status line ("S1", "Dog")."""
    p = ctx.player
    if path is None:
        return
    if not p.available:
        if file_view is not None:
            file_view.seekRequested.emit(start)
        ctx.status(f"Cannot play: {p.unavailable_reason}")
        return
    if p.source_label == path:
        p.seek(start)
        p.play()
    else:
        p.play_file(path, start=start)
    ctx.status(f"{what}: playing from {start:.2f} s")
