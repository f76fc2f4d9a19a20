"""The app with real audio devices: a private PulseAudio null sink + monitor (tests/pulse.py).

Play a file through the app and hear it on the monitor; record from the virtual mic with
the record action and find the take in the list; measure the live spectrogram's update
rate and sound-to-screen delay; render a screenshot under Xvfb while recording.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

from qtwindow import make_settings, open_window  # noqa: E402
from app import settings as S  # noqa: E402
from engine import live  # noqa: E402
from tests.pulse import RATE, active_seconds, dominant_frequency, play_into_mic, shared_pulse, tone  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
ARTIFACTS = ROOT / "tests" / "artifacts"


@pytest.fixture(scope="session")
def pulse():
    return shared_pulse()


@pytest.fixture
def window(pulse, qtbot, tmp_path):
    st = make_settings(tmp_path)
    st.set(S.RECORD_RATE, RATE)
    w = open_window(qtbot, tmp_path, audio=None, settings=st)  # the real (virtual) devices
    yield w
    w.close()


def test_play_file_through_the_app(window, qtbot, tmp_path):
    assert window.ctx.audio.output_ok and window.actions_["play"].isEnabled()
    path = tmp_path / "a440.flac"
    sig = tone(440.0, 1.0, RATE, amp=0.5)
    sf.write(str(path), np.stack([sig, sig], axis=1), RATE)
    window.file_list.add_paths([path])
    qtbot.waitUntil(lambda: window.ctx.current_path == path, timeout=5000)
    positions = []
    window.ctx.player.positionChanged.connect(positions.append)
    with live.InputStream(samplerate=RATE, channels=1) as mic:
        cursor = mic.cursor()
        window.actions_["play"].trigger()  # Space
        qtbot.waitUntil(lambda: window.ctx.player.state == "playing", timeout=5000)
        qtbot.waitUntil(lambda: window.ctx.player.state == "stopped", timeout=5000)
        qtbot.wait(300)
        got, _, _ = mic.read(cursor)
    on, first = active_seconds(got[:, 0], RATE, 0.25)
    assert abs(on - 1.0) < 0.05
    assert abs(dominant_frequency(got[first:first + int(0.8 * RATE), 0], RATE) - 440.0) < 1.0
    # the playhead followed playback
    assert len(positions) > 10 and positions == sorted(positions) and positions[-1] > 0.95
    assert abs(window.file_view.waveform.playhead.value() - positions[-1]) < 1e-6


def test_record_with_live_spectrogram(window, qtbot):
    """R starts a take, a 880 Hz tone plays into the mic, R stops: the take is in the list."""
    bar = window.record_bar
    window.actions_["record"].trigger()
    qtbot.waitUntil(lambda: window.recording.recording, timeout=5000)
    assert bar.spectrogram.stream is not None
    bar.spectrogram.reset_stats()
    t0 = time.monotonic()
    player = play_into_mic(tone(880.0, 1.5, amp=0.4), block=False)
    peak_db = -200.0
    while player.is_alive():
        qtbot.wait(20)
        peak_db = max(peak_db, bar.meter.peak_db)
    qtbot.wait(300)
    stats = bar.spectrogram.stats()
    window.actions_["record"].trigger()
    elapsed = time.monotonic() - t0
    assert not window.recording.recording
    rows = window.file_list.rows()
    qtbot.waitUntil(lambda: window.file_list.pending() == 0 and len(window.file_list.rows()) == 1, timeout=5000)
    row = window.file_list.rows()[0]
    path = Path(row["path"])
    assert row["ok"] and path.parent.name == "session" and path.name.startswith("Recording ")
    y, sr = sf.read(str(path), dtype="float32")
    assert sr == RATE and len(y) / sr >= elapsed - 0.2
    on, first = active_seconds(y, sr, 0.2)
    assert abs(on - 1.5) < 0.05
    assert abs(dominant_frequency(y[first:first + sr], sr) - 880.0) < 1.0
    assert window.ctx.current_path == path  # selected, so its waveform shows
    print(f"\nlive spectrogram: {stats['updates_per_s']:.1f} updates/s, callback->screen median "
          f"{stats['latency_median'] * 1000:.1f} ms (p95 {stats['latency_p95'] * 1000:.1f} ms), input latency "
          f"{stats['input_latency'] * 1000:.1f} ms; meter peak during tone {peak_db:.1f} dBFS")
    assert -9 < peak_db < -6  # the meter saw the 0.4 (-8 dBFS) tone
    assert stats["updates_per_s"] >= 30
    assert stats["latency_p95"] < 0.1
    del rows


def test_sound_to_screen_latency(window, qtbot):
    """A click is scheduled on the output; time from its DAC time to the first painted column showing it."""
    import sounddevice as sd

    spec = window.record_bar.spectrogram
    window.record_bar.monitor_button.setChecked(True)
    qtbot.waitUntil(lambda: spec.stream is not None, timeout=5000)
    qtbot.wait(300)
    results = []
    for trial in range(3):
        seen = {}

        def on_paint(now, peak_db):
            if "paint" not in seen and peak_db > -30 and "onset" in seen:
                seen["paint"] = now

        spec.on_paint = on_paint
        burst = tone(2000.0, 0.3, RATE, amp=0.5)
        state = {"pos": 0}

        def cb(out, frames, time_info, status):
            p = state["pos"]
            if p == 0:
                # when the first sample of this buffer reaches the (virtual) speaker, in monotonic time
                seen["onset"] = time.monotonic() + (time_info.outputBufferDacTime - time_info.currentTime)
            chunk = burst[p:p + frames]
            out[:len(chunk), 0] = chunk
            out[len(chunk):, 0] = 0
            state["pos"] = p + frames
            if p + frames >= len(burst):
                raise sd.CallbackStop

        with sd.OutputStream(samplerate=RATE, channels=1, callback=cb, latency="low"):
            qtbot.waitUntil(lambda: "paint" in seen, timeout=3000)
        results.append(seen["paint"] - seen["onset"])
        qtbot.wait(400)
    spec.on_paint = None
    window.record_bar.monitor_button.setChecked(False)
    lat = float(np.median(results))
    print(f"\nsound->screen (output DAC time of a tone onset -> first painted column showing it): "
          f"{[round(r * 1000, 1) for r in results]} ms, median {lat * 1000:.1f} ms")
    assert lat < 0.1


SCREENSHOT_SCRIPT = r"""
import sys, time, json
from pathlib import Path
from PySide6.QtCore import QSettings
from PySide6.QtWidgets import QApplication
app = QApplication([])
from app import create_window, settings as S
from tests.pulse import play_into_mic, tone
out, wav, session = sys.argv[1:4]
st = S.Settings(QSettings(session + "/s.ini", QSettings.Format.IniFormat))
st.set(S.OUTPUT_DIR, session)
w = create_window([wav], settings=st)
w.resize(1280, 800); w.move(0, 0); w.show(); w.load_panels()
def pump(sec):
    t = time.monotonic()
    while time.monotonic() - t < sec:
        app.processEvents(); time.sleep(0.005)
pump(1.5)
w.file_view.waveform.set_selection(0.8, 1.6)
w.actions_["record"].trigger()
th = play_into_mic(__import__("numpy").concatenate([tone(f, 0.5, amp=0.3) for f in (300, 600, 1200, 2400, 4800)]), block=False)
pump(2.0)
img = app.primaryScreen().grabWindow(0)
img.save(out)
info = {"recording": w.recording.recording, "w": img.width(), "h": img.height(),
        "platform": app.platformName(), "stats": w.record_bar.spectrogram.stats()}
w.actions_["record"].trigger(); th.join()
print(json.dumps(info))
w.close()
"""


def test_screenshot_under_xvfb_while_recording(pulse, tmp_path):
    if shutil.which("Xvfb") is None:
        pytest.fail("Xvfb is not installed (apt install xvfb)")
    # -displayfd: Xvfb picks a free display number and writes it to the pipe when ready
    r, w = os.pipe()
    xvfb = subprocess.Popen(["Xvfb", "-displayfd", str(w), "-screen", "0", "1280x800x24", "-nolisten", "tcp"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, pass_fds=(w,))
    os.close(w)
    try:
        with os.fdopen(r) as f:
            display = ":" + f.readline().strip()
        assert display != ":", "Xvfb did not start"
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        out = ARTIFACTS / "main_window_recording.png"
        if out.exists():
            out.unlink()
        wav = Path("/usr/share/pocketsphinx/test/data/librivox/sense_and_sensibility_01_austen_64kb-0870.wav")
        if not wav.exists():
            wav = tmp_path / "speechless.wav"
            sf.write(str(wav), 0.3 * np.sin(np.arange(48000) * 0.05).astype(np.float32), 16000)
        env = dict(os.environ, DISPLAY=display, QT_QPA_PLATFORM="xcb", PYTHONPATH=str(ROOT))
        proc = subprocess.run([sys.executable, "-c", SCREENSHOT_SCRIPT, str(out), str(wav), str(tmp_path)],
                              cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
        assert proc.returncode == 0, proc.stderr[-3000:]
        info = json.loads(proc.stdout.strip().splitlines()[-1])
    finally:
        xvfb.kill()
        xvfb.wait(10)
    assert info["platform"] == "xcb" and info["recording"]
    assert (info["w"], info["h"]) == (1280, 800)
    from PySide6.QtGui import QImage

    img = QImage(str(out))
    assert img.width() == 1280
    a = np.frombuffer(img.convertToFormat(QImage.Format.Format_RGB32).constBits(), np.uint8).reshape(800, -1, 4)
    # the live spectrogram strip (bottom) shows the tone sweep: bright columns in the lower third
    assert len(np.unique(a[::8, ::8].reshape(-1, 4), axis=0)) > 200  # a real picture, not a blank screen
    print(f"\nscreenshot: {out} ({info['stats']['updates_per_s']:.0f} spectrogram updates/s under Xvfb)")


def test_loop_selection_and_shared_input(window, qtbot, tmp_path):
    path = tmp_path / "sweep.wav"
    sf.write(str(path), tone(330.0, 2.0, RATE, amp=0.3), RATE)
    window.file_list.add_paths([path])
    qtbot.waitUntil(lambda: window.file_view.overview is not None and window.file_view.overview.complete,
                    timeout=5000)
    window.file_view.waveform.set_selection(0.5, 0.8)
    window.actions_["loop"].setChecked(True)
    positions = []
    window.ctx.player.positionChanged.connect(positions.append)
    window.actions_["play"].trigger()
    qtbot.waitUntil(lambda: window.ctx.player.state == "playing", timeout=5000)
    qtbot.wait(700)
    assert window.ctx.player.state == "playing"  # still looping after the 0.3 s range
    window.actions_["play"].trigger()  # pause
    assert window.ctx.player.state == "paused"
    assert positions and all(0.5 - 1e-6 <= p <= 0.8 + 1e-6 for p in positions)
    window.actions_["stop"].trigger()
    # a panel borrows the app's input stream and gives it back
    inp = window.ctx.input
    owner = object()
    stream = inp.acquire(owner)
    assert stream is not None and stream.active
    cur = stream.cursor()
    assert stream.wait_frames(cur, 2400, timeout=3)
    inp.release(owner)
    assert inp.stream is None and not stream.active
