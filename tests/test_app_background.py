"""The GUI thread never walks folders, probes files, mixes stems or asks PortAudio (Qt offscreen).

Each test replaces the engine call with a wrapper that records whether it ran in the main (GUI)
thread, and checks that the window still shows the answer once it arrives.
"""

from __future__ import annotations

import os
import threading
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

from qtwindow import drop, make_settings, open_window  # noqa: E402


def on_gui_thread() -> bool:
    return threading.current_thread() is threading.main_thread()


@pytest.fixture
def window(qtbot, tmp_path, monkeypatch):
    w = open_window(qtbot, tmp_path, monkeypatch)
    yield w
    w.close()


def test_dropped_folder_is_walked_off_the_gui_thread(window, qtbot, tmp_path, monkeypatch):
    album = tmp_path / "album"
    for rel in ("cd1/01 intro.wav", "cd1/02 song.flac", "cd2/01 outro.wav", ".hidden/x.wav"):
        (album / rel).parent.mkdir(parents=True, exist_ok=True)
        sf.write(str(album / rel), np.zeros(800, np.float32), 8000)
    (album / "cd1" / "cover.txt").write_text("not audio")
    walked, release = [], threading.Event()
    real_walk = os.walk

    def walk(*args, **kwargs):
        walked.append(on_gui_thread())
        release.wait(10)  # a slow disk: the window must not wait for it
        yield from real_walk(*args, **kwargs)

    monkeypatch.setattr(os, "walk", walk)
    fl = window.file_list
    drop(fl, [album])  # returns while the folder is still being walked
    qtbot.waitUntil(lambda: bool(walked), timeout=5000)
    assert fl.rows() == [] and fl.pending() == 1  # nothing yet, but the list knows it is coming
    release.set()
    qtbot.waitUntil(lambda: fl.pending() == 0, timeout=10000)
    names = [Path(r["path"]).relative_to(album).as_posix() for r in fl.rows()]
    assert names == ["cd1/01 intro.wav", "cd1/02 song.flac", "cd2/01 outro.wav"]
    assert all(r["ok"] for r in fl.rows())
    assert walked == [False]
    qtbot.waitUntil(lambda: window.ctx.current_path == album / "cd1" / "01 intro.wav", timeout=5000)
    # the Open folder path goes the same way (the dialog is replaced by its answer)
    from PySide6.QtWidgets import QFileDialog

    other = tmp_path / "other"
    other.mkdir()
    sf.write(str(other / "b.wav"), np.zeros(800, np.float32), 8000)
    monkeypatch.setattr(QFileDialog, "getExistingDirectory", lambda *a, **k: str(other))
    window.actions_["open_folder"].trigger()
    qtbot.waitUntil(lambda: fl.pending() == 0 and len(fl.rows()) == 4, timeout=10000)
    assert walked == [False, False]


def test_selection_is_probed_off_the_gui_thread_and_once(window, qtbot, tmp_path, monkeypatch):
    from engine.audio import io as audio

    a, b, c = tmp_path / "a.wav", tmp_path / "b.flac", tmp_path / "c.wav"
    sf.write(str(a), np.zeros(16000, np.float32), 16000)             # 1 s mono 16 kHz
    sf.write(str(b), np.zeros((22050 * 2, 2), np.float32), 22050)    # 2 s stereo 22.05 kHz
    sf.write(str(c), np.zeros(8000 * 3, np.float32), 8000)           # 3 s, not in the list
    calls = []
    real_info = audio.info

    def info(path, *args, **kwargs):
        calls.append((Path(path).name, threading.current_thread().name, on_gui_thread()))
        return real_info(path, *args, **kwargs)

    monkeypatch.setattr(audio, "info", info)
    panel = window.panels["FileInfoPanel"]
    fl, ctx = window.file_list, window.ctx
    fl.add_paths([a, b])
    qtbot.waitUntil(lambda: fl.pending() == 0 and ctx.current_path == a, timeout=5000)

    def shown():
        return (panel.fields["Sample rate"].text(), panel.fields["Channels"].text(),
                window.transport.position.text())

    assert shown() == ("16000 Hz", "1", "0:00.000 / 0:01.000")
    fl.select_path(str(b))
    assert shown() == ("22050 Hz", "2", "0:00.000 / 0:02.000")  # from the cache: at once
    fl.select_path(str(a))
    assert shown() == ("16000 Hz", "1", "0:00.000 / 0:01.000")
    # a file nobody probed yet: "reading…" first, the answer when the probe thread has it
    ctx.set_selection([c])
    assert panel.fields["Format"].text() == "reading…"
    qtbot.waitUntil(lambda: panel.fields["Sample rate"].text() == "8000 Hz", timeout=5000)
    qtbot.waitUntil(lambda: window.transport.position.text() == "0:00.000 / 0:03.000", timeout=5000)
    assert panel.fields["Duration"].text() == "3.000 s (24000 samples)"
    # a file that changed on disk is probed again (the cached answer is re-checked in the background)
    sf.write(str(a), np.zeros(48000 * 2, np.float32), 48000)
    ctx.set_selection([a])
    qtbot.waitUntil(lambda: panel.fields["Sample rate"].text() == "48000 Hz", timeout=5000)
    qtbot.waitUntil(lambda: fl.rows()[0]["texts"][1:] == ["2.00 s", "48 kHz", "mono"], timeout=5000)
    probes = [name for name, thread, _ in calls if thread == "sonoscope-probe"]
    assert sorted(probes) == ["a.wav", "a.wav", "b.flac", "c.wav"]  # once per file version
    assert not [call for call in calls if call[2]], calls  # never in the GUI thread


class FakeStream:
    """Stands in for the PortAudio output stream; the test pulls the audio through the callback."""

    latency = 0.0

    def __init__(self) -> None:
        self.stopped = True

    def start(self) -> None:
        self.stopped = False

    def abort(self) -> None:
        self.stopped = True

    def close(self) -> None:
        pass


def test_stem_volume_solo_mute_mix_off_the_gui_thread(window, qtbot, tmp_path, monkeypatch):
    from app.widgets import stem_player
    from engine.audio.playback import Playback

    sr, n = 8000, 8000 * 6
    t = np.arange(n) / sr
    vocals = np.stack([0.5 * np.sin(2 * np.pi * 440 * t)] * 2, axis=1).astype(np.float32)
    drums = np.stack([0.3 * np.sin(2 * np.pi * 110 * t)] * 2, axis=1).astype(np.float32)
    for name, x in (("vocals", vocals), ("drums", drums)):
        sf.write(str(tmp_path / f"{name}.wav"), x, sr, subtype="FLOAT")
    mixes = []
    real_mix = stem_player.mix_block

    def mix_block(*args):
        mixes.append(on_gui_thread())
        return real_mix(*args)

    monkeypatch.setattr(stem_player, "mix_block", mix_block)

    def ensure_stream(self):
        if self._stream is None:
            self._stream = FakeStream()

    monkeypatch.setattr(Playback, "_ensure_stream", ensure_stream)
    ctx = window.ctx
    ctx.player.available = True
    loads = []
    real_play_array = ctx.player.play_array
    monkeypatch.setattr(ctx.player, "play_array", lambda *a, **k: (loads.append(1), real_play_array(*a, **k)))
    player = window.panels["StemsPanel"].player
    player.set_stems({"vocals": tmp_path / "vocals.wav", "drums": tmp_path / "drums.wav"}, "song")
    qtbot.waitUntil(player.up_to_date, timeout=10000)
    qtbot.waitUntil(lambda: all(tr.envelope is not None for tr in player.tracks), timeout=5000)
    assert abs(player.tracks[0].envelope[1].max() - 0.5) < 0.05  # the strips show each stem
    player.play_button.click()
    assert ctx.player.state == "playing" and player.play_button.text() == "Pause stems"
    qtbot.waitUntil(lambda: not ctx.player.busy, timeout=5000)  # the player thread started it
    pb = ctx.player.playback
    assert np.shares_memory(pb.audio, player.buffer)  # played in place, not copied

    def pull(seconds: float) -> tuple[int, np.ndarray]:
        at = pb._src.pos
        out = np.zeros((int(seconds * sr), 2), np.float32)
        pb._callback(out, len(out), None, None)
        return at, out

    at, out = pull(0.5)
    assert np.abs(out - (vocals + drums)[at:at + len(out)]).max() < 1e-5
    # drag the drums' volume down to 0 while playing, step by step as a slider does
    for v in range(100, -1, -5):
        player.tracks[1].volume.setValue(v)
    qtbot.waitUntil(player.up_to_date, timeout=10000)
    at, out = pull(0.5)
    assert np.abs(out - vocals[at:at + len(out)]).max() < 1e-5
    # solo the drums (at 50 %): only they are heard; then mute them without solo: only the vocals
    player.tracks[1].volume.setValue(50)
    player.tracks[1].solo.setChecked(True)
    qtbot.waitUntil(player.up_to_date, timeout=10000)
    at, out = pull(0.5)
    assert np.abs(out - 0.5 * drums[at:at + len(out)]).max() < 1e-5
    player.tracks[1].solo.setChecked(False)
    player.tracks[1].mute.setChecked(True)
    qtbot.waitUntil(player.up_to_date, timeout=10000)
    at, out = pull(0.5)
    assert np.abs(out - vocals[at:at + len(out)]).max() < 1e-5
    # the whole buffer holds the final gains, playback never restarted, no mixing in the GUI thread
    assert np.abs(player.buffer - vocals).max() < 1e-5
    assert ctx.player.state == "playing" and len(loads) == 1
    assert mixes and not any(mixes)
    ctx.player.stop()
    player.clear()


def test_playing_a_file_opens_it_and_the_device_off_the_gui_thread(window, qtbot, tmp_path, monkeypatch):
    from engine.audio.playback import Playback

    opened = []
    real_load_file = Playback.load_file

    def load_file(self, path):
        opened.append(("file", on_gui_thread()))
        return real_load_file(self, path)

    def ensure_stream(self):
        opened.append(("device", on_gui_thread()))
        if self._stream is None:
            self._stream = FakeStream()

    monkeypatch.setattr(Playback, "load_file", load_file)
    monkeypatch.setattr(Playback, "_ensure_stream", ensure_stream)
    from engine.audio.devices import Availability

    ctx = window.ctx
    ctx.set_audio(Availability(True, True))  # a (fake) output device: Play is enabled
    errors = []
    ctx.player.error.connect(errors.append)
    path = tmp_path / "a440.wav"
    x = (0.5 * np.sin(2 * np.pi * 440 * np.arange(16000) / 16000)).astype(np.float32)
    sf.write(str(path), x, 16000, subtype="FLOAT")
    window.file_list.add_paths([path])
    qtbot.waitUntil(lambda: ctx.current_path == path, timeout=5000)
    window.actions_["play"].trigger()  # Space
    assert ctx.player.state == "playing"  # at once; the player thread opens the file and the device
    qtbot.waitUntil(lambda: not ctx.player.busy, timeout=5000)
    assert opened == [("file", False), ("device", False)]
    pb = ctx.player.playback
    out = np.zeros((4000, 2), np.float32)
    pb._callback(out, len(out), None, None)
    assert np.abs(out[:, 0] - x[:4000]).max() < 1e-6  # what the device gets is the file
    window.actions_["play"].trigger()  # pause
    assert ctx.player.state == "paused"
    qtbot.waitUntil(lambda: not ctx.player.busy, timeout=5000)
    assert not pb.playing
    # a file that cannot be opened: the error comes back, the state falls back, the old source stays
    bad = tmp_path / "bad.wav"
    bad.write_text("not audio")
    ctx.player.play_file(bad)
    qtbot.waitUntil(lambda: ctx.player.state == "stopped", timeout=5000)
    assert errors and "bad.wav" in errors[-1]
    assert ctx.player.source_label == str(path)
    assert all(not gui for _, gui in opened)


def test_audio_devices_are_asked_after_the_first_paint_off_the_gui_thread(qtbot, tmp_path, monkeypatch):
    from app import create_window
    from app.widgets.settings_dialog import SettingsDialog
    from engine.audio import devices

    windows, asked, listed, release = [], [], [], threading.Event()

    def availability():
        asked.append({"gui_thread": on_gui_thread(), "painted": bool(windows) and windows[0]._painted})
        release.wait(10)  # PortAudio taking its time (a sound server starting)
        return devices.Availability(True, True)

    def list_devices(kind=None):
        listed.append(on_gui_thread())
        return [devices.AudioDevice(7, f"Test {kind}", "ALSA", 2 * (kind == "input"), 2 * (kind == "output"),
                                    48000.0)]

    monkeypatch.setattr(devices, "availability", availability)
    monkeypatch.setattr(devices, "list_devices", list_devices)
    st = make_settings(tmp_path)
    w = create_window(settings=st, audio=None, check_compute=False)
    windows.append(w)
    qtbot.addWidget(w)
    assert asked == []  # nothing before the window is on screen
    w.show()
    qtbot.waitExposed(w)
    qtbot.waitUntil(lambda: bool(asked), timeout=5000)
    # PortAudio has not answered: the window is up, and says it is checking
    a = w.actions_
    assert not a["play"].isEnabled() and not a["record"].isEnabled()
    assert a["record"].toolTip() == "Waiting: checking the audio devices…"
    assert w.audio_label.text() == "checking the audio devices…" and not w.record_bar.monitor_button.isEnabled()
    release.set()
    qtbot.waitUntil(lambda: w.ctx.audio_checked, timeout=5000)
    assert a["play"].isEnabled() and a["record"].isEnabled() and w.record_bar.monitor_button.isEnabled()
    assert a["record"].toolTip().startswith("Start / stop recording") and w.audio_label.text() == ""
    assert w.ctx.player.available and w.ctx.input.available
    assert asked == [{"gui_thread": False, "painted": True}]
    # the settings dialog lists the devices off the GUI thread too, keeping the saved choice
    from app import settings as S

    st.set(S.OUTPUT_DEVICE, "Test output")
    dlg = SettingsDialog(st, w)
    qtbot.addWidget(dlg)
    qtbot.waitUntil(lambda: dlg.devices_listed, timeout=5000)
    assert [dlg.input.itemText(i) for i in range(dlg.input.count())] == ["System default", "Test input (ALSA)"]
    assert dlg.output.currentText() == "Test output (ALSA)" and dlg.output.currentData() == "Test output"
    assert listed == [False, False]
    w.close()
