"""The pieces the Speakers and Tags panels share (app/panel_tools.py)."""

from __future__ import annotations

import os

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
from PySide6.QtCore import Qt  # noqa: E402
from PySide6.QtGui import QColor  # noqa: E402
from PySide6.QtWidgets import QDockWidget, QLabel, QMainWindow, QTabWidget  # noqa: E402

from app.panel_tools import play_from, reveal, swatch  # noqa: E402


class _Player:
    def __init__(self, available: bool, source: str | None = None) -> None:
        self.available, self.source_label, self.unavailable_reason = available, source, "no output device (test)"
        self.calls: list = []

    def seek(self, t):
        self.calls.append(("seek", t))

    def play(self):
        self.calls.append(("play",))

    def play_file(self, path, start=0.0):
        self.calls.append(("play_file", path, start))


class _Ctx:
    def __init__(self, player) -> None:
        self.player, self.lines = player, []

    def status(self, msg):
        self.lines.append(msg)


class _Signal:
    def __init__(self) -> None:
        self.sent = []

    def emit(self, t):
        self.sent.append(t)


class _FileView:
    def __init__(self) -> None:
        self.seekRequested = _Signal()


def test_play_from_plays_seeks_or_moves_the_playhead():
    ctx, fv = _Ctx(_Player(True)), _FileView()
    play_from(ctx, fv, "/a.wav", 2.5, "S1")
    assert ctx.player.calls == [("play_file", "/a.wav", 2.5)] and ctx.lines == ["S1: playing from 2.50 s"]
    ctx = _Ctx(_Player(True, source="/a.wav"))  # already the player's file: a seek
    play_from(ctx, fv, "/a.wav", 4.0, "Dog")
    assert ctx.player.calls == [("seek", 4.0), ("play",)] and ctx.lines == ["Dog: playing from 4.00 s"]
    ctx = _Ctx(_Player(False))  # no output device: the playhead moves, the status says why
    play_from(ctx, fv, "/a.wav", 1.0, "S2")
    assert ctx.player.calls == [] and fv.seekRequested.sent == [1.0]
    assert ctx.lines == ["Cannot play: no output device (test)"]
    ctx = _Ctx(_Player(True))
    play_from(ctx, fv, None, 1.0, "S2")  # no file selected: nothing
    assert ctx.player.calls == [] and ctx.lines == []


def test_reveal_brings_a_tab_or_a_dock_to_the_front(qtbot):
    tabs = QTabWidget()
    qtbot.addWidget(tabs)
    a, b = QLabel("a"), QLabel("b")
    tabs.addTab(a, "a")
    tabs.addTab(b, "b")
    assert tabs.currentWidget() is a
    reveal(b)
    assert tabs.currentWidget() is b
    win = QMainWindow()
    qtbot.addWidget(win)
    dock = QDockWidget("d", win)
    c = QLabel("c")
    dock.setWidget(c)
    win.addDockWidget(Qt.DockWidgetArea.RightDockWidgetArea, dock)
    win.show()
    dock.hide()
    reveal(c)
    assert dock.isVisible()


def test_swatch_is_the_colour(qtbot):
    img = swatch(QColor(200, 30, 40)).pixmap(12, 12).toImage()
    assert img.width() == 12 and QColor(img.pixel(6, 6)) == QColor(200, 30, 40)
