"""engine.audio: round trips through every supported container, streaming, conversion, and every bad
input (typed error, a message a person can read, and nothing left behind on disk)."""

from __future__ import annotations

import errno
import os
import stat
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from conftest import make_signal
from engine.audio import io as audio
from engine.errors import (AudioError, AudioFileNotFound, EmptyAudio, InvalidAudio, NotAnAudioFile,
                           SonoscopeError, UnsupportedFormat)


# ---------------------------------------------------------------------------------------------
# helpers


def best_correlation(ref: np.ndarray, got: np.ndarray, max_lag: int = 4000) -> tuple[float, int]:
    """Highest normalised correlation of ``got`` with ``ref`` over lags 0..max_lag (codec delay), and the lag."""
    from scipy.signal import correlate

    ref = np.asarray(ref, np.float64)
    got = np.asarray(got, np.float64)
    n = min(ref.size, got.size - max_lag)
    assert n > ref.size // 2, "decoded signal far too short"
    a = ref[:n]
    dots = correlate(got[:n + max_lag], a, mode="valid", method="fft")  # (max_lag + 1,)
    energy = np.concatenate([[0.0], np.cumsum(got[:n + max_lag] ** 2)])
    norms = np.sqrt(energy[n:n + max_lag + 1] - energy[:max_lag + 1]) * np.linalg.norm(a) + 1e-12
    c = dots / norms
    lag = int(np.argmax(c))
    return float(c[lag]), lag


def encode_with_pyav(path: Path, x: np.ndarray, sr: int, codec: str, container: str) -> None:
    """Encode float32 (channels, n) with PyAV/FFmpeg (formats libsndfile cannot write)."""
    import av

    layout = "stereo" if x.shape[0] == 2 else "mono"
    with av.open(str(path), "w", format=container) as c:
        s = c.add_stream(codec, rate=sr, layout=layout)
        for i in range(0, x.shape[1], 1024):
            frame = av.AudioFrame.from_ndarray(np.ascontiguousarray(x[:, i:i + 1024]), format="fltp", layout=layout)
            frame.sample_rate = sr
            for packet in s.encode(frame):
                c.mux(packet)
        for packet in s.encode(None):
            c.mux(packet)


def listing(folder: Path) -> set[str]:
    return {p.name for p in folder.iterdir()}


def assert_readable_message(err: BaseException, *phrases: str) -> None:
    msg = str(err)
    assert msg and "Traceback" not in msg and len(msg) < 300
    for phrase in phrases:
        assert phrase.lower() in msg.lower(), f"{phrase!r} not in {msg!r}"


def expect_read_error(path: Path, cls: type, *phrases: str) -> None:
    """info, load and stream all raise ``cls`` with a message naming the file; nothing is written beside it."""
    folder = path.parent if path.parent.exists() else None
    before = listing(folder) if folder else None
    for op in (lambda: audio.info(path), lambda: audio.load(path), lambda: audio.load(path, sr=8000, mono=True),
               lambda: next(audio.stream(path))):
        with pytest.raises(cls) as ei:
            op()
        assert isinstance(ei.value, SonoscopeError)
        assert_readable_message(ei.value, path.name, *phrases)
    if folder:
        assert listing(folder) == before


# ---------------------------------------------------------------------------------------------
# round trips


LOSSLESS = [("wav", None, 44100), ("wav", "FLOAT", 22050), ("flac", None, 48000), ("aiff", None, 16000)]


@pytest.mark.parametrize("fmt,subtype,sr", LOSSLESS)
@pytest.mark.parametrize("channels", [1, 2])
def test_lossless_round_trip(tmp_path, fmt, subtype, sr, channels):
    x = make_signal(0.5, sr, channels)
    path = audio.save(tmp_path / f"x.{fmt}", x, sr, subtype=subtype)
    assert listing(tmp_path) == {f"x.{fmt}"}  # no temporary file left beside it
    i = audio.info(path)
    assert (i.samplerate, i.channels, i.frames) == (sr, channels, x.shape[1])
    assert i.duration == pytest.approx(0.5, abs=1e-4)
    y, got_sr = audio.load(path)
    assert got_sr == sr and y.dtype == np.float32 and y.shape == x.shape
    tol = 1e-6 if subtype == "FLOAT" else 1.0 / 32768 + 1e-7
    np.testing.assert_allclose(y, x, atol=tol, rtol=0)


@pytest.mark.parametrize("fmt,sr", [("ogg", 44100), ("opus", 48000), ("mp3", 44100)])
def test_lossy_round_trip(tmp_path, fmt, sr):
    x = make_signal(1.0, sr, 2)
    path = audio.save(tmp_path / f"x.{fmt}", x, sr)
    assert listing(tmp_path) == {f"x.{fmt}"}
    i = audio.info(path)
    assert (i.samplerate, i.channels) == (sr, 2)
    assert i.duration == pytest.approx(1.0, abs=0.06)
    y, got_sr = audio.load(path)
    assert got_sr == sr and y.shape[0] == 2 and abs(y.shape[1] - x.shape[1]) < 0.06 * sr
    for c in range(2):
        corr, lag = best_correlation(x[c], y[c], max_lag=3000)
        assert corr > 0.95, (fmt, c, corr, lag)


@pytest.mark.parametrize("name,codec,container,sr,fmt", [("x.m4a", "aac", "ipod", 44100, "aac"),
                                                         ("x.webm", "libopus", "webm", 48000, "opus")])
def test_pyav_formats_decode(tmp_path, name, codec, container, sr, fmt):
    x = make_signal(1.0, sr, 2)
    path = tmp_path / name
    encode_with_pyav(path, x, sr, codec, container)
    i = audio.info(path)
    assert (i.samplerate, i.channels) == (sr, 2)
    assert i.duration == pytest.approx(1.0, abs=0.05)
    assert i.format == fmt and i.backend == "av"
    y, got_sr = audio.load(path)
    assert got_sr == sr and y.dtype == np.float32 and y.shape[0] == 2
    assert abs(y.shape[1] - x.shape[1]) < 0.05 * sr  # codec priming/padding only
    for c in range(2):
        corr, lag = best_correlation(x[c], y[c], max_lag=3000)
        assert corr > 0.95, (name, c, corr, lag)
    # resampled + mono through the PyAV path, and start/stop
    m, msr = audio.load(path, sr=16000, mono=True)
    assert msr == 16000 and m.ndim == 1 and abs(m.size - 16000) < 800
    part, _ = audio.load(path, start=0.25, stop=0.5)
    assert part.shape == (2, int(0.25 * sr))
    np.testing.assert_allclose(part, y[:, int(0.25 * sr):int(0.5 * sr)], atol=1e-6)


@pytest.mark.parametrize("codec,sample_fmt", [("pcm_s16le", "s16"), ("pcm_s32le", "s32"), ("pcm_f32le", "flt")])
def test_pyav_interleaved_integer_samples_exact(tmp_path, codec, sample_fmt):
    """PCM in Matroska goes through PyAV as interleaved (packed) integer frames: de-interleaving and
    scaling must be exact, with channels in the right order."""
    import av

    sr = 22050
    x = (0.5 * np.random.default_rng(0).uniform(-1, 1, (2, sr))).astype(np.float32)
    q = np.round(x * 32767).astype(np.int16)
    packed = {"s16": q, "s32": q.astype(np.int32) << 16, "flt": q / np.float32(32768)}[sample_fmt]
    packed = np.ascontiguousarray(packed.T.reshape(1, -1))  # (1, samples * channels), L R L R ...
    path = tmp_path / "pcm.mka"
    with av.open(str(path), "w", format="matroska") as c:
        s = c.add_stream(codec, rate=sr, layout="stereo")
        for i in range(0, sr, 1000):
            frame = av.AudioFrame.from_ndarray(np.ascontiguousarray(packed[:, 2 * i:2 * min(i + 1000, sr)]),
                                               format=sample_fmt, layout="stereo")
            frame.sample_rate = sr
            for packet in s.encode(frame):
                c.mux(packet)
        for packet in s.encode(None):
            c.mux(packet)
    i = audio.info(path)
    assert (i.samplerate, i.channels, i.frames, i.format) == (sr, 2, sr, codec)
    y, _ = audio.load(path)
    assert y.dtype == np.float32
    np.testing.assert_array_equal(y, q / np.float32(32768))
    np.testing.assert_array_equal(np.concatenate(list(audio.stream(path, block_frames=3000)), axis=1), y)


def test_streaming_resample_equals_whole_file(tmp_path):
    sr = 44100
    x = (0.3 * np.random.default_rng(0).standard_normal((2, 3 * sr))).astype(np.float32)
    path = audio.save(tmp_path / "s.wav", x, sr, subtype="FLOAT")
    for mono in (False, True):
        ref = audio.resample(audio.to_mono(x) if mono else x, sr, 16000)
        blocks = list(audio.stream(path, block_frames=10_000, sr=16000, mono=mono))
        assert len(blocks) > 5
        assert all(b.ndim == (1 if mono else 2) for b in blocks)  # the flushed tail too
        got = np.concatenate(blocks, axis=-1)
        assert got.shape == ref.shape == ((48000,) if mono else (2, 48000))
        np.testing.assert_allclose(got, ref, atol=1e-5, rtol=0)
        whole, _ = audio.load(path, sr=16000, mono=mono)
        np.testing.assert_allclose(whole, ref, atol=1e-5, rtol=0)


def test_stream_blocks_and_ranges(tmp_path):
    x = make_signal(2.0, 16000, 2)
    path = audio.save(tmp_path / "r.flac", x, 16000)
    y, _ = audio.load(path)
    blocks = list(audio.stream(path, block_frames=4096))
    assert all(b.shape[1] == 4096 for b in blocks[:-1])
    np.testing.assert_array_equal(np.concatenate(blocks, axis=1), y)
    part, _ = audio.load(path, start=0.5, stop=1.25)
    np.testing.assert_array_equal(part, y[:, 8000:20000])
    tail, _ = audio.load(path, start=1.5)
    np.testing.assert_array_equal(tail, y[:, 24000:])


def test_mono_and_channel_conversion(tmp_path):
    x = make_signal(0.25, 16000, 2)
    np.testing.assert_allclose(audio.to_mono(x), 0.5 * (x[0] + x[1]), atol=1e-7)
    x0 = x[0]
    assert audio.to_mono(x0) is x0 and audio.to_mono(x[:1]).shape == (4000,)
    four = np.concatenate([x, x[::-1]])
    np.testing.assert_allclose(audio.to_mono(four), 0.5 * (x[0] + x[1]), atol=1e-6)
    st = audio.to_channels(x[0], 2)
    assert st.shape == (2, 4000) and np.array_equal(st[0], x[0]) and np.array_equal(st[1], x[0])
    assert audio.to_channels(x, 2) is x
    assert audio.to_channels(x, 1).shape == (1, 4000)
    path = audio.save(tmp_path / "st.wav", x, 16000, subtype="FLOAT")
    m, _ = audio.load(path, mono=True)
    assert m.shape == (4000,)
    np.testing.assert_allclose(m, audio.to_mono(x), atol=1e-6)


def test_resample_keeps_pitch_and_length():
    sr_in, sr_out = 44100, 16000
    t = np.arange(sr_in) / sr_in
    x = np.sin(2 * np.pi * 1000 * t).astype(np.float32)
    y = audio.resample(x, sr_in, sr_out)
    assert y.dtype == np.float32 and y.shape == (16000,)
    spectrum = np.abs(np.fft.rfft(y * np.hanning(y.size)))
    assert abs(np.argmax(spectrum) * sr_out / y.size - 1000) < 2
    st = audio.resample(np.stack([x, -x]), sr_in, sr_out)
    assert st.shape == (2, 16000) and st.flags.c_contiguous
    np.testing.assert_allclose(st[0], y, atol=1e-6)
    assert audio.resample(x, 16000, 16000) is x


def test_save_clips_integer_formats_and_overwrites_atomically(tmp_path):
    x = np.array([[0.0, 1.5, -2.0, 0.5] * 1000], np.float32)
    path = audio.save(tmp_path / "c.wav", x, 16000)
    y, _ = audio.load(path)
    assert y.max() <= 1.0 and y.min() >= -1.0 and y[0, 1] > 0.999 and y[0, 2] == -1.0  # clipped, not wrapped
    audio.save(path, 0.25 * np.ones(800, np.float32), 8000)  # same name: replaced in one step
    assert listing(tmp_path) == {"c.wav"}
    i = audio.info(path)
    assert (i.samplerate, i.frames) == (8000, 800)


# ---------------------------------------------------------------------------------------------
# bad input: reading


def test_missing_file(tmp_path):
    expect_read_error(tmp_path / "nope.wav", AudioFileNotFound, "not found")
    expect_read_error(tmp_path / "no_folder" / "nope.flac", AudioFileNotFound, "not found")


def test_empty_file(tmp_path):
    p = tmp_path / "empty.wav"
    p.write_bytes(b"")
    expect_read_error(p, NotAnAudioFile, "empty")


def test_truncated_header(tmp_path, tmp_audio):
    path, _ = tmp_audio("full.wav")
    cut = tmp_path / "cut.wav"
    cut.write_bytes(path.read_bytes()[:20])
    expect_read_error(cut, NotAnAudioFile, "damaged or truncated")


@pytest.mark.parametrize("ext", [".wav", ".mp3", ".flac", ".m4a", ".ogg"])
def test_random_bytes(tmp_path, ext):
    p = tmp_path / f"noise{ext}"
    p.write_bytes(np.random.default_rng(7).bytes(20_000))
    expect_read_error(p, NotAnAudioFile, "not a readable audio file")


def test_directory(tmp_path):
    d = tmp_path / "folder.wav"
    d.mkdir()
    expect_read_error(d, NotAnAudioFile, "folder")


def run_without_root_powers(code: str) -> str:
    """Run ``code`` in a child Python whose file permission checks apply even as root (no DAC override)."""
    import shutil
    import subprocess
    import sys

    root = Path(__file__).resolve().parents[1]
    cmd = [sys.executable, "-c", code]
    if os.geteuid() == 0:
        if shutil.which("setpriv") is None:
            pytest.skip("running as root without setpriv: cannot drop CAP_DAC_OVERRIDE")
        cmd = ["setpriv", "--bounding-set=-dac_override,-dac_read_search", "--"] + cmd
    proc = subprocess.run(cmd, cwd=root, env=dict(os.environ, PYTHONPATH=str(root)), capture_output=True,
                          text=True, timeout=120)
    if proc.returncode != 0 and "setpriv" in proc.stderr:
        pytest.skip(f"setpriv could not drop capabilities here: {proc.stderr.strip()}")
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc.stdout.strip()


def test_unreadable_file_chmod(tmp_path, tmp_audio):
    """A real chmod 000 file (as root the check runs in a child without CAP_DAC_OVERRIDE)."""
    path, _ = tmp_audio("secret.wav")
    path.chmod(0)
    tmp_path.chmod(0o755)
    try:
        out = run_without_root_powers(f"""
from engine.audio import io as audio
for op in (audio.info, audio.load, lambda p: next(audio.stream(p))):
    try:
        op({str(path)!r})
        print("READ OK")
    except Exception as e:
        print(type(e).__name__ + ": " + str(e))
""")
    finally:
        path.chmod(stat.S_IRUSR | stat.S_IWUSR)
    lines = out.splitlines()
    assert lines == ["AudioError: secret.wav: no permission to read this file"] * 3, out
    assert listing(tmp_path) == {"secret.wav"}


def test_save_into_read_only_folder(tmp_path):
    """A real read-only folder (as root the save runs in a child without CAP_DAC_OVERRIDE)."""
    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(stat.S_IRUSR | stat.S_IXUSR | stat.S_IRGRP | stat.S_IXGRP | stat.S_IROTH | stat.S_IXOTH)
    tmp_path.chmod(0o755)
    try:
        out = run_without_root_powers(f"""
import numpy as np
from engine.audio import io as audio
try:
    audio.save({str(ro / "out.wav")!r}, np.zeros(1600, np.float32), 16000)
    print("WROTE")
except Exception as e:
    print(type(e).__name__ + ": " + str(e))
""")
        assert out == f"AudioError: out.wav: no permission to write in {ro}", out
        assert listing(ro) == set()
    finally:
        ro.chmod(stat.S_IRWXU)


def test_unreadable_file_access_denied(tmp_path, tmp_audio, monkeypatch):
    path, _ = tmp_audio("secret.wav")
    real_access = os.access
    monkeypatch.setattr(os, "access", lambda p, mode, *a, **k: False if Path(p) == path else real_access(p, mode))
    expect_read_error(path, AudioError, "permission")


def test_open_raises_permission_error(tmp_audio, monkeypatch):
    """os.access said yes but opening fails (ACLs, network shares): still a typed error."""
    import soundfile

    path, _ = tmp_audio("acl.wav")

    def deny(*a, **k):
        raise PermissionError(errno.EACCES, "Permission denied", str(path))

    monkeypatch.setattr(soundfile, "info", deny)
    with pytest.raises(AudioError) as ei:
        audio.info(path)
    assert_readable_message(ei.value, "acl.wav", "permission")


def test_zero_length_audio(tmp_path):
    p = tmp_path / "zero.wav"
    sf.write(str(p), np.zeros((0, 1), np.float32), 16000)
    assert p.stat().st_size > 0  # a valid header with no frames
    expect_read_error(p, EmptyAudio, "no audio")


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_nan_inf_samples(tmp_path, bad):
    x = make_signal(1.0, 16000, 2)
    x[1, 12000] = bad
    p = tmp_path / "nan.wav"
    sf.write(str(p), x.T, 16000, subtype="FLOAT")
    assert audio.info(p).frames == 16000  # the header is fine; the samples are not
    with pytest.raises(InvalidAudio) as ei:
        audio.load(p)
    assert_readable_message(ei.value, "nan.wav", "NaN or infinite", "0.750 s")
    with pytest.raises(InvalidAudio):
        audio.load(p, sr=8000, mono=True)
    with pytest.raises(InvalidAudio):
        list(audio.stream(p, block_frames=1000))
    assert listing(tmp_path) == {"nan.wav"}


@pytest.mark.parametrize("rate", [1, 768_000])
def test_absurd_sample_rates(tmp_path, rate):
    p = tmp_path / f"rate{rate}.wav"
    sf.write(str(p), np.zeros((64, 1), np.float32), rate)
    assert sf.info(str(p)).samplerate == rate
    expect_read_error(p, InvalidAudio, "sample rate", f"{rate} Hz")


def test_too_many_channels(tmp_path):
    p = tmp_path / "c32.wav"
    sf.write(str(p), np.zeros((100, 32), np.float32), 16000)
    expect_read_error(p, InvalidAudio, "32 channels")


# ---------------------------------------------------------------------------------------------
# bad input: writing


@pytest.mark.parametrize("name,fmt", [("x.xyz", None), ("x.wav", "wma"), ("noext", None)])
def test_save_unsupported_format(tmp_path, name, fmt):
    with pytest.raises(UnsupportedFormat) as ei:
        audio.save(tmp_path / name, make_signal(0.1), 16000, format=fmt)
    assert_readable_message(ei.value, "cannot write", "wav")
    assert listing(tmp_path) == set()


@pytest.mark.parametrize("data,sr,name,cls,phrase", [
    (np.full(100, np.nan, np.float32), 16000, "n.wav", InvalidAudio, "NaN"),
    (np.zeros(0, np.float32), 16000, "e.wav", EmptyAudio, "no samples"),
    (np.zeros((2, 2, 10), np.float32), 16000, "d.wav", InvalidAudio, "shape"),
    (np.zeros((32, 100), np.float32), 16000, "c.wav", InvalidAudio, "32 channels"),
    (np.zeros(100, np.float32), 1, "r.wav", InvalidAudio, "1 Hz"),
    (np.zeros(1000, np.float32), 12345, "m.mp3", InvalidAudio, "MP3 cannot store 12345 Hz"),
    (np.zeros(1000, np.float32), 44100, "o.opus", InvalidAudio, "Opus cannot store 44100 Hz"),
])
def test_save_rejects_bad_audio(tmp_path, data, sr, name, cls, phrase):
    with pytest.raises(cls) as ei:
        audio.save(tmp_path / name, data, sr)
    assert_readable_message(ei.value, phrase)
    assert listing(tmp_path) == set()


def test_save_permission_denied_creating_temp(tmp_path, monkeypatch):
    import soundfile as sf

    def deny(*a, **k):  # what libsndfile raises when the folder refuses a new file
        raise PermissionError(errno.EACCES, "Permission denied")

    monkeypatch.setattr(sf, "write", deny)
    with pytest.raises(AudioError) as ei:
        audio.save(tmp_path / "out.wav", make_signal(0.1), 16000)
    assert_readable_message(ei.value, "out.wav", "no permission to write")
    assert listing(tmp_path) == set()


def test_saved_files_get_the_usual_permissions(tmp_path):
    """Atomic writing must not leave the 0600 mode of a private temp file on exports."""
    umask = os.umask(0o022)
    try:
        out = audio.save(tmp_path / "out.wav", make_signal(0.1), 16000)
    finally:
        os.umask(umask)
    assert out.stat().st_mode & 0o777 == 0o644


@pytest.mark.parametrize("exc,cls,phrase", [
    (OSError(errno.ENOSPC, "No space left on device"), AudioError, "disk is full"),
    (OSError(errno.EIO, "Input/output error"), AudioError, "could not write"),
    (RuntimeError("encoder crashed"), RuntimeError, "encoder crashed"),
    (KeyboardInterrupt(), KeyboardInterrupt, ""),
])
def test_failure_mid_save_leaves_nothing(tmp_path, monkeypatch, exc, cls, phrase):
    import soundfile

    old = audio.save(tmp_path / "keep.flac", make_signal(0.2), 16000)
    old_bytes = old.read_bytes()
    written = []

    def half_write(file, data, samplerate, *a, **k):
        with open(file, "wb") as f:
            f.write(b"RIFF" + bytes(4096))  # some bytes reached the disk...
        written.append(file)
        raise exc  # ...then the write failed

    monkeypatch.setattr(soundfile, "write", half_write)
    for target in (tmp_path / "new.wav", old):
        with pytest.raises(cls) as ei:
            audio.save(target, make_signal(0.5), 16000)
        if phrase:
            assert_readable_message(ei.value, phrase)
    assert len(written) == 2 and not any(Path(w).exists() for w in written)
    assert listing(tmp_path) == {"keep.flac"}  # no new file, no temporary file
    assert old.read_bytes() == old_bytes  # the previous version is intact


def test_failure_at_rename_leaves_nothing(tmp_path, monkeypatch):
    def fail_replace(src, dst):
        raise OSError(errno.EXDEV, "Invalid cross-device link")

    monkeypatch.setattr(os, "replace", fail_replace)
    with pytest.raises(AudioError) as ei:
        audio.save(tmp_path / "x.wav", make_signal(0.1), 16000)
    assert_readable_message(ei.value, "x.wav", "could not write")
    assert listing(tmp_path) == set()


def test_check_audio_messages():
    assert audio.check_audio(np.zeros(10), 16000).shape == (10,)
    with pytest.raises(InvalidAudio, match="outside"):
        audio.check_audio(np.zeros(10), 768_000, "clip")
    with pytest.raises(InvalidAudio, match=r"\(channels, samples\)"):
        audio.check_audio(np.zeros((100, 2)).T.T, 16000)  # 100 "channels": transposed by mistake
    with pytest.raises(EmptyAudio, match="clip: no samples"):
        audio.check_audio(np.zeros((2, 0)), 16000, "clip")


def test_load_probes_the_file_once(tmp_path, monkeypatch):
    """info() may decode a whole file when its header has no length (raw ADTS): load must not repeat it."""
    path = tmp_path / "a.wav"
    sf.write(str(path), make_signal(0.5).T, 16000)
    calls = []
    real = audio._sf_info
    monkeypatch.setattr(audio, "_sf_info", lambda p: calls.append(p) or real(p))
    data, sr = audio.load(path, sr=8000)
    assert len(calls) == 1 and sr == 8000 and data.shape[0] == 1 and abs(data.shape[1] - 4000) <= 16
