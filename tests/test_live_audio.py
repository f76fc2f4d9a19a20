"""engine.audio (devices, capture, playback) with real audio: a private PulseAudio null sink + monitor source (tests/pulse.py)."""

from __future__ import annotations

import json
import os
import signal
import struct
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from engine.audio import devices as audio_devices
from engine.audio import capture
from engine.audio import playback
from engine.errors import AudioError, DeviceError
from tests.pulse import RATE, active_seconds, dominant_frequency, play_into_mic, tone

ROOT = Path(__file__).resolve().parent.parent


def no_server_env(tmp_path) -> dict:
    env = dict(os.environ)
    env.update(XDG_RUNTIME_DIR=str(tmp_path), PULSE_SERVER="unix:/nonexistent/pulse", HOME=str(tmp_path),
               PULSE_RUNTIME_PATH=str(tmp_path / "nope"))
    return env


# -- pure parts (no device) -------------------------------------------------------------------


def test_ring_buffer_wraps_and_reports_lost_frames():
    rb = capture.RingBuffer(100, 2)
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
    rb2 = capture.RingBuffer(10, 1)
    rb2.write(np.ones((3, 1), np.float32))
    np.testing.assert_array_equal(rb2.latest(5)[:, 0], [0, 0, 1, 1, 1])


def test_wav_stream_writer_is_readable_after_each_sync(tmp_path):
    path = tmp_path / "take.wav"
    w = capture.WavStreamWriter(path, 16000, 2, "PCM_16")
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
        w = capture.WavStreamWriter(p, 8000, 1, subtype)
        w.write(x[:, 0])
        w.close()
        y, _ = sf.read(str(p), dtype="float32")
        np.testing.assert_allclose(y, x[:, 0], atol=tol + 1e-7)
        assert sf.info(str(p)).subtype == subtype
    with pytest.raises(AudioError, match="already exists"):
        capture.WavStreamWriter(path, 16000, 1)


class RingSource:
    """An InputStream stand-in without PortAudio: the test writes frames into its ring."""

    def __init__(self, samplerate: int = 16000, channels: int = 1, capacity: int = 16000) -> None:
        self.samplerate, self.channels = samplerate, channels
        self.ring = capture.RingBuffer(capacity, channels)
        self.active = False

    def start(self):
        self.active = True
        return self

    def cursor(self) -> int:
        return self.ring.written

    def read(self, cursor, max_frames=None):
        return self.ring.read_from(cursor, max_frames)


def frames(n: int, channels: int = 1, start: int = 0) -> np.ndarray:
    """Distinct, exactly representable PCM_16 values: frame i holds (start + i) % 20000 / 32767."""
    v = ((np.arange(start, start + n) % 20000) / 32767.0).astype(np.float32)
    return np.repeat(v[:, None], channels, axis=1)


def pcm(n: int, channels: int = 1, start: int = 0) -> np.ndarray:
    """The int16 samples that :func:`frames` become in a PCM_16 file."""
    return np.repeat(((np.arange(start, start + n) % 20000).astype(np.int16))[:, None], channels, axis=1)


def read_pcm(path) -> np.ndarray:
    return sf.read(str(path), dtype="int16", always_2d=True)[0]


def wait_until(condition, timeout: float = 10.0) -> bool:
    """Poll ``condition`` until it holds (the deadline only bounds a hang; it is no synchronisation)."""
    end = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > end:
            return False
        time.sleep(0.005)
    return True


def test_recorder_fills_frames_lost_to_an_overrun_with_silence(tmp_path):
    src = RingSource(capacity=1000, channels=2)
    # never polls on its own: only stop() drains, long after the ring was lapped
    rec = capture.Recorder(src, tmp_path / "take.wav", poll_interval=3600).start()
    assert src.active and rec.recording
    src.ring.write(frames(2500, 2))  # 2.5 rings' worth before the recorder reads anything
    assert rec.stop() == tmp_path / "take.wav" and not rec.recording
    assert rec.lost_frames == 1500
    y = read_pcm(tmp_path / "take.wav")
    assert sf.info(str(tmp_path / "take.wav")).samplerate == 16000
    assert y.shape == (2500, 2)  # the take keeps its length: the gap is silence
    assert not y[:1500].any()
    np.testing.assert_array_equal(y[1500:], pcm(2500, 2)[1500:])


def test_recorder_writes_every_frame_in_order(tmp_path):
    src = RingSource(capacity=4000)
    rec = capture.Recorder(src, tmp_path / "take.wav", poll_interval=0.001).start()
    written = 0
    for _ in range(20):
        src.ring.write(frames(700, start=written))
        written += 700
        assert wait_until(lambda: rec.frames == written)  # the recorder caught up: nothing lost
    rec.stop()
    y = read_pcm(tmp_path / "take.wav")
    assert rec.lost_frames == 0 and len(y) == written
    np.testing.assert_array_equal(y, pcm(written))


class FailingFile:
    """Wraps the recorder's file: data writes fail with ENOSPC once ``full`` is set (header
    rewrites, a few bytes in place, still succeed, as on a full disk)."""

    def __init__(self, f) -> None:
        self.f, self.full = f, False

    def write(self, data):
        if self.full and len(data) > 8:
            raise OSError(28, "No space left on device")
        return self.f.write(data)

    def __getattr__(self, name):
        return getattr(self.f, name)


def test_a_disk_error_mid_take_stops_it_and_keeps_the_file(tmp_path):
    src = RingSource()
    path = tmp_path / "take.wav"
    rec = capture.Recorder(src, path, poll_interval=0.001).start()
    disk = rec.writer._f = FailingFile(rec.writer._f)
    src.ring.write(frames(3000))
    assert wait_until(lambda: rec.frames == 3000)
    disk.full = True
    src.ring.write(frames(500, start=3000))
    assert wait_until(lambda: not rec.recording)  # the take stopped by itself
    assert rec.error and "No space left on device" in rec.error
    with pytest.raises(AudioError, match="writing the recording failed"):
        rec.stop()
    # the file is closed and valid, with everything written before the error
    assert disk.f.closed
    y = read_pcm(path)
    assert sf.info(str(path)).samplerate == 16000 and len(y) == 3000 == rec.frames
    np.testing.assert_array_equal(y, pcm(3000))


def test_wav_writer_refuses_to_pass_4_gib(tmp_path, monkeypatch):
    w = capture.WavStreamWriter(tmp_path / "big.wav", 48000, 2, "PCM_16")
    # the RIFF size fields are 32-bit: header + data must fit in 0xFFFFFFFF
    assert 36 + w.MAX_DATA <= 0xFFFFFFFF and w.MAX_DATA > 0xFFFFFFFF - 4096
    limit = w.MAX_DATA // 4  # frames of 16-bit stereo
    w.frames = limit - 10  # as if nearly 4 GiB had been written already
    w.write(frames(10, 2))  # up to the limit: accepted
    assert w.frames == limit
    with pytest.raises(AudioError, match="cannot exceed 4 GiB; start a new take"):
        w.write(frames(1, 2))
    assert w.frames == limit
    w.close()  # the header can still be written for the largest size allowed
    head = (tmp_path / "big.wav").read_bytes()[:44]
    assert struct.unpack("<I", head[4:8])[0] == 36 + limit * 4 and struct.unpack("<I", head[40:44])[0] == limit * 4

    # through the recorder: the take stops with the reason, the file stays readable
    monkeypatch.setattr(capture.WavStreamWriter, "MAX_DATA", 2 * 1000)  # 1000 mono 16-bit frames
    src = RingSource()
    rec = capture.Recorder(src, tmp_path / "take.wav", poll_interval=0.001).start()
    src.ring.write(frames(600))
    assert wait_until(lambda: rec.frames == 600)
    src.ring.write(frames(600, start=600))
    assert wait_until(lambda: not rec.recording)
    with pytest.raises(AudioError, match="4 GiB"):
        rec.stop()
    np.testing.assert_array_equal(read_pcm(tmp_path / "take.wav"), pcm(600))


def test_a_new_take_after_a_device_or_rate_change_follows_the_new_input(tmp_path):
    """The GUI reopens the input when the device or rate changes; the next Recorder on the new
    stream writes a file at the new rate and channel count, from the new stream's own frames."""
    first = RingSource(48000, 2)
    rec = capture.Recorder(first, tmp_path / "a.wav", poll_interval=0.001).start()
    first.ring.write(frames(4800, 2))
    assert wait_until(lambda: rec.frames == 4800)
    rec.stop()
    second = RingSource(16000, 1)
    second.ring.write(frames(100, start=7))  # captured before the take: not part of it
    rec = capture.Recorder(second, tmp_path / "b.wav", poll_interval=0.001).start()
    second.ring.write(frames(1600, start=107))
    assert wait_until(lambda: rec.frames == 1600)
    rec.stop()
    for name, sr, ch, n, start in (("a.wav", 48000, 2, 4800, 0), ("b.wav", 16000, 1, 1600, 107)):
        info = sf.info(str(tmp_path / name))
        assert (info.samplerate, info.channels, info.frames) == (sr, ch, n), name
        np.testing.assert_array_equal(read_pcm(tmp_path / name), pcm(n, ch, start))
    with pytest.raises(AudioError, match="already exists"):  # a take never overwrites another
        capture.Recorder(second, tmp_path / "b.wav").start()


def wait_mic(stream, seconds: float) -> bool:
    """Wait until ``seconds`` more of audio have been captured (the audio clock, not the wall clock)."""
    return stream.wait_frames(stream.cursor(), int(seconds * stream.samplerate), timeout=seconds + 10)


def test_no_server_gives_clear_reasons(tmp_path):
    code = ("import json; from engine.audio import devices as audio_devices; a = audio_devices.availability(); "
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

    monkeypatch.setattr(audio_devices, "_sd", None)
    monkeypatch.setattr(audio_devices, "_sd_error", None)
    monkeypatch.setattr(builtins, "__import__", fake_import)
    with pytest.raises(DeviceError, match="PortAudio is not installed"):
        audio_devices.list_devices()
    a = audio_devices.availability()
    assert not a.input_ok and "PortAudio is not installed" in a.output_reason
    monkeypatch.setattr(audio_devices, "_sd_error", None)


# -- real audio ---------------------------------------------------------------------------------


def test_devices_listed_through_pulse(pulse):
    devs = audio_devices.list_devices()
    assert any(d.is_input and d.is_default_input for d in devs)
    assert any(d.is_output and d.is_default_output for d in devs)
    a = audio_devices.availability()
    assert a.input_ok and a.output_ok
    with pytest.raises(DeviceError, match="not connected"):
        audio_devices.find_device("no such microphone", "input")
    out = subprocess.run([sys.executable, "main.py", "devices", "--audio-only", "--json"], cwd=ROOT,
                         capture_output=True, text=True, timeout=60)
    info = json.loads(out.stdout)
    assert info["input_ok"] and info["output_ok"] and info["audio"]


def test_record_from_virtual_mic(pulse, tmp_path):
    """A 523 Hz tone played into the sink is recorded from the virtual mic to a streamed WAV."""
    path = tmp_path / "take.wav"
    with capture.InputStream(samplerate=RATE, channels=1) as stream:
        assert wait_until(lambda: stream.active and stream.frames > 0)  # the device delivers
        f0 = stream.frames
        rec = capture.Recorder(stream, path).start()
        f1 = stream.frames
        play_into_mic(tone(523.25, 1.2, amp=0.4))
        assert wait_mic(stream, 0.3)  # the tone's tail (~75 ms of latency) reaches the mic
        assert rec.recording
        f2 = stream.frames
        out = rec.stop()
        f3 = stream.frames
    assert out == path and not rec.recording
    y, sr = sf.read(str(path), dtype="float32")
    assert sr == RATE and y.ndim == 1 and len(y) == rec.frames
    # length: every frame captured while recording (the ring holds it all), none invented
    assert f2 - f1 <= len(y) <= f3 - f0, (f0, f1, len(y), f2, f3)
    assert rec.lost_frames == 0
    on, first = active_seconds(y, sr, 0.2)  # the tone's RMS is 0.28
    assert abs(on - 1.2) < 0.05  # all of the tone is in there, once
    seg = y[first:][: int(1.0 * sr)]
    assert abs(dominant_frequency(seg, sr) - 523.25) < 1.0
    assert 20 * np.log10(0.4) - 3 < 20 * np.log10(np.abs(seg).max()) < 0.5


def test_playback_plays_seeks_and_loops(pulse):
    """Play an array through the default output and hear it come back from the monitor."""
    sig = tone(660.0, 1.0, amp=0.5)
    pb = playback.Playback()
    pb.load(np.stack([sig, sig]), RATE)
    assert abs(pb.duration - 1.0) < 1e-6
    with capture.InputStream(samplerate=RATE, channels=1) as stream:
        cursor = stream.cursor()
        pb.play()
        assert pb.playing
        assert pb.wait(5.0), "playback never finished"
        assert not pb.playing and abs(pb.position - 1.0) < 1e-3
        assert wait_mic(stream, 0.3)  # what was played last has come round to the mic
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
        for _ in range(25):  # one position per 40 ms of audio heard
            assert wait_mic(stream, 0.04)
            positions.append(pb.position)
        assert pb.playing
        assert all(0.2 - 1e-6 <= p <= 0.5 + 1e-6 for p in positions)
        assert max(positions) - min(positions) > 0.15  # it moved and wrapped
        pb.pause()
        p = pb.position
        assert wait_mic(stream, 0.15)
        assert pb.position == p and not pb.playing
        pb.set_loop(None)
        pb.seek(0.9)
        assert abs(pb.position - 0.9) < 1e-3
        pb.stop()
        assert pb.position == 0.0
    pb.close()


RECORDER_SCRIPT = """
import sys, time
from engine.audio import capture
s = capture.InputStream(samplerate=48000, channels=1).start()
r = capture.Recorder(s, sys.argv[1]).start()
while True:  # report the frames written so far (not yet necessarily synced to the header)
    print(r.frames, flush=True)
    time.sleep(0.02)
"""


def test_killed_recorder_leaves_readable_file(pulse, tmp_path):
    """SIGKILL mid-take: the WAV on disk is valid and holds all but about the last second."""
    path = tmp_path / "killed.wav"
    sr = 48000
    player = play_into_mic(tone(440.0, 4.0, amp=0.4), block=False)
    proc = subprocess.Popen([sys.executable, "-c", RECORDER_SCRIPT, str(path)], cwd=ROOT,
                            stdout=subprocess.PIPE, text=True)
    try:
        for line in proc.stdout:  # until the take holds 2.5 s
            if int(line) >= 2.5 * sr:
                break
        os.kill(proc.pid, signal.SIGKILL)
        reported = [int(line)] + [int(x) for x in proc.stdout.read().split()]
        proc.wait(10)
    finally:
        if proc.poll() is None:
            proc.kill()
        player.join(10)
    last = reported[-1]  # the frames written when the child last spoke, just before the kill
    info = sf.info(str(path))
    y, got_sr = sf.read(str(path), dtype="float32")
    assert info.frames == len(y) and got_sr == sr
    # the header is synced every second: at most that (plus one 50 ms poll) is lost; nothing is
    # counted that was not written (at most one more poll could land after the last report)
    assert last - 1.1 * sr <= len(y) <= last + 0.1 * sr, (len(y), last)
    assert abs(dominant_frequency(y[-int(0.5 * sr):], sr) - 440.0) < 2.0


def test_input_windows_for_streaming_workers(pulse):
    """Workers pull overlapping windows as audio arrives; a tone played meanwhile shows up in them."""
    with capture.InputStream(samplerate=16000, channels=1) as stream:
        player = play_into_mic(tone(1000.0, 0.6, RATE, amp=0.4), block=False)
        got, seen = [], []
        c0 = stream.cursor()
        for w in stream.windows(4000, 2000, cursor=c0, timeout=3):
            got.append(w)
            seen.append(stream.frames)
            if len(got) == 6:
                break
        player.join(10)
    assert all(w.shape == (4000, 1) for w in got)
    for a, b in zip(got, got[1:]):
        np.testing.assert_array_equal(a[2000:], b[:2000])  # hop 2000: consecutive windows overlap by half
    # each window is handed out only once its last frame has been captured
    assert all(seen[k] >= c0 + 4000 + 2000 * k for k in range(6)), (c0, seen)
    loud = [w for w in got if np.sqrt(np.mean(w ** 2)) > 0.2]
    assert loud and abs(dominant_frequency(loud[0][:, 0], 16000) - 1000.0) < 5.0


def test_file_playback_streams_from_disk(pulse, tmp_path):
    """Files play through a small read-ahead ring: seek into the middle, hear the right part, loop."""
    sr = 44100
    parts = [tone(f, 1.0, sr, amp=0.4) for f in (400.0, 800.0, 1200.0)]
    path = tmp_path / "three.flac"
    sf.write(str(path), np.concatenate(parts), sr)
    pb = playback.Playback()
    pb.load_file(path)
    assert abs(pb.duration - 3.0) < 1e-6 and pb.audio is None  # nothing decoded up front
    assert pb._src.ring.nbytes <= 2.5 * sr * 4  # ~2 s of read-ahead, whatever the file length
    with capture.InputStream(samplerate=RATE, channels=1) as mic:
        cur = mic.cursor()
        pb.play(1.0)
        assert pb.wait(5.0)
        assert wait_mic(mic, 0.25)
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
        assert wait_mic(mic, 1.2)  # more than two rounds of the loop
        assert pb.playing and 2.0 <= pb.position <= 2.5
        cur = mic.cursor()
        assert wait_mic(mic, 0.4)
        got, cur, _ = mic.read(cur)
        pb.stop()
        assert abs(dominant_frequency(got[:, 0], RATE) - 1200.0) < 3.0
        assert pb.position == 2.0  # stop returns to the loop start
    pb.close()
