"""The Live panel's "what does it hear" row: the top 3 sound labels of the input, about once a second.

A worker thread (never the GUI thread) loads the offline AudioSet tagger once, then every
``interval`` seconds takes the last 3 s of the input's ring buffer (``source.latest``), resamples
them to the tagger's rate and runs ``tagger.logits`` on them. Where the offline tagger is not
installed the row stays hidden: nothing is downloaded for it.
"""

from __future__ import annotations

import threading

from PySide6.QtCore import Signal, Slot
from PySide6.QtWidgets import QLabel

from ..threads import emit

SECONDS = 3.0
TOP = 3

_tagger = None            # loaded once per process, on a worker thread
_tagger_lock = threading.Lock()


def offline_tagger_installed() -> bool:
    """Is the default tagger here without a download? (the store's catalog and files: no torch)"""
    try:
        from engine.store import default_store
        from engine.tags.taggers import DEFAULT_MODEL
    except Exception:
        return False
    try:
        return default_store().is_installed(DEFAULT_MODEL)
    except Exception:
        return False


def top_labels(tagger, audio, sr: int, top: int = TOP) -> list[tuple[str, float]]:
    """The ``top`` labels and scores of ``audio`` (mono float32 at ``sr``)."""
    import numpy as np

    from engine.audio import io as audio_io
    from engine.tags.task import scores_of

    x = np.asarray(audio, np.float32)
    if sr != tagger.sample_rate:
        x = audio_io.resample(x, sr, tagger.sample_rate)
    scores = scores_of(tagger, tagger.logits(x[None]))[0]
    if scores.ndim > 1:  # a frame classifier: the strongest frame per label
        scores = scores.max(axis=0)
    best = np.argsort(scores)[::-1][:top]
    return [(tagger.labels[i], float(scores[i])) for i in best]


class LiveTags(QLabel):
    """``attach(source)`` starts tagging an InputStream / ReplaySource, ``attach(None)`` stops."""

    tagsChanged = Signal(list)         # [(label, score)], GUI thread
    _result = Signal(object, list)     # worker -> GUI: token, labels
    _failed = Signal(object, str)

    def __init__(self, parent=None, interval: float = 1.0) -> None:
        super().__init__(parent)
        self.setAccessibleName("Sounds heard")
        self.setToolTip("The three most likely sound labels of the last 3 s of the input "
                        "(offline AudioSet tagger), updated about once a second")
        self.interval = interval
        self.labels: list[tuple[str, float]] = []
        self._stop: threading.Event | None = None
        self._token = None
        self._result.connect(self._show)
        self._failed.connect(self._fail)
        self.hide()

    @property
    def available(self) -> bool:
        return offline_tagger_installed()

    def attach(self, source) -> bool:
        """Tag ``source`` until ``attach(None)``; False (and hidden) without the offline tagger."""
        if self._stop is not None:
            self._stop.set()
            self._stop = None
        self._token = None
        if source is None:
            return False
        if not self.available:
            self.hide()
            return False
        self.setText("Sounds: listening…")
        self.show()
        stop = self._stop = threading.Event()
        token = self._token = object()
        threading.Thread(target=self._work, args=(source, stop, token), name="sonoscope-live-tags",
                         daemon=True).start()
        return True

    def _work(self, source, stop: threading.Event, token) -> None:
        global _tagger
        import numpy as np

        try:
            with _tagger_lock:
                if _tagger is None:
                    from engine.tags.taggers import load_tagger

                    _tagger = load_tagger()
            tagger = _tagger
            while not stop.wait(self.interval):
                sr = source.samplerate
                x = np.asarray(source.latest(int(SECONDS * sr)), np.float32)
                if x.ndim == 2:
                    x = x.mean(axis=1) if x.shape[1] > 1 else x[:, 0]
                if not np.any(x):
                    continue  # nothing heard yet
                emit(self._result, token, top_labels(tagger, x, sr))
        except Exception as e:  # a broken tagger hides the row; the session goes on
            emit(self._failed, token, f"{type(e).__name__}: {e}")

    @Slot(object, list)
    def _show(self, token, labels: list) -> None:
        if token is not self._token:
            return
        self.labels = labels
        self.setText("Sounds: " + " · ".join(f"{name} {score:.0%}" for name, score in labels))
        self.tagsChanged.emit(labels)

    @Slot(object, str)
    def _fail(self, token, message: str) -> None:
        if token is self._token:
            self.setToolTip(f"The sound tagger failed: {message}")
            self.hide()
