"""The user's edits of an :class:`~engine.results.Analysis`: rename a speaker, correct a word, delete a tag event.

Each edit changes the analysis in place, is recorded in ``analysis.edits`` (what was changed, from
what to what) and, with ``save=True``, written to the sidecar at once (atomically), so that every
later export and every reopening sees it. :func:`named_transcript` is the transcript as exports
show it: speaker labels replaced by the names given.
"""

from __future__ import annotations

import dataclasses

from ..errors import SonoscopeError
from ..results import Analysis, Transcript


class EditError(SonoscopeError):
    """An edit that does not apply (no such speaker, word or event; empty text)."""


def _saved(a: Analysis, save: bool) -> Analysis:
    if save:
        from .project import save as save_project

        save_project(a)
    return a


def speakers(a: Analysis) -> list[str]:
    """The speaker labels of the analysis, in order of first appearance."""
    seen: list[str] = []
    for t in a.turns or []:
        if t.speaker not in seen:
            seen.append(t.speaker)
    for w in (a.transcript.words if a.transcript else []):
        if w.speaker and w.speaker not in seen:
            seen.append(w.speaker)
    return seen


def rename_speaker(a: Analysis, label: str, name: str, save: bool = True) -> Analysis:
    """Call speaker ``label`` ("S1") ``name`` everywhere (an empty name gives the label back)."""
    if label not in speakers(a):
        raise EditError(f"there is no speaker {label!r} (speakers: {', '.join(speakers(a)) or 'none'})")
    name = " ".join(str(name).split())
    old = a.names.get(label, label)
    if name and name != label:
        a.names[label] = name
    else:
        a.names.pop(label, None)
    a.edits.append({"op": "rename_speaker", "speaker": label, "from": old, "to": name or label})
    return _saved(a, save)


def _rebuild(t: Transcript) -> None:
    for s in t.segments:
        if s.words:
            s.text = "".join(w.word for w in s.words)
            s.start, s.end = s.words[0].start, s.words[-1].end


def correct_word(a: Analysis, index: int, text: str, save: bool = True) -> Analysis:
    """Replace word ``index`` (of ``a.transcript.words``, in time order) by ``text``; its time and
    speaker stay. The segment's text follows."""
    words = a.transcript.words if a.transcript else []
    if not 0 <= index < len(words):
        raise EditError(f"there is no word {index} (the transcript has {len(words)})")
    new = " ".join(str(text).split())
    if not new:
        raise EditError("a word cannot be corrected to nothing")
    w = words[index]
    lead = w.word[:len(w.word) - len(w.word.lstrip())]
    old = w.text
    w.word = lead + new
    w.probability = None  # the user's word, not the model's
    _rebuild(a.transcript)
    a.edits.append({"op": "correct_word", "index": index, "start": w.start, "from": old, "to": new})
    return _saved(a, save)


def delete_tag_event(a: Analysis, index: int, save: bool = True) -> Analysis:
    """Remove sound event ``index`` (of ``a.tagging.events``) from the lanes and the captions."""
    events = a.tagging.events if a.tagging else []
    if not 0 <= index < len(events):
        raise EditError(f"there is no sound event {index} (there are {len(events)})")
    e = events.pop(index)
    a.edits.append({"op": "delete_tag_event", "label": e.label, "start": e.start, "end": e.end})
    return _saved(a, save)


def find_words(a: Analysis, query: str) -> list[int]:
    """Indices (of ``a.transcript.words``) of the words matching ``query`` (case and punctuation
    ignored; a query of several words matches where they follow one another)."""
    def norm(s: str) -> str:
        return "".join(c for c in s.lower() if c.isalnum() or c == "'")

    q = [norm(p) for p in str(query).split()]
    q = [p for p in q if p]
    words = [norm(w.text) for w in (a.transcript.words if a.transcript else [])]
    if not q:
        return []
    if len(q) == 1:  # a single word: a prefix match too ("resp" finds "respectable")
        return [i for i, w in enumerate(words) if w.startswith(q[0])]
    return [i for i in range(len(words) - len(q) + 1) if words[i:i + len(q)] == q]


def named_transcript(a: Analysis) -> Transcript | None:
    """The transcript with speaker labels replaced by their names (a copy; None without one)."""
    t = a.transcript
    if t is None:
        return None
    name = a.speaker_name
    segs = [dataclasses.replace(s, speaker=name(s.speaker),
                                words=None if s.words is None else [dataclasses.replace(w, speaker=name(w.speaker))
                                                                    for w in s.words]) for s in t.segments]
    return dataclasses.replace(t, segments=segs)
