"""Sonoscope's desktop app (PySide6 + pyqtgraph).

``run_app(paths)`` starts it. Nothing here imports torch or model code: the window paints
first; panels (which may pull heavier modules) are created right after the first paint.

Environment for tests and measurements:
``SONOSCOPE_SETTINGS`` -- an INI file to use instead of the user's settings;
``SONOSCOPE_STARTUP_REPORT`` -- write a JSON with the time to first paint (seconds since the
process started) and whether torch was imported by then;
``SONOSCOPE_EXIT_AFTER`` -- quit this many milliseconds after the panels are loaded.
"""

from __future__ import annotations

import json
import os
import sys
import time

__all__ = ["run_app", "create_window"]


def _process_age() -> float:
    try:
        import psutil

        return time.time() - psutil.Process().create_time()
    except Exception:
        return float("nan")


def create_window(paths=(), settings=None, audio=None, check_compute: bool = True):
    """Build the context and the main window (no event loop). Returns the window; ``window.ctx``.

    ``audio=None``: PortAudio is asked which devices work after the first paint, on a worker thread
    (``ctx.audio_checked`` turns True with the answer). ``check_compute``: find the torch device
    for the status bar a little after the first paint (torch takes seconds to import, so a
    helper process does that: see :class:`app.startup.ComputeCheck`).
    """
    from PySide6.QtCore import QTimer

    from .context import AppContext
    from .engine_bridge import EngineBridge
    from .main_window import MainWindow
    from .player import PlayerController
    from .settings import OUTPUT_DEVICE, Settings
    from .startup import COMPUTE_DELAY_MS, check_audio

    settings = settings or Settings()
    bridge = EngineBridge()
    player = PlayerController(settings.get(OUTPUT_DEVICE), audio is not None and audio.output_ok,
                              audio.output_reason if audio is not None else "")
    ctx = AppContext(settings, bridge, player, audio)
    if audio is None:
        player.unavailable_reason = ctx.audio.output_reason
    bridge.setParent(ctx)
    player.setParent(ctx)
    window = MainWindow(ctx)

    def painted() -> None:
        if not ctx.audio_checked:
            check_audio(ctx)
        if check_compute:
            QTimer.singleShot(COMPUTE_DELAY_MS, window, window.check_compute)

    window.firstPaint.connect(painted)
    if paths:
        window.add_paths(list(paths))
    return window


EXIT_NO_DISPLAY = 3


def no_display_reason() -> str | None:
    """Why no window can be shown here, or None. Checked before Qt, which would abort the process."""
    if sys.platform in ("darwin", "win32") or os.environ.get("QT_QPA_PLATFORM"):
        return None
    if os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY"):
        return None
    return ("no display found (DISPLAY and WAYLAND_DISPLAY are unset): the Sonoscope window needs a "
            "desktop session. Every feature also runs headless: python main.py --help")


def run_app(paths: list[str] | None = None) -> int:
    reason = no_display_reason()
    if reason is not None:
        print(f"sonoscope: {reason}", file=sys.stderr)
        return EXIT_NO_DISPLAY
    from PySide6.QtCore import QTimer
    from PySide6.QtWidgets import QApplication

    app = QApplication.instance() or QApplication(sys.argv[:1])
    app.setApplicationName("Sonoscope")
    app.setOrganizationName("Sonoscope")
    app.setDesktopFileName("sonoscope")
    window = create_window(paths or [])
    report = os.environ.get("SONOSCOPE_STARTUP_REPORT")
    exit_after = os.environ.get("SONOSCOPE_EXIT_AFTER")
    info: dict = {}

    def painted() -> None:
        info["first_paint_s"] = _process_age()
        info["torch_imported_at_first_paint"] = "torch" in sys.modules
        window.load_panels()
        info["panels_loaded_s"] = _process_age()
        info["panels"] = list(window.panels)
        if report:
            with open(report, "w") as f:
                json.dump(info, f)
        if exit_after is not None:
            QTimer.singleShot(int(exit_after), window.close)

    window.firstPaint.connect(painted)
    window.show()
    code = app.exec()
    return int(code)
