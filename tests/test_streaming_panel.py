"""The Live panel (Qt offscreen): a replayed file through a tiny CTC model, committed text in normal
type and the tentative tail in grey, Stop/finish, Save as audio + TXT/SRT/JSON; no microphone."""

from __future__ import annotations

import json
import os

import pytest

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

from engine import audio as eaudio  # noqa: E402
from qtwindow import open_window  # noqa: E402
from engine.streaming import CTCStreamer, replay  # noqa: E402
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

    paths = panel.save_session()
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
