"""The Timeline panel in the running app (Qt offscreen) on the real timeline test file (two real
speakers, a real dog, real instrument notes; the real offline models): Analyse fills the lanes part
by part; click a word to seek, the spoken word is highlighted; search steps through a word; edits
show in the lanes and the exports; a reopened window brings the lanes back from the sidecar with no
model run. The window with every lane is saved as tests/artifacts/timeline_window.png."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
from PySide6.QtCore import QPoint, Qt  # noqa: E402
from PySide6.QtGui import QImage  # noqa: E402
from PySide6.QtTest import QTest  # noqa: E402
from PySide6.QtWidgets import QApplication  # noqa: E402

import voices as V  # noqa: E402
from qtwindow import import_panels, open_window, select_file  # noqa: E402
from test_timeline import MN04, _no_models, build  # noqa: E402

import_panels()  # before any test stubs the model entry points the panels import

ROOT = Path(__file__).resolve().parents[1]
ARTIFACTS = ROOT / "tests" / "artifacts"
pytestmark = pytest.mark.skipif(not (MN04 / "mn04_as_mAP_432.pt").exists() or not V.available(),
                                reason="the EfficientAT weights or pocketsphinx-testdata are missing")


def _import_tagger(tmp_path, monkeypatch):
    from engine.cli import main as cli

    monkeypatch.setenv("SONOSCOPE_MODELS", str(tmp_path / "models"))
    monkeypatch.setenv("SONOSCOPE_OFFLINE", "1")
    assert cli(["models", "import", str(MN04), "--id", "efficientat-mn04-as"]) == 0


def _window(qtbot, tmp_path, monkeypatch):
    w = open_window(qtbot, tmp_path, monkeypatch)
    monkeypatch.setenv("SONOSCOPE_MODELS", str(tmp_path / "models"))  # open_window points it at tmp_path/models too
    w.resize(1600, 1000)
    return w


def _panel(w):
    p = w.panels["TimelinePanel"]
    assert type(p).__name__ == "TimelinePanel", p
    return p


def _mask(img: QImage, rgb, tol=12) -> np.ndarray:
    img = img.convertToFormat(QImage.Format.Format_RGB32)
    a = np.frombuffer(img.constBits(), np.uint8).reshape(img.height(), img.bytesPerLine() // 4, 4)[:, :img.width()]
    return (abs(a[..., 2].astype(int) - rgb[0]) < tol) & (abs(a[..., 1].astype(int) - rgb[1]) < tol) & \
        (abs(a[..., 0].astype(int) - rgb[2]) < tol)


def _lay_out_lanes(w):
    """Room for every lane in the screenshot (the splitter would squeeze them otherwise)."""
    fv = w.file_view
    sizes = [170, 190] + [{"Transcript lane": 56, "Track lane": 60}.get(fv.split.widget(i).accessibleName(), 80)
                          for i in range(2, fv.split.count())]
    fv.split.setSizes(sizes)
    QApplication.processEvents()


def test_analyse_edit_search_reopen_in_the_app(qtbot, tmp_path, monkeypatch):
    _import_tagger(tmp_path, monkeypatch)
    path, truth = build(tmp_path)
    w = _window(qtbot, tmp_path, monkeypatch)
    panel, fv = _panel(w), w.file_view
    tl, sl, gl = panel.transcript_lane, panel.speaker_lane, panel.tag_lane
    # one lane per kind under the file view: the speaker and tag lanes are the Speakers/Tags panels'
    assert sl is w.panels["SpeakersPanel"].lane and gl is w.panels["TagsPanel"].lane
    assert all(lane in fv.lanes for lane in (tl, sl, gl, panel.track_lane))
    assert fv.split.indexOf(tl) == 2  # the words right under the spectrogram
    select_file(w, qtbot, path)
    qtbot.waitUntil(lambda: str(path) not in panel.loading, timeout=10000)
    # nothing yet: the lane offers the action that fills it, and the button runs it
    assert tl.button.isVisible() and tl.button.text().startswith("Analyse")

    fills = []  # the lanes that had content at each part's arrival
    from PySide6.QtCore import QTimer

    def seen(job) -> None:  # once every slot of this partial has run
        QTimer.singleShot(0, lambda: fills.append((bool(sl.turns), bool(tl.words), bool(gl.rows))))

    w.ctx.jobs.jobPartial.connect(seen)
    QTest.mouseClick(tl.button, Qt.MouseButton.LeftButton)
    job = panel.jobs[str(path)]
    qtbot.waitUntil(lambda: job.wait(0) and str(path) not in panel.jobs, timeout=300000)
    assert job.status.value == "done", job.error
    QApplication.processEvents()
    # each lane filled as its part finished: speakers first, then the words, then the sounds
    steps = [f for i, f in enumerate(fills) if any(f) and (i == 0 or f != fills[i - 1])]
    assert steps == [(True, False, False), (True, True, False), (True, True, True)], fills
    a = panel.analysis()
    assert len(sl.speakers) == 2 and "amiable" in [x.text.strip(",.") for x in tl.words]
    assert {"Dog", "Music"} <= {e.label for e in gl.visible_events()}
    assert Path(str(path) + ".sonoscope.json").exists() and not tl.button.isVisible()

    # click a word: the playhead goes to it (no audio device here: the transport moves the playhead)
    fv.waveform.set_view(15.0, 25.0)
    QApplication.processEvents()
    tl.repaint()
    QApplication.processEvents()
    i = next(i for i, x in enumerate(tl.words) if x.text.strip(",.") == "married")
    r = dict(tl.item.drawn)[i]
    QTest.mouseClick(tl.viewport(), Qt.MouseButton.LeftButton, pos=r.center().toPoint())
    assert fv.waveform.playhead.value() == pytest.approx(tl.words[i].start) and tl.current == i
    assert panel.word_edit.text() == "married" and panel.correct_button.isEnabled()
    # the spoken word during playback: the playhead inside a word highlights it (in the playhead's colour)
    k = next(k for k, x in enumerate(tl.words) if x.text.strip(",.") == "respectable")
    fv.set_playhead((tl.words[k].start + tl.words[k].end) / 2)
    assert tl.current == k
    tl.repaint()
    img = tl.grab().toImage()
    rk = dict(tl.item.drawn)[k]
    box = _mask(img, (255, 200, 40))[int(rk.top()) + 1:int(rk.bottom()) - 1, int(rk.left()) + 1:int(rk.right()) - 1]
    assert box.mean() > 0.5  # the word's box is filled (its letters take the rest)

    # search: "of" four times (Eight of spades, four of close, seven of hearts, Seven of clubs)
    panel.search.set_text("of")
    assert len(panel.hits) == 4 and panel.search.count.text() == "4 found"
    for _ in range(4):
        panel.search.stepped.emit(1)
    last = tl.words[panel.hits[3]]
    t0, t1 = fv.waveform.view_range()
    assert t0 <= last.start <= t1 and t1 - t0 == pytest.approx(10.0)  # scrolled to it, same zoom
    assert fv.waveform.playhead.value() == pytest.approx(last.start) and panel.search.count.text() == "4 of 4"
    panel.search.stepped.emit(1)
    assert panel.search.count.text() == "1 of 4"  # round again

    # edits: rename the reader, correct a word, delete a false sound; saved at once
    reader = next(t.speaker for t in a.turns if t.start < 3)
    panel.speaker_box.setCurrentIndex(panel.speaker_box.findData(reader))
    panel.name_edit.setText("Marianne")
    panel.rename_button.click()
    assert "Marianne" in sl.labels_drawn() and reader not in sl.labels_drawn()
    j = next(j for j, x in enumerate(tl.words) if x.text.strip(",.") == "close")
    panel.word_clicked(j)
    panel.word_edit.setText("clubs,")
    panel.correct_button.click()
    assert tl.words[j].text == "clubs,"
    synth = next(e for e in a.tagging.events if e.label == "Synthesizer")
    panel._event_clicked(synth)
    panel.delete_button.click()
    assert synth not in gl.visible_events()
    qtbot.waitUntil(lambda: not panel.saving(), timeout=10000)
    saved = json.loads(Path(str(path) + ".sonoscope.json").read_text())
    assert saved["names"] == {reader: "Marianne"} and len(saved["edits"]) == 3

    # export SDH SRT: the edits are in it
    panel.export(("srt",), True, folder=str(tmp_path / "out"))
    qtbot.waitUntil(lambda: panel.last_export is not None, timeout=10000)
    srt = " ".join(Path(panel.last_export[0]).read_text().split())  # lines joined
    assert "Marianne: Unless" in srt and "four of clubs" in srt and "[dog barking]" in srt and "[music]" in srt

    # the window with every lane (separated tracks: each speaker's stretches of the file, cut by the
    # truth, stand in for a separation, written as the separator writes them: 32-bit float WAV)
    import soundfile as sf

    tracks = tmp_path / "tracks"
    tracks.mkdir()
    x, sr = sf.read(path, dtype="float32")
    for k, who in ((1, "A"), (2, "B")):
        y = np.zeros_like(x)
        for s, e, spk, _ in truth["speech"]:
            if spk == who:
                y[int(s * sr):int(e * sr)] = x[int(s * sr):int(e * sr)]
        sf.write(tracks / f"speaker{k}.wav", y, sr, subtype="FLOAT")
    from engine.speakers.separate import SpeakerResult

    w.panels["SpeakersPanel"].separations[str(path)] = SpeakerResult(
        str(path), {f"speaker{k}": tracks / f"speaker{k}.wav" for k in (1, 2)}, 16000, a.duration)
    panel.show_current()
    fv.zoom(None)
    panel.search.set_text("amiable")
    fv.set_playhead(tl.words[k].start + 0.05)
    _lay_out_lanes(w)
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    shot = w.grab().toImage()
    shot.save(str(ARTIFACTS / "timeline_window.png"))
    fv.waveform.set_view(17.5, 24.0)
    QApplication.processEvents()
    fv.grab().toImage().save(str(ARTIFACTS / "timeline_zoomed.png"))
    assert panel.track_lane.tracks and len(panel.track_lane.rows) == 2
    assert "respectable" in tl.drawn_words() and "Marianne" in sl.labels_drawn()
    w.close()

    # reopen in a new window: every lane comes back from the sidecar, no model runs
    _no_models(monkeypatch)
    w2 = _window(qtbot, tmp_path / "second", monkeypatch)
    p2 = _panel(w2)
    select_file(w2, qtbot, path)
    qtbot.waitUntil(lambda: p2.analysis() is not None, timeout=20000)
    QApplication.processEvents()
    assert p2.analysis().reused and "clubs," in [x.text for x in p2.transcript_lane.words]
    assert "Marianne" in p2.speaker_lane.labels_drawn()
    assert synth.label not in {e.label for e in p2.tag_lane.visible_events()}
    assert not w2.ctx.jobs.jobs  # no job ran at all
    w2.close()


def test_a_changed_file_says_so_in_the_lane(qtbot, tmp_path, monkeypatch):
    from engine.results import Analysis
    from engine.timeline import project

    import soundfile as sf

    path = tmp_path / "a.wav"
    sf.write(path, np.zeros(16000, np.float32), 16000)
    project.save(Analysis(str(path), 1.0))
    sf.write(path, np.full(16000, 0.01, np.float32), 16000)
    w = _window(qtbot, tmp_path, monkeypatch)
    panel = _panel(w)
    select_file(w, qtbot, path)
    qtbot.waitUntil(lambda: str(path) not in panel.loading, timeout=10000)
    assert panel.analysis() is None
    assert "has changed since it was analysed" in panel.info.text()
    assert "no longer match" in panel.transcript_lane.button.text() and panel.transcript_lane.button.isEnabled()
    w.close()
