"""Issue 13, "honest progress": every job ends at 100 % or says why not, the remaining time is
smoothed, an offline model install fails in seconds and says so in its row, and scripts/setup.sh
shows what pip is doing, shows that it is alive, and stops on a pip failure."""

from __future__ import annotations

import math
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
from qtwindow import open_window  # noqa: E402

from engine.jobs import Job, JobStatus, RemainingEstimate  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture
def window(qtbot, tmp_path, monkeypatch):
    w = open_window(qtbot, tmp_path, monkeypatch)
    yield w
    w.close()


def rows(window) -> dict:
    return {r["name"]: r for r in window.panels["JobsPanel"].rows()}


def test_every_job_ends_at_100_percent_or_says_why(window, qtbot, tmp_path):
    """A job that never reports progress (Verify model), a session stopped as its normal end (Live
    transcription) and an export (reported up to 50 % while writing) all end at 100 %; a failed and
    a cancelled job keep their bar and say why."""
    from engine.errors import AudioError

    ctx = window.ctx
    src = tmp_path / "speech.wav"
    sf.write(str(src), np.zeros(16000, np.float32), 16000)
    window.file_list.add_paths([src])
    qtbot.waitUntil(lambda: ctx.current_path == src, timeout=5000)
    export = window.export(tmp_path / "speech (export).wav")

    def session(state):  # the live session's shape: runs until cancelled, then returns its result
        while not state.cancelled:
            time.sleep(0.01)
        return {"words": []}

    live = ctx.start_session("Live transcription (test)", session)
    panel = window.panels["ModelsPanel"]
    panel.refresh()
    qtbot.waitUntil(lambda: any(panel.tree.topLevelItem(i).text(5) == "silero-vad"
                                for i in range(panel.tree.topLevelItemCount())), timeout=5000)
    for i in range(panel.tree.topLevelItemCount()):
        panel.tree.topLevelItem(i).setSelected(panel.tree.topLevelItem(i).text(5) == "silero-vad")
    verify = panel.verify()

    def half_then_fail(state):
        state.update(progress=0.4, status="decoding")
        raise AudioError("speech.wav: the disk is full")

    def half_then_wait(state):
        state.update(progress=0.3)
        while True:
            state.check()
            time.sleep(0.01)

    failed = ctx.submit("Broken job", half_then_fail)
    cancelled = ctx.submit("Cancelled job", half_then_wait)
    qtbot.waitUntil(lambda: cancelled.status is JobStatus.RUNNING, timeout=20000)
    cancelled.cancel()
    live.cancel()
    for job in (export, live, verify, failed, cancelled):
        qtbot.waitUntil(lambda j=job: j.finished is not None, timeout=20000)
    qtbot.wait(100)
    r = rows(window)
    for job in (export, live, verify):
        assert job.status is JobStatus.DONE, (job.name, job.error)
        assert r[job.name]["status"] == "done" and r[job.name]["shown"] == "100%", r[job.name]
        assert r[job.name]["progress"] == 1.0 and r[job.name]["remaining"] == ""
    assert r["Broken job"]["status"] == "failed: speech.wav: the disk is full" and r["Broken job"]["shown"] == "40%"
    assert r["Cancelled job"]["status"] == "cancelled" and r["Cancelled job"]["shown"] == "30%"


def stepped(t: float) -> float:
    """Progress as a transcription reports it: a step at the end of each 10 s window."""
    return min(1.0, math.floor(t / 10) * 0.1)


def wobble(values: list[tuple[float, float]]) -> float:
    """How much a readout moves other than by counting down: the total variation of (estimate + t)."""
    return sum(abs((b + tb) - (a + ta)) for (ta, a), (tb, b) in zip(values, values[1:]))


def test_remaining_time_is_smoothed():
    """The readout is sampled twice a second for a job that progresses in steps: the plain
    elapsed * (1 - p) / p estimate saw-tooths (up by 80 %, then down), the shown estimate counts down
    steadily and still ends near the truth."""
    est, plain, shown = RemainingEstimate(), [], []
    t = 0.5
    while t < 100:
        p = stepped(t)
        v = est.update(t, p)
        if p > 0.01:
            plain.append((t, t * (1 - p) / p))
            shown.append((t, v))
        t += 0.5
    assert wobble(shown) < 0.35 * wobble(plain), (wobble(shown), wobble(plain))
    rises = [(b - a) / a for (_, a), (_, b) in zip(shown, shown[1:])]
    assert max(rises) < 0.05  # never jumps up (2:22 -> 6:10)
    late = [(t, v) for t, v in shown if t >= 50]
    assert all(abs(v - (100 - t)) < 0.35 * 100 for t, v in late)
    assert shown[-1][1] < 10  # and it does come down at the end (no 0:05 surprise after minutes)


def test_job_remaining_uses_the_smoothed_estimate(monkeypatch):
    import engine.jobs as J

    now = [1000.0]
    monkeypatch.setattr(J.time, "monotonic", lambda: now[0])
    job = Job("stepped", lambda st: None)
    job.status, job.started = JobStatus.RUNNING, now[0]
    shown = []
    for k in range(1, 200):
        now[0] = 1000.0 + k * 0.5
        job.state.progress = stepped(k * 0.5)
        if job.state.progress > 0.01:
            shown.append((k * 0.5, job.remaining))
    assert max((b - a) / a for (_, a), (_, b) in zip(shown, shown[1:])) < 0.05


def test_offline_install_fails_fast_and_says_so_in_the_row(window, qtbot, monkeypatch):
    """No network: Install gives up in seconds (not after 47 s of retries) and the model's row says
    "no network", the job's row the reason."""
    import huggingface_hub
    import huggingface_hub.constants

    for var in ("HF_HUB_OFFLINE", "SONOSCOPE_OFFLINE"):
        monkeypatch.delenv(var, raising=False)
    # a host that never resolves (RFC 2606), and a hub client that would spend a long time retrying
    monkeypatch.setattr(huggingface_hub.constants, "ENDPOINT", "https://huggingface.invalid")

    def retrying(*a, **k):
        time.sleep(45)
        raise OSError("gave up after retries")

    monkeypatch.setattr(huggingface_hub, "hf_hub_download", retrying)
    panel = window.panels["ModelsPanel"]

    def row(mid):
        for i in range(panel.tree.topLevelItemCount()):
            if panel.tree.topLevelItem(i).text(5) == mid:
                return panel.tree.topLevelItem(i)

    panel.refresh()
    qtbot.waitUntil(lambda: row("whisper-tiny") is not None and  # (the listing asked for online)
                    row("whisper-tiny").text(4).startswith("not installed — download"), timeout=5000)
    panel.tree.clearSelection()
    row("whisper-tiny").setSelected(True)
    t0 = time.monotonic()
    job = panel.install()
    qtbot.waitUntil(lambda: job.finished is not None, timeout=60000)
    took = time.monotonic() - t0
    assert took < 5.0, f"an offline install took {took:.1f} s to fail"
    assert job.status is JobStatus.FAILED and job.error.startswith("No network: huggingface.invalid cannot be reached")
    qtbot.waitUntil(lambda: row("whisper-tiny") is not None and row("whisper-tiny").text(4) == "not installed — no network",
                    timeout=5000)
    assert rows(window)["Install model whisper-tiny"]["status"].startswith("failed: No network")
    assert "No network" in panel.info.text()


def test_offline_download_from_the_cli_fails_in_seconds(tmp_path):
    """The real thing, in a network namespace without any network (skipped where unshare is not allowed)."""
    if shutil.which("unshare") is None or subprocess.run(["unshare", "-n", "true"], capture_output=True).returncode:
        pytest.skip("unshare -n is not available here")
    env = {k: v for k, v in os.environ.items() if k not in ("HF_HUB_OFFLINE", "SONOSCOPE_OFFLINE")}
    env["SONOSCOPE_MODELS"] = str(tmp_path / "models")
    t0 = time.monotonic()
    r = subprocess.run(["unshare", "-n", sys.executable, str(ROOT / "main.py"), "models", "download", "whisper-tiny"],
                       capture_output=True, text=True, env=env, timeout=120)
    took = time.monotonic() - t0
    assert r.returncode == 1 and "No network: huggingface.co cannot be reached" in r.stderr, r.stderr[-2000:]
    assert took < 10.0, took


# -- scripts/setup.sh ------------------------------------------------------------------------------
FAKE_PYTHON = """#!/bin/sh
echo "$*" >> "$(dirname "$0")/calls.log"
case "$*" in
  *"-m pip install"*)
    echo "Collecting fakepkg==1.0"
    echo "  Downloading fakepkg-1.0-py3-none-any.whl (12 kB)"
    sleep 3
    if [ -n "$FAIL_PIP" ]; then echo "ERROR: No matching distribution found for fakepkg" >&2; exit 1; fi
    echo "Successfully installed fakepkg-1.0";;
esac
exit 0
"""


@pytest.mark.parametrize("fail", [False, True], ids=["pip works", "pip fails"])
def test_setup_script_shows_pip_and_that_it_is_alive_and_stops_on_failure(tmp_path, fail):
    """setup.sh on a copy of the tree with a stand-in interpreter (whose pip takes 3 s): pip's own
    lines come through, a line says it is still working, and a pip failure stops the script with
    pip's exit code before anything is launched."""
    tree = tmp_path / "tree"
    (tree / "scripts").mkdir(parents=True)
    shutil.copy(ROOT / "scripts" / "setup.sh", tree / "scripts" / "setup.sh")
    shutil.copy(ROOT / "pyproject.toml", tree / "pyproject.toml")
    bin_dir = tree / ".venv" / "bin"
    bin_dir.mkdir(parents=True)
    (bin_dir / "python").write_text(FAKE_PYTHON)
    (bin_dir / "python").chmod(0o755)
    tools = tmp_path / "tools"  # every system package counts as installed: nothing goes to apt
    tools.mkdir()
    (tools / "dpkg-query").write_text("#!/bin/sh\necho 'install ok installed'\n")
    (tools / "dpkg-query").chmod(0o755)
    env = dict(os.environ, PATH=f"{tools}:{os.environ['PATH']}", SONOSCOPE_TICK="1")
    if fail:
        env["FAIL_PIP"] = "1"
    r = subprocess.run(["bash", str(tree / "scripts" / "setup.sh"), "app"], capture_output=True, text=True,
                       env=env, timeout=120)
    out = r.stdout + r.stderr
    calls = (bin_dir / "calls.log").read_text()
    assert "installing sonoscope[models]" in out
    assert "Collecting fakepkg==1.0" in out and "Downloading fakepkg" in out  # what pip is doing
    assert "pip is still working (2 s)" in out  # alive during the 3 quiet seconds
    if fail:
        assert r.returncode == 1, out
        assert "ERROR: No matching distribution found for fakepkg" in out
        assert "pip failed (exit 1)" in out
        assert "main.py" not in calls and not (tree / ".venv" / ".sonoscope-app").exists()
    else:
        assert r.returncode == 0, out
        assert "Successfully installed fakepkg-1.0" in out and calls.rstrip().endswith("main.py")
