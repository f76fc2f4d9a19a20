"""A speaker renamed in the Speakers panel (ctx.speakers) is saved in the file's sidecar like the
Timeline panel's own edits (off the GUI thread, atomically), and a reopened window shows the name
in every lane and export with no model run. No models here: the results are a sidecar written
beforehand (as ``analyze`` writes it) or turns handed to ctx.speakers (as Find speakers does)."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
from PySide6.QtCore import Qt  # noqa: E402
from PySide6.QtWidgets import QApplication  # noqa: E402

from engine.results import Analysis, Segment, SpeakerTurn, Transcript, Word  # noqa: E402
from engine.timeline import project  # noqa: E402
from qtwindow import import_panels, open_window  # noqa: E402
from test_timeline import _no_models  # noqa: E402

import_panels()  # before any test stubs the model entry points the panels import

TURNS = [SpeakerTurn(0.2, 2.0, "S1"), SpeakerTurn(2.4, 4.0, "S2"), SpeakerTurn(4.3, 5.6, "S1")]


def _audio(tmp_path) -> Path:
    path = tmp_path / "talk.wav"
    rng = np.random.default_rng(0)
    sf.write(path, (0.1 * rng.standard_normal(16000 * 6)).astype(np.float32), 16000)
    return path


def _analysed(path: Path) -> Analysis:
    spec = [(" Unless", 0.3, 0.8, "S1"), (" you", 0.8, 1.0, "S1"), (" go.", 1.0, 1.6, "S1"),
            (" I", 2.5, 2.7, "S2"), (" stay.", 2.7, 3.4, "S2"), (" Fine.", 4.4, 5.0, "S1")]
    ws = [Word(t, s, e, 0.9, spk) for t, s, e, spk in spec]
    segs = [Segment(0.3, 1.6, "".join(w.word for w in ws[:3]), ws[:3], speaker="S1"),
            Segment(2.5, 3.4, "".join(w.word for w in ws[3:5]), ws[3:5], speaker="S2"),
            Segment(4.4, 5.0, ws[5].word, ws[5:], speaker="S1")]
    from engine.timeline.analyze import requested

    models, options = requested()
    return Analysis(str(path), 6.0, Transcript(segs, "en", 6.0), list(TURNS), None, models=models, options=options)


def _panels(w):
    tp, sp = w.panels["TimelinePanel"], w.panels["SpeakersPanel"]
    assert type(tp).__name__ == "TimelinePanel" and type(sp).__name__ == "SpeakersPanel", (tp, sp)
    return tp, sp


def _open(qtbot, tmp_path, monkeypatch, path):
    w = open_window(qtbot, tmp_path, monkeypatch)
    tp, sp = _panels(w)
    w.file_list.add_paths([path])
    qtbot.waitUntil(lambda: w.ctx.current_path == Path(path), timeout=10000)
    qtbot.waitUntil(lambda: str(path) not in tp.loading, timeout=10000)
    QApplication.processEvents()
    return w, tp, sp


def _rename_in_list(sp, label: str, name: str) -> None:
    """Type a name in the Speakers panel's list, as its editor does."""
    rows = [sp.list.topLevelItem(i) for i in range(sp.list.topLevelItemCount())]
    item = next(it for it in rows if it.data(0, Qt.ItemDataRole.UserRole) == label)
    item.setText(0, name)


def _saved(path: Path) -> dict:
    return json.loads(project.sidecar_path(path).read_text(encoding="utf-8"))


def test_a_speakers_panel_rename_is_saved_and_comes_back_in_every_lane_and_export(qtbot, tmp_path, monkeypatch):
    path = _audio(tmp_path)
    project.save(_analysed(path))
    _no_models(monkeypatch)
    w, tp, sp = _open(qtbot, tmp_path / "first", monkeypatch, path)
    assert tp.analysis() is not None and tp.analysis().reused
    assert sp.speaker_rows() == [("S1", "S1"), ("S2", "S2")]  # the sidecar's turns are in the Speakers panel
    _rename_in_list(sp, "S1", "Marianne")
    assert "Marianne" in sp.lane.labels_drawn()  # the Speakers panel shows it at once
    qtbot.waitUntil(lambda: _saved(path)["names"] == {"S1": "Marianne"}, timeout=10000)
    qtbot.waitUntil(lambda: not tp.saving(), timeout=10000)
    saved = _saved(path)
    assert saved["edits"] == [{"op": "rename_speaker", "speaker": "S1", "from": "S1", "to": "Marianne"}]
    assert saved["transcript"]["segments"][0]["speaker"] == "S1"  # labels stay; the name is applied on show/export
    # the Timeline panel's own view of it: its speaker box and the transcript lane's hover text
    assert tp.analysis().names == {"S1": "Marianne"}
    assert [tp.speaker_box.itemText(i) for i in range(tp.speaker_box.count())] == ["S1 (Marianne)", "S2"]
    assert tp.transcript_lane.speaker_of(0) == "Marianne" and tp.transcript_lane.speaker_of(3) == "S2"
    # a second rename of the same speaker, then back and forth: the last one is what the file keeps
    _rename_in_list(sp, "S2", "Elinor")
    _rename_in_list(sp, "S1", "")  # an empty name: the label again
    _rename_in_list(sp, "S1", "Marianne Dashwood")
    qtbot.waitUntil(lambda: len(_saved(path)["edits"]) == 4 and not tp.saving(), timeout=10000)
    assert _saved(path)["names"] == {"S1": "Marianne Dashwood", "S2": "Elinor"}
    assert not list(tmp_path.glob("*.tmp*")) and not list(tmp_path.glob(".*.tmp*"))  # atomic: no leftovers
    assert not w.ctx.jobs.jobs  # no job, no model
    w.close()

    # a new window: reopened from the sidecar, no model runs; the names are in every lane and export
    w2, tp2, sp2 = _open(qtbot, tmp_path / "second", monkeypatch, path)
    a = tp2.analysis()
    assert a is not None and a.reused and a.names == {"S1": "Marianne Dashwood", "S2": "Elinor"}
    assert tp2.speaker_lane is sp2.lane
    assert sp2.lane.labels_drawn() == ["Marianne Dashwood", "Elinor", "Marianne Dashwood"]
    assert sp2.speaker_rows() == [("Marianne Dashwood", "S1"), ("Elinor", "S2")]
    assert tp2.transcript_lane.speaker_of(0) == "Marianne Dashwood"
    assert w2.ctx.speakers.names_of(str(path)) == {"S1": "Marianne Dashwood", "S2": "Elinor"}  # Transcribe panel's
    for sdh, folder in ((False, "plain"), (True, "sdh")):
        tp2.last_export = None
        tp2.export(("srt",), sdh, folder=str(tmp_path / folder))
        qtbot.waitUntil(lambda: tp2.last_export is not None, timeout=10000)
        srt = " ".join(Path(tp2.last_export[0]).read_text(encoding="utf-8").split())
        assert "Marianne Dashwood: Unless you go." in srt and "Elinor: I stay." in srt, srt
        assert "S1" not in srt and "S2" not in srt
    assert not w2.ctx.jobs.jobs
    w2.close()


def test_names_of_speakers_found_without_an_analysis_get_a_sidecar_of_their_own(qtbot, tmp_path, monkeypatch):
    """Find speakers (Speakers panel) on a file never analysed, rename one: the sidecar keeps the turns
    and the name; reopening shows them; Analyse is still offered for the words."""
    path = _audio(tmp_path)
    _no_models(monkeypatch)
    w, tp, sp = _open(qtbot, tmp_path / "first", monkeypatch, path)
    assert tp.analysis() is None and not project.sidecar_path(path).exists()
    w.ctx.speakers.set_turns(str(path), TURNS)  # what the Speakers panel's Find speakers does with its result
    QApplication.processEvents()
    assert sp.speaker_rows() == [("S1", "S1"), ("S2", "S2")]
    _rename_in_list(sp, "S2", "Elinor")
    qtbot.waitUntil(lambda: project.sidecar_path(path).exists() and not tp.saving(), timeout=10000)
    saved = _saved(path)
    assert saved["names"] == {"S2": "Elinor"} and saved["transcript"] is None and saved["tagging"] is None
    assert [(t["start"], t["end"], t["speaker"]) for t in saved["turns"]] == \
        [(t.start, t.end, t.speaker) for t in TURNS]
    assert saved["duration"] == pytest.approx(6.0) and saved["models"] == {"speakers": "ge2e-resemblyzer"}
    assert project.status(path)[0] == "valid"
    # Find speakers again (another count): the new turns replace the saved ones, the name stays
    again = [SpeakerTurn(0.2, 3.0, "S1"), SpeakerTurn(3.2, 5.6, "S2")]
    w.ctx.speakers.set_turns(str(path), again)
    qtbot.waitUntil(lambda: len(_saved(path)["turns"]) == 2 and not tp.saving(), timeout=10000)
    assert _saved(path)["names"] == {"S2": "Elinor"}
    w.close()

    w2, tp2, sp2 = _open(qtbot, tmp_path / "second", monkeypatch, path)
    assert tp2.analysis() is not None and tp2.analysis().reused
    assert sp2.lane.labels_drawn() == ["S1", "Elinor"]
    assert tp2.analyse_button.isEnabled() and tp2.transcript_lane.button.text().startswith("Analyse")
    assert not w2.ctx.jobs.jobs
    w2.close()


def test_a_changed_files_sidecar_is_not_replaced_by_a_rename(qtbot, tmp_path, monkeypatch):
    path = _audio(tmp_path)
    project.save(_analysed(path))
    before = project.sidecar_path(path).read_bytes()
    sf.write(path, np.zeros(16000 * 6, np.float32), 16000)  # the audio changed since
    _no_models(monkeypatch)
    w, tp, sp = _open(qtbot, tmp_path / "first", monkeypatch, path)
    assert tp.analysis() is None and tp.sidecar_state[str(path)] == "changed"
    w.ctx.speakers.set_turns(str(path), TURNS)
    QApplication.processEvents()
    _rename_in_list(sp, "S1", "Marianne")
    QApplication.processEvents()
    qtbot.wait(100)
    assert not tp.saving() and project.sidecar_path(path).read_bytes() == before
    assert "Marianne" in sp.lane.labels_drawn()  # the session still shows the name
    w.close()
