"""Batch runs (engine/batch, `main.py batch`): 20 real files and 3 broken ones; outputs equal one-by-one
runs of the single-file commands, failures are summarised with exit 1, a SIGKILLed batch resumes with
only its unfinished files and leaves no partial file, changed options and inputs are redone."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from engine.batch import run_batch, tasks
from engine.batch.inputs import collect
from engine.batch.manifest import NAME as MANIFEST
from engine.errors import Cancelled, SonoscopeError
from engine.jobs import JobState

ROOT = Path(__file__).resolve().parents[1]
ICONS = Path("/usr/share/sounds/sound-icons")
LIBRIVOX = Path("/usr/share/pocketsphinx/test/data/librivox")
MUSIC = ["cembalo-1", "cembalo-2", "chord-7", "guitar-12", "piano-3", "trumpet-1", "violoncello-7", "xylofon",
         "glass-water-1", "percussion-10", "canary-long", "electric-piano-3"]
ENV = dict(os.environ, PYTHONPATH=str(ROOT), HF_HUB_OFFLINE="1", SONOSCOPE_OFFLINE="1")


def build_corpus(root: Path) -> tuple[list[Path], list[Path]]:
    """20 real files (12 sound icons, 5 LibriVox utterances, 3 cuts of them as FLAC / OGG / MP3) in
    three folders, and 3 broken ones: random bytes, an empty file, a WAV cut inside its header."""
    good = []
    for name in MUSIC:
        dst = root / "music" / f"{name}.wav"
        dst.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(ICONS / f"{name}.wav", dst)
        good.append(dst)
    speech = sorted(LIBRIVOX.glob("*.wav"))
    assert len(speech) == 5, "pocketsphinx-testdata is not installed"
    (root / "speech").mkdir()
    for src in speech:
        good.append(Path(shutil.copy(src, root / "speech" / src.name)))
    (root / "cuts").mkdir()
    for k, (src, ext, a, b) in enumerate([(speech[0], "flac", 0.0, 3.0), (speech[1], "ogg", 1.0, 4.0),
                                          (ICONS / "cembalo-3.wav", "mp3", 0.0, 1.0)]):
        x, sr = sf.read(str(src), dtype="float32")
        dst = root / "cuts" / f"cut-{k}.{ext}"
        sf.write(str(dst), x[int(a * sr):int(b * sr)], sr, format={"ogg": "OGG", "flac": "FLAC", "mp3": "MP3"}[ext])
        good.append(dst)
    broken = root / "broken"
    broken.mkdir()
    (broken / "noise.wav").write_bytes(np.random.default_rng(0).bytes(4000))
    (broken / "empty.flac").write_bytes(b"")
    (broken / "truncated.wav").write_bytes((ICONS / "piano-3.wav").read_bytes()[:30])
    return good, sorted(broken.iterdir())


def cli(*args, timeout: float = 300) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(ROOT / "main.py"), *map(str, args)], capture_output=True, text=True,
                          env=ENV, timeout=timeout)


def outputs(out: Path) -> dict[str, bytes]:
    """Every file below ``out`` but the manifest and the lock, by relative path."""
    return {p.relative_to(out).as_posix(): p.read_bytes() for p in sorted(out.rglob("*"))
            if p.is_file() and p.name not in (MANIFEST, ".batch.lock")}


def hidden(out: Path) -> list[str]:
    """Temporary or staging leftovers (names starting with a dot), the lock aside."""
    return [p.relative_to(out).as_posix() for p in out.rglob(".*") if p.name != ".batch.lock"]


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    root = tmp_path_factory.mktemp("corpus")
    good, bad = build_corpus(root)
    return root, good, bad


@pytest.fixture(scope="module")
def ctc(tmp_path_factory):
    from tests.test_transcribe_task import write_ctc_folder

    folder = tmp_path_factory.mktemp("ctc")
    write_ctc_folder(folder)
    return folder


def ctc_args(ctc: Path) -> list[str]:
    return ["--engine", "ctc", "--model", ctc, "--format", "srt", "json", "--threads", "1"]


@pytest.fixture(scope="module")
def ctc_reference(tmp_path_factory, corpus, ctc):
    """The single-file `transcribe` command on each good file, one file per run."""
    root, good, _ = corpus
    ref = tmp_path_factory.mktemp("ref")
    r = cli("transcribe", *good, "--out", ref, *ctc_args(ctc))
    assert r.returncode == 0, r.stderr
    return ref


def expected(root: Path, ref: Path, files: list[Path], exts: tuple[str, ...]) -> dict[str, bytes]:
    """What the batch writes for ``files``: the one-by-one outputs at the file's place below ``root``."""
    return {f.relative_to(root).with_suffix(f".{e}").as_posix(): (ref / f"{f.stem}.{e}").read_bytes()
            for f in files for e in exts}


# -- inputs and registry ----------------------------------------------------------------------------------
def test_inputs_from_folders_files_and_lists(tmp_path):
    for rel in ("a/x.wav", "a/x.mp3", "a/deep/y.flac", "a/.hidden.wav", "a/notes.md", "b/x.wav"):
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_bytes(b"")
    (tmp_path / "list.txt").write_text("# a list\nb/x.wav\n\na/deep/y.flac\nmissing.wav\n")
    items = collect([tmp_path / "a", tmp_path / "list.txt"])
    got = [(p.path.relative_to(tmp_path).as_posix(), p.key) for p in items]
    # a folder keeps its files' places (hidden files and other extensions left out); y.flac, found twice,
    # counts once; the later "x" keeps its extension, then gets a number; a missing file is kept (it
    # fails in the batch)
    assert got == [("a/x.mp3", "x"), ("a/x.wav", "x.wav"), ("a/deep/y.flac", "deep/y"), ("b/x.wav", "x (2)"),
                   ("missing.wav", "missing")]
    # the output folder is never walked
    assert [i.key for i in collect([tmp_path / "a"], out_dir=tmp_path / "a" / "deep")] == ["x", "x.wav"]
    # a task that reads text takes .txt files as inputs, not as lists
    assert [i.key for i in collect([tmp_path / "list.txt"], extensions=(".txt",))] == ["list"]


def test_a_task_whose_module_is_missing_is_reported(tmp_path, monkeypatch):
    fake = tasks.Task("ghost", "engine.no_such_module", "ghost_file", lambda *a: None)
    monkeypatch.setitem(tasks.TASKS, "ghost", fake)
    with pytest.raises(tasks.TaskNotAvailable, match="not available in this build"):
        run_batch(None, "ghost", [tmp_path], tmp_path / "out")
    with pytest.raises(SonoscopeError, match="has no option"):
        tasks.get("tag").options({"formats": ["json"], "colour": "red"})
    # the tasks being written on other branches: listed now, and either available or said to be missing
    for name, module in (("speak", "engine.speech.task"), ("analyze", "engine.timeline.analyze")):
        import importlib.util

        try:
            present = importlib.util.find_spec(module) is not None
        except ModuleNotFoundError:
            present = False
        if present:
            continue
        (tmp_path / "t.txt").write_text("hello")
        r = cli("batch", name, tmp_path / "t.txt", "--out", tmp_path / name)
        assert r.returncode == 1 and "not available in this build" in r.stderr, r.stderr


# -- the proof: 20 real files, 3 broken --------------------------------------------------------------------
def tagger_installed() -> bool:
    return cli("models", "path", "efficientat-mn04-as", "--no-download", timeout=60).returncode == 0


def _approx_json(a: bytes, b: bytes) -> None:
    x, y = json.loads(a), json.loads(b)
    assert [t["label"] for t in x["tags"]] == [t["label"] for t in y["tags"]]
    np.testing.assert_allclose([t["score"] for t in x["tags"]], [t["score"] for t in y["tags"]], atol=2e-4)
    assert [(e["label"], e["start"], e["end"]) for e in x["events"]] == \
           [(e["label"], e["start"], e["end"]) for e in y["events"]]
    assert x["file"] == y["file"] and x["duration"] == y["duration"]


def test_tag_batch_on_two_workers_equals_one_by_one_runs(corpus, tmp_path):
    if not tagger_installed():
        pytest.skip("the EfficientAT tagger is not in the model store (setup.sh imports it)")
    root, good, bad = corpus
    ref = tmp_path / "ref"
    for f in good[:: 4]:  # the single-file command, one file per run (every 4th file: each run loads the model)
        r = cli("tag", f, "--out", ref, "--format", "json", "csv")
        assert r.returncode == 0, r.stderr
    r = cli("tag", *good, "--out", ref / "all", "--format", "json", "csv")
    assert r.returncode == 0, r.stderr
    out = tmp_path / "out"
    r = cli("batch", "tag", root, "--out", out, "--format", "json", "csv", "--workers", "2")
    assert r.returncode == 1, r.stderr
    got = outputs(out)
    assert sorted(got) == sorted(expected(root, ref / "all", good, ("json", "csv")))
    for f in good:
        rel = f.relative_to(root).with_suffix("")
        _approx_json(got[f"{rel}.json"], (ref / "all" / f"{f.stem}.json").read_bytes())
        if f in good[::4]:  # a run of its own gives the same as the many-file run
            _approx_json(got[f"{rel}.json"], (ref / f"{f.stem}.json").read_bytes())
    summary = r.stderr.strip().splitlines()
    head = next(line for line in summary if line.startswith("tag: "))
    assert "20 done, 0 skipped, 3 failed of 23" in head and "pool of 2" in head
    failed = [line for line in summary if line.startswith("failed\t")]
    assert sorted(line.split("\t")[1].split(":")[0] for line in failed) == sorted(map(str, bad))
    assert all("not a readable audio file" in line or "empty" in line for line in failed), failed
    assert hidden(out) == []


def test_transcribe_batch_equals_one_by_one_runs(corpus, ctc, ctc_reference, tmp_path):
    root, good, bad = corpus
    out = tmp_path / "out"
    r = cli("batch", "transcribe", root, "--out", out, *ctc_args(ctc))
    assert r.returncode == 1
    assert outputs(out) == expected(root, ctc_reference, good, ("srt", "json"))  # byte for byte
    lines = r.stdout.splitlines()
    assert sum(line.startswith("done\t") for line in lines) == 20
    assert sorted(line.split("\t")[1].split(":")[0] for line in lines if line.startswith("failed")) == \
           sorted(map(str, bad))
    manifest = json.loads((out / MANIFEST).read_text())["tasks"]["transcribe"]
    assert len(manifest) == 23 and sum(e["status"] == "failed" for e in manifest.values()) == 3
    e = manifest[str(good[0])]
    assert e["size"] == good[0].stat().st_size and len(e["sha256"]) == 64 and e["audio_seconds"] > 0


def test_sigkill_half_way_then_rerun_processes_only_the_rest(corpus, ctc, ctc_reference, tmp_path):
    root, good, bad = corpus
    out = tmp_path / "out"
    cmd = [sys.executable, str(ROOT / "main.py"), "batch", "transcribe", str(root), "--out", str(out),
           *map(str, ctc_args(ctc))]
    proc = subprocess.Popen(cmd, env=ENV, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            start_new_session=True)
    manifest, done = out / MANIFEST, {}
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and proc.poll() is None:
        try:
            entries = json.loads(manifest.read_text())["tasks"]["transcribe"]
        except (OSError, ValueError, KeyError):
            entries = {}
        if len(entries) >= 8:
            os.killpg(proc.pid, signal.SIGSTOP)  # freeze it where it is, read what it recorded, kill it
            entries = json.loads(manifest.read_text())["tasks"]["transcribe"]
            done = {p for p, e in entries.items() if e["status"] == "done"}
            os.killpg(proc.pid, signal.SIGKILL)
            break
        time.sleep(0.005)
    proc.wait(30)
    assert proc.returncode == -signal.SIGKILL, "the batch ended before it could be killed half-way"
    assert 0 < len(done) < 23
    ref = expected(root, ctc_reference, good, ("srt", "json"))
    for rel, data in outputs(out).items():  # whatever is under a final name is whole
        assert data == ref[rel], rel
    r = cli("batch", "transcribe", root, "--out", out, *ctc_args(ctc))
    assert r.returncode == 1, r.stderr
    lines = r.stdout.splitlines()
    processed = [line for line in lines if line.startswith(("done\t", "failed\t"))]
    skipped = {line.split("\t")[1] for line in lines if line.startswith("skipped\t")}
    assert skipped == done and len(processed) == 23 - len(done)
    assert outputs(out) == ref and hidden(out) == []


def test_changed_options_and_inputs_are_redone(corpus, ctc, tmp_path):
    root, good, _ = corpus
    src = tmp_path / "in"
    shutil.copytree(root / "speech", src)
    shutil.copytree(root / "cuts", src / "cuts")
    n = len(list(src.rglob("*.*")))
    out = tmp_path / "out"
    base = dict(engine="ctc", model=str(ctc), formats=["srt"])

    def run(**opts):
        events = []
        s = run_batch(JobState(lambda st: events.extend(st.partials[len(events):])), "transcribe", [src], out,
                      {**base, **opts}, threads=1)
        return s, events

    s, _ = run()
    assert (len(s.done), len(s.skipped)) == (n, 0)
    s, events = run()
    assert (len(s.done), len(s.skipped)) == (0, n) and {e.status for e in events} == {"skipped"}
    # touched (same content, new mtime): still complete
    f = next(src.glob("*.wav"))
    os.utime(f, ns=(time.time_ns(), time.time_ns() + 10**9))
    assert len(run()[0].skipped) == n
    # new content: only that file; a deleted output: only its file
    x, sr = sf.read(str(f), dtype="float32")
    sf.write(str(f), x[: len(x) // 2], sr)
    (out / "cuts" / "cut-1.srt").unlink()
    s = run()[0]
    assert sorted(s.done) == sorted([str(f), str(src / "cuts" / "cut-1.ogg")])
    # another option: every file again; outputs of the old options that are no longer wanted are removed
    s = run(formats=["vtt"])[0]
    assert len(s.done) == n
    assert sorted(outputs(out)) == sorted(p.relative_to(src).with_suffix(".vtt").as_posix()
                                          for p in src.rglob("*.*"))


def test_cancel_stops_the_batch_and_leaves_nothing_half_written(corpus, ctc, tmp_path):
    root, good, _ = corpus
    out = tmp_path / "out"
    state = JobState()
    seen = []

    def listener(st):
        seen.extend(st.partials[len(seen):])
        if sum(e.status == "done" for e in seen) >= 3:
            st.cancel()

    state.add_listener(listener)
    with pytest.raises(Cancelled):
        run_batch(state, "transcribe", good, out, dict(engine="ctc", model=str(ctc), formats=["srt", "json"]))
    done = [e for e in seen if e.status == "done"]
    assert 3 <= len(done) < 20
    assert sorted(outputs(out)) == sorted(o for e in done for o in e.outputs) and hidden(out) == []
    s = run_batch(None, "transcribe", good, out, dict(engine="ctc", model=str(ctc), formats=["srt", "json"]))
    assert len(s.skipped) == len(done) and len(s.done) == 20 - len(done)


def test_a_pool_worker_killed_mid_file_is_retried(corpus, ctc, ctc_reference, tmp_path):
    """The local pool: a worker process SIGKILLed while it works breaks the pool; it is rebuilt and the
    files that were in flight run again."""
    root, good, _ = corpus
    out = tmp_path / "out"
    pids: list[int] = []

    def listener(st):
        for e in st.partials[len(pids):]:
            pids.append(int(e.worker.split()[1]) if e.status == "running" and e.worker else 0)
        running = [p for p in pids if p]
        if running and not killed:
            killed.append(running[0])
            before.update(running)
            os.kill(running[0], signal.SIGKILL)

    killed: list[int] = []
    before: set[int] = set()  # the workers seen at the kill
    s = run_batch(JobState(listener), "transcribe", good, out, dict(engine="ctc", model=str(ctc),
                                                                    formats=["srt", "json"]), workers=2, threads=1)
    assert killed and len(s.done) == 20 and not s.failed
    assert outputs(out) == {f"{f.stem}.{e}": (ctc_reference / f"{f.stem}.{e}").read_bytes()
                            for f in good for e in ("srt", "json")}
    workers = {e["worker"] for e in json.loads((out / MANIFEST).read_text())["tasks"]["transcribe"].values()}
    # the rebuilt pool did the rest (the killed worker may have finished a file before the signal landed:
    # on a busy machine the "running" event arrives late, so its pid may be on an earlier record)
    assert workers - {f"pid {p}" for p in before}


def test_runs_in_a_thread_beside_the_caller(corpus, ctc, tmp_path):
    """The app runs a batch as one job on its engine thread: it reports progress (files, hours, ETA)."""
    root, good, _ = corpus
    statuses = []
    state = JobState(lambda st: statuses.append((st.progress, st.status)))
    t = threading.Thread(target=run_batch, args=(state, "transcribe", good[:4], tmp_path / "o",
                                                 dict(engine="ctc", model=str(ctc))))
    t.start()
    t.join(120)
    assert statuses[-1][0] == 1.0 and statuses[-1][1].startswith("4/4 files")
    assert any("ETA" in s and "h audio" in s for _, s in statuses)
    progress = [p for p, _ in statuses]
    assert progress == sorted(progress)
