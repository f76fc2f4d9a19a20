"""The Speakers panel and the speaker lane in the running app (Qt offscreen), on a real conversation of two
real people (tests/voices.py: the LibriVox reader and the card-names speaker, TEST clips, with pauses).

Pixels are read from the lane as drawn (``grab()``, saved under tests/artifacts/); times are mapped to
pixels through the *waveform's* view box, so the checks also prove the lane shares its time axis.
Separation uses a fake SepFormer (the weights are a download): any callable with ``sample_rate`` and
``num_spks`` is a separation model for ``engine.speakers.separate``.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import numpy as np
import pytest

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

from PySide6.QtCore import QPoint, QPointF, Qt  # noqa: E402
from PySide6.QtGui import QImage  # noqa: E402
from PySide6.QtTest import QTest  # noqa: E402
from PySide6.QtWidgets import QApplication  # noqa: E402

import voices  # noqa: E402
from engine.audio import io as eaudio  # noqa: E402
from qtwindow import open_window, select_file  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
ARTIFACTS = ROOT / "tests" / "artifacts"
TOL = 10  # bars are filled with their speaker's exact colour

pytestmark = pytest.mark.skipif(not voices.available(), reason="pocketsphinx-testdata (the real voices) is missing")


@pytest.fixture(scope="module")
def talk(tmp_path_factory):
    """A, B, A, B, A, B: (16 kHz WAV path, reference turns [(start, end, "A"|"B")])."""
    audio, ref, _ = voices.conversation(voices.interleave(voices.TEST, "AB"), seed=2)
    path = tmp_path_factory.mktemp("speakers") / "two people.wav"
    eaudio.save(path, audio, voices.RATE)
    return path, ref


@pytest.fixture
def window(qtbot, tmp_path, monkeypatch):
    """The main window with an empty model store (the GE2E encoder is an offline pack: it is there)."""
    monkeypatch.setenv("SONOSCOPE_OFFLINE", "1")
    w = open_window(qtbot, tmp_path, monkeypatch)
    yield w
    w.close()


def _panel(window):
    panel = window.panels["SpeakersPanel"]
    assert type(panel).__name__ == "SpeakersPanel", panel  # not an error placeholder
    return panel


def find_speakers(window, qtbot, path, count=2):
    panel = _panel(window)
    select_file(window, qtbot, path)
    qtbot.waitUntil(lambda: panel.installed is not None, timeout=20000)
    panel.count.setCurrentIndex(panel.count.findData(count))
    assert panel.find_button.isEnabled()
    panel.find_button.click()
    assert str(path) in panel.jobs and not panel.find_button.isEnabled()
    qtbot.waitUntil(lambda: str(path) in panel.turns or str(path) in panel.errors, timeout=180000)
    assert str(path) in panel.turns, panel.errors
    QApplication.processEvents()
    return panel, panel.turns[str(path)]


def _rgb(speaker: str) -> tuple[int, int, int]:
    from app.widgets.speaker_lane import speaker_color

    c = speaker_color(speaker)
    return c.red(), c.green(), c.blue()


def _pixel(img: QImage, x: float, y: float) -> tuple[int, int, int]:
    c = img.pixelColor(int(round(x)), int(round(y)))
    return c.red(), c.green(), c.blue()


def _near(a, b, tol=TOL) -> bool:
    return all(abs(p - q) < tol for p, q in zip(a, b))


def _lane_x(window, t: float) -> float:
    """The lane's x pixel of time ``t``, found through the waveform's view box (the shared time axis)."""
    wf = window.file_view.waveform
    lane = _panel(window).lane
    vb = wf.getPlotItem().getViewBox()
    x = wf.mapFromScene(vb.mapViewToScene(QPointF(t, 0))).x()
    return lane.mapFromGlobal(wf.mapToGlobal(QPoint(int(round(x)), 0))).x()


def _hyp(turns):
    return [(t.start, t.end, t.speaker) for t in turns]


# -- tests ------------------------------------------------------------------------------------------


def test_find_two_speakers_draws_their_turns(window, qtbot, talk):
    """Find speakers (2) on a real conversation: two rows in the lane, each reference turn's middle is drawn
    in its speaker's colour in that speaker's row (and not in the other's); the pauses between turns are empty."""
    path, ref = talk
    panel, turns = find_speakers(window, qtbot, path, 2)
    d = voices.der(ref, _hyp(turns))
    assert d["der"] <= 0.15, d
    mapping = {r: h for h, r in d["mapping"].items()}  # "A" -> "S1"
    assert mapping == {"A": "S1", "B": "S2"}  # labels in order of first appearance; A speaks first

    fv, lane = window.file_view, panel.lane
    assert lane in fv.lanes and fv.isAncestorOf(lane) and lane.isVisible()
    assert lane.button.isHidden() and lane.speakers == ["S1", "S2"]
    assert sum(abs(a - b) for a, b in zip(_rgb("S1"), _rgb("S2"))) > 150  # one colour per speaker, far apart
    assert lane.view_range() == pytest.approx(fv.waveform.view_range(), abs=1e-6)
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    img = lane.grab().toImage()
    img.save(str(ARTIFACTS / "speakers_lane.png"))
    fv.grab().toImage().save(str(ARTIFACTS / "speakers_file_view.png"))
    for start, end, spk in ref:
        mine, other = mapping[spk], mapping["B" if spk == "A" else "A"]
        x = _lane_x(window, (start + end) / 2)
        assert _near(_pixel(img, x, lane.row_center(lane.row_of(mine))), _rgb(mine)), (start, end, spk)
        assert not _near(_pixel(img, x, lane.row_center(lane.row_of(other))), _rgb(other), 40), (start, end, spk)
    for (_, e0, _), (s1, _, _) in zip(ref, ref[1:]):  # between turns (a pause of 0.6 s or more): no bar
        if s1 - e0 >= 0.8:
            x = _lane_x(window, (e0 + s1) / 2)
            for spk in ("S1", "S2"):
                assert not _near(_pixel(img, x, lane.row_center(lane.row_of(spk))), _rgb(spk), 40), (e0, s1)
    # the speaker list: both speakers, their talk time and turns
    rows = panel.speaker_rows()
    assert rows == [("S1", "S1"), ("S2", "S2")]
    assert panel.list.topLevelItem(0).text(3) == str(sum(t.speaker == "S1" for t in turns))


def test_auto_count_finds_the_two_speakers(window, qtbot, talk):
    """Speakers: Auto estimates the count: two speakers, turns where the reference has them."""
    path, ref = talk
    panel, turns = find_speakers(window, qtbot, path, 0)
    assert panel.count.currentText().startswith("Auto")
    assert panel.lane.speakers == ["S1", "S2"] and len(panel.speaker_rows()) == 2
    assert voices.der(ref, _hyp(turns))["der"] <= 0.15


def test_renaming_a_speaker_shows_the_name_in_the_lane_and_list(window, qtbot, talk, tmp_path, monkeypatch):
    """Renaming S1 to "Alice" in the list: the lane's bars carry "Alice", hovering a turn says "Alice", the list
    shows it; the names are kept with the file (another file has its own lane); a click on a turn plays it."""
    path, ref = talk
    # a copy: a rename is saved in a sidecar beside the audio (the Timeline panel), which the module's other tests
    # must not reopen
    path = Path(shutil.copy(path, tmp_path / path.name))
    panel, turns = find_speakers(window, qtbot, path, 2)
    lane = panel.lane
    item = panel.list.topLevelItem(0)
    assert item.data(0, Qt.ItemDataRole.UserRole) == "S1" and item.flags() & Qt.ItemFlag.ItemIsEditable
    item.setText(0, "Alice")  # what the list's editor does when a name is typed
    QApplication.processEvents()
    assert panel.speaker_rows()[0] == ("Alice", "S1")
    assert panel.speaker_names() == {"S1": "Alice"}
    drawn = lane.labels_drawn()
    assert drawn == ["Alice" if t.speaker == "S1" else "S2" for t in lane.turns]
    grabbed = lane.grab().toImage()
    grabbed.save(str(ARTIFACTS / "speakers_lane_renamed.png"))

    s1 = max((t for t in turns if t.speaker == "S1"), key=lambda t: t.duration)
    pos = QPoint(int(lane.x_of((s1.start + s1.end) / 2)), int(lane.row_center(lane.row_of("S1"))))
    assert lane.event_at(QPointF(pos)) is s1
    QTest.mouseMove(lane.viewport(), pos)
    qtbot.waitUntil(lambda: "Alice" in lane.hover_text, timeout=3000)
    assert "S1" not in lane.hover_text and "0:0" in lane.hover_text and f"{s1.duration:.2f} s" in lane.hover_text

    # a click plays the file from the turn's start (no output device in tests: the playhead goes there)
    QTest.mouseClick(lane.viewport(), Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier, pos)
    assert window.file_view.waveform.playhead.value() == pytest.approx(s1.start)
    p, calls = window.ctx.player, []
    monkeypatch.setattr(p, "available", True)
    monkeypatch.setattr(p, "play_file", lambda path, start=0.0: calls.append((str(path), start)))
    QTest.mouseClick(lane.viewport(), Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier, pos)
    assert calls == [(str(path), s1.start)]

    # another file: its own (empty) lane, with the action that fills it; back: Alice again
    other = tmp_path / "one voice.wav"
    eaudio.save(other, voices.clip(voices.TEST["B"][0]), voices.RATE)
    select_file(window, qtbot, other)
    assert lane.turns == [] and panel.speaker_rows() == []
    assert not lane.button.isHidden() and "Find speakers" in lane.button.text()
    window.file_list.add_paths([path])
    qtbot.waitUntil(lambda: window.ctx.current_path == Path(path), timeout=10000)
    assert panel.speaker_rows()[0] == ("Alice", "S1") and "Alice" in lane.labels_drawn()
    # an empty name gives the label back
    panel.list.topLevelItem(0).setText(0, "")
    assert panel.speaker_rows()[0] == ("S1", "S1") and "Alice" not in lane.labels_drawn()


def test_separate_without_weights_offers_the_download(window, qtbot, talk):
    """No SepFormer weights (a hub download): Separate shows "SepFormer weights are not installed: Download
    (113 MB)" and starts no job; Download is a job that fails offline, and the panel says so."""
    path, _ = talk
    panel = _panel(window)
    select_file(window, qtbot, path)
    qtbot.waitUntil(lambda: panel.installed is not None, timeout=20000)
    assert panel.encoder_ready() and panel.encoder_note.isHidden()  # GE2E: the offline pack
    jobs = len(window.ctx.jobs.jobs)
    panel.separate_button.click()
    assert panel.sep_job is None and len(window.ctx.jobs.jobs) == jobs
    assert not panel.missing.isHidden()
    assert panel.missing_label.text() == "SepFormer weights are not installed: Download (113 MB)"
    assert panel.download_button.isEnabled()
    panel.download_button.click()
    assert any("Download sepformer-wsj02mix" in j.name for j in window.ctx.jobs.jobs)  # a job (offline: fails at once)
    qtbot.waitUntil(lambda: panel.download_job is None, timeout=60000)
    assert "Download failed" in panel.sep_status.text()
    assert not panel.missing.isHidden() and panel.download_button.isEnabled()
    assert "not installed" in panel.missing_label.text()


def test_missing_encoder_is_reported(qtbot, tmp_path, monkeypatch, talk):
    """Without the GE2E pack the panel and the lane say so, and Find speakers is off."""
    import app.panels.speakers_panel as sp

    monkeypatch.setattr(sp, "installed_models", lambda: {sp.ENCODER: (False, "GE2E", 16.3),
                                                         sp.SEPARATOR: (False, "SepFormer", 113.0)})
    monkeypatch.setenv("SONOSCOPE_OFFLINE", "1")
    window = open_window(qtbot, tmp_path, monkeypatch)
    try:
        panel = _panel(window)
        select_file(window, qtbot, talk[0])
        qtbot.waitUntil(lambda: panel.installed is not None, timeout=20000)
        assert not panel.encoder_note.isHidden() and "resemblyzer" in panel.encoder_note.text()
        assert not panel.find_button.isEnabled()
        assert "speaker encoder is not installed" in panel.lane.button.text()
        assert panel.find() is None
    finally:
        window.close()


class FakeSepFormer:
    """A separation model: (batch, n) at 8 kHz -> (batch, 2, n): the mix, and minus half the mix."""

    sample_rate = 8000
    num_spks = 2

    def __call__(self, x):
        import torch

        return torch.stack([x, -0.5 * x], dim=1)


def test_separated_tracks_play_in_the_stem_player_and_export(window, qtbot, talk, tmp_path):
    """With a separation model given, Separate writes one track per speaker; they show in the stem player
    (solo / mute / volume) and the ticked ones export to <folder>/<track>/speakerK.wav."""
    path, _ = talk
    panel = _panel(window)
    select_file(window, qtbot, path)
    qtbot.waitUntil(lambda: panel.installed is not None, timeout=20000)
    panel.reveal()  # the panel's tab in front
    panel.separator_model = FakeSepFormer()
    panel._update()
    assert panel.missing.isHidden()
    panel.separate_button.click()
    assert panel.sep_job is not None
    qtbot.waitUntil(lambda: panel.sep_job is None, timeout=120000)
    r = panel.separations.get(str(path))
    assert r is not None, panel.sep_status.text()
    player = panel.player
    assert [t.name for t in player.tracks] == ["speaker1", "speaker2"] and all(t.isVisible() for t in player.tracks)
    assert player.play_button.isEnabled() and "2 speaker tracks" in panel.sep_status.text()
    QApplication.processEvents()
    panel.grab().toImage().save(str(ARTIFACTS / "speakers_panel_separated.png"))
    frames = eaudio.info(path).frames
    one, two = (np.asarray(player.stems[n])[:, 0] for n in ("speaker1", "speaker2"))
    assert len(one) == len(two) == frames and np.abs(one).max() > 0.05
    assert np.allclose(two, -0.5 * one, atol=1e-4)  # each track is the model's output of its own
    player.tracks[1].solo.setChecked(True)
    assert player.gains() == {"speaker1": 0.0, "speaker2": 1.0}
    assert np.allclose(player.mix()[0], two, atol=1e-6)
    player.tracks[1].solo.setChecked(False)
    player.tracks[0].mute.setChecked(True)
    player.tracks[1].volume.setValue(50)
    assert np.allclose(player.mix()[0], 0.5 * two, atol=1e-6)

    player.tracks[1].export.setChecked(False)
    out = tmp_path / "exports"
    assert panel.export_button.isEnabled()
    panel.export(out)
    qtbot.waitUntil(lambda: panel.export_job is None, timeout=30000)
    assert panel.last_export is not None
    assert list(panel.last_export) == ["speaker1"]
    written = panel.last_export["speaker1"]
    assert written == out / "two people" / "speaker1.wav" and written.exists()
    y, sr = eaudio.load(written, mono=True)
    assert sr == voices.RATE and np.allclose(y[:frames], one, atol=1e-4)
