"""Worker threads that report back to a QObject through its signals.

``run_in_thread(fn)`` runs ``fn`` on a daemon thread. Emitting a signal of a widget that
was deleted meanwhile (window closed during a long decode) raises RuntimeError in the
worker; :func:`emit` swallows exactly that.
"""

from __future__ import annotations

import threading
from typing import Callable


def emit(signal, *args) -> None:
    try:
        signal.emit(*args)
    except RuntimeError:  # "Signal source has been deleted": nobody is listening any more
        pass


def run_in_thread(fn: Callable[[], None], name: str = "sonoscope-worker") -> threading.Thread:
    t = threading.Thread(target=fn, name=name, daemon=True)
    t.start()
    return t


def make_timer(parent, interval_ms: int, single_shot: bool = False):
    """A QTimer owned by ``parent``.

    Use this (or plain setters) instead of ``QTimer(parent, interval=...)``: with PySide6 6.12,
    passing Qt properties as keyword arguments to a constructor drops a reference to the
    positional arguments (here: ``parent``), which corrupts reference counts and crashes.
    """
    from PySide6.QtCore import QTimer

    t = QTimer(parent)
    t.setInterval(interval_ms)
    t.setSingleShot(single_shot)
    return t
