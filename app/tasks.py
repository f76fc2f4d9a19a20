"""Small jobs the window itself submits (run on the engine thread, Qt-free), and File → Export."""

from __future__ import annotations

from pathlib import Path


def export_audio(state, src: str, out: str, fmt: str, start: float = 0.0, stop: float | None = None) -> str:
    """Export ``src`` (or its ``[start, stop]`` range) as ``fmt`` to the file ``out``; returns its path.

    An existing ``out`` is replaced (the save dialog asked); ``src`` itself never is."""
    from engine.audio import io as audio
    from engine.errors import SonoscopeError

    if Path(out).absolute() == Path(src).absolute():
        raise SonoscopeError(f"{Path(out).name}: cannot export a file onto itself; choose another name")
    state.update(progress=0.0, status="decoding")
    a, sr = audio.load(src, start=start, stop=stop)
    state.check()
    if not audio.rate_supported(fmt, sr):
        a, sr = audio.resample(a, sr, 48000), 48000
    if fmt == "ogg" and a.shape[0] > 2:
        a = audio.to_channels(a, 2)
    state.update(progress=0.5, status=f"writing {fmt.upper()}")
    audio.save(out, a, sr, format=fmt)
    state.update(progress=1.0, status="saved")
    return str(out)


def export_selection(ctx, selection: tuple[float, float] | None, path=None, parent=None):
    """File → Export: ask where to save the current file (or its selected range) in the export format,
    then export it as a job; the result joins the file list. ``path`` skips the dialog."""
    from engine.audio.io import SAVE_FORMATS, format_for
    from engine.errors import SonoscopeError

    from . import dialogs
    from . import settings as S

    src = ctx.current_path
    if src is None:
        ctx.status("Select a file to export first")
        return None
    fmt = ctx.settings.get(S.EXPORT_FORMAT)
    ext = SAVE_FORMATS[fmt][2]
    if path is None:
        name = dialogs.export_name(src, ext, *(selection or (None, None)))
        others = [f"{f.upper()} audio (*{e})" for f, (_, _, e) in SAVE_FORMATS.items() if f != fmt]
        path = dialogs.ask_save_path(ctx, f"Export {src.name}", name,
                                     ";;".join([f"{fmt.upper()} audio (*{ext})"] + others), parent)
        if path is None:
            return None
    try:  # the name typed decides the format (speech.flac is FLAC whatever the settings say)
        fmt = format_for(path)
    except SonoscopeError as e:
        ctx.error(f"Export: {e}")
        return None
    args = (str(src), str(path), fmt) + (tuple(selection) if selection else ())
    what = f"{selection[0]:.2f}-{selection[1]:.2f} s of {src.name}" if selection else src.name
    job = ctx.submit(f"Export {what} as {fmt.upper()}", export_audio, *args)
    ctx.jobs.when_done(job, lambda j: ctx.add_file(j.result) if j.result else None)
    return job
