"""The transcript lane: a file's words on the file view's time axis.

Each word is written where it is spoken, over a thin bar of its speaker's colour (the speaker lane's
colours) spanning its time; where the view is too zoomed out for every word, the words that would
run into the previous one are left out (zoom in to read them all; the spoken, the selected and the
found words are always shown). The word being spoken during
playback (the playhead's) is highlighted; search hits (``set_marked``) are outlined, the selected
word (``set_selected``) boxed. A click on a word emits ``wordClicked(index)`` (the panel seeks
there), a double-click ``wordActivated(index)`` (the panel offers to correct it). The time axis is
linked to the waveform's (``link_x``), as the tag lane's; while there are no words a button in the
middle offers the action that fills the lane (``set_placeholder``; a click emits ``actionClicked``).

Nothing here decodes audio or loads models: the lane only draws what it is given.
"""

from __future__ import annotations

import bisect

import pyqtgraph as pg
from PySide6.QtCore import QPointF, QRectF, QSize, Qt, Signal
from PySide6.QtGui import QColor, QFont, QFontMetrics, QPainter, QPen

from .speaker_lane import speaker_color
from .tag_lane import PLAYHEAD_COLOR, TagLane, _clock

TEXT = QColor(225, 228, 232)
DIM = QColor(140, 145, 150)
CURRENT_TEXT = QColor(16, 16, 18)
MARK = QColor(255, 140, 40)
SELECT = QColor(255, 255, 255)
GAP = 4  # pixels between drawn words


class _Words(pg.GraphicsObject):
    """Draws the words in pixels at their times; remembers where each drawn word went (hit tests)."""

    def __init__(self, lane: "TranscriptLane") -> None:
        super().__init__()
        self.lane = lane
        self.drawn: list[tuple[int, QRectF]] = []  # (word index, text rect in viewport pixels)
        self._rect = QRectF(0, 0, 1, 1)

    def changed(self) -> None:
        self.prepareGeometryChange()
        ws = self.lane.words
        self._rect = QRectF(ws[0].start, 0, max(ws[-1].end - ws[0].start, 1e-6), 1) if ws else QRectF(0, 0, 1, 1)
        self.update()

    def boundingRect(self) -> QRectF:
        return self._rect

    def paint(self, p: QPainter, *args) -> None:
        lane, tr = self.lane, p.transform()
        view = self.viewRect()
        drawn: list[tuple[int, QRectF]] = []
        p.save()
        p.resetTransform()
        font = QFont(p.font())
        font.setPixelSize(13)
        p.setFont(font)
        fm = QFontMetrics(font)
        top = tr.map(QPointF(0, 0.08)).y()
        bottom = tr.map(QPointF(0, 0.92)).y()
        text_h = fm.height()
        ty = top + max(0.0, (bottom - top - text_h - 6) / 2)
        last_right = -1e9
        t0, t1 = (view.left(), view.right()) if view is not None else (-1e9, 1e9)
        for i, w in enumerate(lane.words):
            if w.end < t0 or w.start > t1:
                continue
            x0, x1 = tr.map(QPointF(w.start, 0)).x(), tr.map(QPointF(w.end, 0)).x()
            colour = speaker_color(w.speaker) if w.speaker else DIM
            p.fillRect(QRectF(x0, bottom - 4, max(2.0, x1 - x0 - 1), 4), colour)
            text = w.word.strip()
            width = fm.horizontalAdvance(text) + 4
            x = max(x0, last_right + GAP)
            keep = i == lane.current or i in lane.marked or i == lane.selected  # always shown
            if x > x1 + 0.5 * width and not keep:  # would drift far from its time: left out
                continue
            r = QRectF(x, ty, width, text_h + 4)
            if i == lane.current:
                p.fillRect(r, PLAYHEAD_COLOR)
                p.setPen(QPen(CURRENT_TEXT))
            else:
                p.setPen(QPen(TEXT))
            p.drawText(r, int(Qt.AlignmentFlag.AlignCenter), text)
            if i in lane.marked:
                p.setPen(QPen(MARK, 2))
                p.drawRect(r.adjusted(-1, -1, 1, 1))
            if i == lane.selected:
                p.setPen(QPen(SELECT, 1, Qt.PenStyle.DashLine))
                p.drawRect(r.adjusted(-2, -2, 2, 2))
            last_right = r.right()
            drawn.append((i, r))
        p.restore()
        self.drawn = drawn


class TranscriptLane(TagLane):
    """Words on the time axis; reuses the tag lane's axis, playhead, placeholder and mouse handling."""

    wordClicked = Signal(int)     # index into ``words``
    wordActivated = Signal(int)   # double-click: correct it

    def __init__(self, parent=None) -> None:
        self.words: list = []
        self.names: dict[str, str] = {}  # speaker label -> name (hover text)
        self.current: int | None = None
        self.marked: set[int] = set()
        self.selected: int | None = None
        super().__init__(parent)
        self.setAccessibleName("Transcript lane")
        self.button.setAccessibleName("Fill the transcript lane")
        self.getPlotItem().setLabel("left", "words")
        self.setMinimumHeight(44)
        self.item = _Words(self)
        self.getPlotItem().addItem(self.item)
        self._starts: list[float] = []
        self.eventClicked.connect(lambda i: self.wordClicked.emit(int(i)))

    def sizeHint(self) -> QSize:
        return QSize(400, 52)

    # -- content ----------------------------------------------------------------------------
    def set_words(self, words, names: dict[str, str] | None = None) -> None:
        """Show these :class:`engine.results.Word` (None or []: nothing, the placeholder shows);
        ``names`` ({"S1": "Alice"}) name the words' speakers in the hover text."""
        self.words = list(words or [])
        self.names = dict(names or {})
        self._starts = [w.start for w in self.words]
        self.current = self.selected = None
        self.marked = set()
        self._layout()

    def set_names(self, names: dict[str, str]) -> None:
        self.names = dict(names or {})

    def speaker_of(self, index: int) -> str | None:
        """The name (or label) of word ``index``'s speaker, as the hover text says it."""
        who = self.words[index].speaker
        return self.names.get(who, who) if who else None

    def set_tagging(self, tagging) -> None:  # the tag lane's entry point: not used here
        self.set_words([])

    def set_marked(self, indices) -> None:
        self.marked = set(indices)
        self.item.update()

    def set_selected(self, index: int | None) -> None:
        self.selected = index
        self.item.update()

    def word_index_at_time(self, seconds: float | None) -> int | None:
        """The word being spoken at ``seconds`` (None in a pause)."""
        if seconds is None or not self.words:
            return None
        i = bisect.bisect_right(self._starts, seconds) - 1
        return i if i >= 0 and seconds < self.words[i].end else None

    def set_playhead(self, seconds: float | None) -> None:
        super().set_playhead(seconds)
        cur = self.word_index_at_time(seconds)
        if cur != self.current:
            self.current = cur
            self.item.update()

    def _layout(self) -> None:
        if "item" not in self.__dict__:  # the tag lane's constructor lays out before ours has run
            self.rows = []
            self._update_button()
            return
        self.rows = [(w, 0) for w in self.words]
        self.item.changed()
        self.getPlotItem().setYRange(0, 1, padding=0)
        self._update_button()

    def drawn_words(self) -> list[str]:
        """The words drawn at the last paint, in order."""
        return [self.words[i].word.strip() for i, _ in self.item.drawn]

    # -- hit tests ------------------------------------------------------------------------------
    def event_at(self, pos):
        """The index of the word under a viewport position (its drawn text, else its time span)."""
        pt = QPointF(pos)
        for i, r in self.item.drawn:
            if r.contains(pt):
                return i
        vb = self.getPlotItem().getViewBox()
        t = vb.mapSceneToView(self.mapToScene(pt.toPoint())).x()
        t0, t1 = self.view_range()
        slack = 3 * (t1 - t0) / max(1.0, vb.width())
        for i, w in enumerate(self.words):
            if w.start - slack <= t <= w.end + slack:
                return i
        return None

    def mouseDoubleClickEvent(self, ev) -> None:
        super().mouseDoubleClickEvent(ev)
        i = self.event_at(ev.position())
        if i is not None:
            self.wordActivated.emit(i)

    def mouseMoveEvent(self, ev) -> None:
        super(TagLane, self).mouseMoveEvent(ev)
        i = self.event_at(ev.position()) if self.words else None
        text = ""
        if i is not None:
            w = self.words[i]
            who = f"{self.speaker_of(i)}: " if w.speaker else ""
            prob = f"  (p {w.probability:.2f})" if w.probability is not None else ""
            text = f"{who}{w.word.strip()}\n{_clock(w.start)} – {_clock(w.end)}{prob}\n" \
                   "click: play from here · double-click: correct"
        self.show_hover(ev, text, i is not None)
