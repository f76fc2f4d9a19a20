"""The headless CLI: `info` and `convert` on every listed format, models commands, exit codes,
help, and the GUI/CLI dispatch of main.py."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from media import AV_FORMATS, SF_FORMATS, tone, write

ROOT = Path(__file__).resolve().parent.parent
ALL = sorted(SF_FORMATS) + sorted(AV_FORMATS)
# the container/codec `info` names for each test file (soundfile's format, or PyAV's audio codec)
FORMATS = {"wav": "WAV", "flac": "FLAC", "ogg": "OGG", "opus": "OGG", "mp3": "MP3", "aiff": "AIFF",
           "m4a": "aac", "aac": "aac", "mp4": "aac", "webm": "opus"}


def cli(*args, env: dict | None = None):
    env = dict(os.environ, PYTHONPATH=str(ROOT), **(env or {}))
    return subprocess.run([sys.executable, str(ROOT / "main.py"), *map(str, args)], capture_output=True,
                          text=True, env=env, timeout=120)


@pytest.fixture(scope="module")
def media_dir(tmp_path_factory):
    d = tmp_path_factory.mktemp("media")
    for ext in ALL:
        write(d / f"tone.{ext}", tone(44100 if ext != "opus" else 48000, 2.0, channels=2),
              44100 if ext != "opus" else 48000)
    return d


def test_info_every_format(media_dir):
    r = cli("info", "--json", *[media_dir / f"tone.{e}" for e in ALL])
    assert r.returncode == 0, r.stderr
    rows = [json.loads(line) for line in r.stdout.splitlines()]
    assert len(rows) == len(ALL)
    for ext, row in zip(ALL, rows):
        assert row["channels"] == 2, (ext, row)
        # written at 44.1 kHz, except Opus, which only runs at 48 kHz (webm: resampled on writing)
        assert row["samplerate"] == (48000 if ext in ("opus", "webm") else 44100), (ext, row)
        assert row["format"] == FORMATS[ext], (ext, row)
        assert abs(row["duration"] - 2.0) < 0.1, (ext, row)


def test_info_reports_bad_files_and_fails(media_dir, tmp_path):
    junk = tmp_path / "junk.mp3"
    junk.write_bytes(os.urandom(5000))
    r = cli("info", media_dir / "tone.wav", junk, tmp_path / "missing.wav")
    assert r.returncode == 1
    assert "tone.wav" in r.stdout and "44100 Hz" in r.stdout
    assert "junk.mp3: not a readable audio file" in r.stderr
    assert "missing.wav: file not found" in r.stderr
    assert "Traceback" not in r.stderr


@pytest.mark.parametrize("ext", ALL)
def test_convert_every_format_to_flac_16k_mono(media_dir, tmp_path, ext):
    out = tmp_path / f"out_{ext}.flac"
    r = cli("convert", media_dir / f"tone.{ext}", out, "--rate", 16000, "--mono")
    assert r.returncode == 0, r.stderr
    import soundfile as sf

    data, sr = sf.read(out)
    assert sr == 16000 and data.ndim == 1
    assert abs(len(data) / sr - 2.0) < 0.1
    # the downmix of 440 Hz + 880 Hz keeps both tones (codec-tolerant check on the spectrum)
    spec = np.abs(np.fft.rfft(data[4000:20000] * np.hanning(16000)))
    freqs = np.fft.rfftfreq(16000, 1 / 16000)
    top = sorted(freqs[np.argsort(spec)[-2:]])
    assert abs(top[0] - 440) < 3 and abs(top[1] - 880) < 3


def test_convert_refuses_overwrite_bad_format_and_leaves_nothing(media_dir, tmp_path):
    out = tmp_path / "x.wav"
    out.write_bytes(b"keep me")
    r = cli("convert", media_dir / "tone.wav", out)
    assert r.returncode == 1 and "exists" in r.stderr and out.read_bytes() == b"keep me"
    r = cli("convert", media_dir / "tone.wav", tmp_path / "x.xyz")
    assert r.returncode == 1 and "cannot write 'xyz'" in r.stderr
    junk = tmp_path / "junk.wav"
    junk.write_bytes(b"RIFF" + os.urandom(100))
    r = cli("convert", junk, tmp_path / "y.flac")
    assert r.returncode == 1 and "not a readable audio file" in r.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["junk.wav", "x.wav"]


def test_convert_wav_float_round_trip_is_exact(tmp_path):
    audio = tone(22050, 1.0, channels=2)
    src = write(tmp_path / "a.wav", audio, 22050)
    r = cli("convert", src, tmp_path / "b.wav", "--subtype", "FLOAT", "--force")
    assert r.returncode == 0, r.stderr
    import soundfile as sf

    a, _ = sf.read(src, dtype="float32")
    b, _ = sf.read(tmp_path / "b.wav", dtype="float32")
    np.testing.assert_array_equal(a, b)


def test_help_and_usage_exit_codes():
    r = cli("--help")
    assert r.returncode == 0
    for command in ("info", "convert", "models"):
        assert command in r.stdout
        assert cli(command, "--help").returncode == 0
    assert cli("convert").returncode == 2  # missing arguments
    assert cli("models", "frobnicate").returncode == 2


def test_models_commands(tmp_path):
    env = {"SONOSCOPE_MODELS": str(tmp_path / "models")}
    r = cli("models", "list", "--json", env=env)
    assert r.returncode == 0, r.stderr
    rows = {row["id"]: row for row in json.loads(r.stdout)}
    assert rows["silero-vad"]["installed"] == "pack:silero-vad"
    r = cli("models", "path", "silero-vad", env=env)
    assert r.returncode == 0 and (Path(r.stdout.strip()) / "silero_vad_16k.safetensors").is_file()
    r = cli("models", "verify", "silero-vad", env=env)
    assert r.returncode == 0 and r.stdout.startswith("ok")
    r = cli("models", "path", "no-such-model", env=env)
    assert r.returncode == 1 and "unknown model 'no-such-model'" in r.stderr


def test_main_dispatch(tmp_path):
    sys.path.insert(0, str(ROOT))
    import main

    f = tmp_path / "a.wav"
    f.write_bytes(b"")
    assert main._wants_gui([])
    assert main._wants_gui([str(f)])
    assert main._wants_gui(["gui"])
    assert not main._wants_gui(["info", str(f)])
    assert not main._wants_gui(["--help"])
    assert not main._wants_gui([str(tmp_path / "missing.wav")])  # not a path: the CLI reports it


def test_app_without_a_display_says_so_instead_of_aborting():
    env = {k: v for k, v in os.environ.items() if k not in ("DISPLAY", "WAYLAND_DISPLAY", "QT_QPA_PLATFORM")}
    r = subprocess.run([sys.executable, str(ROOT / "main.py")], capture_output=True, text=True, timeout=60,
                       env=dict(env, PYTHONPATH=str(ROOT)))
    assert r.returncode == 3
    assert "no display found" in r.stderr and "python main.py --help" in r.stderr
    assert "Traceback" not in r.stderr and "Aborted" not in r.stderr
