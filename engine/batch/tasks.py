"""The batch task registry: TASK name -> the engine function and how it writes one input's outputs.

A task's ``write(fn, state, path, stage, options)`` runs the engine function on one input and writes
its outputs into ``stage``, an empty private folder, named as the single-file command names them
(``<stem>.<fmt>``, ``<stem>/<stem name>.<ext>``); the worker then moves them to their final place
(engine/batch/worker.py). The functions are imported when a file first runs (in the worker), so
the registry itself is light, and a task whose module is not in this build (``speak``,
``analyze`` before their branches land) is listed but says so instead of running.

``defaults`` are the task's options: a batch's options are these with the caller's values over
them (unknown names are an error); all of them go into the manifest's options hash.
"""

from __future__ import annotations

import importlib
import importlib.util
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from .. import defaults as D
from ..audio.io import AUDIO_EXTENSIONS
from ..errors import SonoscopeError
from .inputs import TEXT_EXTENSIONS

Writer = Callable[[Callable[..., Any], Any, Path, Path, dict], None]


class TaskNotAvailable(SonoscopeError):
    pass


@dataclass(frozen=True)
class Task:
    name: str
    module: str
    function: str
    write: Writer
    defaults: dict = field(default_factory=dict)
    extensions: tuple[str, ...] = AUDIO_EXTENSIONS
    help: str = ""

    @property
    def reads_audio(self) -> bool:
        return not any(e in TEXT_EXTENSIONS for e in self.extensions)

    def unavailable(self) -> str | None:
        """Why this task cannot run in this build (its module is missing), or None."""
        try:
            found = importlib.util.find_spec(self.module) is not None
        except ModuleNotFoundError:
            found = False
        return None if found else f"the {self.name} task is not available in this build (no {self.module})"

    def resolve(self) -> Callable[..., Any]:
        reason = self.unavailable()
        if reason:
            raise TaskNotAvailable(reason)
        return getattr(importlib.import_module(self.module), self.function)

    def options(self, given: dict | None = None) -> dict:
        given = {k: v for k, v in (given or {}).items() if v is not None}  # None: the default
        unknown = sorted(set(given) - set(self.defaults))
        if unknown:
            raise SonoscopeError(f"the {self.name} task has no option {', '.join(unknown)} "
                                 f"(it has {', '.join(sorted(self.defaults))})")
        out = {**self.defaults, **given}
        for k, v in out.items():  # lists and tuples hash alike
            if isinstance(v, tuple):
                out[k] = list(v)
        return out


# -- how each task writes one input --------------------------------------------------------------------
def _transcribe(fn, state, path: Path, stage: Path, o: dict) -> None:
    from ..transcribe.exports import export

    if o["engine"] == "ctc":
        opts: dict = {"beam_size": o["beam_size"]}
    else:
        opts = dict(language=None if o["language"] in (None, "auto") else o["language"], task=o["task"],
                    beam_size=o["beam_size"] if o["beam_size"] > 1 else None, word_timestamps=o["word_timestamps"])
    result = fn(state, path, engine=o["engine"], model=o["model"], options=opts, int8=False if o["fp32"] else None)
    for fmt in o["formats"]:
        export(result, stage / f"{path.stem}.{fmt}", fmt)


def _tag(fn, state, path: Path, stage: Path, o: dict) -> None:
    from ..tags.exports import export

    result = fn(state, path, model=o["model"], window=o["window"], hop=o["hop"], threshold=o["threshold"],
                top=o["top"])
    for fmt in o["formats"]:
        export(result, stage, path.stem, fmt)


def _stems(fn, state, path: Path, stage: Path, o: dict) -> None:
    fn(state, path, stage, model=o["model"], stems=o["stems"], mode=o["mode"], fmt=o["format"],
       export=o["only"], sample_rate=o["sample_rate"])


def _separate(fn, state, path: Path, stage: Path, o: dict) -> None:
    fn(state, path, stage, model=o["model"], fmt=o["format"])


def _speak(fn, state, path: Path, stage: Path, o: dict) -> None:
    text = path.read_text(encoding="utf-8")
    if not text.strip():
        raise SonoscopeError(f"{path.name}: the text file is empty")
    fmt = o["format"]
    fn(state, text, stage / f"{path.stem}.{fmt or 'wav'}", voice=o["voice"], speed=o["speed"],
       speaker=o["speaker"], fmt=fmt)


def _analyze(fn, state, path: Path, stage: Path, o: dict) -> None:
    fn(state, path, stage, formats=tuple(o["formats"]), sdh=o["sdh"])


TASKS: dict[str, Task] = {t.name: t for t in (
    Task("transcribe", "engine.transcribe.task", "transcribe_file", _transcribe,
         dict(engine="whisper", model=None, formats=[D.TRANSCRIPT_FORMAT], language=None, task=D.TASK,
              beam_size=D.BEAM_SIZE, word_timestamps=D.WORD_TIMESTAMPS, fp32=False),
         help="speech to text: <key>.<format> per format"),
    Task("stems", "engine.stems.separate", "separate_file", _stems,
         dict(model=None, stems=D.STEMS, mode=D.STEMS_MODE, format=D.STEMS_FORMAT, only=None, sample_rate=None),
         help="music stems: <key>/<stem>.<format>"),
    Task("tag", "engine.tags.task", "tag_file", _tag,
         dict(model=None, formats=["json"], top=D.TAG_TOP, threshold=D.TAG_THRESHOLD, hop=D.TAG_HOP, window=None),
         help="sound labels and events: <key>.json / .csv / .txt (Audacity)"),
    Task("separate", "engine.speakers.separate", "separate_speakers", _separate,
         dict(model=None, format="wav"), help="one track per speaker: <key>/speakerN.<format>"),
    Task("speak", "engine.speech.task", "speak_file", _speak,
         dict(voice=None, speed=1.0, speaker=None, format=None), extensions=TEXT_EXTENSIONS,
         help="text to speech: one audio file per .txt input"),
    Task("analyze", "engine.timeline.analyze", "analyze_file", _analyze,
         dict(formats=["srt", "vtt", "json"], sdh=False), help="timeline analysis: subtitles and JSON per input"),
)}


def get(name: str) -> Task:
    try:
        return TASKS[name]
    except KeyError:
        raise SonoscopeError(f"unknown batch task {name!r}; choose one of {', '.join(TASKS)}") from None
