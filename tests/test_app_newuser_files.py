"""Issue 13, "files and exports like a desktop app" (pytest-qt, QFileDialog replaced):

- File → Export, transcripts, stems and a live session ask where to save; the first dialog opens in
  the session folder, the next ones where the last export went; exports are named apart from
  their source; a cancelled dialog writes nothing;
- File → Open starts in the current file's folder (or the last one used, or home: never the
  program's folder); File → Open Recent lists what was opened and survives a restart;
- Models → Open folder shows the path (selectable, on the clipboard) where no file manager opens;
- the Recording dock, once closed, comes back from the View menu (also after a restart).
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
from PySide6.QtCore import QSettings  # noqa: E402
from PySide6.QtWidgets import QApplication, QFileDialog  # noqa: E402

from app import settings as S  # noqa: E402
from qtwindow import make_settings, open_window  # noqa: E402


@pytest.fixture
def window(qtbot, tmp_path, monkeypatch):
    w = open_window(qtbot, tmp_path, monkeypatch)
    yield w
    w.close()


class SaveDialog:
    """Stands in for QFileDialog.getSaveFileName: records (caption, start path, filters), answers in turn."""

    def __init__(self, monkeypatch, *answers):
        self.asked, self.answers = [], list(answers)
        monkeypatch.setattr(QFileDialog, "getSaveFileName", self)

    def __call__(self, parent, caption, start, filters=""):
        self.asked.append((caption, start, filters))
        return (str(self.answers.pop(0)) if self.answers else "", "")


def speech(tmp_path, name="speech.wav", seconds=1.0):
    p = tmp_path / "in" / name
    p.parent.mkdir(exist_ok=True)
    sf.write(str(p), (0.3 * np.sin(np.arange(int(16000 * seconds)) * 0.05)).astype(np.float32), 16000)
    return p


def select(window, qtbot, path):
    window.file_list.add_paths([path])
    qtbot.waitUntil(lambda: window.ctx.current_path == path, timeout=5000)


def test_file_export_asks_where_remembers_and_names_apart(window, qtbot, tmp_path, monkeypatch):
    src = speech(tmp_path)
    select(window, qtbot, src)
    session, elsewhere = tmp_path / "session", tmp_path / "exports"
    elsewhere.mkdir()
    dialog = SaveDialog(monkeypatch, elsewhere / "speech (export).wav", "", elsewhere / "part.flac")
    job = window.export()
    caption, start, filters = dialog.asked[0]
    assert start == str(session / "speech (export).wav")  # the session folder, a name unlike the source's
    assert filters.startswith("WAV audio (*.wav)") and "FLAC audio (*.flac)" in filters
    qtbot.waitUntil(lambda: job.finished is not None, timeout=5000)
    out = elsewhere / "speech (export).wav"
    assert job.result == str(out) and sf.info(str(out)).frames == 16000
    # it joins the list under a name that tells it from speech.wav
    fl = window.file_list
    qtbot.waitUntil(lambda: any(r["path"] == str(out) for r in fl.rows()), timeout=5000)
    assert sorted(Path(r["path"]).name for r in fl.rows()) == ["speech (export).wav", "speech.wav"]
    # the next dialog opens where the last export went; Cancel exports nothing
    n_jobs = len(window.ctx.jobs.jobs)
    fl.select_path(str(src))
    assert window.export() is None and len(window.ctx.jobs.jobs) == n_jobs
    assert dialog.asked[1][1] == str(elsewhere / "speech (export).wav")
    # a range, typed as .flac: its name says the range, the name typed says the format
    window.file_view.waveform.set_selection(0.25, 0.75)
    job = window.export()
    assert dialog.asked[2][1] == str(elsewhere / "speech 0.25-0.75 s.wav")
    qtbot.waitUntil(lambda: job.finished is not None, timeout=5000)
    info = sf.info(job.result)
    assert job.result == str(elsewhere / "part.flac") and info.format == "FLAC" and info.frames == 8000
    assert window.ctx.settings.get(S.LAST_EXPORT_DIR) == str(elsewhere)


def test_export_refuses_to_overwrite_its_source(window, qtbot, tmp_path, monkeypatch):
    src = speech(tmp_path)
    select(window, qtbot, src)
    SaveDialog(monkeypatch, src)
    job = window.export()
    qtbot.waitUntil(lambda: job.finished is not None, timeout=5000)
    assert job.status.value == "failed" and "cannot export a file onto itself" in job.error
    assert sf.info(str(src)).frames == 16000


def test_transcript_stems_and_live_session_ask_where_to_save(window, qtbot, tmp_path, monkeypatch):
    from engine.results import Segment, Transcript

    src = speech(tmp_path)
    select(window, qtbot, src)
    folder = tmp_path / "mine"
    folder.mkdir()
    # transcript: the session folder first, "<file>.srt"
    panel = window.panels["TranscribePanel"]
    panel.transcripts[str(src)] = Transcript([Segment(0.0, 0.8, " Hello there.")], "en", 1.0, source=str(src))
    dialog = SaveDialog(monkeypatch, folder / "speech.srt", "")
    out = panel.export("srt")
    assert dialog.asked[0][1] == str(tmp_path / "session" / "speech.srt") and "Subtitles (*.srt)" in dialog.asked[0][2]
    assert out == folder / "speech.srt" and "Hello there." in out.read_text()
    assert panel.export("srt") is None  # cancelled: nothing written
    assert dialog.asked[1][1] == str(folder / "speech.srt")
    # stems: a folder dialog, starting where the last export went
    stems = window.panels["StemsPanel"]
    work = tmp_path / "work"
    work.mkdir()
    for name in ("vocals", "accompaniment"):
        sf.write(str(work / f"{name}.wav"), np.zeros((4410, 2), np.float32) + 0.1, 44100, subtype="FLOAT")
    from engine.stems.separate import StemResult

    stems.result = StemResult("speech", {n: work / f"{n}.wav" for n in ("vocals", "accompaniment")}, 44100, 0.1)
    monkeypatch.setattr(stems.player, "chosen", lambda: ["vocals"])
    asked = []
    monkeypatch.setattr(QFileDialog, "getExistingDirectory",
                        lambda parent, caption, start: (asked.append(start), str(folder))[1])
    stems.export()
    assert asked == [str(folder)]
    qtbot.waitUntil(lambda: stems.export_job is None and (folder / "speech" / "vocals.wav").exists(), timeout=20000)
    assert not (folder / "speech" / "accompaniment.wav").exists()
    # live session: the audio where the dialog says, its transcript beside it
    live = window.panels["LivePanel"]
    live.result = {"audio": np.zeros(16000, np.float32), "sample_rate": 16000, "words": [],
                   "transcript": Transcript([Segment(0.0, 0.5, " hi")], "en", 1.0)}
    dialog = SaveDialog(monkeypatch, folder / "meeting.wav")
    paths = live.save_session()
    assert dialog.asked[0][1].startswith(str(folder / "Live ")) and dialog.asked[0][1].endswith(".wav")
    assert paths == [folder / "meeting.wav", folder / "meeting.txt", folder / "meeting.srt", folder / "meeting.json"]
    assert json.loads(paths[3].read_text())["text"].strip() == "hi"


def test_open_starts_where_the_user_works_and_recent_files_persist(qtbot, tmp_path, monkeypatch):
    st = make_settings(tmp_path)
    w = open_window(qtbot, tmp_path, monkeypatch, settings=st)
    asked = []
    first, second = speech(tmp_path, "first.wav"), speech(tmp_path / "in", "second.wav")

    def open_names(parent, caption, start, filters):
        asked.append(start)
        return ([str(first)] if len(asked) == 1 else []), ""

    monkeypatch.setattr(QFileDialog, "getOpenFileNames", open_names)
    monkeypatch.chdir(tmp_path / "in")  # the program's folder must not be where Open starts
    w.open_files()
    assert asked[0] == str(Path.home())  # nothing opened yet, no last folder: home
    qtbot.waitUntil(lambda: w.ctx.current_path == first, timeout=5000)
    w.add_paths([second])  # as a drop or the command line does
    qtbot.waitUntil(lambda: w.ctx.current_path == second, timeout=5000)
    w.open_files()
    assert asked[1] == str(second.parent)  # the current file's folder
    # File → Open Recent: newest first, each opens its file
    w.fill_recent_menu()
    items = [a for a in w.recent_menu.actions() if a.data()]
    assert [a.data() for a in items] == [str(second), str(first)]
    assert [a.text() for a in items] == ["&1 second.wav", "&2 first.wav"]
    assert w.recent_menu.menuAction() in w.menus["File"].actions()
    w.close()
    # after a restart the list is still there
    st2 = S.Settings(QSettings(str(tmp_path / "settings.ini"), QSettings.Format.IniFormat))
    w2 = open_window(qtbot, tmp_path, monkeypatch, settings=st2)
    w2.fill_recent_menu()
    items = [a for a in w2.recent_menu.actions() if a.data()]
    assert [a.data() for a in items] == [str(second), str(first)]
    items[1].trigger()
    qtbot.waitUntil(lambda: w2.ctx.current_path == first, timeout=5000)
    assert st2.get(S.RECENT_FILES) == [str(first), str(second)]  # opened again: on top
    clear = [a for a in w2.recent_menu.actions() if a.text() == "&Clear recent files"][0]
    clear.trigger()
    assert st2.get(S.RECENT_FILES) == []
    w2.close()


def test_models_open_folder_shows_the_path_where_no_file_manager_opens(window, qtbot, monkeypatch):
    from PySide6.QtCore import Qt
    from PySide6.QtGui import QDesktopServices

    opened = []
    monkeypatch.setattr(QDesktopServices, "openUrl", lambda url: opened.append(url.toLocalFile()) or False)
    panel = window.panels["ModelsPanel"]
    panel.refresh()
    qtbot.waitUntil(lambda: any(panel.tree.topLevelItem(i).text(5) == "silero-vad"
                                for i in range(panel.tree.topLevelItemCount())), timeout=5000)
    for i in range(panel.tree.topLevelItemCount()):
        panel.tree.topLevelItem(i).setSelected(panel.tree.topLevelItem(i).text(5) == "silero-vad")
    assert panel.buttons["Open folder"].isEnabled()
    panel.open_folder()
    folder = opened[0]
    assert folder and Path(folder).is_dir()
    assert panel.info.text() == f"No file manager could be opened. silero-vad is in {folder} (path copied to the clipboard)"
    assert panel.info.textInteractionFlags() & Qt.TextInteractionFlag.TextSelectableByMouse
    assert QApplication.clipboard().text() == folder


def test_recording_dock_comes_back_from_the_view_menu(qtbot, tmp_path, monkeypatch):
    st = make_settings(tmp_path)
    w = open_window(qtbot, tmp_path, monkeypatch, settings=st)
    dock = w.record_dock
    toggle = [a for a in w.menus["View"].actions() if a.text() == "&Recording"]
    assert toggle, [a.text() for a in w.menus["View"].actions()]
    assert dock.isVisible() and toggle[0].isChecked()
    dock.close()
    assert not dock.isVisible() and not toggle[0].isChecked()
    toggle[0].trigger()
    assert dock.isVisible()
    dock.close()
    w.close()  # the layout is saved with the dock closed
    st2 = S.Settings(QSettings(str(tmp_path / "settings.ini"), QSettings.Format.IniFormat))
    w2 = open_window(qtbot, tmp_path, monkeypatch, settings=st2)
    assert not w2.record_dock.isVisible()  # as the user left it...
    toggle = [a for a in w2.menus["View"].actions() if a.text() == "&Recording"][0]
    toggle.trigger()  # ...and back with one click
    assert w2.record_dock.isVisible()
    w2.close()
