"""Issue 15 in the Live panel: the top 3 sound labels of the input, about once a second, computed on a
worker thread with the offline tagger; hidden where the tagger is not installed."""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path

import pytest

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
from qtwindow import open_window  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
TAGGER = ROOT.parent / "shared" / "models" / "efficientat-mn04-as"
SPEECH = TAGGER / "reference" / "speech.wav"
MUSIC = TAGGER / "reference" / "music.wav"


@pytest.fixture
def window(qtbot, tmp_path, monkeypatch):
    w = open_window(qtbot, tmp_path, monkeypatch)
    yield w
    w.close()


def test_no_offline_tagger_no_row(window):
    panel = window.panels["LivePanel"]
    from engine.audio.capture import ReplaySource

    assert panel.tags.attach(ReplaySource(SPEECH if SPEECH.exists() else __file__)) is False
    assert panel.tags.isHidden()


@pytest.mark.skipif(not TAGGER.is_dir(), reason="the offline EfficientAT tagger is not in ../shared/models")
def test_live_panel_shows_the_top_three_sounds_once_a_second(window, qtbot, monkeypatch):
    import app.widgets.live_tags as LT
    from engine.audio.capture import ReplaySource
    from engine.store import default_store

    default_store().import_folder(str(TAGGER), "efficientat-mn04-as")  # as scripts/setup.sh does
    threads, real = [], LT.top_labels
    monkeypatch.setattr(LT, "top_labels", lambda *a, **k: (threads.append(threading.current_thread()), real(*a, **k))[1])
    panel = window.panels["LivePanel"]
    window.tabs.setCurrentWidget(panel)
    seen = []
    panel.tags.tagsChanged.connect(lambda labels: seen.append((time.monotonic(), labels)))
    for clip, want in ((SPEECH, "Speech"), (MUSIC, "Music")):
        seen.clear()
        source = ReplaySource(clip, speed=1.0).start()  # a recording standing in for the microphone
        try:
            assert panel.tags.attach(source) and panel.tags.isVisible()
            qtbot.waitUntil(lambda: len(seen) >= 3, timeout=60000)
        finally:
            panel.tags.attach(None)
            source.close()
        labels = seen[-1][1]
        assert len(labels) == 3 and labels[0][0] == want, labels
        assert all(0.0 <= s <= 1.0 for _, s in labels) and labels[0][1] >= labels[1][1] >= labels[2][1]
        gaps = sorted(b[0] - a[0] for a, b in zip(seen, seen[1:]))
        assert min(gaps) > 0.7, gaps  # at most about once a second (how often it keeps up depends on the CPU)
        assert panel.tags.text().startswith(f"Sounds: {want} ")
    assert threads and all(t is not threading.main_thread() for t in threads)  # never on the GUI thread
