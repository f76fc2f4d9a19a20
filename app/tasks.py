"""Small jobs the window itself submits (run on the engine thread, Qt-free)."""

from __future__ import annotations

from pathlib import Path


def export_audio(state, src: str, folder: str, fmt: str, start: float = 0.0, stop: float | None = None) -> str:
    """Export ``src`` (or its ``[start, stop]`` range) as ``fmt`` into ``folder``; returns the new path."""
    from engine import audio
    from engine.fileio import unique_path

    state.update(progress=0.05, status="decoding")
    a, sr = audio.load(src, start=start, stop=stop)
    state.check()
    if fmt == "mp3" and sr not in (8000, 11025, 12000, 16000, 22050, 24000, 32000, 44100, 48000):
        a, sr = audio.resample(a, sr, 48000), 48000
    if fmt == "ogg" and a.shape[0] > 2:
        a = audio.to_channels(a, 2)
    suffix = "" if stop is None else f" {start:.2f}-{stop:.2f}s"
    _, _, ext = audio.SAVE_FORMATS[fmt]
    out = unique_path(Path(folder) / f"{Path(src).stem}{suffix}{ext}")
    state.update(progress=0.5, status=f"writing {fmt.upper()}")
    audio.save(out, a, sr, format=fmt)
    return str(out)


def export_selection(ctx, selection: tuple[float, float] | None):
    """Submit an export of the current file (or its selected range); the result joins the file list."""
    from . import settings as S

    path = ctx.current_path
    if path is None:
        ctx.status("Select a file to export first")
        return None
    fmt = ctx.settings.get(S.EXPORT_FORMAT)
    args = (str(path), str(ctx.output_dir()), fmt) + (tuple(selection) if selection else ())
    job = ctx.submit(f"Export {path.name} as {fmt.upper()}", export_audio, *args)
    ctx.jobs.when_done(job, lambda j: ctx.add_file(j.result) if j.result else None)
    return job
