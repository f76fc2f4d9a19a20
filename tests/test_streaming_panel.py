"""The Live panel (Qt offscreen): a replayed file through a tiny CTC model, committed text in normal
type and the tentative tail in grey, Stop/finish, Save as audio + TXT/SRT/JSON; no microphone."""

from __future__ import annotations

import json
import os

import pytest

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

from engine.audio import io as eaudio  # noqa: E402
from qtwindow import open_window  # noqa: E402
from engine.transcribe.streaming import CTCStreamer, replay  # noqa: E402
from tests.test_streaming_cli import tiny_folder  # noqa: E402,F401  (fixture)



@pytest.fixture
def window(qtbot, tmp_path, monkeypatch):
    w = open_window(qtbot, tmp_path, monkeypatch)
    yield w
    w.close()


def test_live_panel_replay_ctc_and_save(window, qtbot, tiny_folder, librivox):  # noqa: F811
    folder, model = tiny_folder
    panel = window.panels["LivePanel"]
    ids = [panel.model.itemData(i) for i in range(panel.model.count())]
    assert "whisper-tiny.en" in ids  # the Whisper catalog for the default engine
    panel.add_model("ctc", str(folder), "tiny test model")
    assert panel.engine.currentData() == "ctc"
    cat = [panel.model.itemData(i) for i in range(panel.model.count())]
    assert "wav2vec2-base-960h" in cat and "hubert-large-ls960-ft" in cat

    wav = librivox[0][0]
    window.ctx.set_selection([wav])
    panel.source.setCurrentIndex(panel.source.findData("file"))
    panel.replay_speed = 4.0
    shown = []
    orig = panel.show_update
    panel.show_update = lambda u: (shown.append((u, panel.text.toHtml())), orig(u))[1]
    job = panel.start_session()
    assert job is not None and panel.start.text() == "Stop"
    qtbot.waitUntil(lambda: job.finished is not None, timeout=60000)  # the file ended: the job finishes
    qtbot.waitUntil(lambda: panel.save.isEnabled(), timeout=5000)
    assert panel.start.text() == "Start"

    a, _ = eaudio.load(wav, mono=True)
    from engine.models.wav2vec2 import load_model, quantize_int8

    # the panel runs int8 on CPU: the same model replayed offline gives the same text
    expect = replay(CTCStreamer(quantize_int8(load_model(folder))), a, block=0.1)[-1].committed
    assert expect and panel.result["text"] == expect
    assert panel.text.toPlainText().strip() == expect
    # during the session: committed text only grew, and a grey tentative tail was shown
    committed = [u.committed for u, _ in shown]
    assert all(b.startswith(a_) for a_, b in zip(committed, committed[1:]))
    assert any(u.tentative and "#8a8a8a" in h for u, h in shown)

    paths = panel.save_session(window.ctx.timestamped_path("Live", ".wav"))  # (the save dialog's answer)
    assert [p.suffix for p in paths] == [".wav", ".txt", ".srt", ".json"]
    back, sr = eaudio.load(paths[0], mono=True)
    assert sr == 16000 and abs(len(back) - len(a)) < 400
    assert " ".join(paths[1].read_text().split()) == expect
    assert json.loads(paths[3].read_text())["text"] == expect
    assert "-->" in paths[2].read_text()


def test_live_panel_without_microphone(window, qtbot):
    panel = window.panels["LivePanel"]
    errors = []
    window.ctx.errorMessage.connect(errors.append)
    panel.source.setCurrentIndex(panel.source.findData("mic"))
    assert panel.start_session() is None
    assert errors and "microphone" in errors[-1] and panel.start.text() == "Start"


def test_live_panel_shows_how_far_behind_real_time_it_is(window, qtbot):
    """Each update's lag (the session clock): "0.4 s behind real time" in green, amber from 1 s, red from 3 s;
    drawn in those colours (pixels of the rendered label, saved as PNG)."""
    from pathlib import Path

    from PySide6.QtWidgets import QApplication

    from app.panels.live_panel import LAG_BAD, LAG_OK
    from engine.transcribe.streaming import StreamUpdate

    panel = window.panels["LivePanel"]
    i = window.tabs.indexOf(panel)
    if i >= 0:
        window.tabs.setCurrentIndex(i)
    art = Path(__file__).resolve().parent / "artifacts"
    art.mkdir(parents=True, exist_ok=True)

    def drawn(lag):
        panel.show_update(StreamUpdate("seven of clubs", "five", audio_time=12.0, final_time=11.0, lag=lag))
        QApplication.processEvents()
        img = panel.lag.grab().toImage()
        return {(c.red() // 16, c.green() // 16, c.blue() // 16)
                for c in (img.pixelColor(x, y) for x in range(img.width()) for y in range(img.height()))}

    def has(colors, hex_):
        r, g, b = (int(hex_[k:k + 2], 16) // 16 for k in (1, 3, 5))
        return any(abs(c[0] - r) <= 1 and abs(c[1] - g) <= 1 and abs(c[2] - b) <= 1 for c in colors)

    ok = drawn(0.4)
    assert panel.lag.text() == "0.4 s behind real time" and has(ok, LAG_OK) and not has(ok, LAG_BAD)
    bad = drawn(4.2)
    assert panel.lag.text() == "4.2 s behind real time" and has(bad, LAG_BAD) and not has(bad, LAG_OK)
    assert panel.grab().save(str(art / "live_panel_lag.png"))
    panel.show_update(StreamUpdate("", "", lag=None))
    assert panel.lag.text() == ""
