"""Panel registry: the extension point where features plug into the main window.

CONTRACT (for everyone adding a panel)
--------------------------------------
- A panel is a ``QWidget`` subclass in its own module under ``app/panels/``.
- Its constructor is ``Panel(ctx: app.context.AppContext, parent=None)``; ``ctx`` gives the
  settings, the engine-job bridge (``ctx.submit(name, fn, *args, **kwargs) -> Job``; job
  signals), the current file selection (``ctx.selection`` / ``ctx.current_path`` and
  ``ctx.selectionChanged(list[str])``), the shared player (``ctx.player.play_file`` /
  ``play_array``), ``ctx.add_file(path)`` to put a generated file into the file list,
  ``ctx.status(msg)`` / ``ctx.error(msg)``, ``ctx.output_dir()`` / ``ctx.new_output_path()``,
  a file's format and length from the shared probe cache (``ctx.probe.request(path)``, answers
  in ``ctx.probe.probed``; never ``engine.audio.io.info`` in a slot),
  the shared microphone (``stream = ctx.input.acquire(self)`` -> ``engine.audio.capture.InputStream``;
  ``ctx.input.release(self)``), the compute preference (``ctx.compute_device()``,
  ``ctx.threads()``). Read ``app/context.py`` for the details.
- Class attributes:
    ``title: str``        the tab / dock title (required)
    ``area: str``         "tab" (default: a tab next to the file view) or "right" / "bottom" (a dock)
    ``shortcut: str``     optional, e.g. "Ctrl+T": shown in the View menu, focuses the panel
- The panel module must import fast: NO torch / transformers / model imports at module
  level -- import them inside the job function that runs on the engine thread. Panels are
  created after the window's first paint, but a slow import still freezes the GUI.
- Long work goes through ``ctx.submit`` (never block the GUI thread: no decoding, folder walks,
  file probes, PortAudio queries or torch in a slot; ``app.threads.run_in_thread`` for small
  one-off work); report with
  ``state.update(progress=..., status=...)`` / ``state.add_partial(...)``; the jobs panel
  shows progress, cancel and errors for every job automatically.
- Optional hooks: ``shutdown(self)`` called when the window closes.
- Settings for the panel: ``app.settings.define("area/name", type, default, doc)`` at module level.

Registering: add ``(module_name, class_name)`` to :data:`PANELS`. A missing module is
skipped silently (so a panel can be listed before it is written); a panel that fails to
import or construct is replaced by a tab that shows the error.
"""

from __future__ import annotations

PANELS: list[tuple[str, str]] = [
    ("app.panels.file_info_panel", "FileInfoPanel"),
    ("app.panels.transcribe_panel", "TranscribePanel"),
    ("app.panels.stems_panel", "StemsPanel"),
    ("app.panels.tags_panel", "TagsPanel"),
    ("app.panels.speakers_panel", "SpeakersPanel"),
    ("app.panels.live_panel", "LivePanel"),
    ("app.panels.jobs_panel", "JobsPanel"),
    ("app.panels.models_panel", "ModelsPanel"),
    ("app.panels.timeline_panel", "TimelinePanel"),  # after Tags and Speakers: it shares their lanes
    ("app.panels.speak_panel", "SpeakPanel"),
]
