"""engine.live with real audio: a private PulseAudio null sink + monitor source (tests/pulse.py)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from engine import live
from engine.errors import AudioError, DeviceError
from tests.pulse import RATE, active_seconds, dominant_frequency, play_into_mic, shared_pulse, tone

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="session")
def pulse():
    return shared_pulse()


def no_server_env(tmp_path) -> dict:
    env = dict(os.environ)
    env.update(XDG_RUNTIME_DIR=str(tmp_path), PULSE_SERVER="unix:/nonexistent/pulse", HOME=str(tmp_path),
               PULSE_RUNTIME_PATH=str(tmp_path / "nope"))
    return env


# -- pure parts (no device) -------------------------------------------------------------------


def test_ring_buffer_wraps_and_reports_lost_frames():
    rb = live.RingBuffer(100, 2)
    data = np.arange(500, dtype=np.float32).reshape(250, 2)
    rb.write(data[:70])
    got, cur, lost = rb.read_from(0)
    assert lost == 0 and cur == 70 and np.array_equal(got, data[:70])
    rb.write(data[70:150])  # wraps around
    got, cur, lost = rb.read_from(cur)
    assert lost == 0 and cur == 150 and np.array_equal(got, data[70:150])
    np.testing.assert_array_equal(rb.latest(30), data[120:150])
    rb.write(data[150:250])
    got, cur2, lost = rb.read_from(100)  # 150 frames behind a 100-frame ring: 50 lost
    assert lost == 50 and cur2 == 250 and np.array_equal(got, data[150:250])
    # latest() before enough data: zeros first
    rb2 = live.RingBuffer(10, 1)
    rb2.write(np.ones((3, 1), np.float32))
    np.testing.assert_array_equal(rb2.latest(5)[:, 0], [0, 0, 1, 1, 1])


def test_wav_stream_writer_is_readable_after_each_sync(tmp_path):
    path = tmp_path / "take.wav"
    w = live.WavStreamWriter(path, 16000, 2, "PCM_16")
    x = (0.5 * np.sin(np.linspace(0, 300, 16000 * 2))).astype(np.float32).reshape(-1, 2)
    w.write(x[:8000])
    w.sync()
    y, sr = sf.read(str(path), dtype="float32")  # file still open: header says 8000 frames
    assert sr == 16000 and y.shape == (8000, 2)
    np.testing.assert_allclose(y, x[:8000], atol=1 / 32767 + 1e-6)
    w.write(x[8000:])
    w.close()
    y, _ = sf.read(str(path), dtype="float32")
    assert y.shape == x.shape
    for subtype, tol in (("PCM_24", 2e-7), ("FLOAT", 0)):
        p = tmp_path / f"{subtype}.wav"
        w = live.WavStreamWriter(p, 8000, 1, subtype)
        w.write(x[:, 0])
        w.close()
        y, _ = sf.read(str(p), dtype="float32")
        np.testing.assert_allclose(y, x[:, 0], atol=tol + 1e-7)
        assert sf.info(str(p)).subtype == subtype
    with pytest.raises(AudioError, match="already exists"):
        live.WavStreamWriter(path, 16000, 1)


def test_no_server_gives_clear_reasons(tmp_path):
    code = ("import json; from engine import live; a = live.availability(); "
            "print(json.dumps([a.input_ok, a.output_ok, a.input_reason, a.output_reason]))")
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=no_server_env(tmp_path),
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    in_ok, out_ok, in_reason, out_reason = json.loads(out.stdout.strip().splitlines()[-1])
    assert not in_ok and not out_ok
    assert "no audio input device" in in_reason and "no audio output device" in out_reason
    # and the CLI says the same, successfully
    cli = subprocess.run([sys.executable, "main.py", "devices", "--audio-only"], cwd=ROOT,
                         env=no_server_env(tmp_path), capture_output=True, text=True, timeout=60)
    assert cli.returncode == 0 and "none: no audio input device was found" in cli.stdout


def test_missing_portaudio_is_a_device_error(monkeypatch):
    import builtins

    real_import = builtins.__import__

    def fake_import(name, *a, **k):
        if name == "sounddevice":
            raise OSError("PortAudio library not found")
        return real_import(name, *a, **k)

    monkeypatch.setattr(live, "_sd", None)
    monkeypatch.setattr(live, "_sd_error", None)
    monkeypatch.setattr(builtins, "__import__", fake_import)
    with pytest.raises(DeviceError, match="PortAudio is not installed"):
        live.list_devices()
    a = live.availability()
    assert not a.input_ok and "PortAudio is not installed" in a.output_reason
    monkeypatch.setattr(live, "_sd_error", None)


# -- real audio ---------------------------------------------------------------------------------


def test_devices_listed_through_pulse(pulse):
    devs = live.list_devices()
    assert any(d.is_input and d.is_default_input for d in devs)
    assert any(d.is_output and d.is_default_output for d in devs)
    a = live.availability()
    assert a.input_ok and a.output_ok
    with pytest.raises(DeviceError, match="not connected"):
        live.find_device("no such microphone", "input")
    out = subprocess.run([sys.executable, "main.py", "devices", "--audio-only", "--json"], cwd=ROOT,
                         capture_output=True, text=True, timeout=60)
    info = json.loads(out.stdout)
    assert info["input_ok"] and info["output_ok"] and info["audio"]


def test_record_from_virtual_mic(pulse, tmp_path):
    """A 523 Hz tone played into the sink is recorded from the virtual mic to a streamed WAV."""
    path = tmp_path / "take.wav"
    with live.InputStream(samplerate=RATE, channels=1) as stream:
        rec = live.Recorder(stream, path).start()
        t0 = time.monotonic()
        play_into_mic(tone(523.25, 1.2, amp=0.4))
        time.sleep(0.3)
        assert rec.recording
        elapsed = time.monotonic() - t0
        peak, rms = stream.level_db()
        out = rec.stop()
    assert out == path and not rec.recording
    y, sr = sf.read(str(path), dtype="float32")
    assert sr == RATE and y.ndim == 1
    # length: everything captured while recording (the ring holds it all; nothing dropped)
    assert abs(len(y) / sr - elapsed) < 0.25, (len(y) / sr, elapsed)
    assert rec.lost_frames == 0
    on, first = active_seconds(y, sr, 0.2)  # the tone's RMS is 0.28
    assert abs(on - 1.2) < 0.05  # all of the tone is in there, once
    seg = y[first:][: int(1.0 * sr)]
    assert abs(dominant_frequency(seg, sr) - 523.25) < 1.0
    assert 20 * np.log10(0.4) - 3 < 20 * np.log10(np.abs(seg).max()) < 0.5


def test_playback_plays_seeks_and_loops(pulse):
    """Play an array through the default output and hear it come back from the monitor."""
    sig = tone(660.0, 1.0, amp=0.5)
    pb = live.Playback()
    pb.load(np.stack([sig, sig]), RATE)
    assert abs(pb.duration - 1.0) < 1e-6
    with live.InputStream(samplerate=RATE, channels=1) as stream:
        cursor = stream.cursor()
        pb.play()
        assert pb.playing
        assert pb.wait(5.0), "playback never finished"
        assert not pb.playing and abs(pb.position - 1.0) < 1e-3
        time.sleep(0.3)
        got, cursor, _ = stream.read(cursor)
        x = got[:, 0]
        on, first = active_seconds(x, RATE, 0.25)  # tone RMS 0.35
        assert abs(on - 1.0) < 0.05  # all of it came out, once
        seg = x[first:][:int(0.8 * RATE)]
        assert abs(dominant_frequency(seg, RATE) - 660.0) < 1.0
        # loop a range: the position stays inside it while playing
        pb.set_loop(0.2, 0.5)
        assert pb.loop == pytest.approx((0.2, 0.5))
        pb.play(0.3)
        positions = []
        for _ in range(25):
            time.sleep(0.04)
            positions.append(pb.position)
        assert pb.playing
        assert all(0.2 - 1e-6 <= p <= 0.5 + 1e-6 for p in positions)
        assert max(positions) - min(positions) > 0.15  # it moved and wrapped
        pb.pause()
        p = pb.position
        time.sleep(0.15)
        assert pb.position == p and not pb.playing
        pb.set_loop(None)
        pb.seek(0.9)
        assert abs(pb.position - 0.9) < 1e-3
        pb.stop()
        assert pb.position == 0.0
    pb.close()


RECORDER_SCRIPT = """
import sys, time
from engine import live
s = live.InputStream(samplerate=48000, channels=1).start()
r = live.Recorder(s, sys.argv[1]).start()
print("recording", flush=True)
time.sleep(60)
"""


def test_killed_recorder_leaves_readable_file(pulse, tmp_path):
    """SIGKILL mid-take: the WAV on disk is valid and holds all but about the last second."""
    path = tmp_path / "killed.wav"
    player = play_into_mic(tone(440.0, 4.0, amp=0.4), block=False)
    proc = subprocess.Popen([sys.executable, "-c", RECORDER_SCRIPT, str(path)], cwd=ROOT,
                            stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout.readline().strip() == "recording"
        t0 = time.monotonic()
        time.sleep(2.7)
        os.kill(proc.pid, signal.SIGKILL)
        elapsed = time.monotonic() - t0
        proc.wait(10)
    finally:
        if proc.poll() is None:
            proc.kill()
        player.join(10)
    info = sf.info(str(path))
    y, sr = sf.read(str(path), dtype="float32")
    assert info.frames == len(y) and sr == 48000
    recorded = len(y) / sr
    assert elapsed - 1.3 <= recorded <= elapsed + 0.1, (recorded, elapsed)
    assert abs(dominant_frequency(y[-int(0.5 * sr):], sr) - 440.0) < 2.0


def test_input_windows_for_streaming_workers(pulse):
    """Workers pull overlapping windows as audio arrives; a tone played meanwhile shows up in them."""
    with live.InputStream(samplerate=16000, channels=1) as stream:
        play_into_mic(tone(1000.0, 0.6, RATE, amp=0.4), block=False)
        got = []
        t0 = time.monotonic()
        for w in stream.windows(4000, 2000, timeout=3):
            got.append(w)
            if len(got) == 6:
                break
        took = time.monotonic() - t0
    assert all(w.shape == (4000, 1) for w in got)
    for a, b in zip(got, got[1:]):
        np.testing.assert_array_equal(a[2000:], b[:2000])  # hop 2000: consecutive windows overlap by half
    assert 0.6 < took < 1.5  # 4000 + 5*2000 frames at 16 kHz = 0.875 s of real time
    loud = [w for w in got if np.sqrt(np.mean(w ** 2)) > 0.2]
    assert loud and abs(dominant_frequency(loud[0][:, 0], 16000) - 1000.0) < 5.0


def test_file_playback_streams_from_disk(pulse, tmp_path):
    """Files play through a small read-ahead ring: seek into the middle, hear the right part, loop."""
    sr = 44100
    parts = [tone(f, 1.0, sr, amp=0.4) for f in (400.0, 800.0, 1200.0)]
    path = tmp_path / "three.flac"
    sf.write(str(path), np.concatenate(parts), sr)
    pb = live.Playback()
    pb.load_file(path)
    assert abs(pb.duration - 3.0) < 1e-6 and pb.audio is None  # nothing decoded up front
    assert pb._src.ring.nbytes <= 2.5 * sr * 4  # ~2 s of read-ahead, whatever the file length
    with live.InputStream(samplerate=RATE, channels=1) as mic:
        cur = mic.cursor()
        pb.play(1.0)
        assert pb.wait(5.0)
        time.sleep(0.25)
        got, cur, _ = mic.read(cur)
        x = got[:, 0]
        on, first = active_seconds(x, RATE, 0.2)
        assert abs(on - 2.0) < 0.06  # from 1.0 s to the end
        assert abs(dominant_frequency(x[first + 4800:first + 38400], RATE) - 800.0) < 2.0
        assert abs(dominant_frequency(x[first + RATE + 4800:first + RATE + 38400], RATE) - 1200.0) < 2.0
        assert abs(pb.position - 3.0) < 1e-3
        # loop the first half of the third second
        pb.set_loop(2.0, 2.5)
        pb.play()
        time.sleep(1.2)
        assert pb.playing and 2.0 <= pb.position <= 2.5
        cur = mic.cursor()
        time.sleep(0.4)
        got, cur, _ = mic.read(cur)
        pb.stop()
        assert abs(dominant_frequency(got[:, 0], RATE) - 1200.0) < 3.0
        assert pb.position == 2.0  # stop returns to the loop start
    pb.close()
