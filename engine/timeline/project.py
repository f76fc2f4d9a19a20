"""The sidecar project file: one file's results saved next to it, ``FILE.sonoscope.json``.

Layout (JSON, UTF-8)::

    {"sonoscope": 1,                       # format version
     "audio": {"name": "talk.wav", "size": 1234, "sha256": "..."},
     "duration": 34.2,
     "models": {"transcript": "whisper-base", "speakers": "ge2e-resemblyzer", "tags": "efficientat-mn04-as"},
     "options": {"transcript": {...}, "speakers": {...}, "tags": {...}},
     "names": {"S1": "Alice"},             # speaker label -> name
     "transcript": {...Transcript.to_dict()...} | null,   # words carry speaker labels
     "turns": [{"start", "end", "speaker"}] | null,
     "tagging": {...Tagging.to_dict()...} | null,
     "edits": [{"op": "rename_speaker", ...}]}

:func:`save` writes it atomically (``engine.fileio``): a crash never leaves half a sidecar.
:func:`load` checks the audio's checksum first: a changed file raises :class:`AudioChanged`
(its message says so) and :func:`status` answers "missing", "valid", "changed" or "broken"
without raising. Nothing here loads a model.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

from ..errors import SonoscopeError
from ..fileio import write_text_atomic
from ..results import Analysis, Segment, SpeakerTurn, TagEvent, Tagging, Transcript, Word

SUFFIX = ".sonoscope.json"
VERSION = 1


class ProjectError(SonoscopeError):
    """A sidecar that cannot be read (not JSON, another format version, fields missing)."""


class AudioChanged(ProjectError):
    """The audio file is not the one the sidecar's results were computed from."""


def sidecar_path(audio: str | os.PathLike) -> Path:
    """``talk.wav`` -> ``talk.wav.sonoscope.json`` beside it (talk.mp3 gets its own)."""
    p = Path(audio)
    return p.with_name(p.name + SUFFIX)


def sha256_of(path: str | os.PathLike, block: int = 1 << 20) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(block):
            h.update(chunk)
    return h.hexdigest()


# -- (de)serialisation ------------------------------------------------------------------------------
def _word(d: dict) -> Word:
    return Word(d["word"], float(d["start"]), float(d["end"]), d.get("probability"), d.get("speaker"))


def _segment(d: dict) -> Segment:
    words = None if d.get("words") is None else [_word(w) for w in d["words"]]
    return Segment(float(d["start"]), float(d["end"]), d.get("text", ""), words, int(d.get("id", 0)),
                   int(d.get("seek", 0)), list(d.get("tokens") or []), float(d.get("temperature", 0.0)),
                   float(d.get("avg_logprob", 0.0)), float(d.get("compression_ratio", 0.0)),
                   float(d.get("no_speech_prob", 0.0)), d.get("speaker"))


def transcript_from_dict(d: dict) -> Transcript:
    return Transcript([_segment(s) for s in d.get("segments", [])], d.get("language"), float(d.get("duration", 0.0)),
                      d.get("language_probs"), d.get("source", ""))


def tagging_from_dict(d: dict) -> Tagging:
    return Tagging([(t["label"], float(t["score"])) for t in d.get("tags", [])],
                   [TagEvent(e["label"], float(e["start"]), float(e["end"]), float(e["score"]))
                    for e in d.get("events", [])], float(d.get("duration", 0.0)), d.get("model", ""), d.get("file", ""))


def to_dict(a: Analysis) -> dict:
    p = Path(a.source)
    return {"sonoscope": VERSION,
            "audio": {"name": p.name, "size": p.stat().st_size if p.exists() else None, "sha256": a.sha256},
            "duration": a.duration, "models": dict(a.models), "options": dict(a.options), "names": dict(a.names),
            "transcript": None if a.transcript is None else {**a.transcript.to_dict(),
                                                             "language_probs": a.transcript.language_probs},
            "turns": None if a.turns is None else [{"start": t.start, "end": t.end, "speaker": t.speaker}
                                                   for t in a.turns],
            "tagging": None if a.tagging is None else a.tagging.to_dict(),
            "edits": list(a.edits)}


def from_dict(d: dict, source: str | os.PathLike) -> Analysis:
    if not isinstance(d, dict) or "sonoscope" not in d:
        raise ProjectError("not a Sonoscope project file")
    if d["sonoscope"] != VERSION:
        raise ProjectError(f"project format {d['sonoscope']!r} is not supported (this version reads {VERSION})")
    try:
        return Analysis(
            source=str(source), duration=float(d.get("duration") or 0.0),
            transcript=None if d.get("transcript") is None else transcript_from_dict(d["transcript"]),
            turns=None if d.get("turns") is None else [SpeakerTurn(float(t["start"]), float(t["end"]), t["speaker"])
                                                       for t in d["turns"]],
            tagging=None if d.get("tagging") is None else tagging_from_dict(d["tagging"]),
            names={str(k): str(v) for k, v in (d.get("names") or {}).items()},
            models=dict(d.get("models") or {}), options=dict(d.get("options") or {}),
            sha256=str((d.get("audio") or {}).get("sha256", "")), edits=list(d.get("edits") or []))
    except (KeyError, TypeError, ValueError) as e:
        raise ProjectError(f"the project file is damaged ({type(e).__name__}: {e})") from None


# -- files --------------------------------------------------------------------------------------------
def save(a: Analysis, path: str | os.PathLike | None = None) -> Path:
    """Write the sidecar of ``a.source`` (or ``path``) atomically; computes the checksum if missing."""
    if not a.sha256:
        a.sha256 = sha256_of(a.source)
    text = json.dumps(to_dict(a), ensure_ascii=False, indent=1) + "\n"
    return write_text_atomic(path or sidecar_path(a.source), text)


def _read(audio: Path) -> dict:
    side = sidecar_path(audio)
    try:
        return json.loads(side.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ProjectError(f"{audio.name} has no project file ({side.name})") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise ProjectError(f"{side.name} cannot be read: {e}") from None


def load(audio: str | os.PathLike, check: bool = True) -> Analysis:
    """The results saved beside ``audio``. Raises :class:`AudioChanged` when the audio's checksum is
    not the one saved (``check=False`` skips the check), :class:`ProjectError` when there is no
    readable sidecar."""
    audio = Path(audio)
    d = _read(audio)
    a = from_dict(d, audio)
    if check:
        saved = d.get("audio") or {}
        if not audio.exists():
            raise ProjectError(f"{audio.name}: the audio file is missing")
        size = audio.stat().st_size
        if (saved.get("size") is not None and saved["size"] != size) or sha256_of(audio) != a.sha256:
            raise AudioChanged(f"{audio.name} has changed since it was analysed (its checksum differs from the "
                               f"one in {sidecar_path(audio).name}): the saved results no longer apply; "
                               "analyse it again")
    a.reused = True
    return a


def status(audio: str | os.PathLike) -> tuple[str, str]:
    """("missing" | "valid" | "changed" | "broken", message) for the sidecar of ``audio`` (never raises)."""
    audio = Path(audio)
    if not sidecar_path(audio).exists():
        return "missing", f"{audio.name} has not been analysed yet"
    try:
        load(audio)
    except AudioChanged as e:
        return "changed", str(e)
    except (ProjectError, OSError) as e:
        return "broken", str(e)
    return "valid", f"{audio.name}: saved results match the audio"
