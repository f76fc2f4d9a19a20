"""The Speak panel and "Read aloud" (Qt offscreen) with the real offline Piper voice, played through the
PulseAudio null sink: the waveform grows while synthesising, the sound is heard, Stop silences it,
Save as writes a file Whisper reads back, "Open as file" puts it in the file list.
A screenshot goes to tests/artifacts/speak_panel.png."""

from __future__ import annotations

import os
import time
from pathlib import Path

import numpy as np
import pytest

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

from qtwindow import open_window  # noqa: E402

ARTIFACTS = Path(__file__).resolve().parent / "artifacts"
TEXT = ("The library opens at nine in the morning. Please return your books before Friday, or you will pay a "
        "small fine. The reading room on the second floor is quiet, and you can use the computers there. "
        "Our staff will gladly help you find what you are looking for.")


@pytest.fixture
def window(qtbot, tmp_path, monkeypatch, pulse):
    w = open_window(qtbot, tmp_path, monkeypatch, audio=None)  # the real (virtual) devices
    assert w.ctx.player.available, w.ctx.player.unavailable_reason
    yield w
    w.close()


@pytest.fixture(scope="module")
def whisper():
    from engine.transcribe.whisper.loading import load

    return load("tiny.en")


def _heard(model, audio16: np.ndarray) -> str:
    from engine.speech.text import normalize
    from engine.transcribe.whisper.longform import transcribe

    return normalize(transcribe(None, *model, audio16, language="en").text).lower()


def _rms(x: np.ndarray) -> float:
    return float(np.sqrt(np.mean(np.square(x)))) if len(x) else 0.0


def _image(widget) -> np.ndarray:
    from PySide6.QtGui import QImage

    img = widget.grab().toImage().convertToFormat(QImage.Format.Format_RGB32)
    return np.frombuffer(img.constBits(), np.uint8).reshape(img.height(), img.bytesPerLine() // 4, 4)[..., :3].copy()


def test_speak_panel_plays_while_synthesising_stops_and_saves(window, qtbot, tmp_path, whisper):
    from engine.audio import capture
    from engine.audio import io as audio_io
    from engine.jobs import JobStatus
    from engine.speech.text import normalize
    from engine.wer import wer
    from tests.pulse import RATE

    panel = window.panels["SpeakPanel"]
    qtbot.waitUntil(lambda: panel.voices_loaded, timeout=10000)
    items = {panel.voice.itemData(i): panel.voice.itemText(i) for i in range(panel.voice.count())}
    assert panel.voice.currentData() == "piper-en_US-joe-medium"
    assert "download to use" not in items["piper-en_US-joe-medium"]
    assert any("download to use" in t for t in items.values())  # the SpeechT5 voices need a download

    # bad input: a clear message, no job
    errors = []
    window.ctx.errorMessage.connect(errors.append)
    panel.text.setPlainText("  ?! ")
    assert panel.play() is None and errors and "nothing to say" in errors[-1]

    panel.text.setPlainText(TEXT)
    panel.resize(900, 600)
    blank = _image(panel.wave)
    with capture.InputStream(samplerate=RATE, channels=1, buffer_seconds=60) as mic:
        cursor = mic.cursor()
        t0 = time.monotonic()
        job = panel.play()
        assert job is not None and panel.stop_button.isEnabled()
        seen = []  # (seconds of waveform drawn, job still synthesising)
        deadline = time.monotonic() + 60
        while job.finished is None and time.monotonic() < deadline:
            qtbot.wait(20)
            if not seen or panel.wave.seconds != seen[-1][0]:
                seen.append((panel.wave.seconds, job.finished is None))
        qtbot.waitUntil(lambda: job.finished is not None, timeout=60000)
        assert job.status is JobStatus.DONE, job.error
        grown = [s for s, running in seen if running and s > 0]
        assert len(grown) >= 2 and grown[0] < panel.wave.seconds  # drawn sentence by sentence, while synthesising
        drawn = _image(panel.wave)
        changed = np.any(np.abs(drawn.astype(int) - blank.astype(int)) > 30, axis=2).mean()
        assert changed > 0.05, changed  # the waveform covers part of the view
        # it is heard: wait for the first sound, then stop in the middle of the speech
        first = None
        while first is None and time.monotonic() - t0 < 20:
            qtbot.wait(10)
            got, _, _ = mic.read(cursor)
            loud = np.flatnonzero(np.abs(got[:, 0]) > 0.02)
            first = loud[0] / RATE if len(loud) else None
        assert first is not None, "nothing was heard"
        qtbot.wait(1500)
        assert window.ctx.player.state == "playing"
        ARTIFACTS.mkdir(exist_ok=True)
        panel.grab().save(str(ARTIFACTS / "speak_panel.png"))
        c_stop = mic.cursor()
        panel.stop_button.click()
        assert mic.wait_frames(c_stop, int(0.8 * RATE))
        after, _, _ = mic.read(c_stop)
        assert _rms(after[int(0.3 * RATE):, 0]) < 1e-3  # silent after the stop (within the capture latency)
        assert window.ctx.player.state == "stopped" and not panel.stop_button.isEnabled()
        print(f"\nSpeak panel: first sound {first * 1000:.0f} ms after Play (includes opening the device)")

    # Save as: a job writes the file atomically; Whisper hears the text in it
    out = tmp_path / "said.flac"
    job = panel.save_as(out)
    qtbot.waitUntil(lambda: job.finished is not None, timeout=120000)
    assert job.status is JobStatus.DONE, job.error
    assert out.exists() and not [p for p in tmp_path.iterdir() if p.name.startswith(".said")]
    audio, _ = audio_io.load(out, sr=16000, mono=True)
    score = wer(normalize(TEXT).lower(), _heard(whisper, audio))
    assert score <= 0.15, score

    # Open as file: spoken into the session folder and put in the file list
    added = []
    window.ctx.addFileRequested.connect(lambda p, sel: added.append(p))
    job = panel.open_as_file()
    qtbot.waitUntil(lambda: bool(added), timeout=120000)
    assert Path(added[0]).parent == window.ctx.output_dir() and Path(added[0]).stat().st_size > 10000


def test_transcript_is_read_aloud_through_the_streaming_player(window, qtbot, tmp_path, whisper):
    import soundfile as sf

    from engine.audio import capture
    from engine.results import Segment, Transcript
    from engine.wer import wer
    from tests.pulse import RATE

    panel = window.panels["TranscribePanel"]
    f = tmp_path / "talk.wav"
    sf.write(f, np.zeros(16000, np.float32), 16000)
    said = ["The meeting starts at noon.", "Bring the report with you."]
    panel.transcripts[str(f)] = Transcript([Segment(0.0, 1.0, said[0]), Segment(1.0, 2.0, said[1])], "en", 2.0)
    window.ctx.set_selection([f])
    assert panel.read_button.isEnabled()
    with capture.InputStream(samplerate=RATE, channels=1, buffer_seconds=60) as mic:
        cursor = mic.cursor()
        job = panel.read_aloud()
        assert job is not None and panel.read_button.text() == "Stop reading"
        qtbot.waitUntil(lambda: job.finished is not None, timeout=60000)
        qtbot.waitUntil(lambda: window.ctx.player.state == "stopped", timeout=30000)
        assert mic.wait_frames(mic.cursor(), int(0.3 * RATE))
        got, _, _ = mic.read(cursor)
    from engine.audio import io as audio_io

    x = got[:, 0]
    assert _rms(x) > 0.01
    heard = _heard(whisper, audio_io.resample(x.reshape(1, -1), RATE, 16000)[0])
    assert wer("the meeting starts at noon bring the report with you", heard) <= 0.2, heard
    assert panel.read_button.text() == "Read aloud"
