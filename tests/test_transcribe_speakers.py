"""Speakers in the Transcribe panel (Qt offscreen): every line labelled with who said it, by the names given
in the Speakers panel; turns found in one panel are used by the other (``ctx.speakers``). Real conversation
of two real people (tests/voices.py), real offline Whisper tiny.en and the real GE2E encoder."""

from __future__ import annotations

import os
import re
import shutil
from pathlib import Path

import pytest

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

from PySide6.QtWidgets import QApplication  # noqa: E402

import voices  # noqa: E402
from qtwindow import select_file  # noqa: E402
from test_speakers_panel import ARTIFACTS, find_speakers, talk, window  # noqa: E402,F401  (fixtures)

pytestmark = pytest.mark.skipif(not voices.available(), reason="pocketsphinx-testdata (the real voices) is missing")


def _rows(panel):
    return [[panel.segments.topLevelItem(i).text(c) for c in range(5)]
            for i in range(panel.segments.topLevelItemCount())]


def _truth(ref, start: str, end: str) -> str:
    """The reference speaker talking most between two clock strings (m:ss.ss)."""
    def secs(s):
        m, x = s.split(":")
        return int(m) * 60 + float(x)
    a, b = secs(start), secs(end)
    talk = {}
    for ra, rb, who in ref:
        talk[who] = talk.get(who, 0.0) + max(0.0, min(b, rb) - max(a, ra))
    return max(talk, key=talk.get)


def _transcribe(window, qtbot, panel, path, mode: str):
    panel.speakers.setCurrentIndex(panel.speakers.findData(mode))
    panel.model.setCurrentIndex(panel.model.findData("whisper-tiny.en"))
    window.ctx.set_selection([path])
    jobs = panel.run()
    assert len(jobs) == 1
    qtbot.waitUntil(lambda: jobs[0].finished is not None, timeout=180000)
    assert jobs[0].status.value == "done", jobs[0].error
    return jobs[0]


def test_lines_carry_the_names_given_in_the_speakers_panel(window, qtbot, talk, tmp_path):
    path, ref = talk
    # a copy: a rename is saved in a sidecar beside the audio (the Timeline panel), which the module's other tests
    # must not reopen
    path = Path(shutil.copy(path, tmp_path / path.name))
    speakers, _ = find_speakers(window, qtbot, path, 2)
    speakers.list.topLevelItem(0).setText(0, "Alice")  # S1 is A (speaks first)
    QApplication.processEvents()
    panel = window.panels["TranscribePanel"]
    submitted = []
    orig = window.ctx.submit
    window.ctx.submit = lambda name, *a, **k: (submitted.append(name), orig(name, *a, **k))[1]
    _transcribe(window, qtbot, panel, path, "2")
    assert not any(n.startswith("Find speakers") for n in submitted), submitted  # the panel's turns are reused
    rows = _rows(panel)
    assert len(rows) >= 6 and {r[3] for r in rows} == {"Alice", "S2"}
    for _, start, end, who, text in rows:
        assert {"A": "Alice", "B": "S2"}[_truth(ref, start, end)] == who, (start, end, who, text)
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    i = window.tabs.indexOf(panel)
    if i >= 0:
        window.tabs.setCurrentIndex(i)
    QApplication.processEvents()
    assert window.grab().save(str(ARTIFACTS / "transcribe_speakers.png"))

    # a rename in the Speakers panel shows at once; the export carries the names
    speakers.list.topLevelItem(1).setText(0, "Bob")
    QApplication.processEvents()
    assert {r[3] for r in _rows(panel)} == {"Alice", "Bob"}
    srt = panel.export("srt", tmp_path / "talk.srt").read_text()
    cues = re.findall(r"\n(\w+): ", "\n" + srt)
    assert set(cues) == {"Alice", "Bob"} and len(cues) >= 6
    txt = panel.export("txt", tmp_path / "talk.txt").read_text()
    assert txt.startswith("Alice: ")


def test_finding_speakers_from_the_transcribe_panel_fills_the_speaker_lane(window, qtbot, talk):
    path, ref = talk
    select_file(window, qtbot, path)
    panel = window.panels["TranscribePanel"]
    _transcribe(window, qtbot, panel, path, "auto")
    book = window.ctx.speakers
    qtbot.waitUntil(lambda: str(path) in book.turns, timeout=180000)  # the speaker finder ran after it
    QApplication.processEvents()
    rows = _rows(panel)
    assert {r[3] for r in rows} == {"S1", "S2"}
    lane = window.panels["SpeakersPanel"].lane
    assert lane.speakers == ["S1", "S2"] and lane.turns == book.turns[str(path)]
    # "No" again: the next transcript has no speakers
    _transcribe(window, qtbot, panel, path, "off")
    assert {r[3] for r in _rows(panel)} == {""}
