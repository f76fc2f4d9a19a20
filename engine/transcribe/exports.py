"""Transcript exports: plain text, SubRip (SRT), WebVTT and JSON (segments and words), written atomically.

A transcript with speakers (``Segment.speaker`` set, see ``engine.speakers.diarize.assign_speakers``)
exports them: cues start with "S1: " (or the name given), the text has one paragraph per turn
("S1: ..."), the JSON has a ``speaker`` on segments and words. Without speakers nothing changes.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from ..errors import UnsupportedFormat
from ..fileio import unique_path, write_text_atomic
from ..results import Segment, Transcript

FORMATS = ("txt", "srt", "vtt", "json")


def format_timestamp(seconds: float, decimal: str = ".", always_hours: bool = False) -> str:
    ms = max(0, int(round(seconds * 1000)))
    h, ms = divmod(ms, 3_600_000)
    m, ms = divmod(ms, 60_000)
    s, ms = divmod(ms, 1000)
    hours = f"{h:02d}:" if always_hours or h else ""
    return f"{hours}{m:02d}:{s:02d}{decimal}{ms:03d}"


def _cue_text(text: str) -> str:
    return " ".join(text.strip().replace("-->", "->").split())


def _with_speaker(s: Segment, text: str) -> str:
    return f"{s.speaker}: {text}" if s.speaker else text


def to_txt(t: Transcript) -> str:
    if not t.has_speakers:
        return "".join(s.text.strip() + "\n" for s in t.segments if s.text.strip())
    paragraphs: list[tuple[str | None, list[str]]] = []  # one per speaker turn
    for s in t.segments:
        if not s.text.strip():
            continue
        if not paragraphs or paragraphs[-1][0] != s.speaker:
            paragraphs.append((s.speaker, []))
        paragraphs[-1][1].append(" ".join(s.text.split()))
    return "\n".join(f"{who + ': ' if who else ''}{' '.join(lines)}\n" for who, lines in paragraphs)


def to_srt(t: Transcript) -> str:
    out, n = [], 0
    for s in t.segments:
        if not s.text.strip():
            continue
        n += 1
        out.append(f"{n}\n{format_timestamp(s.start, ',', True)} --> {format_timestamp(s.end, ',', True)}\n"
                   f"{_with_speaker(s, _cue_text(s.text))}\n")
    return "\n".join(out)


def to_vtt(t: Transcript) -> str:
    out = ["WEBVTT\n"]
    for s in t.segments:
        if s.text.strip():
            out.append(f"{format_timestamp(s.start, '.', True)} --> {format_timestamp(s.end, '.', True)}\n"
                       f"{_with_speaker(s, _cue_text(s.text))}\n")
    return "\n".join(out)


def to_json(t: Transcript) -> str:
    return json.dumps(t.to_dict(), ensure_ascii=False, indent=2) + "\n"


RENDER = {"txt": to_txt, "srt": to_srt, "vtt": to_vtt, "json": to_json}


def render(t: Transcript, fmt: str) -> str:
    fmt = fmt.lower().lstrip(".")
    if fmt not in RENDER:
        raise UnsupportedFormat(f"Cannot export a transcript as {fmt!r}; choose one of {', '.join(FORMATS)}")
    return RENDER[fmt](t)


def export(t: Transcript, path: str | os.PathLike, fmt: str | None = None, overwrite: bool = False) -> Path:
    """Write the transcript to ``path`` (format from ``fmt`` or the suffix), atomically.

    Without ``overwrite`` an existing file is kept and ``name (2).ext`` is written instead.
    """
    path = Path(path)
    fmt = (fmt or path.suffix.lstrip(".") or "txt").lower()
    text = render(t, fmt)
    if not overwrite:
        path = unique_path(path)
    return write_text_atomic(path, text)


