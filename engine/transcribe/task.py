"""The transcription job: the one function the Transcribe panel and ``main.py transcribe`` both run.

:func:`transcribe_file` checks the input, picks the compute device, loads the model through the
shared model cache (``engine.models.load``) and runs the engine's long-form transcription,
handing segments to ``state.add_partial`` as they are decoded. Every engine returns the same
:class:`~engine.results.Transcript`.
"""

from __future__ import annotations

import os

import numpy as np

from ..audio import io as audio_io
from ..compute import pick_device, set_threads
from ..defaults import TRANSCRIBE_MODELS
from ..errors import SonoscopeError
from ..jobs import JobState, null_state
from ..results import Transcript

ENGINES = ("whisper", "ctc")
DEFAULT_MODELS = dict(TRANSCRIBE_MODELS)  # one default per engine, shared with the app: engine/defaults.py


def transcribe_file(state: JobState | None, path: str | os.PathLike | np.ndarray, engine: str = "whisper",
                    model: str | os.PathLike | None = None, options: dict | None = None,
                    device: str | None = "auto", int8: bool | None = None,
                    threads: int | None = None) -> Transcript:
    """Transcribe a file (any length, streamed) or a 16 kHz mono array.

    ``engine``: "whisper" (``options`` are :class:`~engine.transcribe.whisper.longform.TranscribeOptions`
    fields) or "ctc" (wav2vec2 / HuBERT; ``options`` may hold ``beam_size``). ``model``: catalog id,
    Whisper short name ("base") or a folder (default per engine). ``int8``: None = the model
    family's CPU default (wav2vec2 int8, Whisper float32: see engine.models.load).
    """
    state = state or null_state()
    if engine not in ENGINES:
        raise SonoscopeError(f"unknown transcription engine {engine!r}; choose one of {', '.join(ENGINES)}")
    if not isinstance(path, np.ndarray):
        audio_io.info(path)  # a missing or broken file fails now, before a model is loaded
    if threads:
        set_threads(threads)
    dev = str(pick_device(device))
    options = dict(options or {})
    name = model or DEFAULT_MODELS[engine]
    if engine == "whisper":
        from .whisper.loading import load
        from .whisper.longform import transcribe

        m, tokenizer = load(name, state=state.sub(0.0, 0.05), int8=int8, device=dev)
        return transcribe(state.sub(0.05, 1.0), m, tokenizer, path, **options)
    from .. import models
    from .ctc import transcribe_ctc

    m = models.load(name, state=state.sub(0.0, 0.05), device=dev, int8=int8)
    if m.config.head != "ctc":
        raise SonoscopeError(f"{name} has no CTC head: it cannot transcribe")
    beam = int(options.pop("beam_size", None) or 1)
    return transcribe_ctc(state.sub(0.05, 1.0), m, path, beam_width=beam, **options)
