"""The live transcription session: a job that feeds an input stream (or a replayed file) to a streamer.

:func:`make_streamer` builds a streamer for an engine ("ctc" | "whisper") and a model id;
:func:`live_transcribe` runs it on the microphone (or an
:class:`~engine.audio.capture.ReplaySource`, a recording standing in for it) until cancelled;
:func:`live_session` is the job the Live panel and ``main.py live`` run.
"""


from __future__ import annotations

import os
import time
from typing import Any, Callable

import numpy as np

from .. import defaults as D
from .. import models
from ..audio import SPEECH_RATE
from ..audio import io as audio_io
from ..audio.capture import InputStream, ReplaySource
from ..compute import pick_device, set_threads
from ..errors import DeviceError
from ..results import Transcript, live_latency
from .streaming import CTCStreamer, SessionClock, Streamer, StreamUpdate
from .whisper.loading import load as load_whisper
from .whisper.streaming import ThreadChoice, WhisperStreamer, whisper_transcriber

__all__ = ["DEFAULT_MODELS", "ReplaySource", "live_session", "live_transcribe", "make_streamer", "open_input"]

DEFAULT_MODELS = dict(D.LIVE_MODELS)  # shared with the app: engine/defaults.py



class _Resampler:
    def __init__(self, sr_in: int, sr_out: int) -> None:
        self.sr_in, self.sr_out = sr_in, sr_out
        self._rs = None
        if sr_in != sr_out:
            import soxr

            self._rs = soxr.ResampleStream(sr_in, sr_out, 1, dtype="float32")

    def __call__(self, x: np.ndarray, last: bool = False) -> np.ndarray:
        x = np.ascontiguousarray(x, np.float32)
        return x if self._rs is None else self._rs.resample_chunk(x, last=last)


def make_streamer(engine: str, model: str | None = None, state=None, int8: bool = True,
                  chunk: float = D.LIVE_CTC_CHUNK, left: float = D.LIVE_CTC_LEFT, right: float = D.LIVE_CTC_RIGHT,
                  step: float = D.LIVE_WHISPER_STEP, device: str = "cpu",
                  language: str | None = None, threads: int | None = None,
                  short_context: float | None = D.LIVE_WHISPER_SHORT_CONTEXT) -> Streamer:
    """A ready streamer for ``engine`` ("ctc" | "whisper") and a catalog id or folder (None: default).

    ``threads``: torch threads of the streamer's decodes (its own thread only). Whisper on the CPU
    decodes on up to ``engine.defaults.LIVE_WHISPER_THREADS`` by default, one while the cores are busy
    (:class:`~engine.transcribe.whisper.streaming.ThreadChoice`; benchmarks/bench_live.py)."""
    if engine == "ctc":
        m = models.load(model or DEFAULT_MODELS["ctc"], state=state, int8=int8, device=device)
        return CTCStreamer(m, chunk=chunk, left=left, right=right)
    if engine == "whisper":
        m, tok = load_whisper(model or DEFAULT_MODELS["whisper"], state=state, int8=int8, device=device)
        if threads is None and device == "cpu":  # as many as help: fewer while other work holds the cores
            threads = ThreadChoice(min(D.LIVE_WHISPER_THREADS, os.cpu_count() or 1))
        fn = whisper_transcriber(m, tok, language=language, threads=threads, short_context=short_context)
        return WhisperStreamer(fn, step=step)
    raise ValueError(f"unknown live engine {engine!r}")


def open_input(device=None, samplerate: int = SPEECH_RATE) -> InputStream:
    """An input stream at 16 kHz if the device takes it, else at its own rate."""
    try:
        return InputStream(device, samplerate=samplerate, channels=1)
    except DeviceError as first:
        try:
            return InputStream(device, samplerate=None, channels=1)  # the device's own rate
        except DeviceError:
            raise first from None
        except Exception as e:  # PortAudio errors outside a stream call (e.g. no default device)
            raise DeviceError(f"{first}; {type(e).__name__}: {e}") from None


def live_transcribe(state, streamer: Streamer, source=None, device=None, poll: float = 0.05,
                    max_seconds: float | None = None, on_update: Callable[[StreamUpdate], None] | None = None,
                    record_to: str | None = None) -> dict[str, Any]:
    """Job function: transcribe an input device (or an ``InputStream``-like ``source``) live.

    Every :class:`StreamUpdate` goes to ``state.add_partial`` (and ``on_update``), stamped by the
    session clock (its ``lag``; the words' ``shown`` / ``committed`` times). Stops when the
    job is cancelled (a normal stop, not an error) or after ``max_seconds``; then finishes the
    stream and returns ``{"transcript", "words", "text", "audio" (16 kHz float32), "updates",
    "sample_rate", "latency", "lost_seconds"}``. With ``record_to`` the session audio is also written
    there (WAV).

    When the engine falls behind, everything captured meanwhile is read at once and given to the
    streamer, which decodes it in one go: re-decoding is skipped, audio never is (the status says
    so). Only a stall longer than the input's ring buffer (30 s) loses audio; that is counted
    (``lost_seconds``), replaced by silence and reported.
    """
    own = source is None
    src = open_input(device) if own else source
    rs = _Resampler(src.samplerate, streamer.sample_rate)
    chunks: list[np.ndarray] = []
    updates: list[StreamUpdate] = []
    clock = SessionClock()
    lost_frames = 0
    behind = False

    def emit(u: StreamUpdate) -> None:
        clock.stamp(u, streamer.words)
        updates.append(u)
        state.add_partial(u)
        if on_update:
            on_update(u)

    try:
        if own:
            src.start()
        cursor = src.cursor()
        if getattr(src, "autostart", False):  # a replayed recording starts once we read from it
            src.start()
        clock.start()  # audio time 0
        t0 = time.monotonic()
        while not state.cancelled:
            if max_seconds is not None and time.monotonic() - t0 >= max_seconds:
                break
            ended = getattr(src, "finished", False)  # a replayed recording came to its end
            data, cursor, lost = src.read(cursor)
            if lost:  # the ring buffer overflowed: keep the timeline, say so
                lost_frames += lost
                gap = rs(np.zeros(lost, np.float32))
                chunks.append(gap)
                streamer.insert_audio(gap)
                state.update(status=f"fell behind: {lost_frames / src.samplerate:.1f} s of audio lost")
            if len(data):
                mono = data if data.ndim == 1 else (data[:, 0] if data.shape[1] == 1 else data.mean(axis=1))
                x = rs(mono)
                chunks.append(x)
                streamer.insert_audio(x)
                late = len(data) / src.samplerate
                if late > 1.0:  # the last decode took longer than a second of audio
                    state.update(status=f"catching up: {late:.1f} s behind (decoding it in one go)")
                elif behind:
                    state.update(status="listening")
                behind = late > 1.0
                u = streamer.process()
                if u is not None:
                    emit(u)
                continue
            if ended:
                break
            time.sleep(poll)
    finally:
        if own:
            src.close()
    tail = rs(np.zeros(0, np.float32), last=True)
    if len(tail):
        chunks.append(tail)
        streamer.insert_audio(tail)
    emit(streamer.finish())
    audio = np.concatenate(chunks) if chunks else np.zeros(0, np.float32)
    if record_to:
        audio_io.save(record_to, audio, streamer.sample_rate)
    transcript = Transcript.from_words(streamer.words, len(audio) / streamer.sample_rate, streamer.language)
    return {"transcript": transcript, "words": streamer.words, "text": updates[-1].committed, "audio": audio,
            "updates": updates, "sample_rate": streamer.sample_rate, "latency": live_latency(streamer.words),
            "lost_seconds": lost_frames / src.samplerate}


def live_session(state, engine: str = "whisper", model: str | None = None, source=None, device: str | None = "auto",
                 threads: int | None = None, int8: bool = True, input_device=None, **streamer_options) -> dict[str, Any]:
    """The live transcription job: load the model, then transcribe the microphone (or ``source``,
    e.g. a :class:`ReplaySource`) until cancelled or it ends. See :func:`live_transcribe`."""
    if threads:
        set_threads(threads)
    dev = str(pick_device(device))
    state.update(status="loading model")
    streamer = make_streamer(engine, model, state=None, int8=int8 and dev == "cpu", device=dev, threads=threads,
                             **streamer_options)
    state.update(status="listening")
    return live_transcribe(state, streamer, source=source, device=input_device)
