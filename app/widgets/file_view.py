"""The selected file's view: waveform over spectrogram with one time axis.

Builds the file's :class:`app.overview.Overview` on a worker thread, showing partial
results as the file decodes (an hour-long file shows its start at once), and keeps the
playhead and the selection in sync between the two plots.
"""

from __future__ import annotations

import threading
from pathlib import Path

from PySide6.QtCore import Qt, Signal, Slot
from PySide6.QtWidgets import QCheckBox, QHBoxLayout, QLabel, QSplitter, QVBoxLayout, QWidget

from ..threads import emit
from .spectrogram_view import SpectrogramView
from .waveform_view import WaveformView


class FileView(QWidget):
    overviewReady = Signal(object)          # Overview (complete)
    selectionChanged = Signal(float, float)
    seekRequested = Signal(float)
    _partial = Signal(object, object, float)   # token, overview, fraction
    _failed = Signal(object, str)

    def __init__(self, parent=None, log_frequency: bool = True, db_range: int = 80) -> None:
        super().__init__(parent)
        self.setAccessibleName("File view")
        self.path: Path | None = None
        self.overview = None
        self.waveform = WaveformView(self)
        self.spectrogram = SpectrogramView(self, log_frequency=log_frequency, db_range=db_range)
        self.spectrogram.link_x(self.waveform.getPlotItem())
        self.title = QLabel("No file selected", self)
        self.title.setAccessibleName("Selected file")
        self.log_box = QCheckBox("Log frequency", self)
        self.log_box.setChecked(log_frequency)
        self.log_box.setAccessibleName("Logarithmic frequency axis")
        self.log_box.toggled.connect(self.spectrogram.set_log_frequency)
        head = QHBoxLayout()
        head.addWidget(self.title, 1)
        head.addWidget(self.log_box)
        split = self.split = QSplitter(Qt.Orientation.Vertical, self)
        split.addWidget(self.waveform)
        split.addWidget(self.spectrogram)
        split.setSizes([200, 260])
        lay = QVBoxLayout(self)
        lay.setContentsMargins(0, 0, 0, 0)
        lay.addLayout(head)
        lay.addWidget(split, 1)
        self.lanes: list = []  # time lanes under the spectrogram (add_lane)
        self._token = None
        self._cancel = threading.Event()
        self._cache: dict[str, object] = {}
        self._cache_stamp: dict[str, object] = {}
        self._partial.connect(self._on_partial)
        self._failed.connect(self._on_failed)
        self.waveform.selectionChanged.connect(self._selection)
        self.waveform.seekRequested.connect(self.seekRequested)

    @staticmethod
    def _stamp(path: Path):
        try:
            st = path.stat()
            return (st.st_size, st.st_mtime_ns)
        except OSError:
            return None

    def _still_same(self, ov) -> bool:
        return self._cache_stamp.get(str(ov.path)) == self._stamp(ov.path)

    def resizeEvent(self, e) -> None:
        super().resizeEvent(e)
        self.sync_margins()

    def sync_margins(self) -> None:
        """Line up the waveform's time axis with the spectrogram's (which has a colour bar)."""
        vb = self.spectrogram.plot.getViewBox()
        right = self.spectrogram.width() - vb.mapRectToScene(vb.boundingRect()).right()
        self.waveform.set_right_margin(right)
        for lane in self.lanes:  # the waveform's margin: the same plot width, so times line up
            lane.set_right_margin(self.waveform.getPlotItem().getAxis("right").maximumWidth())

    def add_lane(self, lane) -> None:
        """Host a time lane (the tag lane) under the spectrogram: its x axis is linked to the waveform's
        view box, so it zooms and scrolls with the view; margins and playhead follow (``link_x``,
        ``set_right_margin``, ``set_playhead``)."""
        self.split.addWidget(lane)
        lane.link_x(self.waveform.getPlotItem())
        self.lanes.append(lane)
        self.sync_margins()

    def show_file(self, path: str | Path | None) -> None:
        self._cancel.set()
        self.path = Path(path) if path else None
        self.overview = None
        self.waveform.set_overview(None)
        self.spectrogram.set_overview(None)
        self.set_playhead(None)
        if self.path is None:
            self.title.setText("No file selected")
            return
        self.title.setText(f"{self.path.name} — loading…")
        self.waveform.set_message(f"Loading {self.path.name}…")
        cached = self._cache.get(str(self.path))
        if cached is not None and cached.frames and self._still_same(cached):
            self._token = token = object()
            self._on_partial(token, cached, 1.0)
            return
        token = self._token = object()
        cancel = self._cancel = threading.Event()
        path = self.path

        def work() -> None:
            from .. import overview as O

            try:
                ov = O.compute(path, progress=lambda ov, f: emit(self._partial, token, ov, f),
                               cancelled=cancel.is_set)
            except Exception as e:
                emit(self._failed, token, str(e))
                return
            if not cancel.is_set():
                emit(self._partial, token, ov, 1.0)

        threading.Thread(target=work, name="sonoscope-overview", daemon=True).start()

    @Slot(object, object, float)
    def _on_partial(self, token, ov, fraction: float) -> None:
        if token is not self._token:
            return
        self.overview = ov
        complete = fraction >= 1.0 and ov.complete
        self.waveform.set_overview(ov, keep_view=self.waveform.overview is not None)
        if complete:
            self.waveform.set_view(0, max(ov.duration, 1e-3))
        self.spectrogram.set_overview(ov)
        self.sync_margins()
        name = ov.path.name
        self.title.setText(name if complete else f"{name} — loading {fraction * 100:.0f}%")
        if complete:
            self._cache[str(ov.path)] = ov
            self._cache_stamp[str(ov.path)] = self._stamp(ov.path)
            while len(self._cache) > 4:  # a few recent files (each at most ~25 MB)
                old = next(iter(self._cache))
                self._cache.pop(old)
                self._cache_stamp.pop(old, None)
            self.overviewReady.emit(ov)

    @Slot(object, str)
    def _on_failed(self, token, message: str) -> None:
        if token is self._token:
            self.title.setText(message)
            self.waveform.set_message(message)

    @Slot(float, float)
    def _selection(self, a: float, b: float) -> None:
        self.spectrogram.set_selection(a, b)
        self.selectionChanged.emit(a, b)

    def zoom(self, factor: float | None) -> None:
        """Zoom the time axis around the centre by ``factor`` (None: show the whole file)."""
        wf, ov = self.waveform, self.overview
        if ov is None:
            return
        if factor is None:
            wf.set_view(0, ov.duration)
            return
        t0, t1 = wf.view_range()
        c, half = (t0 + t1) / 2, (t1 - t0) * factor / 2
        wf.set_view(max(0.0, c - half), min(ov.duration, c + half))

    def selection(self) -> tuple[float, float] | None:
        return self.waveform.selection()

    def set_playhead(self, seconds: float | None) -> None:
        self.waveform.set_playhead(seconds)
        self.spectrogram.set_playhead(seconds)
        for lane in self.lanes:
            lane.set_playhead(seconds)
