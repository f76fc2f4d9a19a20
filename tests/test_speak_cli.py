"""`main.py speak`: files from text, stdin and text files; usage and input errors with their exit codes."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import soundfile as sf

ROOT = Path(__file__).resolve().parent.parent


def cli(*args, stdin: str | None = None):
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    return subprocess.run([sys.executable, str(ROOT / "main.py"), "speak", *map(str, args)], capture_output=True,
                          text=True, env=env, timeout=300, input=stdin)


def test_text_file_stdin_format_and_speed(tmp_path):
    src = tmp_path / "in.txt"
    src.write_text("First line of the file. Second line!\n", encoding="utf-8")
    r = cli("--text-file", src, "--out", tmp_path / "a.out", "--format", "flac")
    assert r.returncode == 0, r.stderr
    assert sf.info(str(tmp_path / "a.out")).format == "FLAC"
    r1 = cli("--text-file", "-", "--out", tmp_path / "b.wav", stdin="One two three four five six.")
    r2 = cli("One two three four five six.", "--out", tmp_path / "c.wav", "--speed", "2")
    assert r1.returncode == 0 and r2.returncode == 0, (r1.stderr, r2.stderr)
    assert sf.info(str(tmp_path / "c.wav")).duration < 0.8 * sf.info(str(tmp_path / "b.wav")).duration


def test_errors_and_exit_codes(tmp_path):
    assert cli("--out", tmp_path / "x.wav").returncode == 2  # no text
    assert cli("hi").returncode == 2  # neither --out nor --play
    r = cli("...", "--out", tmp_path / "x.wav")
    assert r.returncode == 1 and "nothing to say" in r.stderr
    r = cli("hi", "--out", tmp_path / "x.wav", "--voice", "nope")
    assert r.returncode == 1 and "unknown voice 'nope'" in r.stderr
    r = cli("--text-file", tmp_path / "missing.txt", "--out", tmp_path / "x.wav")
    assert r.returncode == 1 and "file not found" in r.stderr
    assert list(tmp_path.iterdir()) == []
    r = cli("--list-voices")
    assert r.returncode == 0 and "piper-en_US-joe-medium\tinstalled" in r.stdout
    assert "speecht5-xvector-slt\tdownload to use" in r.stdout
