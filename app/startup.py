"""Checks the window runs after its first paint, off the GUI thread: which audio devices work
(PortAudio) and where models will run (torch, seconds to import: asked in a helper process).
Until they answer, the window says "checking" and keeps record/play disabled.
"""

from __future__ import annotations

import json
import logging
import subprocess
import sys
from pathlib import Path

from .threads import run_in_thread

log = logging.getLogger(__name__)

AUDIO_CHECKING = "checking the audio devices…"
COMPUTE_CHECKING = "Compute: checking…"
COMPUTE_DELAY_MS = 750  # after the panels are up: they load first, then the helper process starts


def check_audio(ctx) -> None:
    """Ask PortAudio which devices work, on a worker thread; ``ctx.set_audio`` gets the answer."""
    from engine.audio import devices as audio_devices

    def done(result, error) -> None:
        if error is not None:
            why = f"the audio devices could not be checked: {error}"
            result = audio_devices.Availability(False, False, why, why)
        ctx.set_audio(result)

    run_in_thread(audio_devices.availability, done, ctx, "sonoscope-audio-check")


def list_audio_devices() -> dict:
    """``{"input": [AudioDevice], "output": [...]}`` or ``{"error": reason}``. Worker thread."""
    from engine.audio import devices as audio_devices
    from engine.errors import DeviceError

    try:
        return {kind: audio_devices.list_devices(kind) for kind in ("input", "output")}
    except DeviceError as e:
        return {"error": str(e)}


def compute_note(preference: str = "auto") -> tuple[str, str]:
    """``(status-bar text, tooltip)``: the device torch will actually run models on for
    ``preference``, and every device it can use. Imports torch: never on the GUI thread."""
    try:
        from engine import compute

        devices = compute.available()
    except ImportError as e:
        return "Compute: PyTorch is not installed — models cannot run", str(e)
    from engine.errors import DeviceError

    tooltip = "Devices PyTorch can use:\n" + "\n".join(
        f"{d.name}: {d.description}" + (f" ({d.memory_gb:g} GB)" if d.memory_gb else "") for d in devices)
    try:
        dev = compute.pick_device(preference)
    except DeviceError as e:
        return f"Compute: {preference} is not usable — models will fail until Settings say 'auto' or 'cpu'", \
            f"{e}\n\n{tooltip}"
    name = f"cuda:{dev.index or 0}" if dev.type == "cuda" else dev.type
    d = next((d for d in devices if d.name == name), None)
    if d is None:  # torch chose something available() does not list
        return f"Compute: {name}", tooltip
    return f"Compute: {d.name} — {d.description}" + (f" ({d.memory_gb:g} GB)" if d.memory_gb else ""), tooltip


_PROBE = """
import json, sys
sys.path.insert(0, sys.argv[1])
from app.startup import compute_note
print(json.dumps(compute_note(sys.argv[2])))
"""


class ComputeCheck:
    """Finds the compute device on a worker thread and shows it in ``window.compute_label``.

    Unless torch is already imported here, it is imported in a helper process: importing it in
    this one, even on a worker thread, holds the interpreter lock for up to half a second at a
    time, which stalls the GUI and makes a recording that has just started drop audio.
    """

    def __init__(self, window, preference: str) -> None:
        self.window, self.preference = window, preference
        self.proc: subprocess.Popen | None = None
        self.closed = False
        window.compute_label.setText(COMPUTE_CHECKING)
        self.thread = run_in_thread(self._run, self._done, window, "sonoscope-compute-check")

    def _run(self):
        if "torch" in sys.modules:
            return compute_note(self.preference)  # nothing left to import: quick
        root = str(Path(__file__).resolve().parents[1])
        try:
            self.proc = subprocess.Popen([sys.executable, "-c", _PROBE, root, self.preference],
                                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
            out, err = self.proc.communicate(timeout=180)
        except (OSError, subprocess.TimeoutExpired) as e:  # e.g. a frozen build without a python
            log.info("compute check in a helper process failed (%s); checking here", e)
            if self.proc is not None:
                self.proc.kill()
            return None if self.closed else compute_note(self.preference)
        if self.closed:
            return None
        if self.proc.returncode != 0:
            raise RuntimeError((err.strip().splitlines() or ["the helper process failed"])[-1])
        text, tip = json.loads(out.strip().splitlines()[-1])
        return text, tip

    def _done(self, result, error) -> None:
        if self.closed:
            return
        if error is not None:
            log.warning("compute check failed: %s", error)
            result = (f"Compute: unknown ({error})", "")
        text, tip = result
        self.window.compute_label.setText(text)
        self.window.compute_label.setToolTip(tip)
        self.window.computeChecked.emit(text)

    def close(self) -> None:
        self.closed = True
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
