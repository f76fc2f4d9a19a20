"""Tagging exports: JSON (top tags and events), CSV of events, an Audacity label track.

Every file is written atomically; an existing file is never overwritten (a number is added).
"""

from __future__ import annotations

import csv
import io
import json
import os
from pathlib import Path

from ..errors import UnsupportedFormat
from ..fileio import unique_path, write_text_atomic
from ..results import Tagging

FORMATS = {"json": ".json", "csv": ".csv", "audacity": ".txt"}


def to_json(t: Tagging) -> str:
    return json.dumps(t.to_dict(), indent=2, ensure_ascii=False) + "\n"


def to_csv(t: Tagging) -> str:
    out = io.StringIO()
    w = csv.writer(out, lineterminator="\n")
    w.writerow(["label", "start", "end", "score"])
    for e in t.events:
        w.writerow([e.label, f"{e.start:.3f}", f"{e.end:.3f}", f"{e.score:.4f}"])
    return out.getvalue()


def to_audacity(t: Tagging) -> str:
    """Audacity's label track format: ``start<TAB>end<TAB>label`` per line (File > Import > Labels)."""
    return "".join(f"{e.start:.6f}\t{e.end:.6f}\t{e.label}\n" for e in t.events)


RENDER = {"json": to_json, "csv": to_csv, "audacity": to_audacity}


def render(t: Tagging, fmt: str) -> str:
    try:
        return RENDER[fmt](t)
    except KeyError:
        raise UnsupportedFormat(f"tags can be exported as {', '.join(FORMATS)}, not '{fmt}'") from None


def export(t: Tagging, out_dir: str | os.PathLike, stem: str, fmt: str) -> Path:
    """Write ``<out_dir>/<stem><ext>`` (``.json``, ``.csv``, ``.txt`` for Audacity) atomically."""
    text = render(t, fmt)
    path = unique_path(Path(out_dir) / f"{stem}{FORMATS[fmt]}")
    return write_text_atomic(path, text)
