"""Issue 13, "one set of defaults and words":

- the app's settings and the CLI's options start from the same defaults (engine/defaults.py);
- stems are the same 32-bit float WAV from both, written as WAVE_FORMAT_EXTENSIBLE;
- the models table says in words how each model is installed, one row per model, and every panel
  marks the models a first run must download;
- the Live panel without a microphone says why in the panel;
- the CLI: a missing file is "file not found", an error names the file once, inputs are checked
  before a model is loaded.
"""

from __future__ import annotations

import argparse
import os
import re
import struct
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
from qtwindow import open_window  # noqa: E402

from engine import defaults as D  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
ARTIFACTS = ROOT / "tests" / "artifacts"


@pytest.fixture
def window(qtbot, tmp_path, monkeypatch):
    w = open_window(qtbot, tmp_path, monkeypatch)
    yield w
    w.close()


def subparser(name: str) -> argparse.ArgumentParser:
    from engine.cli import build_parser

    for action in build_parser()._actions:
        if isinstance(action, argparse._SubParsersAction):
            return action.choices[name]
    raise KeyError(name)


def defaults_of(name: str) -> dict:
    return {a.dest: a.default for a in subparser(name)._actions}


def test_the_app_and_the_cli_start_from_the_same_defaults(window):
    from app import settings as S

    keys = S.KEYS
    assert keys["transcribe/model"].default == D.TRANSCRIBE_MODEL == "whisper-base"
    assert (keys["transcribe/language"].default, keys["transcribe/task"].default,
            keys["transcribe/beam_size"].default, keys["transcribe/word_timestamps"].default) == \
        (D.LANGUAGE, D.TASK, D.BEAM_SIZE, D.WORD_TIMESTAMPS)
    assert (keys["stems/count"].default, keys["stems/mode"].default, keys["stems/format"].default) == \
        (D.STEMS, D.STEMS_MODE, D.STEMS_FORMAT)
    assert keys["live/engine"].default == D.LIVE_ENGINE and keys["files/export_format"].default == D.EXPORT_FORMAT
    stems = defaults_of("stems")
    assert (stems["stems"], stems["mode"], stems["format"]) == (D.STEMS, D.STEMS_MODE, D.STEMS_FORMAT)
    tag = defaults_of("tag")
    assert (tag["top"], tag["threshold"], tag["hop"]) == (D.TAG_TOP, D.TAG_THRESHOLD, D.TAG_HOP)
    assert defaults_of("live")["engine"] == D.LIVE_ENGINE
    transcribe = defaults_of("transcribe")
    assert (transcribe["task"], transcribe["beam_size"], transcribe["word_timestamps"]) == \
        (D.TASK, D.BEAM_SIZE, D.WORD_TIMESTAMPS)
    # the engine's own defaults (what a CLI command without --model ends up with) are these too
    from engine.transcribe import live, task

    assert task.DEFAULT_MODELS == D.TRANSCRIBE_MODELS and live.DEFAULT_MODELS == D.LIVE_MODELS
    # and what the panels show selected at first
    assert window.panels["TranscribePanel"].model.currentData() == D.TRANSCRIBE_MODEL
    lp = window.panels["LivePanel"]
    assert lp.engine.currentData() == D.LIVE_ENGINE and lp.model.currentData() == D.LIVE_MODELS[D.LIVE_ENGINE]
    sp = window.panels["StemsPanel"]
    assert (sp.stems_box.currentData(), sp.mode_box.currentData(), sp.format_box.currentData()) == \
        (D.STEMS, D.STEMS_MODE, D.STEMS_FORMAT)


def test_cli_transcribe_without_model_uses_the_shared_default(tmp_path, monkeypatch):
    import engine.transcribe.task as task
    from engine.cli import main

    wav = tmp_path / "a.wav"
    sf.write(str(wav), np.zeros(1600, np.float32), 16000)
    asked = []

    def fake(state, path, engine="whisper", model=None, **kw):
        asked.append(model or task.DEFAULT_MODELS[engine])
        raise task.SonoscopeError("stop here")

    monkeypatch.setattr(task, "transcribe_file", fake)
    main(["transcribe", str(wav), "--out", str(tmp_path)])
    assert asked == [D.TRANSCRIBE_MODEL]


def wav_format_tag(path: Path) -> tuple[int, int, bytes]:
    """(format tag, fmt chunk size, sub-format GUID or b'') of a WAV file."""
    data = path.read_bytes()
    i = data.index(b"fmt ")
    size = struct.unpack_from("<I", data, i + 4)[0]
    tag = struct.unpack_from("<H", data, i + 8)[0]
    guid = data[i + 8 + 24:i + 8 + 40] if tag == 0xFFFE else b""
    return tag, size, guid


FLOAT_GUID = bytes.fromhex("0300000000001000800000aa00389b71")  # KSDATAFORMAT_SUBTYPE_IEEE_FLOAT


def test_stems_are_the_same_float_wav_from_the_app_and_the_cli(tmp_path):
    """The CLI's `stems` streams through _StemWriter; the app separates into work files the same way
    and then exports them with export_stem_files: both give 32-bit float WAVE_FORMAT_EXTENSIBLE."""
    import contextlib

    from engine.audio import io as audio
    from engine.stems.separate import _StemWriter, export_stem_files, output_paths

    rng = np.random.default_rng(0)
    block = (rng.standard_normal((2, 44100)) * 0.6).astype(np.float32)  # peaks above full scale
    cli_paths = output_paths(tmp_path / "cli", "song", ["vocals"], "wav")
    with contextlib.ExitStack() as stack:
        writer = _StemWriter(stack, cli_paths, 44100, 2, "wav")
        writer.write("vocals", block, last=True)
    app_paths = export_stem_files(None, {"vocals": cli_paths["vocals"]}, tmp_path / "app", "song", "wav")
    for p in (cli_paths["vocals"], app_paths["vocals"]):
        info = sf.info(str(p))
        assert (info.format, info.subtype) == ("WAVEX", "FLOAT"), p
        assert wav_format_tag(p) == (0xFFFE, 40, FLOAT_GUID)  # the extended fmt chunk sox expects
        back, _ = sf.read(str(p), dtype="float32", always_2d=True)
        np.testing.assert_array_equal(back.T, block)  # exact, and not clipped at 1.0
    # plain saves of float WAV are extensible too; 16-bit stays the classic header
    audio.save(tmp_path / "f.wav", block, 44100, subtype="FLOAT")
    audio.save(tmp_path / "i.wav", block, 44100)
    assert wav_format_tag(tmp_path / "f.wav")[0] == 0xFFFE and wav_format_tag(tmp_path / "i.wav")[:2] == (1, 16)


WORDS = re.compile(r"^(offline pack|downloaded|imported|not installed( — (download( \S+ MB)?|offline mode|"
                   r"needs its offline pack|no network|failed|cancelled))?)$")


def test_models_are_listed_once_each_in_words_and_marked_for_download_everywhere(window, qtbot):
    from engine.store import default_store

    panel = window.panels["ModelsPanel"]
    panel.refresh()
    qtbot.waitUntil(lambda: panel.tree.topLevelItemCount() > 10, timeout=5000)
    qtbot.wait(200)
    items = [panel.tree.topLevelItem(i) for i in range(panel.tree.topLevelItemCount())]
    names = [it.text(0) for it in items]
    assert len(names) == len(set(names)), "a model is listed twice"
    assert sum("Spleeter 2 stems" in n for n in names) == 1
    for it in items:
        assert WORDS.match(it.text(4)), (it.text(5), it.text(4))
        assert "pack:" not in it.text(4) and it.toolTip(4)
    store = default_store()
    by_id = {it.text(5): it.text(4) for it in items}
    assert by_id["silero-vad"] == "offline pack"
    for mid in ("spleeter-4stems", "spleeter-5stems"):
        assert (by_id[mid] == "not installed — offline mode") == (not store.is_installed(mid))
    window.tabs.setCurrentWidget(panel)
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    window.grab().save(str(ARTIFACTS / "newuser_6_models.png"))
    # every model picker marks what a first run downloads, 4- and 5-stem Spleeter included
    stems = window.panels["StemsPanel"].stems_box
    for i in range(stems.count()):
        mid = D.STEM_MODELS[stems.itemData(i)]
        assert stems.itemText(i).endswith("(download)") == (not store.is_installed(mid)), stems.itemText(i)
    for combo in (window.panels["TranscribePanel"].model, window.panels["LivePanel"].model):
        for i in range(combo.count()):
            assert combo.itemText(i).endswith("(download)") == (not store.is_installed(combo.itemData(i)))


def test_live_panel_without_a_microphone_says_why_in_the_panel(window, qtbot):
    window.tabs.setCurrentWidget(window.panels["LivePanel"])
    panel = window.panels["LivePanel"]
    panel.source.setCurrentIndex(panel.source.findData("mic"))
    qtbot.wait(50)
    reason = "no audio input device was found (test)"
    assert panel.mic_note.isVisible() and reason in panel.mic_note.text()
    assert "Selected file (replay)" in panel.mic_note.text()
    assert not panel.start.isEnabled() and reason in panel.start.toolTip()
    assert panel.spectrogram.placeholder == "No microphone (see above)"
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    window.grab().save(str(ARTIFACTS / "newuser_5_live_without_microphone.png"))
    # the replay of a file needs no microphone
    panel.source.setCurrentIndex(panel.source.findData("file"))
    assert not panel.mic_note.isVisible() and panel.start.isEnabled()
    assert panel.spectrogram.placeholder == "Press Start to replay the selected file"


# -- command line ----------------------------------------------------------------------------------
def cli(*args, cwd=None, code=None):
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    cmd = [sys.executable, "-c", code, *map(str, args)] if code else [sys.executable, str(ROOT / "main.py"),
                                                                      *map(str, args)]
    t0 = time.monotonic()
    r = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=120, cwd=cwd)
    return r, time.monotonic() - t0


def test_cli_missing_file_is_file_not_found(tmp_path):
    r, _ = cli("missing.wav", cwd=tmp_path)
    assert r.returncode == 1 and r.stderr.strip() == "error: missing.wav: file not found", r.stderr
    assert "invalid choice" not in r.stderr
    r, _ = cli("transcrib", "x.wav", cwd=tmp_path)  # a mistyped command is still a usage error
    assert r.returncode == 2 and "invalid choice: 'transcrib'" in r.stderr


def test_cli_errors_name_the_file_once(tmp_path):
    bad = tmp_path / "dir" / "bad.wav"
    bad.parent.mkdir()
    bad.write_bytes(b"this is not audio")
    r, _ = cli("info", bad, bad.parent / "gone.wav")
    lines = r.stderr.strip().splitlines()
    assert r.returncode == 1
    assert lines[0].startswith(f"error: {bad}: not a readable audio file") and lines[0].count("bad.wav") == 1
    assert lines[1] == f"error: {bad.parent / 'gone.wav'}: file not found"


CHECK_FIRST = r"""
import sys
import engine.models as models
def load(*a, **k):
    raise AssertionError("a model was loaded")
models.load = load
from engine.cli import main
rc = main(sys.argv[1:])
print("torch imported" if "torch" in sys.modules else "no torch")
sys.exit(rc)
"""


@pytest.mark.parametrize("command", [["stems"], ["tag"], ["live", "--file"]], ids=["stems", "tag", "live"])
def test_cli_checks_inputs_before_any_model(tmp_path, command):
    bad = tmp_path / "bad.wav"
    bad.write_bytes(b"RIFF....WAVEjunk")
    files = [bad] if command[0] == "live" else [bad, tmp_path / "missing.wav"]
    r, took = cli(*command, *files, code=CHECK_FIRST)
    assert r.returncode == 1, r.stderr
    assert r.stdout.strip() == "no torch"  # nothing heavy was even imported
    assert f"error: {bad}: not a readable audio file" in r.stderr and "Traceback" not in r.stderr
    if command[0] != "live":
        assert f"error: {tmp_path / 'missing.wav'}: file not found" in r.stderr
    print(f"\n{command[0]}: bad inputs reported in {took:.2f} s (process start included)")
