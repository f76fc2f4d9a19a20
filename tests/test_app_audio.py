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
from engine.audio import capture  # noqa: E402
from tests.pulse import RATE, active_seconds, dominant_frequency, play_into_mic, tone  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
ARTIFACTS = ROOT / "tests" / "artifacts"


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
    with capture.InputStream(samplerate=RATE, channels=1) as mic:
        cursor = mic.cursor()
        window.actions_["play"].trigger()  # Space
        qtbot.waitUntil(lambda: window.ctx.player.state == "playing", timeout=5000)
        qtbot.waitUntil(lambda: window.ctx.player.state == "stopped", timeout=5000)
        assert mic.wait_frames(mic.cursor(), int(0.3 * RATE), timeout=5)  # the tail reaches the mic too
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
    peaks = []
    qtbot.waitUntil(lambda: (peaks.append(bar.meter.peak_db), not player.is_alive())[1], timeout=10000)
    rec = window.recording.recorder
    tail = rec.frames + int(0.3 * RATE)
    qtbot.waitUntil(lambda: rec.frames >= tail, timeout=5000)  # 0.3 s of silence after the tone
    peak_db = max(peaks)
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
    painted = spec.updates
    qtbot.waitUntil(lambda: spec.updates >= painted + 10, timeout=5000)  # the strip is running
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
        # the burst is over on screen before the next one
        qtbot.waitUntil(lambda: spec.last_column_db is not None and spec.last_column_db.max() < -60, timeout=3000)
    spec.on_paint = None
    window.record_bar.monitor_button.setChecked(False)
    lat = float(np.median(results))
    print(f"\nsound->screen (output DAC time of a tone onset -> first painted column showing it): "
          f"{[round(r * 1000, 1) for r in results]} ms, median {lat * 1000:.1f} ms")
    assert lat < 0.1


SWEEP = (300, 600, 1200, 2400, 4800)  # Hz, 0.5 s each, played into the mic while recording
FAR = (10000, 15000)                   # Hz, rows of the live spectrogram nothing is played at

SCREENSHOT_SCRIPT = r"""
import sys, time, json
from pathlib import Path
import numpy as np
from PySide6.QtCore import QPoint, QSettings
from PySide6.QtWidgets import QApplication
app = QApplication([])
from app import create_window, settings as S
from app.widgets.live_spectrogram import ROWS
from tests.pulse import play_into_mic, tone
out, wav, session = sys.argv[1:4]
sweep, far = json.loads(sys.argv[4]), json.loads(sys.argv[5])
st = S.Settings(QSettings(session + "/s.ini", QSettings.Format.IniFormat))
st.set(S.OUTPUT_DIR, session)
w = create_window([wav], settings=st)
w.resize(1280, 800); w.move(0, 0); w.show(); w.load_panels()
def pump(until, timeout=20.0):
    t = time.monotonic() + timeout
    while not until() and time.monotonic() < t:
        app.processEvents(); time.sleep(0.005)
    return until()
assert pump(lambda: w.ctx.audio_checked and w.file_view.overview is not None and w.file_view.overview.complete)
w.file_view.waveform.set_selection(0.8, 1.6)
w.actions_["record"].trigger()
spec = w.record_bar.spectrogram
assert pump(lambda: spec.stream is not None)
th = play_into_mic(np.concatenate([tone(f, 0.5, amp=0.3) for f in sweep]), block=False)
assert pump(lambda: not th.is_alive())
painted = spec.updates
assert pump(lambda: spec.updates >= painted + 20)  # the sweep's last columns are on screen
img = app.primaryScreen().grabWindow(0)
img.save(out)
spec.grab().save(out.replace(".png", "_live_spectrogram.png"))
top_left = spec.mapToGlobal(QPoint(0, 0))
def y_of(hz):  # screen row where the strip draws hz
    row = int(np.argmin(np.abs(spec._freqs - hz)))
    return top_left.y() + int((row + 0.5) * spec.height() / ROWS)
info = {"recording": w.recording.recording, "w": img.width(), "h": img.height(),
        "platform": app.platformName(), "stats": spec.stats(),
        "strip": [top_left.x() + 46, top_left.x() + spec.width()],  # image columns (right of the Hz axis)
        "rows": {str(hz): y_of(hz) for hz in list(sweep) + list(far)}}
w.actions_["record"].trigger()
print(json.dumps(info))
w.close()
"""


def test_screenshot_under_xvfb_while_recording(pulse, tmp_path):
    """A real X server (Xvfb), a real (virtual) microphone: the live spectrogram in the screenshot
    shows the tone sweep -- bright at the rows of the sweep's frequencies, in time order from left
    to right, dark at rows far from them."""
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
        proc = subprocess.run([sys.executable, "-c", SCREENSHOT_SCRIPT, str(out), str(wav), str(tmp_path),
                               json.dumps(SWEEP), json.dumps(FAR)],
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
    luma = 0.114 * a[..., 0] + 0.587 * a[..., 1] + 0.299 * a[..., 2]  # BGRA
    x0, x1 = info["strip"]

    def row(hz):  # brightness along the strip at hz's row (the brightest of the pixel rows around it)
        y = info["rows"][str(hz)]
        return luma[y - 1:y + 2, x0:x1].max(axis=0)

    def longest_run(cols: np.ndarray) -> tuple[int, int]:  # [first, last] of the longest lit stretch
        if len(cols) == 0:
            return 0, -1
        breaks = np.flatnonzero(np.diff(cols) > 3)  # a gap of more than 3 px ends a stretch
        starts, ends = np.r_[cols[0], cols[breaks + 1]], np.r_[cols[breaks], cols[-1]]
        k = int(np.argmax(ends - starts))
        return int(starts[k]), int(ends[k])

    spans, levels = [], []
    for hz in SWEEP:
        first, last = longest_run(np.flatnonzero(row(hz) > 150))
        # 0.5 s of tone is ~50 columns of the 600 the strip holds: about 100 px here
        assert last - first > 40, f"{hz} Hz: its row is not lit for 0.5 s ({first}..{last})"
        lit = row(hz)[first:last + 1].mean()
        for other in FAR:
            dark = row(other)[first:last + 1].mean()
            assert lit > 150 and dark < 40, f"while {hz} Hz played: its row {lit:.0f}, the {other} Hz row {dark:.0f}"
            levels.append((round(lit), round(dark)))
        spans.append((first, last))
    centres = [(a_ + b_) / 2 for a_, b_ in spans]
    assert centres == sorted(centres), spans  # the sweep rises from left (older) to right (newer)
    print(f"\nscreenshot: {out} ({info['stats']['updates_per_s']:.0f} spectrogram updates/s under Xvfb); "
          f"sweep spans {spans}, (tone row, far row) brightness {levels}")


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

    def wraps() -> int:
        return sum(1 for a, b in zip(positions, positions[1:]) if b < a - 0.1)

    qtbot.waitUntil(lambda: wraps() >= 2, timeout=5000)  # jumped back from the range's end twice
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


def test_closing_the_window_while_recording_keeps_the_take(pulse, qtbot, tmp_path):
    """Close the window mid-take: the recording stops, and the take on disk is complete and plays."""
    from engine.audio import io as audio
    from engine.audio.playback import Playback

    st = make_settings(tmp_path)
    st.set(S.RECORD_RATE, RATE)
    w = open_window(qtbot, tmp_path, audio=None, settings=st)
    w.actions_["record"].trigger()
    qtbot.waitUntil(lambda: w.recording.recording, timeout=5000)
    rec = w.recording.recorder
    player = play_into_mic(tone(660.0, 1.0, amp=0.4), block=False)
    qtbot.waitUntil(lambda: not player.is_alive(), timeout=10000)
    tail = rec.frames + int(0.3 * RATE)
    qtbot.waitUntil(lambda: rec.frames >= tail, timeout=5000)
    w.close()  # still recording
    assert not w.recording.recording and w.recording.stream is None
    path = rec.path
    info = audio.info(path)
    assert info.samplerate == RATE and info.frames == rec.frames  # every frame taken made it to the file
    y, sr = sf.read(str(path), dtype="float32")
    on, first = active_seconds(y, sr, 0.2)
    assert abs(on - 1.0) < 0.05
    assert abs(dominant_frequency(y[first:first + int(0.8 * sr)], sr) - 660.0) < 1.0
    # and it plays: through the (virtual) speaker, the mic hears the 660 Hz tone again
    pb = Playback()
    try:
        with capture.InputStream(samplerate=RATE, channels=1) as mic:
            cursor = mic.cursor()
            pb.load_file(path)
            pb.play()
            assert pb.wait(timeout=info.duration + 5)
            assert mic.wait_frames(mic.cursor(), int(0.3 * RATE), timeout=5)
            got, _, _ = mic.read(cursor)
    finally:
        pb.close()
    on, first = active_seconds(got[:, 0], RATE, 0.2)
    assert abs(on - 1.0) < 0.1  # the loop back through the virtual speaker may clip its first few blocks
    assert abs(dominant_frequency(got[first:first + int(0.8 * RATE), 0], RATE) - 660.0) < 1.0
