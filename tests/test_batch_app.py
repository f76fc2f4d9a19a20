"""File → Batch…: the dialog runs a small real batch through ctx.submit and the engine's batch runner;
its queue shows each file's status (rendered to PNG), cancel stops the batch and a rerun skips what
was done."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from tests.qtwindow import colour_pixels, forbid_dialogs, open_window
from tests.test_batch import ICONS, ROOT, tagger_installed

ARTIFACTS = ROOT / "tests" / "artifacts"
FILES = ["piano-3", "xylofon", "trumpet-1", "guitar-12", "cembalo-1", "chord-7", "violoncello-7", "glass-water-1"]


@pytest.fixture(scope="module")
def tagger():
    if not tagger_installed():
        pytest.skip("the EfficientAT tagger is not in the model store (setup.sh imports it)")


@pytest.fixture
def folder(tmp_path):
    d = tmp_path / "sounds"
    (d / "more").mkdir(parents=True)
    for k, name in enumerate(FILES):
        shutil.copy(ICONS / f"{name}.wav", (d / "more" if k % 2 else d) / f"{name}.wav")
    (d / "broken.wav").write_bytes(b"RIFF....not audio at all")
    return d


@pytest.fixture
def window(qtbot, tmp_path, monkeypatch):
    w = open_window(qtbot, tmp_path)  # the real model store: the tagger is there
    forbid_dialogs(monkeypatch)
    return w


def _dialog(window):
    menu = window.menus["File"]
    action = window.actions_["batch"]
    assert action in menu.actions()
    action.trigger()
    return window.batch_dialog


def _statuses(dlg) -> dict[str, str]:
    return {dlg.queue.item(r, 0).text(): dlg.queue.item(r, 1).text() for r in range(dlg.queue.rowCount())}


def test_batch_dialog_runs_a_folder_and_shows_the_queue(window, qtbot, folder, tagger):
    dlg = _dialog(window)
    assert dlg.isVisible()
    import importlib.util

    for row in range(dlg.task.count()):  # a task this build lacks is listed but cannot be chosen
        name = dlg.task.itemData(row)
        module = {"speak": "engine.speech", "analyze": "engine.timeline"}.get(name)
        if module and importlib.util.find_spec(module) is None:
            assert not dlg.task.model().item(row).isEnabled()
    dlg.folder.setText(str(folder))
    dlg.task.setCurrentText("tag")
    assert dlg.out.text() == str(folder.with_name("sounds-tag"))
    job = dlg.start()
    assert not dlg.start_button.isEnabled() and dlg.cancel_button.isEnabled()
    qtbot.waitUntil(lambda: dlg.start_button.isEnabled(), timeout=180000)
    assert job.status.value == "done", job.error
    statuses = _statuses(dlg)
    assert statuses == {**{n if k % 2 == 0 else f"more/{n}": "done" for k, n in enumerate(FILES)}, "broken": "failed"}
    assert dlg.bar.value() == 1000 and dlg.line.text().startswith("8 done, 0 skipped, 1 failed")
    out = Path(dlg.out.text())
    assert (out / "piano-3.json").exists() and (out / "more" / "xylofon.json").exists()
    ARTIFACTS.mkdir(exist_ok=True)
    img = dlg.grab().toImage()
    img.save(str(ARTIFACTS / "batch_dialog.png"))
    assert colour_pixels(img, (0x2E, 0x8B, 0x3A), tol=30) > 100  # "done" in green
    assert colour_pixels(img, (0xC0, 0x39, 0x2B), tol=30) > 10   # "failed" in red

    # a second run: the manifest says what is complete
    job = dlg.start()
    qtbot.waitUntil(lambda: dlg.start_button.isEnabled(), timeout=120000)
    assert set(_statuses(dlg).values()) == {"skipped", "failed"}
    assert dlg.line.text().startswith("0 done, 8 skipped, 1 failed")


def test_cancel_stops_the_batch_and_a_rerun_skips_what_was_done(window, qtbot, folder, tagger):
    dlg = _dialog(window)
    dlg.folder.setText(str(folder))
    dlg.task.setCurrentText("tag")
    window.ctx.jobs.jobPartial.connect(lambda job: dlg.cancel() if "done" in _statuses(dlg).values() else None)
    job = dlg.start()
    qtbot.waitUntil(lambda: dlg.start_button.isEnabled(), timeout=180000)
    assert job.status.value == "cancelled"
    statuses = _statuses(dlg)
    done = [k for k, v in statuses.items() if v == "done"]
    assert done and "cancelled" in statuses.values() and len(done) < 8
    dlg.grab().toImage().save(str(ARTIFACTS / "batch_dialog_cancelled.png"))
    window.ctx.jobs.jobPartial.disconnect()
    dlg.start()
    qtbot.waitUntil(lambda: dlg.start_button.isEnabled(), timeout=180000)
    again = _statuses(dlg)
    assert sorted(k for k, v in again.items() if v == "skipped") == sorted(done)
    assert sum(v == "done" for v in again.values()) == 8 - len(done)
