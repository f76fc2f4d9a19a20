"""Two people talking at once: separate the voices first, transcribe each track, merge by time.

Who-spoke-when (:mod:`.diarize`) gives every moment one speaker, so where two people talk over each
other one of them is lost. Here the mixture is first split into one track per speaker
(:func:`.separate.separate_speakers`, SepFormer), each track is transcribed on its own (Whisper with
word timestamps, or CTC) and the transcripts are merged into one, ordered by time, every segment and
word carrying the speaker of its track (``S1`` for the separator's first track, ``S2``...; or the
names given). Segments of different speakers may overlap in time: that is what was said.

The tracks are written to a temporary folder (streamed, so an hour-long file needs bounded memory) and
removed afterwards; nothing is left behind on failure or cancel.
"""

from __future__ import annotations

import dataclasses
import os
import tempfile
from typing import Any, Mapping

from ..audio import io as audio_io
from ..jobs import JobState, null_state
from ..results import Segment, Transcript
from .diarize import check_names
from .separate import separate_speakers


def label_transcript(transcript: Transcript, speaker: str) -> Transcript:
    """A copy whose every segment and word is ``speaker``'s."""
    segs = [dataclasses.replace(s, speaker=speaker,
                                words=None if s.words is None else [dataclasses.replace(w, speaker=speaker)
                                                                     for w in s.words])
            for s in transcript.segments]
    return dataclasses.replace(transcript, segments=segs)


def merge_transcripts(parts: list[Transcript], duration: float | None = None, source: str = "") -> Transcript:
    """One transcript of several (e.g. one per speaker track), segments ordered by start then end.

    The language is the first part's that has one; the duration the longest (or ``duration``)."""
    if not parts:
        raise ValueError("nothing to merge")
    order = sorted(((s.start, s.end, i, s) for i, t in enumerate(parts) for s in t.segments),
                   key=lambda x: x[:3])
    segments: list[Segment] = [dataclasses.replace(s, id=k) for k, (_, _, _, s) in enumerate(order)]
    language = next((t.language for t in parts if t.language), None)
    dur = duration if duration is not None else max(t.duration for t in parts)
    return Transcript(segments, language, dur, source=source or parts[0].source)


def transcribe_overlapped(state: JobState | None, path: str | os.PathLike, separator: Any = None,
                          names: Mapping[str, str] | None = None, engine: str = "whisper",
                          model: str | os.PathLike | None = None, options: dict | None = None,
                          device: str | None = "auto", int8: bool | None = None,
                          threads: int | None = None) -> Transcript:
    """Separate the voices of ``path`` (``separator``: a loaded model, catalog id or SepFormer folder;
    default the catalog's), transcribe each track (as :func:`engine.transcribe.task.transcribe_file`)
    and merge them by time into one transcript with speakers ``S1``, ``S2``... (or ``names``)."""
    from ..transcribe.task import transcribe_file

    state = state or null_state()
    names = check_names(names)
    audio_io.info(path)  # a bad file fails before any model loads
    options = dict(options or {})
    if engine == "whisper":
        options["word_timestamps"] = True
    with tempfile.TemporaryDirectory(prefix="sonoscope-voices-") as tmp:
        sep = separate_speakers(state.sub(0.0, 0.4), path, tmp, model=separator, fmt="wav", device=device,
                                threads=threads)
        tracks = list(sep.speakers.values())
        parts = []
        for k, track in enumerate(tracks):
            state.check()
            span = 0.6 / len(tracks)
            sub = state.sub(0.4 + k * span, 0.4 + (k + 1) * span)
            sub.update(progress=0.0, status=f"transcribing speaker {k + 1} of {len(tracks)}")
            t = transcribe_file(sub, track, engine=engine, model=model, options=options, device=device,
                                int8=int8, threads=threads)
            label = f"S{k + 1}"
            parts.append(label_transcript(t, names.get(label, label)))
    state.update(progress=1.0, status="done")
    return merge_transcripts(parts, duration=sep.duration, source=str(path))
