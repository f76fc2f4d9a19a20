"""The desktop app with Qt offscreen: file list and drops, waveform pixels, jobs, models, settings,
long files, start-up time and the no-audio-device path."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
from PySide6.QtCore import QPointF, QSettings, Qt  # noqa: E402
from PySide6.QtWidgets import QApplication, QDialog  # noqa: E402

from app import settings as S  # noqa: E402
from qtwindow import colour_pixels, drop, open_window  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
ARTIFACTS = ROOT / "tests" / "artifacts"
SOUND_ICONS = Path("/usr/share/sounds/sound-icons")


@pytest.fixture
def window(qtbot, tmp_path, monkeypatch):
    w = open_window(qtbot, tmp_path, monkeypatch)
    yield w
    w.close()


def test_drop_files_shows_rows_and_waveform(window, qtbot, tmp_path):
    good = tmp_path / "chirp.wav"
    sr = 22050
    t = np.arange(int(1.5 * sr)) / sr
    sf.write(str(good), (0.7 * np.sin(2 * np.pi * (200 + 800 * t) * t)).astype(np.float32), sr)
    stereo = tmp_path / "stereo.flac"
    sf.write(str(stereo), np.zeros((8000, 2), np.float32) + 0.1, 8000)
    bad = tmp_path / "notes.wav"
    bad.write_text("this is not audio")
    empty = tmp_path / "empty.mp3"
    empty.write_bytes(b"")
    wf = window.file_view.waveform
    blue = (70, 160, 255)
    before = wf.grab().toImage()
    assert colour_pixels(before, blue) < 50
    drop(window.file_list, [good, stereo, bad, empty])
    fl = window.file_list
    qtbot.waitUntil(lambda: fl.pending() == 0, timeout=5000)
    rows = {Path(r["path"]).name: r for r in fl.rows()}
    assert len(rows) == 4
    assert rows["chirp.wav"]["ok"] and rows["chirp.wav"]["texts"][1:] == ["1.50 s", "22.05 kHz", "mono"]
    assert rows["stereo.flac"]["texts"][1:] == ["1.00 s", "8 kHz", "stereo"]
    for name, why in (("notes.wav", "not a readable audio file"), ("empty.mp3", "empty")):
        r = rows[name]
        assert r["ok"] is False and r["texts"][1] == "error"
        assert why in r["texts"][0] and why in r["tooltip"]
    # the first good file got selected and its waveform drawn
    qtbot.waitUntil(lambda: window.file_view.overview is not None and window.file_view.overview.complete,
                    timeout=5000)
    assert window.ctx.current_path == good
    # the transport readout shows the selected file's length before anything plays
    assert window.transport.position.text() == "0:00.000 / 0:01.500"
    qtbot.waitUntil(lambda: colour_pixels(wf.grab().toImage(), blue) > 2000, timeout=5000)  # drawn
    after = wf.grab().toImage()
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    after.save(str(ARTIFACTS / "waveform_after_drop.png"))  # what the pixel count saw
    assert colour_pixels(after, blue) > 2000
    # dropping the same file again adds no row; a folder adds the audio inside it
    drop(window, [good, SOUND_ICONS])
    qtbot.waitUntil(lambda: fl.pending() == 0, timeout=10000)
    n_icons = len([p for p in SOUND_ICONS.iterdir() if p.suffix == ".wav"])
    assert len(fl.rows()) == 4 + n_icons
    assert not [w for w in QApplication.topLevelWidgets() if isinstance(w, QDialog) and w.isVisible()]


def test_waveform_envelope_matches_signal(window, qtbot, tmp_path):
    """The drawn min/max envelope covers the signal's true extremes in each part of the file."""
    sr = 8000
    x = np.zeros(sr * 4, np.float32)
    x[sr:2 * sr] = 0.9 * np.sin(np.arange(sr) * 0.3)    # loud second 1
    x[3 * sr:] = 0.2 * np.sin(np.arange(sr) * 0.3)      # quiet second 3
    p = tmp_path / "steps.wav"
    sf.write(str(p), x, sr, subtype="FLOAT")
    window.file_list.add_paths([p])
    qtbot.waitUntil(lambda: window.file_view.overview is not None and window.file_view.overview.complete,
                    timeout=5000)
    ov = window.file_view.overview
    times, mn, mx, size = ov.envelope(0, 4, 400)
    for (a, b), peak in (((0.05, 0.95), 0.0), ((1.05, 1.95), 0.9), ((3.05, 3.95), 0.2)):
        sel = (times > a) & (times < b)
        assert abs(mx[sel].max() - peak) < 0.01 and abs(mn[sel].min() + peak) < 0.01
    assert len(times) <= 4 * 400 + 2
    xs, ys = window.file_view.waveform.curve.getData()
    assert len(xs) <= 8 * window.file_view.waveform.width() + 8  # never every sample
    # the spectrogram image shows energy where the loud part is
    img = window.file_view.spectrogram.image.image
    assert img is not None and img.shape[1] > 100
    cols = img.max(axis=0)
    n = img.shape[1]
    assert cols[int(n * 0.35):int(n * 0.45)].mean() > cols[int(n * 0.1):int(n * 0.2)].mean() + 40


def test_long_file_opens_quickly(window, qtbot, tmp_path):
    """One hour at 16 kHz: the overview builds in seconds and redraws never plot every sample."""
    sr = 16000
    path = tmp_path / "hour.wav"
    block = (0.3 * np.sin(2 * np.pi * 300 * np.arange(sr * 60) / sr)).astype(np.float32)
    with sf.SoundFile(str(path), "w", sr, 1, "PCM_16") as f:
        for k in range(60):
            f.write(block * (0.2 + 0.8 * (k % 2)))
    t0 = time.monotonic()
    window.file_list.add_paths([path])
    fv = window.file_view
    qtbot.waitUntil(lambda: fv.overview is not None, timeout=5000)
    first = time.monotonic() - t0  # first (partial) picture on screen
    qtbot.waitUntil(lambda: fv.overview is not None and fv.overview.complete, timeout=60000)
    total = time.monotonic() - t0
    ov = fv.overview
    assert abs(ov.duration - 3600) < 1e-6
    assert first < 3.0 and total < 30.0, (first, total)
    wf = fv.waveform
    t = time.monotonic()
    for a in (0, 600, 1800, 3599):
        wf.set_view(a, a + 1.0 if a < 3599 else 3600)
        wf.redraw()
        n_points = sum(len(c.getData()[0]) for c in (wf.curve, wf.line) if c.getData()[0] is not None)
        assert 0 < n_points <= 8 * wf.width() + 8
    wf.set_view(0, 3600)
    wf.redraw()
    redraw = (time.monotonic() - t) / 5
    assert redraw < 0.2, redraw
    xs, ys = wf.curve.getData()
    assert len(xs) <= 8 * wf.width() + 8
    # minute 1 is loud, minute 0 quiet: visible in the envelope
    times, mn, mx, _ = ov.envelope(0, 3600, 1000)
    assert mx[(times > 65) & (times < 115)].max() > 0.28 and mx[(times > 5) & (times < 55)].max() < 0.07
    print(f"\n1 h file: first picture {first:.2f} s, complete overview {total:.2f} s, redraw {redraw * 1000:.1f} ms")


def test_jobs_panel_progress_cancel_and_errors(window, qtbot):
    from engine.errors import AudioError

    panel = window.panels["JobsPanel"]
    ctx = window.ctx

    def slow(state, n):
        for i in range(n):
            state.update(progress=i / n, status=f"step {i}")
            time.sleep(0.01)
        return "ok"

    def broken(state):
        raise AudioError("the disk is full")

    job1 = ctx.submit("slow job", slow, 20)
    job2 = ctx.submit("endless job", slow, 100000)
    job3 = ctx.submit("broken job", broken)
    seen = []
    ctx.jobs.when_done(job1, lambda j: seen.append(j.result))
    qtbot.waitUntil(lambda: seen == ["ok"], timeout=5000)
    qtbot.waitUntil(lambda: job2.state.progress > 0, timeout=5000)
    rows = {r["name"]: r for r in panel.rows()}
    assert rows["slow job"]["status"] == "done" and rows["slow job"]["progress"] == 1.0
    assert not rows["slow job"]["cancel_enabled"] and rows["endless job"]["cancel_enabled"]
    window.actions_["cancel"].trigger()  # Esc: cancel all
    qtbot.waitUntil(lambda: job3.finished is not None, timeout=5000)
    qtbot.waitUntil(lambda: {r["name"]: r for r in panel.rows()}["broken job"]["status"].startswith(("failed", "cancel")),
                    timeout=5000)
    rows = {r["name"]: r for r in panel.rows()}
    assert rows["endless job"]["status"] == "cancelled"
    # job3 was queued when Esc cancelled everything: run another broken job to see the error text
    job4 = ctx.submit("broken again", broken)
    qtbot.waitUntil(lambda: job4.finished is not None, timeout=5000)
    qtbot.waitUntil(lambda: {r["name"]: r for r in panel.rows()}["broken again"]["status"] != "queued", timeout=2000)
    assert {r["name"]: r for r in panel.rows()}["broken again"]["status"] == "failed: the disk is full"
    panel.clear_finished()
    assert panel.rows() == []


def test_file_info_panel_and_export(window, qtbot, tmp_path, monkeypatch):
    src = tmp_path / "in.wav"
    sf.write(str(src), 0.5 * np.ones(16000, np.float32), 16000)
    window.file_list.add_paths([src])
    qtbot.waitUntil(lambda: window.ctx.current_path == src, timeout=5000)
    info = window.panels["FileInfoPanel"]
    assert info.fields["Sample rate"].text() == "16000 Hz"
    info.measure()
    qtbot.waitUntil(lambda: info.fields["Peak"].text() != "–", timeout=5000)
    assert info.fields["Peak"].text() == "-6.0 dBFS"
    window.ctx.settings.set(S.EXPORT_FORMAT, "flac")
    window.file_view.waveform.set_selection(0.25, 0.75)
    from PySide6.QtWidgets import QFileDialog

    asked = []  # the save dialog starts in the session folder with a name that says what it is
    monkeypatch.setattr(QFileDialog, "getSaveFileName", lambda *a: (asked.append(a[2]) or a[2], a[3]))
    job = window.export()
    qtbot.waitUntil(lambda: job.finished is not None, timeout=5000)
    out = Path(job.result)
    assert asked == [str(tmp_path / "session" / "in 0.25-0.75 s.flac")]
    assert out.parent == tmp_path / "session" and out.suffix == ".flac"
    y, sr = sf.read(str(out))
    assert sr == 16000 and len(y) == 8000
    qtbot.waitUntil(lambda: any(r["path"] == str(out) for r in window.file_list.rows()), timeout=5000)


def tiny_model_catalog(tmp_path, monkeypatch) -> tuple[Path, dict]:
    """The real catalog plus "tiny-test": a 2-file model published as a tar.gz at a file:// URL."""
    import hashlib
    import io
    import shutil
    import tarfile

    import engine.store as store_mod

    files = {"config.json": b'{"model_type": "tiny"}', "weights.bin": bytes(range(256)) * 400}
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        for name, data in files.items():
            ti = tarfile.TarInfo(name)
            ti.size = len(data)
            tar.addfile(ti, io.BytesIO(data))
    archive = tmp_path / "published" / "tiny-test.tar.gz"
    archive.parent.mkdir()
    archive.write_bytes(buf.getvalue())
    catalog = tmp_path / "catalog"
    shutil.copytree(store_mod.CATALOG_DIR, catalog, ignore=shutil.ignore_patterns("*.py", "__pycache__"))
    (catalog / "tiny.json").write_text(json.dumps([{
        "id": "tiny-test", "name": "Tiny test model", "task": "test", "family": "test", "license": "MIT",
        "size_mb": 0.1, "description": "two small files",
        "sources": [{"type": "url", "url": archive.as_uri(), "archive": "tar.gz",
                     "sha256": hashlib.sha256(archive.read_bytes()).hexdigest()}]}]))
    monkeypatch.setattr(store_mod, "CATALOG_DIR", catalog)
    monkeypatch.setattr(store_mod, "_default", None)
    for var in ("HF_HUB_OFFLINE", "SONOSCOPE_OFFLINE"):  # a file:// URL is a download the store may make
        monkeypatch.delenv(var, raising=False)
    return archive, files


def test_model_manager_lists_installs_and_imports(window, qtbot, tmp_path, monkeypatch):
    archive, files = tiny_model_catalog(tmp_path, monkeypatch)
    panel = window.panels["ModelsPanel"]

    def row(mid):
        for i in range(panel.tree.topLevelItemCount()):
            if panel.tree.topLevelItem(i).text(5) == mid:
                return panel.tree.topLevelItem(i)

    panel.refresh()
    qtbot.waitUntil(lambda: row("tiny-test") is not None, timeout=5000)
    vad = row("silero-vad")
    assert vad.text(1) == "vad" and vad.text(3) == "MIT" and vad.text(4) == "offline pack"
    # install runs as a job: the archive is fetched, checked against its sha256 and unpacked into the cache
    tiny = row("tiny-test")
    assert tiny.text(4) == "not installed — download <1 MB"
    panel.tree.clearSelection()
    tiny.setSelected(True)
    assert panel.buttons["Install"].isEnabled() and not panel.buttons["Verify"].isEnabled()
    statuses = []
    window.ctx.statusMessage.connect(lambda text, ms: statuses.append(text))
    job = panel.install()
    qtbot.waitUntil(lambda: job.finished is not None, timeout=20000)
    assert job.status.value == "done", job.error
    folder = tmp_path / "models" / "tiny-test"
    assert job.result == str(folder)
    assert {n: (folder / n).read_bytes() for n in files} == files
    qtbot.waitUntil(lambda: row("tiny-test") is not None and row("tiny-test").text(4) == "downloaded", timeout=5000)
    assert f"tiny-test installed in {folder}" in statuses
    jobs = {r["name"]: r for r in window.panels["JobsPanel"].rows()}
    assert jobs["Install model tiny-test"]["status"] == "done"
    # verify runs as a job too, on the installed model and on an offline pack
    panel.tree.clearSelection()
    row("tiny-test").setSelected(True)
    assert panel.buttons["Verify"].isEnabled() and not panel.buttons["Install"].isEnabled()
    job = panel.verify()
    qtbot.waitUntil(lambda: job.finished is not None, timeout=20000)
    assert job.result[0], job.result
    qtbot.waitUntil(lambda: panel.info.text().startswith("tiny-test: OK"), timeout=5000)
    panel.tree.clearSelection()
    row("silero-vad").setSelected(True)
    job = panel.verify()
    qtbot.waitUntil(lambda: job.finished is not None, timeout=20000)
    assert job.result[0], job.result
    qtbot.waitUntil(lambda: panel.info.text().startswith("silero-vad: OK (pack "), timeout=5000)
    # import a local folder, then forget it
    folder = tmp_path / "my-model"
    folder.mkdir()
    (folder / "config.json").write_text(json.dumps({"model_type": "whisper"}))
    job = panel.import_folder(str(folder), "local/my-model")
    qtbot.waitUntil(lambda: job.finished is not None, timeout=5000)
    assert job.result == "local/my-model", job.error
    qtbot.waitUntil(lambda: row("local/my-model") is not None, timeout=5000)
    assert row("local/my-model").text(4) == "imported"
    panel._fill([], "", panel._refreshes - 1)  # a slower, older listing arriving late is ignored
    assert row("local/my-model") is not None
    panel.tree.clearSelection()
    row("local/my-model").setSelected(True)
    job = panel.delete()
    qtbot.waitUntil(lambda: job.finished is not None, timeout=5000)
    qtbot.waitUntil(lambda: row("local/my-model") is None, timeout=5000)
    assert folder.is_dir()  # imported folders are never deleted


def test_settings_registry_is_typed_and_persists(tmp_path, qapp):
    ini = tmp_path / "s.ini"
    st = S.Settings(QSettings(str(ini), QSettings.Format.IniFormat))
    assert st.get(S.THREADS) == 0 and st.get(S.COMPUTE_DEVICE) == "auto" and st.get(S.LOG_FREQUENCY) is True
    st.set(S.THREADS, 3)
    st.set(S.LOG_FREQUENCY, False)
    st.set(S.COMPUTE_DEVICE, "gpu-that-does-not-exist")  # not a choice: back to the default
    st.sync()
    st2 = S.Settings(QSettings(str(ini), QSettings.Format.IniFormat))
    assert st2.get(S.THREADS) == 3 and st2.get(S.LOG_FREQUENCY) is False and st2.get(S.COMPUTE_DEVICE) == "auto"
    key = S.define("test/number", float, 1.5, "a panel's own setting")
    assert S.define("test/number", float, 1.5) is key
    with pytest.raises(ValueError):
        S.define("test/number", int, 2)
    with pytest.raises(KeyError):
        st.get(S.Key("never/registered", int, 0))
    assert all(k.doc for k in S.KEYS.values() if not k.name.startswith("test/"))


def test_no_audio_device_disables_record_and_play_with_reason(tmp_path):
    """Real path: no sound server at all. The app starts; PortAudio is asked after the first paint,
    off the GUI thread; then record/play are disabled and say why, and the status bar names the
    device torch really uses."""
    code = r"""
import json, sys, threading, time
from PySide6.QtWidgets import QApplication
app = QApplication([])
import engine.audio.devices as devices
calls = []
real = devices.availability
def availability():
    calls.append({"main_thread": threading.current_thread() is threading.main_thread(),
                  "after_paint": bool(windows and windows[0]._painted)})
    return real()
devices.availability = availability
windows = []
from app import create_window
w = create_window([sys.argv[1]])
windows.append(w)
before = {"play": [w.actions_["play"].isEnabled(), w.actions_["play"].toolTip()], "status": w.audio_label.text(),
          "compute": w.compute_label.text()}
w.show(); w.load_panels()
t_end = time.monotonic() + 60
while (not w.ctx.audio_checked or "checking" in w.compute_label.text()) and time.monotonic() < t_end:
    app.processEvents(); time.sleep(0.01)
a = w.actions_
torch_here = "torch" in sys.modules  # the note came from a helper process
import torch
from engine import compute
print(json.dumps({k: [a[k].isEnabled(), a[k].toolTip()] for k in ("play", "record", "monitor", "open")}
                 | {"status": w.audio_label.text(), "compute": w.compute_label.text(), "calls": calls,
                    "before": before, "torch_here": torch_here, "cuda": torch.cuda.is_available(), "cpu": compute.available()[0].description,
                    "monitor_button": [w.record_bar.monitor_button.isEnabled(), w.record_bar.monitor_button.toolTip()]}))
w.close()
"""
    env = dict(os.environ, XDG_RUNTIME_DIR=str(tmp_path), PULSE_SERVER="unix:/nonexistent", HOME=str(tmp_path),
               PULSE_RUNTIME_PATH=str(tmp_path / "none"), QT_QPA_PLATFORM="offscreen",
               SONOSCOPE_SETTINGS=str(tmp_path / "s.ini"))
    wav = tmp_path / "x.wav"
    sf.write(str(wav), np.zeros(800, np.float32), 8000)
    out = subprocess.run([sys.executable, "-c", code, str(wav)], cwd=ROOT, env=env, capture_output=True,
                         text=True, timeout=180)
    assert out.returncode == 0, out.stderr[-3000:]
    r = json.loads(out.stdout.strip().splitlines()[-1])
    # PortAudio was asked once, after the first paint, not in the GUI thread; until then: "checking"
    assert r["calls"] == [{"main_thread": False, "after_paint": True}]
    assert r["before"]["play"] == [False, "Waiting: checking the audio devices…"]
    assert r["before"]["status"] == "checking the audio devices…"
    assert r["before"]["compute"] == "Compute: checking…"
    assert r["open"][0]
    for k in ("play", "record", "monitor"):
        assert not r[k][0]
    assert r["play"][1].startswith("Playback is disabled: no audio output device was found")
    assert r["record"][1].startswith("Recording is disabled: no audio input device was found")
    assert not r["monitor_button"][0] and "no audio input device" in r["monitor_button"][1]
    assert r["status"] == "no playback device, no recording device"
    # what torch can use there (both answers: test_compute_note_names_the_torch_device), found by a
    # helper process: importing torch in the app's process would stall its GUI and audio threads
    assert r["torch_here"] is False
    if r["cuda"]:
        assert r["compute"].startswith("Compute: cuda:0 — "), r["compute"]
    else:
        assert r["compute"] == f"Compute: cpu — {r['cpu']}"


@pytest.mark.parametrize("cuda", [False, True], ids=["cpu-only torch", "torch with a GPU"])
def test_compute_note_names_the_torch_device(window, qtbot, monkeypatch, cuda):
    """The status bar says what torch can use (whatever device files exist), asked off the GUI thread."""
    import threading
    from types import SimpleNamespace

    import torch

    from engine import compute

    asked = []
    real_available = compute.available

    def available():
        asked.append(threading.current_thread() is threading.main_thread())
        return real_available()

    monkeypatch.setattr(compute, "available", available)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: cuda)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1 if cuda else 0)
    monkeypatch.setattr(torch.cuda, "get_device_properties",
                        lambda i: SimpleNamespace(name="Test GPU 9000", total_memory=24 * 2**30))
    cpu = f"Compute: cpu — CPU ({os.cpu_count()} logical cores, {torch.get_num_threads()} threads)"
    label = window.compute_label
    for preference, want in (("auto", "Compute: cuda:0 — Test GPU 9000 (24 GB)" if cuda else cpu),
                             ("cpu", cpu),
                             ("cuda", "Compute: cuda:0 — Test GPU 9000 (24 GB)" if cuda else
                              "Compute: cuda is not usable — models will fail until Settings say 'auto' or 'cpu'")):
        window.ctx.settings.set(S.COMPUTE_DEVICE, preference)
        with qtbot.waitSignal(window.computeChecked, timeout=60000):
            window.check_compute()
            assert label.text() == "Compute: checking…"
        assert label.text() == want
    assert "cuda:0: Test GPU 9000 (24 GB)" in label.toolTip() if cuda else "cuda" not in label.toolTip()
    assert asked == [False, False, False]


GEOMETRY_SCRIPT = r"""
import json, sys, time
from PySide6.QtCore import QSettings, Qt
from PySide6.QtWidgets import QApplication
app = QApplication([])
from app import create_window, settings as S
from engine.audio.devices import Availability

def pump(until, timeout=10.0):
    t_end = time.monotonic() + timeout
    while not until() and time.monotonic() < t_end:
        app.processEvents(); time.sleep(0.005)

def window():
    st = S.Settings(QSettings(sys.argv[1], QSettings.Format.IniFormat))  # read afresh, as at a start
    w = create_window(settings=st, audio=Availability(False, False, "test", "test"), check_compute=False)
    w.show(); w.load_panels()
    pump(lambda: w._painted)
    return w

def state(w):
    g = w.geometry()
    return {"geometry": [g.x(), g.y(), g.width(), g.height()],
            "record_dock": w.dockWidgetArea(w.record_dock).name, "jobs_visible": w.panels["JobsPanel"].isVisible()}

w = window()
w.setGeometry(120, 90, 1500, 900)
w.addDockWidget(Qt.DockWidgetArea.RightDockWidgetArea, w.record_dock)
pump(lambda: w.geometry().width() == 1500 and w.geometry().height() == 900)
first = state(w)
w.close()
w2 = window()
pump(lambda: state(w2) == first, 3.0)  # settle (or give up and report what it is)
print(json.dumps({"first": first, "second": state(w2)}))
w2.close()
"""


def test_window_geometry_and_docks_are_restored_after_reopening(tmp_path):
    """Close the window after moving, resizing and re-docking it: the next window comes back the same.

    In a subprocess on a 1920x1200 offscreen screen (the default one is 800x800, smaller than the
    window's minimum size, and Qt fits restored geometry into the screen)."""
    screens = tmp_path / "screens.json"
    screens.write_text(json.dumps({"screens": [{"name": "test", "x": 0, "y": 0, "width": 1920, "height": 1200,
                                                "logicalDpi": 96, "logicalBaseDpi": 96, "dpr": 1}]}))
    env = dict(os.environ, QT_QPA_PLATFORM=f"offscreen:configfile={screens}", SONOSCOPE_MODELS=str(tmp_path / "m"))
    out = subprocess.run([sys.executable, "-c", GEOMETRY_SCRIPT, str(tmp_path / "s.ini")], cwd=ROOT, env=env,
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-3000:]
    r = json.loads(out.stdout.strip().splitlines()[-1])
    assert r["first"]["geometry"] == [120, 90, 1500, 900] and r["first"]["record_dock"] == "RightDockWidgetArea"
    assert r["second"] == r["first"]


def test_window_paints_before_torch_is_imported(tmp_path):
    report = tmp_path / "startup.json"
    wav = tmp_path / "x.wav"
    sf.write(str(wav), np.zeros(800, np.float32), 8000)
    env = dict(os.environ, QT_QPA_PLATFORM="offscreen", SONOSCOPE_SETTINGS=str(tmp_path / "s.ini"),
               SONOSCOPE_STARTUP_REPORT=str(report), SONOSCOPE_EXIT_AFTER="200",
               SONOSCOPE_MODELS=str(tmp_path / "models"))
    out = subprocess.run([sys.executable, "main.py", str(wav)], cwd=ROOT, env=env, capture_output=True,
                         text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-3000:]
    r = json.loads(report.read_text())
    assert r["torch_imported_at_first_paint"] is False
    assert r["first_paint_s"] < 5.0, r
    assert {"FileInfoPanel", "JobsPanel", "ModelsPanel"} <= set(r["panels"])
    print(f"\nfirst paint {r['first_paint_s']:.2f} s after process start; panels at {r['panels_loaded_s']:.2f} s")


def test_settings_dialog_writes_the_registry(window, qtbot, tmp_path):
    from app.widgets.settings_dialog import SettingsDialog

    dlg = SettingsDialog(window.ctx.settings, window)
    qtbot.addWidget(dlg)
    assert dlg.input.itemData(0) == "" and dlg.output.itemText(0) == "System default"
    dlg.compute.setCurrentText("cpu")
    dlg.threads.setValue(2)
    dlg.format.setCurrentText("ogg")
    dlg.folder.setText(str(tmp_path / "elsewhere"))
    dlg.rate.setCurrentText("16000")
    changed = []
    window.ctx.settings.changed.connect(lambda k, v: changed.append(k))
    dlg.apply()
    st = window.ctx.settings
    assert (st.get(S.COMPUTE_DEVICE), st.get(S.THREADS), st.get(S.EXPORT_FORMAT), st.get(S.RECORD_RATE)) == \
        ("cpu", 2, "ogg", 16000)
    assert window.ctx.output_dir() == tmp_path / "elsewhere" and (tmp_path / "elsewhere").is_dir()
    assert {"compute/device", "files/export_format"} <= set(changed)
    # every action in the menus shows its shortcut, and every action has a tooltip
    for name in ("open", "export", "play", "record", "cancel"):
        a = window.actions_[name]
        assert not a.shortcut().isEmpty() and a.toolTip()
    assert window.actions_["play"].shortcut().toString() == "Space"
    assert window.actions_["record"].shortcut().toString() == "R"
    assert window.actions_["cancel"].shortcut().toString() == "Esc"


def test_zoomed_spectrogram_is_recomputed_for_the_view(window, qtbot, tmp_path):
    """Zooming far into a file recomputes the spectrogram of the visible range at full resolution."""
    sr = 16000
    t = np.arange(sr * 60) / sr
    x = (0.3 * np.sin(2 * np.pi * 1000 * t)).astype(np.float32)
    x[30 * sr:30 * sr + 800] = 0.3 * np.sin(2 * np.pi * 4000 * t[:800])  # a 50 ms 4 kHz blip at 30 s
    p = tmp_path / "blip.wav"
    sf.write(str(p), x, sr)
    window.file_list.add_paths([p])
    fv = window.file_view
    qtbot.waitUntil(lambda: fv.overview is not None and fv.overview.complete, timeout=10000)
    spec_view = fv.spectrogram
    overview_image = spec_view.image.image.copy()
    fv.waveform.set_view(29.9, 30.2)
    qtbot.waitUntil(lambda: spec_view._detail is not None, timeout=5000)
    img = spec_view.image.image
    assert img.shape != overview_image.shape
    a, b = spec_view._detail
    assert 29.8 < a < 30.0 and 30.1 < b < 30.3
    # log-frequency rows: find the rows of 1 kHz and 4 kHz; the blip column is bright at 4 kHz only there
    ax = spec_view.yaxis
    r1, r4 = int(round(ax.hz_to_row(1000) * img.shape[0] / 256)), int(round(ax.hz_to_row(4000) * img.shape[0] / 256))
    n = img.shape[1]
    col_blip = int((30.025 - a) / (b - a) * n)
    assert img[r4 - 2:r4 + 3, col_blip].max() > img[r4 - 2:r4 + 3, 5].max() + 30
    assert img[r1 - 2:r1 + 3, 5].max() > img[r4 - 2:r4 + 3, 5].max() + 30


def test_waveform_mouse_selects_and_seeks(window, qtbot, tmp_path):
    from PySide6.QtCore import QPoint
    from PySide6.QtTest import QTest

    p = tmp_path / "two.wav"
    sf.write(str(p), 0.5 * np.sin(np.arange(16000 * 2) * 0.1).astype(np.float32), 16000)
    window.file_list.add_paths([p])
    fv = window.file_view
    qtbot.waitUntil(lambda: fv.overview is not None and fv.overview.complete, timeout=5000)
    wf = fv.waveform
    vb = wf.getPlotItem().getViewBox()

    def px(t):  # widget x of time t
        return wf.mapFromScene(vb.mapViewToScene(QPointF(t, 0))).x()

    y = int(wf.height() / 2)
    QTest.mousePress(wf.viewport(), Qt.MouseButton.LeftButton, Qt.KeyboardModifier.ShiftModifier, QPoint(px(0.5), y))
    QTest.mouseMove(wf.viewport(), QPoint(px(1.0), y))
    QTest.mouseRelease(wf.viewport(), Qt.MouseButton.LeftButton, Qt.KeyboardModifier.ShiftModifier, QPoint(px(1.5), y))
    sel = fv.selection()
    assert sel is not None and abs(sel[0] - 0.5) < 0.02 and abs(sel[1] - 1.5) < 0.02
    assert fv.spectrogram.region.isVisible()
    seeks = []
    fv.seekRequested.connect(seeks.append)
    QTest.mouseClick(wf.viewport(), Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier, QPoint(px(1.8), y))
    assert seeks and abs(seeks[0] - 1.8) < 0.02
    # without a playing source the click moves the playhead, ready for Space
    assert abs(wf.playhead.value() - 1.8) < 0.02 and window.transport_control.pending_seek == seeks[0]
