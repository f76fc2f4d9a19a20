"""The track lane: the separated tracks of a file (stems or one track per speaker), one row each.

Each row draws its track's waveform: per pixel column, a vertical line from the lowest to the
highest sample the column spans (a min/max envelope), in the track's colour over a dim band,
labelled with the track's name ("vocals", "speaker1"). All rows share one scale (the loudest
track's peak fills its row), so a quiet track looks quiet. A click emits
``trackClicked(name, seconds)`` (the panel plays that track from there). The time axis is the
file view's (``link_x``), as every lane's: zooming or scrolling redraws the columns of the visible
range; with no track the placeholder says how to make some.

Nothing here decodes audio on the GUI thread: each track's envelope pyramid
(:func:`app.overview.compute`, without its spectrogram) is built on a worker thread when the track
is first shown, and kept for the session (``envelopes``: file -> Overview); until it arrives the
row shows its band and name only.
"""

from __future__ import annotations

import threading
from types import SimpleNamespace

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import QPointF, QRectF, Qt, Signal
from PySide6.QtGui import QColor, QFont, QImage, QPainter, QPen

from .tag_lane import TagLane, color_for

ENVELOPE_BUCKETS = 1 << 18  # level-0 (min, max) pairs per track at most (~2 MB; 2.3 ms each for 10 min at 44.1 kHz)
WAVE_FILL = 0.9             # the loudest sample reaches this share of half the row's height
LABEL = QColor(230, 232, 236)
LABEL_BACK = QColor(24, 26, 30, 180)


def column_envelope(x: np.ndarray, mn: np.ndarray, mx: np.ndarray, left: float, right: float):
    """Buckets (min, max) at pixel positions ``x`` (sorted) -> (columns, lows, highs): one range per
    pixel column of [left, right) that the signal crosses. A column holds the buckets inside it and
    the envelope where it crosses the column's edges (straight lines between bucket centres), so a
    view zoomed in past the buckets (fewer buckets than columns) still draws a joined-up curve."""
    if len(x) == 0:
        return np.zeros(0, int), np.zeros(0), np.zeros(0)
    c0, c1 = int(np.floor(max(left, x[0]))), int(np.ceil(min(right, x[-1])))
    if c1 <= c0:
        c1 = c0 + 1
    edges = np.arange(c0, c1 + 1, dtype=float)
    hi_e, lo_e = np.interp(edges, x, mx), np.interp(edges, x, mn)
    hi, lo = np.maximum(hi_e[:-1], hi_e[1:]), np.minimum(lo_e[:-1], lo_e[1:])
    inside = (x >= c0) & (x < c1)
    if inside.any():
        cols = np.floor(x[inside]).astype(int) - c0
        starts = np.r_[0, np.flatnonzero(np.diff(cols)) + 1]  # one run per column
        at = cols[starts]
        hi[at] = np.maximum(hi[at], np.maximum.reduceat(mx[inside], starts))
        lo[at] = np.minimum(lo[at], np.minimum.reduceat(mn[inside], starts))
    return np.arange(c0, c1), lo, hi


class _Waves(pg.GraphicsObject):
    """Draws every row's envelope in pixels for the visible time range (rows are 1 unit tall)."""

    def __init__(self, lane: "TrackLane") -> None:
        super().__init__()
        self.lane = lane
        self._rect = QRectF(0, 0, 1, 1)
        self.drawn: dict[str, tuple[np.ndarray, np.ndarray, np.ndarray]] = {}  # name -> (x px, top px, bottom px)
        self._key = None   # what the cached picture shows (view, size, tracks, envelopes)
        self._img = None

    def changed(self) -> None:
        self.prepareGeometryChange()
        lane = self.lane
        self._rect = QRectF(0, 0, max(lane.duration, 1e-3), max(1, len(lane.tracks)))
        self.update()

    def boundingRect(self) -> QRectF:
        return self._rect

    def paint(self, p: QPainter, *args) -> None:
        lane, tr = self.lane, p.transform()
        view = self.viewRect()
        if view is None:
            return
        t0, t1 = max(0.0, view.left()), view.right()
        dev = p.device()
        key = (t0, t1, tr.m11(), tr.m22(), tr.dx(), tr.dy(), dev.width(), dev.height(), dev.devicePixelRatioF(),
               tuple(lane.tracks.items()),
               tuple(id(lane.envelopes.get(f)) for f in lane.tracks.values()))
        if key != self._key:  # the playhead moving over the lane repaints it: draw the waves only when they change
            dpr = dev.devicePixelRatioF()
            img = QImage(max(1, round(dev.width() * dpr)), max(1, round(dev.height() * dpr)),
                         QImage.Format.Format_ARGB32_Premultiplied)
            img.setDevicePixelRatio(dpr)
            img.fill(0)
            q = QPainter(img)
            q.setFont(p.font())
            self._render(q, tr, t0, t1)
            q.end()
            self._img, self._key = img, key
        p.save()
        p.resetTransform()
        p.drawImage(0, 0, self._img)
        p.restore()

    def _render(self, p: QPainter, tr, t0: float, t1: float) -> None:
        """Every row's label and envelope, in device pixels (``tr``: view -> device)."""
        lane = self.lane
        # time -> pixel is affine (no rotation): x = a * t + b
        a = tr.map(QPointF(1, 0)).x() - tr.map(QPointF(0, 0)).x()
        b = tr.map(QPointF(0, 0)).x()
        left, right = tr.map(QPointF(t0, 0)).x(), tr.map(QPointF(t1, 0)).x()
        px = max(1, int(right - left))
        scale = lane.scale()
        self.drawn = {}
        font = QFont(p.font())
        font.setPixelSize(11)
        p.setFont(font)
        for row, name in enumerate(lane.tracks):
            centre = tr.map(QPointF(0, row + 0.5)).y()
            half = abs(tr.map(QPointF(0, row + 0.5 + WAVE_FILL / 2)).y() - centre)
            ov = lane.envelopes.get(lane.tracks[name])
            colour = QColor(color_for(name))
            if ov is not None and ov.levels:
                times, mn, mx, _size = ov.envelope(t0, t1, px)
                x = a * times + b
                cols, lo, hi = column_envelope(x, mn, mx, left, right)
                top = centre - np.clip(hi, -1, 1) * scale * half
                bottom = np.maximum(centre - np.clip(lo, -1, 1) * scale * half, top + 1)  # silence: 1 px at zero
                self.drawn[name] = (cols, top, bottom)
                xs = np.repeat(cols + 0.5, 2)
                ys = np.empty(2 * len(cols))
                ys[0::2], ys[1::2] = top, bottom
                p.setPen(QPen(colour, 1))
                p.drawPath(pg.arrayToQPath(xs, ys, connect="pairs"))  # a line per column, built in one go
            # the name on a dark backdrop, readable over the wave in a short row
            box = p.fontMetrics().boundingRect(name).adjusted(-3, -1, 3, 1)
            box.moveTopLeft(QPointF(left + 2, centre - half).toPoint())
            p.fillRect(box, LABEL_BACK)
            p.setPen(QPen(LABEL))
            p.drawText(box, int(Qt.AlignmentFlag.AlignCenter), name)


class TrackLane(TagLane):
    trackClicked = Signal(str, float)
    envelopeReady = Signal(str)  # a track's file whose envelope arrived (it is drawn now)

    def __init__(self, parent=None) -> None:
        self.tracks: dict[str, str] = {}
        self.duration = 0.0
        self.envelopes: dict[str, object] = {}  # track file -> app.overview.Overview (envelopes only)
        self.errors: dict[str, str] = {}        # track file -> why it could not be read
        self._pending: set[str] = set()
        super().__init__(parent)
        self.setAccessibleName("Track lane")
        self.button.setAccessibleName("Make separated tracks")
        self.getPlotItem().setLabel("left", "tracks")
        self.setMinimumHeight(40)
        self._click_t = 0.0
        self.waves = _Waves(self)
        self.getPlotItem().addItem(self.waves)
        self.eventClicked.connect(lambda e: self.trackClicked.emit(e.label, self._click_t))

    def set_tracks(self, tracks: dict[str, str] | None, duration: float = 0.0) -> None:
        """{name: file} of the current file's tracks (None or {}: nothing, the placeholder shows).
        The envelope of a file not seen before is computed on a worker thread."""
        tracks = {str(k): str(v) for k, v in (tracks or {}).items()}
        if tracks == self.tracks and float(duration) == self.duration:
            return  # the panel calls this whenever any job ends
        self.tracks = tracks
        self.duration = float(duration)
        self._layout()
        for f in tracks.values():
            if f not in self.envelopes and f not in self._pending and f not in self.errors:
                self._load(f)

    def _load(self, path: str) -> None:
        from ..threads import run_in_thread

        self._pending.add(path)

        def work():
            from .. import overview as O

            return O.compute(path, spectrogram=False, max_buckets=ENVELOPE_BUCKETS)

        def done(ov, error) -> None:
            self._pending.discard(path)
            if error is not None:
                self.errors[path] = str(error)
            else:
                self.envelopes[path] = ov
                while len(self.envelopes) > 16:  # the session's recent tracks
                    self.envelopes.pop(next(iter(self.envelopes)))
            if path in self.tracks.values():
                self.waves.update()
            self.envelopeReady.emit(path)

        run_in_thread(work, done, self, name=f"sonoscope-track-envelope-{threading.active_count()}")

    def pending(self) -> int:
        """Envelopes still being computed."""
        return len(self._pending)

    def scale(self) -> float:
        """Amplitude -> share of half a row: the loudest shown track's peak fills WAVE_FILL of it."""
        peaks = [getattr(self.envelopes.get(f), "peak", 0.0) for f in self.tracks.values()]
        return 1.0 / max(max(peaks, default=0.0), 1e-4)

    def set_tagging(self, tagging) -> None:  # the tag lane's entry point: not used here
        self.set_tracks({})

    def _layout(self) -> None:
        tracks = getattr(self, "tracks", {})
        self.rows = [(SimpleNamespace(label=name, start=0.0, end=max(self.duration, 1e-3), score=1.0), i)
                     for i, name in enumerate(tracks)]
        # a dim band per row (the label and the waveform are drawn over it by _Waves)
        self.bars.set_bars([(e.start, e.end, r, QColor(color_for(e.label)).darker(420), "") for e, r in self.rows])
        self.getPlotItem().setYRange(0, max(1, len(self.rows)), padding=0)
        if "waves" in self.__dict__:
            self.waves.changed()
        self._update_button()

    def event_at(self, pos):
        e = super().event_at(pos)
        if e is not None:
            vb = self.getPlotItem().getViewBox()
            self._click_t = max(0.0, vb.mapSceneToView(self.mapToScene(QPointF(pos).toPoint())).x())
        return e
