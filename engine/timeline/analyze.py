"""The analysis job: transcription + who spoke when + sound tags of one file, as one job.

:func:`analyze_file` (what the Timeline panel, ``main.py analyze`` and batch runs call):

1. a valid sidecar (``FILE.sonoscope.json``, same audio checksum, same options) is reopened
   instead: no model runs, the user's edits are kept;
2. otherwise the parts run in turn, each in its slice of the job's progress, and each hands its
   result to ``state.add_partial(Part(name, value))`` as soon as it is done, so the lanes fill in:
   ``speakers`` (:func:`engine.speakers.diarize.diarize`, 0-15 %), ``transcript`` (Whisper with
   word times, 15-75 %; then every word gets its speaker), ``tags`` (the AudioSet tagger,
   75-97 %; then the sound events' edges are moved to the sound, :mod:`engine.timeline.events`);
3. the words' edges are fitted to the voiced speaker turns: Whisper stretches the first word
   after a long non-speech stretch back over it ("Had" from 10.3 s to 18.1 s over a dog barking;
   the turn began at 18.0 s);
4. the results are saved in the sidecar (atomically, once everything is done: a cancelled job
   leaves the old sidecar, or none) and, with ``out_dir``, exported: ``srt``/``vtt`` (SDH
   captions with ``sdh``, else the transcript's cues with speakers), ``txt`` and ``json`` (the
   whole analysis).
"""

from __future__ import annotations

import dataclasses
import json
import os
from pathlib import Path
from typing import Any

from .. import defaults as D
from ..audio import io as audio_io
from ..errors import SonoscopeError, UnsupportedFormat
from ..jobs import JobState, null_state
from ..results import Analysis, SpeakerTurn, Transcript
from . import project

PARTS = ("transcript", "speakers", "tags")
FORMATS = ("srt", "vtt", "txt", "json")
SPEAKER_MODEL = "ge2e-resemblyzer"  # engine.speakers.diarize.MODEL
TAG_MODEL = "efficientat-mn04-as"   # engine.tags.taggers.DEFAULT_MODEL


@dataclasses.dataclass
class Part:
    """A finished part of an analysis, handed to ``state.add_partial`` (``name`` in :data:`PARTS`)."""

    name: str
    value: Any


def requested(parts=PARTS, model=None, language=None, speakers=None, tag_model=None,
              tag_threshold=D.TAG_THRESHOLD, tag_hop=D.TAG_HOP) -> tuple[dict, dict]:
    """(models, options) per part as the sidecar records them (what decides whether it can be reused)."""
    models, options = {}, {}
    if "transcript" in parts:
        models["transcript"] = str(model or D.TRANSCRIBE_MODEL)
        options["transcript"] = {"language": None if language in (None, "auto") else language,
                                 "word_timestamps": True}
    if "speakers" in parts:
        models["speakers"] = SPEAKER_MODEL
        options["speakers"] = {"speakers": speakers}
    if "tags" in parts:
        models["tags"] = str(tag_model or TAG_MODEL)
        options["tags"] = {"threshold": float(tag_threshold), "hop": float(tag_hop), "refined": True}
    return models, options


def fit_words_to_turns(t: Transcript, turns: list[SpeakerTurn], slack: float = 0.2) -> Transcript:
    """Words whose start (end) lies more than ``slack`` before (after) the voiced turn they overlap
    are cut back to it; segment times follow their words."""
    if not turns:
        return t
    turns = sorted(turns, key=lambda x: x.start)
    segs = []
    for s in t.segments:
        words = []
        for w in s.words or []:
            over = [x for x in turns if x.start < w.end and x.end > w.start]
            a, b = w.start, w.end
            if over:
                if a < over[0].start - slack:
                    a = over[0].start
                if b > over[-1].end + slack:
                    b = over[-1].end
            words.append(dataclasses.replace(w, start=round(a, 3), end=round(max(b, a + 0.01), 3)))
        if words:
            s = dataclasses.replace(s, words=words, start=words[0].start, end=words[-1].end)
        segs.append(s)
    return dataclasses.replace(t, segments=segs)


def analyze_file(state: JobState | None, path: str | os.PathLike, out_dir: str | os.PathLike | None = None, *,
                 formats=("srt", "vtt", "json"), sdh: bool = False, parts=PARTS, model: str | None = None,
                 language: str | None = None, speakers: int | None = None, names: dict | None = None,
                 tag_model: str | None = None, tag_threshold: float = D.TAG_THRESHOLD, tag_hop: float = D.TAG_HOP,
                 device: str | None = "auto", threads: int | None = None, reuse: bool = True,
                 save: bool = True) -> Analysis:
    """Analyse one file (module docstring); returns the :class:`~engine.results.Analysis`, with
    ``outputs`` the files written to ``out_dir`` and ``reused`` True when the sidecar answered."""
    state = state or null_state()
    path = Path(path)
    formats = [f.lower().lstrip(".") for f in (formats or ())]
    bad = [f for f in formats if f not in FORMATS]
    if bad:
        raise UnsupportedFormat(f"cannot write {', '.join(bad)}; choose from {', '.join(FORMATS)}")
    parts = tuple(p for p in PARTS if p in set(parts))
    if not parts:
        raise SonoscopeError(f"nothing to analyse: choose parts from {', '.join(PARTS)}")
    info = audio_io.info(path)  # a missing or broken file fails here, before any model loads
    models, options = requested(parts, model, language, speakers, tag_model, tag_threshold, tag_hop)

    a = _reopen(state, path, models, options) if reuse else None
    if a is None:
        a = _compute(state, path, info.duration, parts, models, options, model, language, speakers, tag_model,
                     tag_threshold, tag_hop, device, threads)
        if names:
            a.names.update({k: v for k, v in names.items() if v})
        state.check()  # a cancel now leaves no sidecar and no exports
        if save:
            state.update(status="saving the results")
            project.save(a)
    if out_dir is not None and formats:
        a.outputs = [str(p) for p in export(a, out_dir, formats, sdh)]
    state.update(progress=1.0, status="done")
    return a


def _reopen(state: JobState, path: Path, models: dict, options: dict) -> Analysis | None:
    """The sidecar's analysis when it matches the audio and the request (else None: compute)."""
    status, message = project.status(path)
    if status == "missing":
        return None
    state.update(status=message)
    if status != "valid":
        state.add_partial(Part("notice", message))  # "changed": the CLI and the app say so
        return None
    a = project.load(path, check=False)  # status() just checked the sum
    if all(a.models.get(k) == v and a.options.get(k) == options[k] for k, v in models.items()):
        for name in ("speakers", "transcript", "tags"):  # the order they are computed in
            value = {"transcript": a.transcript, "speakers": a.turns, "tags": a.tagging}[name]
            if value is not None:
                state.add_partial(Part(name, value))
        a.reused = True
        return a
    state.update(status=f"{path.name}: analysed with other settings before: analysing again")
    return None


def _compute(state, path: Path, duration, parts, models, options, model, language, speakers, tag_model,
             tag_threshold, tag_hop, device, threads) -> Analysis:
    a = Analysis(str(path), round(float(duration), 3), models=dict(models), options=dict(options))
    slices = {"speakers": (0.0, 0.15), "transcript": (0.15, 0.75), "tags": (0.75, 0.97)}
    if "speakers" in parts:
        from ..speakers.diarize import diarize

        state.update(status="finding speakers")
        a.turns = diarize(state.sub(*slices["speakers"]), path, speakers, device=device)
        state.add_partial(Part("speakers", a.turns))
    if "transcript" in parts:
        from ..transcribe.task import transcribe_file

        state.update(status="transcribing")
        opts = {"word_timestamps": True}
        if options["transcript"]["language"]:
            opts["language"] = options["transcript"]["language"]
        t = transcribe_file(state.sub(*slices["transcript"]), path, model=models["transcript"], options=opts,
                            device=device, threads=threads)
        t.source = str(path)
        if a.turns:
            from ..speakers.diarize import assign_speakers

            t = assign_speakers(fit_words_to_turns(t, a.turns), a.turns)
        a.transcript = t
        state.add_partial(Part("transcript", t))
    if "tags" in parts:
        from ..tags.task import tag_file
        from .captions import is_speech_label
        from .events import envelope_db, refine_events

        state.update(status="tagging sounds")
        tg = tag_file(state.sub(*slices["tags"]), path, model=tag_model, threshold=tag_threshold, hop=tag_hop,
                      device=device, threads=threads)
        speech = [(x.start, x.end) for x in a.turns or []] or \
                 [(w.start, w.end) for w in (a.transcript.words if a.transcript else [])]
        env = envelope_db(path, check=state.check)
        tg.events = refine_events(tg.events, env, speech, skip=is_speech_label)
        a.tagging = tg
        state.add_partial(Part("tags", tg))
    return a


# -- exports ---------------------------------------------------------------------------------------
def render(a: Analysis, fmt: str, sdh: bool = False) -> str:
    """The text of one export of the analysis (its edits and speaker names applied)."""
    from ..transcribe import exports as tx
    from .captions import render as captions
    from .edits import named_transcript

    fmt = fmt.lower().lstrip(".")
    if fmt == "json":
        d = project.to_dict(a)
        t = named_transcript(a)
        d["transcript"] = None if t is None else t.to_dict()
        return json.dumps(d, ensure_ascii=False, indent=2) + "\n"
    if fmt in ("srt", "vtt") and sdh:
        return captions(a, fmt, sdh=True)
    if fmt not in FORMATS:
        raise UnsupportedFormat(f"cannot write {fmt}; choose from {', '.join(FORMATS)}")
    t = named_transcript(a) or Transcript([], None, a.duration, source=a.source)
    return tx.render(t, fmt)


def export(a: Analysis, out_dir: str | os.PathLike, formats=("srt", "vtt", "json"), sdh: bool = False) -> list[Path]:
    """Write ``<out_dir>/<stem>.<fmt>`` per format (atomically; an existing file is kept and
    ``<stem> (2).<fmt>`` written instead)."""
    from ..fileio import unique_path, write_text_atomic

    stem = Path(a.source).stem
    texts = [(fmt, render(a, fmt, sdh)) for fmt in formats]  # every text first: a bad format writes nothing
    return [write_text_atomic(unique_path(Path(out_dir) / f"{stem}.{fmt}"), text) for fmt, text in texts]
