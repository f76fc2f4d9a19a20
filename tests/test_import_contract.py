"""The engine's import contract.

- ``engine/`` is Qt-free (usable headless and from the CLI) and never imports ``app``;
- imports go one way: base (errors, results, jobs, ...) <- audio, store <- models <- tasks <- cli,
  so models never import tasks and tasks never import the CLI or the app;
- there is no import cycle, function-level imports included;
- it is cheap to import (no torch at start-up); no module is over 700 lines; one result model.
"""

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
    assert {"engine.audio", "engine.audio.dsp", "engine.jobs", "engine.audio.chunking", "engine.cli"} <= set(result["names"])
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
import engine, engine.audio, engine.audio.io, engine.jobs, engine.cli, engine.errors, engine.fileio, \\
    engine.audio.chunking, engine.results, engine.transcribe.task
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


# ---------------------------------------------------------------------------------------------
# direction of imports and cycles (static: every import statement, at any depth)

# the layer of each part of the engine; a module may import its own layer and the ones below
LAYERS = [
    ("base", ("engine", "engine.errors", "engine.fileio", "engine.results", "engine.wer", "engine.compute",
              "engine.jobs", "engine.catalog")),
    ("audio and models store", ("engine.audio", "engine.store")),
    ("models", ("engine.models",)),
    ("tasks", ("engine.transcribe", "engine.stems", "engine.speakers", "engine.tags", "engine.speech",
               "engine.batch", "engine.timeline")),
    ("cli", ("engine.cli",)),
]


def module_names(root: Path, package: str = "engine") -> dict[str, Path]:
    out = {}
    for f in sorted(root.rglob("*.py")):
        parts = list(f.relative_to(root).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        out[".".join([package, *parts])] = f
    return out


def import_edges(root: Path, package: str = "engine") -> dict[str, set[str]]:
    """module -> the engine modules it imports anywhere in its file (function bodies included).

    ``from pkg import name`` counts as an import of ``pkg.name`` when that is a module, else of
    ``pkg``; importing ``a.b.c`` also runs the packages ``a.b`` and ``a``."""
    mods = module_names(root, package)
    edges: dict[str, set[str]] = {m: set() for m in mods}
    for name, path in mods.items():
        is_pkg = path.name == "__init__.py"
        here = name if is_pkg else name.rsplit(".", 1)[0]
        targets: list[str] = []
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                targets += [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                if node.level:
                    base = here.split(".")
                    base = base[:len(base) - (node.level - 1)]
                    mod = ".".join(base + ([node.module] if node.module else []))
                else:
                    mod = node.module or ""
                targets += [f"{mod}.{a.name}" if f"{mod}.{a.name}" in mods else mod for a in node.names]
            elif isinstance(node, ast.Call) and node.args and isinstance(node.args[0], ast.Constant) \
                    and isinstance(node.args[0].value, str):
                f = node.func
                if (f.attr if isinstance(f, ast.Attribute) else getattr(f, "id", "")) in ("import_module", "lazy"):
                    targets.append(node.args[0].value)
        for t in targets:
            if t != package and not t.startswith(package + "."):
                continue
            while t not in mods:  # an attribute of a module: the module
                t = t.rsplit(".", 1)[0]
            chain = t.split(".")
            for k in range(2, len(chain) + 1):  # the module and the packages above it (not the root)
                dep = ".".join(chain[:k])
                if dep != name and not name.startswith(dep + "."):
                    edges[name].add(dep)
    return edges


def cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on: set[str] = set()
    out: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on.add(v)
        for w in edges.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))

    for v in sorted(edges):
        if v not in index:
            visit(v)
    return out


def layer(module: str) -> int:
    best, level = -1, -1
    for i, (_, prefixes) in enumerate(LAYERS):
        for p in prefixes:
            if (module == p or module.startswith(p + ".")) and len(p) > best:
                best, level = len(p), i
    return level


def direction_violations(edges: dict[str, set[str]]) -> list[str]:
    bad = []
    for m, deps in sorted(edges.items()):
        if layer(m) < 0:
            bad.append(f"{m}: belongs to no layer (add it to LAYERS)")
        for d in sorted(deps):
            if layer(d) > layer(m):
                bad.append(f"{m} ({LAYERS[layer(m)][0]}) imports {d} ({LAYERS[layer(d)][0]})")
    return bad


def test_engine_has_no_import_cycle():
    found = cycles(import_edges(ENGINE))
    assert found == [], "import cycles in engine/ (function-level imports count):\n" + "\n".join(
        " <-> ".join(c) for c in found)


def test_imports_go_one_way():
    """Models never import tasks, tasks never import the CLI, nothing imports upwards."""
    bad = direction_violations(import_edges(ENGINE))
    assert bad == [], "imports against the layering:\n" + "\n".join(bad)


def test_engine_never_imports_the_app():
    hits = [f"{f.relative_to(ROOT)}: {h}" for f in sorted(ENGINE.rglob("*.py"))
            for h in _imported_names(f) if h.split(".")[0] == "app"]
    assert hits == []


def _imported_names(path: Path) -> list[str]:
    names = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names += [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.append(node.module)
    return names


def test_checks_find_hidden_cycles_and_upward_imports(tmp_path):
    """The checks themselves can fail: a cycle through a function-level import, a model importing a task."""
    pkg = tmp_path / "engine"
    (pkg / "models").mkdir(parents=True)
    (pkg / "transcribe").mkdir()
    for d in (pkg, pkg / "models", pkg / "transcribe"):
        (d / "__init__.py").write_text("")
    (pkg / "models" / "net.py").write_text("def f():\n    from ..transcribe import decode\n")
    (pkg / "transcribe" / "decode.py").write_text("from ..models.net import f\n")
    (pkg / "results.py").write_text("import importlib\nimportlib.import_module('engine.models.net')\n")
    edges = import_edges(pkg)
    assert "engine.transcribe.decode" in edges["engine.models.net"]
    assert cycles(edges) == [["engine.models.net", "engine.transcribe.decode"]]
    bad = direction_violations(edges)
    assert "engine.models.net (models) imports engine.transcribe.decode (tasks)" in bad
    assert "engine.results (base) imports engine.models.net (models)" in bad
    assert not any(b.startswith("engine.transcribe.decode ") for b in bad)  # downwards is fine


def test_no_engine_module_is_over_700_lines():
    long = {str(f.relative_to(ROOT)): n for f in sorted(ENGINE.rglob("*.py"))
            if (n := len(f.read_text(encoding="utf-8").splitlines())) > 700}
    assert long == {}


def test_one_result_model():
    """Exactly one Word, Segment and Transcript class in the engine: the ones in engine/results.py."""
    found: dict[str, list[str]] = {}
    for f in sorted(ENGINE.rglob("*.py")):
        for node in ast.walk(ast.parse(f.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ClassDef) and node.name in ("Word", "Segment", "Transcript"):
                found.setdefault(node.name, []).append(str(f.relative_to(ROOT)))
    assert found == {k: ["engine/results.py"] for k in ("Word", "Segment", "Transcript")}
