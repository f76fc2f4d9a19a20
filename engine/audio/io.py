"""Audio file I/O, resampling and channel conversion.

Arrays are float32 numpy arrays shaped ``(channels, samples)``; ``to_mono`` gives
``(samples,)``. Decoding goes block by block into one preallocated buffer, so a
long file is decoded once and held once. soundfile (libsndfile) reads WAV, FLAC,
OGG/Vorbis/Opus, MP3 and AIFF; PyAV (FFmpeg) reads the rest (M4A/AAC, MP4, WebM...).
"""

from __future__ import annotations

import errno
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import numpy as np

from ..errors import (AudioError, AudioFileNotFound, EmptyAudio, InvalidAudio, NotAnAudioFile,
                     UnsupportedFormat)
from ..fileio import atomic_path

MIN_RATE = 2_000
MAX_RATE = 384_000
MAX_CHANNELS = 8
BLOCK_FRAMES = 1 << 16

# Extensions offered in file dialogs and accepted on drop.
AUDIO_EXTENSIONS = (".wav", ".flac", ".ogg", ".oga", ".opus", ".mp3", ".aif", ".aiff", ".aifc",
                    ".m4a", ".aac", ".mp4", ".webm", ".mka", ".wma", ".caf", ".w64")

# format name -> (soundfile format, default subtype, extension)
SAVE_FORMATS = {
    "wav": ("WAV", "PCM_16", ".wav"),
    "flac": ("FLAC", "PCM_16", ".flac"),
    "ogg": ("OGG", "VORBIS", ".ogg"),
    "opus": ("OGG", "OPUS", ".opus"),
    "mp3": ("MP3", "MPEG_LAYER_III", ".mp3"),
    "aiff": ("AIFF", "PCM_16", ".aiff"),
}


def soundfile_format(fmt: str, subtype: str | None = None) -> str:
    """libsndfile's container name for ``fmt`` written as ``subtype``. Float WAV is written as
    WAVE_FORMAT_EXTENSIBLE ("WAVEX"): a plain WAV header with a float fmt chunk and no extension
    is what sox and some players reject."""
    sf_format, default_subtype, _ = SAVE_FORMATS[fmt]
    if sf_format == "WAV" and (subtype or default_subtype).startswith(("FLOAT", "DOUBLE")):
        return "WAVEX"
    return sf_format


@dataclass(frozen=True)
class AudioInfo:
    path: Path
    samplerate: int
    channels: int
    frames: int  # exact for soundfile formats, estimated from the container for PyAV ones
    format: str  # e.g. "WAV", "FLAC", "MP3", "aac"
    subtype: str = ""
    backend: str = "soundfile"  # which decoder reads it: "soundfile" or "av"

    @property
    def duration(self) -> float:
        return self.frames / self.samplerate if self.samplerate else 0.0


# ---------------------------------------------------------------------------------------------
# probing


def _check_path(path: Path) -> None:
    if not path.exists():
        raise AudioFileNotFound(f"{path.name}: file not found ({path})")
    if path.is_dir():
        raise NotAnAudioFile(f"{path.name}: is a folder, not an audio file")
    if not os.access(path, os.R_OK):
        raise AudioError(f"{path.name}: no permission to read this file")
    try:  # os.access can say yes where opening fails (ACLs, network shares)
        with open(path, "rb"):
            pass
    except PermissionError:
        raise AudioError(f"{path.name}: no permission to read this file") from None
    if path.stat().st_size == 0:
        raise NotAnAudioFile(f"{path.name}: the file is empty (0 bytes)")


def _validate(info: AudioInfo) -> AudioInfo:
    name = info.path.name
    if not MIN_RATE <= info.samplerate <= MAX_RATE:
        raise InvalidAudio(f"{name}: sample rate {info.samplerate} Hz is outside the supported range "
                           f"{MIN_RATE}–{MAX_RATE} Hz")
    if not 1 <= info.channels <= MAX_CHANNELS:
        raise InvalidAudio(f"{name}: {info.channels} channels; Sonoscope handles 1 to {MAX_CHANNELS}")
    if info.frames <= 0:
        raise EmptyAudio(f"{name}: the file holds no audio (0 samples)")
    return info


def _sf_info(path: Path) -> AudioInfo | None:
    import soundfile as sf

    try:
        i = sf.info(str(path))
    except (sf.LibsndfileError, RuntimeError, TypeError):
        return None
    # libsndfile reports MP3 frames as estimates for some VBR files; good enough for the list.
    return AudioInfo(path, int(i.samplerate), int(i.channels), int(i.frames), i.format, i.subtype)


def _av_info(path: Path) -> AudioInfo | None:
    import av

    try:
        with av.open(str(path)) as c:
            if not c.streams.audio:
                return None
            s = c.streams.audio[0]
            rate = int(s.rate or s.codec_context.sample_rate or 0)
            channels = int(s.codec_context.channels if hasattr(s.codec_context, "channels")
                           else s.layout.nb_channels)
            if s.duration is not None and s.time_base is not None:
                seconds = float(s.duration * s.time_base)
            elif c.duration is not None:
                seconds = c.duration / 1_000_000
            else:
                seconds = 0.0
            if rate <= 0 or channels <= 0:  # a demuxer guessed from the extension but found no audio
                return None
            frames = int(round(seconds * rate))
            if frames <= 0:  # no duration in the header: count by decoding (rare, e.g. raw ADTS)
                frames = sum(f.samples for f in c.decode(s))
            return AudioInfo(path, rate, channels, frames, s.codec_context.name or c.format.name, backend="av")
    except (av.error.FFmpegError, ValueError, IndexError, UnicodeDecodeError):
        return None


def info(path: str | os.PathLike) -> AudioInfo:
    """Describe an audio file, raising a typed AudioError with a readable message if it is not usable."""
    path = Path(path)
    _check_path(path)
    try:
        i = _sf_info(path) or _av_info(path)
    except PermissionError:
        raise AudioError(f"{path.name}: no permission to read this file") from None
    if i is None:
        raise NotAnAudioFile(f"{path.name}: not a readable audio file (unknown format, or the header is "
                             f"damaged or truncated)")
    return _validate(i)


# ---------------------------------------------------------------------------------------------
# decoding


def _sf_blocks(path: Path, block: int, start: int, stop: int | None) -> Iterator[np.ndarray]:
    import soundfile as sf

    with sf.SoundFile(str(path)) as f:
        if start:
            f.seek(start)
        left = None if stop is None else stop - start
        while left is None or left > 0:
            n = block if left is None else min(block, left)
            data = f.read(n, dtype="float32", always_2d=True)
            if len(data) == 0:
                break
            if left is not None:
                left -= len(data)
            yield data.T


def _av_blocks(path: Path, block: int, start: int, stop: int | None) -> Iterator[np.ndarray]:
    import av

    with av.open(str(path)) as c:
        s = c.streams.audio[0]
        pos = 0
        pending: list[np.ndarray] = []
        npending = 0
        try:
            for frame in c.decode(s):
                a = frame.to_ndarray()
                if not frame.format.is_planar:  # interleaved (1, samples*channels)
                    a = a.reshape(-1, frame.layout.nb_channels if hasattr(frame.layout, "nb_channels")
                                  else len(frame.layout.channels)).T
                a = _to_float32(a)
                lo, hi = pos, pos + a.shape[1]
                pos = hi
                if hi <= start:
                    continue
                if stop is not None and lo >= stop:
                    break
                a = a[:, max(0, start - lo): a.shape[1] - max(0, hi - stop) if stop is not None else None]
                pending.append(a)
                npending += a.shape[1]
                if npending >= block:
                    yield np.concatenate(pending, axis=1)
                    pending, npending = [], 0
        except av.error.FFmpegError as e:
            if pos == 0:
                raise NotAnAudioFile(f"{path.name}: could not decode audio ({e})") from None
            # a damaged tail: keep what decoded, as players do
        if pending:
            yield np.concatenate(pending, axis=1)


def _to_float32(a: np.ndarray) -> np.ndarray:
    if a.dtype == np.float32:
        return a
    if a.dtype == np.float64:
        return a.astype(np.float32)
    if a.dtype == np.int16:
        return a.astype(np.float32) / 32768.0
    if a.dtype == np.int32:
        return a.astype(np.float32) / 2147483648.0
    if a.dtype == np.uint8:
        return (a.astype(np.float32) - 128.0) / 128.0
    return a.astype(np.float32)


def stream(path: str | os.PathLike, block_frames: int = BLOCK_FRAMES, sr: int | None = None,
           mono: bool = False, start: float = 0.0, stop: float | None = None,
           check_finite: bool = True) -> Iterator[np.ndarray]:
    """Yield float32 blocks ``(channels, n)`` (or ``(n,)`` with mono) of a file, resampled to ``sr`` on the fly.

    ``start``/``stop`` are in seconds. Blocks are decoded one at a time: memory is bounded by the block size.
    """
    return _stream(info(path), block_frames, sr, mono, start, stop, check_finite)


def _stream(i: AudioInfo, block_frames: int, sr: int | None, mono: bool, start: float, stop: float | None,
            check_finite: bool) -> Iterator[np.ndarray]:
    """``stream`` for a file already probed by :func:`info` (so it is probed once)."""
    path = i.path
    s0 = int(round(start * i.samplerate))
    s1 = None if stop is None else int(round(stop * i.samplerate))
    reader = _sf_blocks if i.backend == "soundfile" else _av_blocks
    resampler = None
    if sr is not None and sr != i.samplerate:
        import soxr

        resampler = soxr.ResampleStream(i.samplerate, sr, 1 if mono else i.channels, dtype="float32",
                                        quality="HQ")
    done = 0
    for block in reader(path, block_frames, s0, s1):
        if check_finite and not np.isfinite(block).all():
            finite = np.isfinite(block)
            bad = int((~finite).sum())
            first = int(np.argmin(finite.all(axis=0)))
            raise InvalidAudio(f"{path.name}: {bad} samples are NaN or infinite (first at "
                               f"{(s0 + done + first) / i.samplerate:.3f} s); the file is corrupt")
        done += block.shape[1]
        if mono:
            block = to_mono(block)
        if resampler is not None:
            block = resampler.resample_chunk(np.ascontiguousarray(block.T), last=False).T
        if block.shape[-1]:
            yield block
    if resampler is not None:
        tail = resampler.resample_chunk(np.zeros((0,) if mono else (0, i.channels), np.float32), last=True).T
        if tail.shape[-1]:
            yield tail
    if done == 0:
        raise EmptyAudio(f"{path.name}: the file holds no audio (0 samples)")


def load(path: str | os.PathLike, sr: int | None = None, mono: bool = False, start: float = 0.0,
         stop: float | None = None) -> tuple[np.ndarray, int]:
    """Decode a file to float32 ``(channels, samples)`` (``(samples,)`` if mono), resampled to ``sr`` if given.

    Returns ``(audio, samplerate)``. Raises a typed :class:`~engine.errors.AudioError` on bad input.
    """
    i = info(path)
    out_sr = sr or i.samplerate
    span = i.frames - int(round(start * i.samplerate))
    if stop is not None:
        span = min(span, int(round((stop - start) * i.samplerate)))
    expected = max(0, int(np.ceil(span * out_sr / i.samplerate))) + 16
    channels = 1 if mono else i.channels
    buf = np.empty((channels, expected), np.float32)
    n = 0
    for block in _stream(i, BLOCK_FRAMES, sr, mono, start, stop, True):
        block = block.reshape(channels, -1)
        m = block.shape[1]
        if n + m > buf.shape[1]:  # container under-reported its length: grow geometrically
            grown = np.empty((channels, max(n + m, int(buf.shape[1] * 1.5))), np.float32)
            grown[:, :n] = buf[:, :n]
            buf = grown
        buf[:, n:n + m] = block
        n += m
    audio = buf[:, :n]
    if n < buf.shape[1] // 2:
        audio = audio.copy()
    return (audio[0] if mono else audio), out_sr


# ---------------------------------------------------------------------------------------------
# conversion


def to_mono(audio: np.ndarray) -> np.ndarray:
    """Average channels: ``(channels, n)`` -> ``(n,)``. A 1-D array is returned as is."""
    if audio.ndim == 1:
        return audio
    if audio.shape[0] == 1:
        return audio[0]
    out = audio[0].astype(np.float32, copy=True)
    for ch in audio[1:]:
        out += ch
    out *= np.float32(1.0 / audio.shape[0])
    return out


def to_channels(audio: np.ndarray, channels: int) -> np.ndarray:
    """Convert to ``channels`` channels: mono is duplicated, more channels are downmixed to mono first."""
    audio = audio if audio.ndim == 2 else audio[None]
    if audio.shape[0] == channels:
        return audio
    mono = to_mono(audio)
    return np.repeat(mono[None], channels, axis=0)


def resample(audio: np.ndarray, sr_in: int, sr_out: int) -> np.ndarray:
    """High-quality resampling with soxr; works on ``(n,)`` or ``(channels, n)``."""
    if sr_in == sr_out:
        return audio
    import soxr

    if audio.ndim == 1:
        return soxr.resample(audio, sr_in, sr_out, quality="HQ").astype(np.float32, copy=False)
    return np.ascontiguousarray(soxr.resample(audio.T, sr_in, sr_out, quality="HQ").T, dtype=np.float32)


def check_audio(audio: np.ndarray, sr: int, what: str = "audio") -> np.ndarray:
    """Validate an in-memory signal before a model or an export sees it."""
    audio = np.asarray(audio)
    if audio.ndim not in (1, 2):
        raise InvalidAudio(f"{what}: expected (samples,) or (channels, samples), got shape {audio.shape}")
    if audio.shape[-1] == 0:
        raise EmptyAudio(f"{what}: no samples")
    if not MIN_RATE <= int(sr) <= MAX_RATE:
        raise InvalidAudio(f"{what}: sample rate {sr} Hz is outside {MIN_RATE}–{MAX_RATE} Hz")
    if audio.ndim == 2 and not 1 <= audio.shape[0] <= MAX_CHANNELS:
        raise InvalidAudio(f"{what}: {audio.shape[0]} channels; Sonoscope handles 1 to {MAX_CHANNELS} "
                           f"(arrays are (channels, samples))")
    if not np.isfinite(audio).all():
        raise InvalidAudio(f"{what}: contains NaN or infinite samples")
    return audio


# ---------------------------------------------------------------------------------------------
# encoding


# the only sample rates these encoders take (MPEG-1/2/2.5 layer III; Opus)
FORMAT_RATES = {"mp3": (8000, 11025, 12000, 16000, 22050, 24000, 32000, 44100, 48000),
                "opus": (8000, 12000, 16000, 24000, 48000)}


def rate_supported(fmt: str, sr: int) -> bool:
    """Whether format ``fmt`` can store audio at ``sr`` Hz (formats without a rate table take any)."""
    return fmt not in FORMAT_RATES or int(sr) in FORMAT_RATES[fmt]


def format_for(path: str | os.PathLike, format: str | None = None) -> str:
    """The save format name for a path (from its extension unless given)."""
    fmt = (format or Path(path).suffix.lstrip(".")).lower()
    fmt = {"aif": "aiff", "oga": "ogg"}.get(fmt, fmt)
    if fmt not in SAVE_FORMATS:
        raise UnsupportedFormat(f"cannot write '{fmt or Path(path).name}': choose one of "
                                f"{', '.join(SAVE_FORMATS)}")
    return fmt


def save(path: str | os.PathLike, audio: np.ndarray, sr: int, format: str | None = None,
         subtype: str | None = None) -> Path:
    """Write ``audio`` (``(samples,)`` or ``(channels, samples)``) atomically; returns the path.

    Integer formats are clipped to [-1, 1] rather than wrapped around.
    """
    import soundfile as sf

    path = Path(path)
    fmt = format_for(path, format)
    _, default_subtype, _ = SAVE_FORMATS[fmt]
    audio = check_audio(audio, sr, path.name)
    data = audio.T if audio.ndim == 2 else audio
    subtype = subtype or default_subtype
    sf_format = soundfile_format(fmt, subtype)
    if not subtype.startswith(("FLOAT", "DOUBLE")):
        data = np.clip(data, -1.0, 1.0)
    if not rate_supported(fmt, sr):
        raise InvalidAudio(f"{fmt.upper()} cannot store {sr} Hz; resample to 48000 Hz first")
    try:
        with atomic_path(path) as tmp:
            sf.write(str(tmp), np.ascontiguousarray(data, dtype=np.float32), int(sr), subtype=subtype,
                     format=sf_format)
    except (OSError, sf.LibsndfileError) as e:
        raise write_error(path, fmt, e) from None
    return path


def write_error(path: Path, fmt: str, e: BaseException) -> AudioError:
    """The clear error for a failed audio write (a full disk, no permission, an encoder that refused)."""
    if isinstance(e, OSError):
        if e.errno == errno.ENOSPC:
            return AudioError(f"{path.name}: the disk is full")
        if e.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
            return AudioError(f"{path.name}: no permission to write in {path.parent}")
        return AudioError(f"{path.name}: could not write ({e.strerror or e})")
    return AudioError(f"{path.name}: could not encode {fmt.upper()} ({e})")
