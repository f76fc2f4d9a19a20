"""The tag lane: a file's sound events as coloured bars on the file view's time axis.

One bar per :class:`engine.results.TagEvent`, one colour per label (the same colour for a label in
every file and every run: it comes from the label's text), bars stacked in rows where they overlap.
The lane's time axis is linked to the waveform's view box (``link_x``), so zooming or scrolling
either one moves both. A click on a bar emits ``eventClicked(event)``; hovering shows the label,
its times and its peak score. While the lane has nothing to show, a button in its middle offers
the action that fills it (``set_placeholder``; a click emits ``actionClicked``).

Nothing here decodes audio or loads models: the lane only draws what it is given.
"""

from __future__ import annotations

import zlib

import pyqtgraph as pg
from PySide6.QtCore import QPointF, QRectF, QSize, Qt, Signal
from PySide6.QtGui import QColor, QFont, QPainter, QPen
from PySide6.QtWidgets import QPushButton, QToolTip

BACKGROUND = QColor(24, 26, 30)
PLAYHEAD_COLOR = QColor(255, 200, 40)
TEXT_COLOR = QColor(16, 16, 18)
BAR_FILL = 0.8   # the bar's share of its row's height


def color_for(label: str) -> QColor:
    """The label's colour: a stable hash of its text picks hue, saturation and value (bright,
    readable under dark text)."""
    h = zlib.crc32(label.encode("utf-8"))
    return QColor.fromHsv(h % 360, 150 + (h >> 9) % 70, 205 + (h >> 17) % 45)


def stack_rows(events) -> list[int]:
    """A row for each event (given in any order): the lowest row whose last bar ends by the event's
    start, so overlapping events never share a row."""
    order = sorted(range(len(events)), key=lambda i: (events[i].start, -events[i].end, events[i].label))
    ends: list[float] = []
    rows = [0] * len(events)
    for i in order:
        e = events[i]
        row = next((r for r, end in enumerate(ends) if end <= e.start + 1e-9), len(ends))
        if row == len(ends):
            ends.append(e.end)
        else:
            ends[row] = e.end
        rows[i] = row
    return rows


def describe(event) -> str:
    return f"{event.label}\n{_clock(event.start)} – {_clock(event.end)}  ({event.end - event.start:.2f} s)\n" \
           f"peak score {event.score:.2f}"


class _Bars(pg.GraphicsObject):
    """Draws the bars in view coordinates (time, row) and their labels in pixels, clipped to the bar."""

    def __init__(self) -> None:
        super().__init__()
        self.bars: list[tuple[float, float, int, QColor, str]] = []  # start, end, row, colour, label
        self._rect = QRectF(0, 0, 1, 1)

    def set_bars(self, bars) -> None:
        self.prepareGeometryChange()
        self.bars = list(bars)
        if self.bars:
            x0 = min(b[0] for b in self.bars)
            x1 = max(b[1] for b in self.bars)
            self._rect = QRectF(x0, 0, max(x1 - x0, 1e-6), max(b[2] for b in self.bars) + 1)
        else:
            self._rect = QRectF(0, 0, 1, 1)
        self.update()

    def boundingRect(self) -> QRectF:
        return self._rect

    def paint(self, p: QPainter, *args) -> None:
        tr = p.transform()
        view = self.viewRect()  # the visible part, so a bar begun off screen still shows its label
        view = tr.mapRect(view) if view is not None else None
        pad = (1 - BAR_FILL) / 2
        font = QFont(p.font())
        for start, end, row, colour, label in self.bars:
            # in pixels, so a very short event still shows as a 2 px sliver and edges stay crisp
            r = tr.mapRect(QRectF(start, row + pad, end - start, BAR_FILL))
            if r.width() < 2:
                r.setWidth(2)
            p.save()
            p.resetTransform()
            p.fillRect(r, colour)
            text = r.intersected(view) if view is not None else r
            if text.width() > 24 and r.height() > 9:
                font.setPixelSize(max(8, min(12, int(r.height()) - 3)))
                p.setFont(font)
                p.setPen(QPen(TEXT_COLOR))
                p.setClipRect(text, Qt.ClipOperation.IntersectClip)
                p.drawText(text.adjusted(4, 0, -2, 0), int(Qt.AlignmentFlag.AlignVCenter | Qt.AlignmentFlag.AlignLeft),
                           label)
            p.restore()


class TagLane(pg.PlotWidget):
    eventClicked = Signal(object)   # TagEvent
    actionClicked = Signal()        # the placeholder's button

    def __init__(self, parent=None) -> None:
        super().__init__(parent=parent, background=BACKGROUND)
        self.setAccessibleName("Tag lane")
        self.setMinimumHeight(64)
        self.tagging = None
        self.hidden: set[str] = set()
        self.rows: list[tuple[object, int]] = []   # (event, row) of the bars shown
        self.hover_text = ""
        pi = self.getPlotItem()
        pi.setMenuEnabled(False)
        pi.hideButtons()
        pi.hideAxis("bottom")
        pi.setLabel("left", "tags")
        left = pi.getAxis("left")
        left.setWidth(48)  # as the waveform's and the spectrogram's, so the plots line up
        left.setStyle(showValues=False)
        left.setTicks([[], []])
        pi.showAxis("right")
        pi.getAxis("right").setStyle(showValues=False)
        pi.getAxis("right").setPen(pg.mkPen(None))
        pi.setMouseEnabled(x=True, y=False)
        vb = pi.getViewBox()
        vb.invertY(True)  # row 0 on top
        pi.setYRange(0, 1, padding=0)
        pi.setXRange(0, 1, padding=0)
        self.bars = _Bars()
        pi.addItem(self.bars)
        self.playhead = pg.InfiniteLine(0, angle=90, pen=pg.mkPen(PLAYHEAD_COLOR, width=2))
        pi.addItem(self.playhead)
        self.playhead.hide()
        self.button = QPushButton("", self.viewport())
        self.button.setAccessibleName("Fill the tag lane")
        self.button.setFlat(True)
        self.button.setCursor(Qt.CursorShape.PointingHandCursor)
        self.button.setStyleSheet("QPushButton { color: rgb(200, 200, 200); padding: 2px 10px; }"
                                  "QPushButton:hover { color: white; text-decoration: underline; }"
                                  "QPushButton:disabled { color: rgb(150, 150, 150); }")
        self.button.clicked.connect(self.actionClicked)
        self.button.hide()
        self.setMouseTracking(True)
        self.viewport().setMouseTracking(True)
        self._press = None

    def sizeHint(self) -> QSize:
        return QSize(400, 96)

    # -- the file view's time axis ----------------------------------------------------------
    def link_x(self, plot_item) -> None:
        self.getPlotItem().setXLink(plot_item)

    def set_right_margin(self, pixels: int) -> None:
        self.getPlotItem().getAxis("right").setWidth(max(0, int(pixels)))

    def set_playhead(self, seconds: float | None) -> None:
        if seconds is None:
            self.playhead.hide()
        else:
            self.playhead.setValue(seconds)
            self.playhead.show()

    def view_range(self) -> tuple[float, float]:
        return tuple(self.getPlotItem().getViewBox().viewRange()[0])

    # -- content ----------------------------------------------------------------------------
    def set_tagging(self, tagging) -> None:
        """Show a :class:`engine.results.Tagging` (None: nothing, the placeholder shows)."""
        self.tagging = tagging
        self._layout()

    def set_hidden(self, labels) -> None:
        """Labels whose bars are not drawn (the label filter)."""
        self.hidden = set(labels)
        self._layout()

    def set_placeholder(self, text: str, enabled: bool = True, tip: str = "") -> None:
        """The button shown while no bar is (``""``: none)."""
        self.button.setText(text)
        self.button.setEnabled(enabled)
        self.button.setToolTip(tip)
        self.button.adjustSize()
        self._place_button()
        self._update_button()

    def visible_events(self) -> list:
        return [e for e, _ in self.rows]

    def _layout(self) -> None:
        events = [e for e in (self.tagging.events if self.tagging is not None else [])
                  if e.label not in self.hidden]
        rows = stack_rows(events)
        self.rows = list(zip(events, rows))
        self.bars.set_bars([(e.start, e.end, r, color_for(e.label), e.label) for e, r in self.rows])
        n = max(rows, default=-1) + 1
        self.getPlotItem().setYRange(0, max(1, n), padding=0)
        self._update_button()

    def _update_button(self) -> None:
        self.button.setVisible(not self.rows and bool(self.button.text()))

    def _place_button(self) -> None:
        vp = self.viewport()
        b = self.button
        w = min(b.sizeHint().width(), max(40, vp.width() - 8))
        b.setGeometry((vp.width() - w) // 2, max(0, (vp.height() - b.sizeHint().height()) // 2), w,
                      b.sizeHint().height())

    def resizeEvent(self, ev) -> None:
        super().resizeEvent(ev)
        if "button" in self.__dict__:  # pyqtgraph calls this from its constructor
            self._place_button()

    # -- geometry ---------------------------------------------------------------------------
    def x_of(self, seconds: float) -> float:
        """The widget x (pixels) of a time."""
        vb = self.getPlotItem().getViewBox()
        return self.mapFromScene(vb.mapViewToScene(QPointF(seconds, 0))).x()

    def row_center(self, row: int) -> float:
        """The widget y (pixels) of the middle of a row."""
        vb = self.getPlotItem().getViewBox()
        return self.mapFromScene(vb.mapViewToScene(QPointF(0, row + 0.5))).y()

    def event_at(self, pos):
        """The event drawn under a widget position (QPoint/QPointF), or None."""
        vb = self.getPlotItem().getViewBox()
        pt = vb.mapSceneToView(self.mapToScene(QPointF(pos).toPoint()))
        t, y = pt.x(), pt.y()
        t0, t1 = self.view_range()
        slack = 3 * (t1 - t0) / max(1.0, vb.width())  # 3 px either side: tiny events stay clickable
        row = int(y // 1) if y >= 0 else -1
        hits = [e for e, r in self.rows if r == row and e.start - slack <= t <= e.end + slack]
        if not hits:
            return None
        return min(hits, key=lambda e: 0 if e.start <= t <= e.end else min(abs(t - e.start), abs(t - e.end)))

    # -- mouse: click a bar to play from its start, hover for its details ------------------------
    def mousePressEvent(self, ev) -> None:
        self._press = ev.position() if ev.button() == Qt.MouseButton.LeftButton else None
        super().mousePressEvent(ev)

    def mouseReleaseEvent(self, ev) -> None:
        press, self._press = self._press, None
        super().mouseReleaseEvent(ev)
        if press is not None and (ev.position() - press).manhattanLength() < 3:
            event = self.event_at(ev.position())
            if event is not None:
                self.eventClicked.emit(event)

    def mouseMoveEvent(self, ev) -> None:
        super().mouseMoveEvent(ev)
        event = self.event_at(ev.position()) if self.rows else None
        self.show_hover(ev, describe(event) if event is not None else "", event is not None)

    def show_hover(self, ev, text: str, over: bool) -> None:
        """The tooltip for what is under the mouse (``text``, "" for nothing) and a hand cursor ``over`` it."""
        if text != self.hover_text:
            self.hover_text = text
            if text:
                QToolTip.showText(ev.globalPosition().toPoint(), text, self)
            else:
                QToolTip.hideText()
        self.viewport().setCursor(Qt.CursorShape.PointingHandCursor if over else Qt.CursorShape.ArrowCursor)

    def leaveEvent(self, ev) -> None:
        super().leaveEvent(ev)
        self.hover_text = ""


def _clock(seconds: float) -> str:
    m, s = divmod(max(0.0, seconds), 60)
    return f"{int(m)}:{s:05.2f}"
