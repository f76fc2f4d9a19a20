"""The engine is Qt-free (usable headless and from the CLI) and cheap to import (no torch at start-up)."""

from __future__ import annotations

import ast
import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
ENGINE = ROOT / "engine"
FORBIDDEN = ("PySide6", "PyQt5", "PyQt6", "shiboken6", "pyqtgraph", "PySide2", "sip")


def run_python(code: str) -> dict:
    """Run ``code`` in a fresh interpreter at the repo root; it prints one JSON object as its last line."""
    env = dict(os.environ, HF_HUB_OFFLINE="1", PYTHONPATH=str(ROOT), QT_QPA_PLATFORM="offscreen")
    proc = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True,
                          timeout=300)
    assert proc.returncode == 0, proc.stderr[-4000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])


def test_every_engine_module_imports_without_qt():
    result = run_python(f"""
import importlib, json, pkgutil, sys, traceback
import engine
names, failed = [], {{}}
def onerror(name):
    failed[name] = traceback.format_exc(limit=3)
for m in pkgutil.walk_packages(engine.__path__, "engine.", onerror=onerror):
    names.append(m.name)
    try:
        importlib.import_module(m.name)
    except BaseException:
        failed[m.name] = traceback.format_exc(limit=3)
qt = sorted(k for k in sys.modules if k.split(".")[0] in {FORBIDDEN!r})
print(json.dumps({{"names": names, "failed": failed, "qt": qt}}))
""")
    assert {"engine.audio", "engine.dsp", "engine.jobs", "engine.chunking", "engine.cli"} <= set(result["names"])
    assert not result["failed"], "engine modules failed to import:\n" + "\n".join(
        f"{k}:\n{v}" for k, v in result["failed"].items())
    assert result["qt"] == [], f"importing engine pulled in Qt modules: {result['qt']}"


def _forbidden_imports(path: Path) -> list[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    hits = []
    for node in ast.walk(tree):
        names: list[str] = []
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names = [node.module]
        elif isinstance(node, ast.Call) and node.args and isinstance(node.args[0], ast.Constant) \
                and isinstance(node.args[0].value, str):
            func = node.func
            fname = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", "")
            if fname in ("import_module", "__import__"):
                names = [node.args[0].value]
        for name in names:
            if name.split(".")[0] in FORBIDDEN:
                hits.append(f"{path.relative_to(ROOT)}:{node.lineno}: {name}")
    return hits


def test_static_scan_has_no_qt_imports():
    files = sorted(ENGINE.rglob("*.py"))
    assert len(files) >= 8
    hits = [h for f in files for h in _forbidden_imports(f)]
    assert hits == [], "Qt imports inside engine/:\n" + "\n".join(hits)


def test_static_scan_detects_qt_imports(tmp_path, monkeypatch):
    """The scanner itself works (a test that cannot fail is a defect)."""
    monkeypatch.setattr(sys.modules[__name__], "ROOT", tmp_path)
    bad = tmp_path / "bad.py"
    bad.write_text("import os\nfrom PySide6.QtCore import QObject\ndef f():\n    import pyqtgraph as pg\n"
                   "importlib.import_module('PyQt6.QtWidgets')\nfrom .local import PySide6\n")
    assert [h.split(": ")[1] for h in _forbidden_imports(bad)] == ["PySide6.QtCore", "pyqtgraph", "PyQt6.QtWidgets"]


def test_core_imports_do_not_load_torch():
    result = run_python("""
import json, sys, time
t = time.perf_counter()
import engine, engine.audio, engine.jobs, engine.cli, engine.errors, engine.fileio, engine.chunking
dt = time.perf_counter() - t
heavy = sorted(k for k in sys.modules if k.split(".")[0] in ("torch", "transformers", "scipy", "av", "soundfile"))
print(json.dumps({"heavy": heavy, "seconds": dt}))
""")
    assert result["heavy"] == [], f"start-up imports pulled in {result['heavy']}"


def test_cli_parser_does_not_load_torch():
    """main.py builds the CLI parser at start-up (to tell commands from file paths): keep it light too."""
    result = run_python("""
import json, sys
import engine.cli
cmds = sorted(engine.cli.commands())
heavy = sorted(k for k in sys.modules if k.split(".")[0] in ("torch", "transformers"))
print(json.dumps({"commands": cmds, "heavy": heavy}))
""")
    assert result["heavy"] == [], f"building the CLI parser imported {result['heavy']} (commands: {result['commands']})"
