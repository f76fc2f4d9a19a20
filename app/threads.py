"""Helpers for worker threads that report back to a QObject through its signals.

Emitting a signal of a widget that was deleted meanwhile (window closed during a long decode)
raises RuntimeError in the worker; :func:`emit` swallows exactly that.
"""

from __future__ import annotations

from PySide6.QtCore import QObject, Signal, Slot


def emit(signal, *args) -> None:
    try:
        signal.emit(*args)
    except RuntimeError:  # "Signal source has been deleted": nobody is listening any more
        pass


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


def run_in_thread(fn, on_done, parent, name: str = "sonoscope-worker"):
    """Run ``fn()`` on a new daemon thread; call ``on_done(result, error)`` in ``parent``'s (the GUI)
    thread when it returns (``error`` is the exception it raised, or None). Returns the thread.

    The relay object is a child of ``parent``: if ``parent`` is deleted first, nothing is called.
    """
    import threading

    relay = _Relay(parent, on_done)

    def work() -> None:
        try:
            result, error = fn(), None
        except Exception as e:  # reported to on_done in the GUI thread
            result, error = None, e
        emit(relay.done, result, error)

    t = threading.Thread(target=work, name=name, daemon=True)
    t.start()
    return t


class _Relay(QObject):
    done = Signal(object, object)  # result, error: emitted by the worker, delivered in the GUI thread

    def __init__(self, parent, on_done) -> None:
        super().__init__(parent)
        self._on_done = on_done
        self.done.connect(self._finish)  # a bound method of a GUI-thread object: a queued call

    @Slot(object, object)
    def _finish(self, result, error) -> None:
        self.deleteLater()  # its parent owns it until then
        self._on_done(result, error)
