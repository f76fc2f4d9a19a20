"""Speaker separation: one track per speaker from a recording of two people talking (SepFormer).

Pipeline for one file::

    decode block by block -> mono mix -> resample to the model's rate (8 or 16 kHz)      (streamed)
    chunks of SEGMENT s overlapping by OVERLAP s (engine.audio.chunking.overlap_add)
      each chunk: model -> (speakers, n); reordered to match the previous chunk (below)
    cross-faded chunks -> per speaker: resampled back to the input's rate -> <out>/<track>/speakerK.<ext>

A separation model gives its speakers in an arbitrary order, and that order may change from one chunk to
the next. :class:`SpeakerOrder` wraps the model: it remembers the previous chunk's outputs on the overlap
and, for each new chunk, picks the order of the new outputs that best matches them (largest summed inner
product on the overlap, i.e. the smallest squared difference), so each speaker stays on one track. The
model itself knows nothing of chunks. Memory is bounded by a few chunks whatever the length; each file
is written atomically (a failed or cancelled job leaves none).
"""

from __future__ import annotations

import contextlib
import itertools
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator

import numpy as np

from .. import models
from ..audio import io as audio_io
from ..audio.chunking import StreamSource, overlap_add
from ..compute import pick_device, set_threads
from ..errors import InvalidAudio, SonoscopeError, UnsupportedFormat
from ..fileio import atomic_path, unique_path
from ..jobs import JobState, null_state

DEFAULT_MODEL = "sepformer-wsj02mix"
SEGMENT_SECONDS = 10.0  # one model call; a file up to this long is separated whole
OVERLAP_SECONDS = 1.0  # cross-fade, and where consecutive chunks are matched
MIN_SECONDS = 0.5
EXPORT_FORMATS = ("wav", "flac", "mp3")


@dataclass
class SpeakerResult:
    track: str
    speakers: dict[str, Path]  # "speaker1" -> file
    sample_rate: int  # of the files: the input's
    duration: float  # seconds
    model_rate: int = 8000
    chunks: int = 1
    reorders: int = 0  # chunks whose outputs were swapped to keep each speaker on its track
    note: str = ""


# ---------------------------------------------------------------------------------------------
# keeping speakers in order across chunks


def best_order(previous: np.ndarray, current: np.ndarray) -> tuple[int, ...]:
    """The order of ``current``'s tracks ``(S, n)`` that best continues ``previous`` ``(S, n)``.

    Maximises the summed inner products ``sum_i <previous[i], current[order[i]]>`` (equivalently the
    smallest total squared difference); ties keep the given order.
    """
    g = previous.astype(np.float64) @ current.astype(np.float64).T  # (S, S)
    S = g.shape[0]
    orders = list(itertools.permutations(range(S)))
    scores = [sum(g[i, o[i]] for i in range(S)) for o in orders]
    best = int(np.argmax(scores))  # the first maximum: identity on ties (silence)
    return orders[best]


class SpeakerOrder:
    """A segment function for ``overlap_add`` that keeps speakers on their tracks from chunk to chunk.

    ``separate(chunk (n,)) -> (S, n)``. Chunks must come in order (``overlap_add`` calls it so);
    ``overlap`` is the number of samples each chunk shares with the previous one.
    """

    def __init__(self, separate: Callable[[np.ndarray], np.ndarray], overlap: int) -> None:
        self.separate = separate
        self.overlap = overlap
        self.tail: np.ndarray | None = None
        self.chunks = 0
        self.reorders = 0

    def __call__(self, chunk: np.ndarray) -> np.ndarray:
        y = np.asarray(self.separate(chunk), np.float32)  # (S, n)
        if self.tail is not None:
            order = best_order(self.tail, y[:, :self.overlap])
            if order != tuple(range(y.shape[0])):
                y = y[list(order)]
                self.reorders += 1
        self.tail = y[:, -self.overlap:].copy() if self.overlap else None
        self.chunks += 1
        return y


# ---------------------------------------------------------------------------------------------
# the model


def _is_separator(model: Any) -> bool:
    return callable(model) and hasattr(model, "sample_rate") and hasattr(model, "num_spks")


def model_runner(model: Any) -> Callable[[np.ndarray], np.ndarray]:
    """``chunk (n,) or (1, n)`` at the model's rate -> ``(speakers, n)`` float32 (digital silence skips the model)."""
    import torch

    params = next(iter(model.parameters()), None) if hasattr(model, "parameters") else None
    dev = params.device if params is not None else torch.device("cpu")

    def run(chunk: np.ndarray) -> np.ndarray:
        x = np.ascontiguousarray(np.asarray(chunk, np.float32).reshape(-1))
        if not x.any():
            return np.zeros((model.num_spks, x.shape[0]), np.float32)
        with torch.inference_mode():
            y = model(torch.from_numpy(x)[None].to(dev))[0]  # (S, n)
        return y.float().cpu().numpy()

    return run


def get_model(model: Any = None, state: JobState | None = None, device: str | None = "auto"):
    """A loaded separation model: ``model`` itself, or the catalog id / folder it names (default the catalog's)."""
    if _is_separator(model):
        return model
    if model is not None and not isinstance(model, (str, os.PathLike)):
        raise SonoscopeError(f"a {type(model).__name__} is not a speaker separation model (it needs sample_rate, "
                             f"num_spks and (batch, samples) -> (batch, speakers, samples))")
    m = models.load(model or DEFAULT_MODEL, state=state, device=str(pick_device(device)),
                    family="sepformer" if model is None else None)
    if not _is_separator(m):
        raise SonoscopeError(f"{model} is not a speaker separation model (expected a SpeechBrain SepFormer "
                             f"folder: hyperparams.yaml, encoder.ckpt, masknet.ckpt, decoder.ckpt)")
    return m


def separate_array(model: Any, audio: np.ndarray, sr: int, state: JobState | None = None,
                   segment_seconds: float = SEGMENT_SECONDS, overlap_seconds: float = OVERLAP_SECONDS
                   ) -> np.ndarray:
    """Separate an in-memory signal (any rate and channels) -> ``(speakers, n)`` at ``sr``."""
    audio = audio_io.check_audio(audio, sr)
    x = audio_io.resample(audio_io.to_mono(audio).astype(np.float32), sr, model.sample_rate)
    _check_length(x.shape[-1] / model.sample_rate, "audio")
    seg, ov = _segmenting(x.shape[-1], model.sample_rate, segment_seconds, overlap_seconds)
    y = overlap_add(SpeakerOrder(model_runner(model), ov), x[None], seg, ov, state=state)
    return np.stack([audio_io.resample(np.ascontiguousarray(t), model.sample_rate, sr) for t in y])


def _segmenting(n: int, rate: int, segment_seconds: float, overlap_seconds: float) -> tuple[int, int]:
    """A signal that fits in one segment is separated whole (exactly as the unchunked model)."""
    seg = int(round(segment_seconds * rate))
    ov = int(round(overlap_seconds * rate))
    if not 0 < ov < seg:
        raise ValueError(f"overlap ({overlap_seconds} s) must be shorter than the segment ({segment_seconds} s)")
    return (n, 0) if n <= seg else (seg, ov)


def _check_length(seconds: float, name: str) -> None:
    if seconds < MIN_SECONDS:
        raise InvalidAudio(f"{name}: {seconds:.2f} s is too short to separate speakers (at least "
                           f"{MIN_SECONDS} s needed)")


# ---------------------------------------------------------------------------------------------
# files


def _exact_frames(info: audio_io.AudioInfo) -> int:
    """Frames at the file's rate: from the header for PCM containers, else by decoding once."""
    if info.format.upper() in ("WAV", "WAVEX", "FLAC", "AIFF", "W64", "RF64", "CAF"):
        return info.frames
    return sum(b.shape[-1] for b in audio_io.stream(info.path))


def _mono_blocks(path: Path, rate: int) -> Iterator[np.ndarray]:
    for block in audio_io.stream(path, sr=rate, mono=True):
        yield block.reshape(1, -1).astype(np.float32, copy=False)


@dataclass
class _TrackWriter:
    """Streams one speaker's blocks into a file written atomically, resampled to ``sr_out``, ``frames`` long."""

    file: Any
    frames: int
    pcm: bool
    resampler: Any = None
    written: int = 0
    pending: list = field(default_factory=list)

    def write(self, block: np.ndarray, last: bool = False) -> None:
        if self.resampler is not None:
            block = self.resampler.resample_chunk(np.ascontiguousarray(block, np.float32), last=last)
        block = block[: max(0, self.frames - self.written)]
        if self.pcm:
            block = np.clip(block, -1.0, 1.0)
        if block.shape[0]:
            self.file.write(np.ascontiguousarray(block, np.float32))
            self.written += block.shape[0]

    def finish(self) -> None:
        if self.resampler is not None:
            self.write(np.zeros(0, np.float32), last=True)
        if self.written < self.frames:  # the resampler's last samples: pad to the input's exact length
            self.file.write(np.zeros(self.frames - self.written, np.float32))
            self.written = self.frames


def output_paths(out_dir: str | os.PathLike, track: str, speakers: int, fmt: str) -> dict[str, Path]:
    """``<out>/<track>/speakerK.<ext>``, each a name no existing file has (never overwrite silently)."""
    folder = Path(out_dir) / track
    ext = audio_io.SAVE_FORMATS[fmt][2]
    return {f"speaker{k}": unique_path(folder / f"speaker{k}{ext}") for k in range(1, speakers + 1)}


def separate_speakers(state: JobState | None, path: str | os.PathLike, out_dir: str | os.PathLike,
                      model: Any = None, fmt: str = "wav", device: str | None = "auto",
                      threads: int | None = None, segment_seconds: float = SEGMENT_SECONDS,
                      overlap_seconds: float = OVERLAP_SECONDS) -> SpeakerResult:
    """The speaker separation job: ``path`` -> ``out_dir/<track>/speaker1.<fmt>``, ``speaker2.<fmt>``...

    ``model``: a loaded model, a catalog id or a SpeechBrain SepFormer folder (default the catalog's
    ``sepformer-wsj02mix``), loaded on the compute ``device``. Any input rate and channel count; the
    tracks are mono at the input's rate and exactly as long. WAV is written as 32-bit float (never
    clips); FLAC/MP3 are clipped to [-1, 1]. Progress and cancellation through ``state``.
    """
    state = state or null_state()
    path = Path(path)
    fmt = fmt.lower()
    if fmt not in EXPORT_FORMATS:
        raise UnsupportedFormat(f"speaker tracks can be exported as {', '.join(EXPORT_FORMATS)}, not '{fmt}'")
    info = audio_io.info(path)  # a bad input fails before any model is loaded
    if not audio_io.rate_supported(fmt, info.samplerate):
        raise InvalidAudio(f"MP3 cannot store {info.samplerate} Hz (the input's rate); choose WAV or FLAC")
    state.update(progress=0.0, status=f"reading {path.name}")
    frames = _exact_frames(info)
    _check_length(frames / info.samplerate, path.name)
    if threads:
        set_threads(threads)
    state.update(progress=0.0, status="loading model")
    model = get_model(model, state.sub(0.0, 0.05), device)
    rate = int(model.sample_rate)
    n = int(round(frames * rate / info.samplerate)) if info.samplerate != rate else frames
    seg, ov = _segmenting(n, rate, segment_seconds, overlap_seconds)
    source = StreamSource(_mono_blocks(path, rate), n, channels=1)
    paths = output_paths(out_dir, path.stem, model.num_spks, fmt)
    folder = Path(out_dir) / path.stem
    made = [d for d in (folder, *folder.parents) if not d.exists()]  # deepest first
    order = SpeakerOrder(model_runner(model), ov)
    sub = state.sub(0.05, 0.99)
    sub.update(progress=0.0, status=f"separating the speakers of {path.name}")
    try:
        with contextlib.ExitStack() as stack:
            writers = _open_writers(stack, paths, info.samplerate, rate, frames, fmt)

            def sink(block: np.ndarray, start: int) -> None:  # (S, k) at the model's rate
                for w, track in zip(writers, block):
                    w.write(track)
                state.check()

            def fn(chunk: np.ndarray) -> np.ndarray:
                state.check()
                return order(chunk)

            overlap_add(fn, source, seg, ov, state=sub, sink=sink)
            for w in writers:
                w.finish()
            state.check()  # last chance to cancel before the files get their final names
    except BaseException:
        for d in made:  # the folders this job created, if nothing else was put in them
            with contextlib.suppress(OSError):
                d.rmdir()
        raise
    state.update(progress=1.0, status="done")
    return SpeakerResult(path.stem, paths, info.samplerate, frames / info.samplerate, rate, order.chunks,
                         order.reorders)


def _open_writers(stack: contextlib.ExitStack, paths: dict[str, Path], sr_out: int, rate: int, frames: int,
                  fmt: str) -> list[_TrackWriter]:
    import soundfile as sf

    sf_format, subtype, _ = audio_io.SAVE_FORMATS[fmt]
    if fmt == "wav":
        subtype = "FLOAT"
    writers = []
    for p in paths.values():
        tmp = stack.enter_context(atomic_path(p))
        f = stack.enter_context(sf.SoundFile(str(tmp), "w", sr_out, 1, subtype, format=sf_format))
        resampler = None
        if sr_out != rate:
            import soxr

            resampler = soxr.ResampleStream(rate, sr_out, 1, dtype="float32", quality="HQ")
        writers.append(_TrackWriter(f, frames, not subtype.startswith("FLOAT"), resampler))
    return writers
