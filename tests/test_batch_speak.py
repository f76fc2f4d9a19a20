"""`batch speak`: one audio file per text file, with the offline Piper voice; resumable like every task."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import soundfile as sf

ROOT = Path(__file__).resolve().parents[1]


def _batch(*args) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(ROOT / "main.py"), "batch", "speak", *map(str, args)],
                          capture_output=True, text=True, cwd=ROOT, timeout=600)


def test_batch_speak_writes_one_file_per_text_and_resumes(tmp_path):
    texts = tmp_path / "texts"
    texts.mkdir()
    (texts / "a.txt").write_text("Hello there, this is the first text.")
    (texts / "b.txt").write_text("Ten of clubs. Four queen of clubs.")
    (texts / "empty.txt").write_text("  \n")
    r = _batch(texts / "a.txt", texts / "b.txt", texts / "empty.txt", "--out", tmp_path / "out")
    assert r.returncode == 1, r.stderr[-2000:]  # the empty text failed, the others did not
    assert "2 done, 0 skipped, 1 failed of 3" in r.stderr + r.stdout
    for name in ("a", "b"):
        info = sf.info(str(tmp_path / "out" / f"{name}.wav"))
        assert info.samplerate == 22050 and info.duration > 1.0
    assert not (tmp_path / "out" / "empty.wav").exists()
    manifest = json.loads((tmp_path / "out" / "batch-manifest.json").read_text())
    assert "empty" in json.dumps(manifest).lower()
    r = _batch(texts / "a.txt", texts / "b.txt", "--out", tmp_path / "out")
    assert r.returncode == 0 and "0 done, 2 skipped" in r.stderr + r.stdout
