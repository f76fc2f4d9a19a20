"""Signal processing shared by the models: STFT, mel filter banks, Whisper log-mel and Kaldi fbank.

Everything here is written to reproduce a public reference bit-for-bit (up to float rounding):

* ``mel_filters``         == ``librosa.filters.mel`` (Slaney scale + Slaney norm by default), the matrix
                             openai-whisper ships in ``whisper/assets/mel_filters.npz``;
* ``log_mel_spectrogram`` == ``whisper.audio.log_mel_spectrogram``;
* ``kaldi_fbank``         == ``torchaudio.compliance.kaldi.fbank`` (snip_edges=True);
* ``ast_features``        == ``transformers.ASTFeatureExtractor`` (its numpy path, used without torchaudio);
* ``efficientat_mel``     == EfficientAT's ``AugmentMelSTFT`` in eval mode (pre-emphasis, STFT, Kaldi banks).

Shapes are written as comments: ``T`` samples, ``F`` frequency bins, ``N`` frames, ``M`` mel bins.
"""

from __future__ import annotations

import functools
import math

import numpy as np
import torch
import torch.nn.functional as F

from . import SPEECH_RATE

# Whisper's hard-coded audio parameters
SAMPLE_RATE = SPEECH_RATE
N_FFT = 400
HOP_LENGTH = 160
CHUNK_LENGTH = 30
N_SAMPLES = CHUNK_LENGTH * SAMPLE_RATE  # 480000 samples in a 30-second window
N_FRAMES = N_SAMPLES // HOP_LENGTH  # 3000 mel frames in a window
N_SAMPLES_PER_TOKEN = HOP_LENGTH * 2  # the encoder's convolutions have stride 2
FRAMES_PER_SECOND = SAMPLE_RATE // HOP_LENGTH  # 100: 10 ms per frame
TOKENS_PER_SECOND = SAMPLE_RATE // N_SAMPLES_PER_TOKEN  # 50: 20 ms per audio token

# AudioSet statistics used by AST checkpoints
AST_MEAN = -4.2677393
AST_STD = 4.5689974


def _as_tensor(x: np.ndarray | torch.Tensor) -> torch.Tensor:
    return x if torch.is_tensor(x) else torch.from_numpy(np.ascontiguousarray(x))


# ---------------------------------------------------------------------------------------------
# STFT


@functools.lru_cache(maxsize=16)
def hann_window(n: int, device: torch.device | str = "cpu", dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """A periodic Hann window (cached: the STFTs of long files ask for the same one many times)."""
    return torch.hann_window(n, device=device, dtype=dtype)


def stft(x: torch.Tensor | np.ndarray, n_fft: int, hop: int, window: torch.Tensor | None = None,
         center: bool = True, pad_mode: str = "reflect") -> torch.Tensor:
    """Complex STFT. x: (..., T) -> (..., n_fft // 2 + 1, N); window defaults to a periodic Hann of n_fft."""
    x = _as_tensor(x)
    if window is None:
        window = hann_window(n_fft, x.device, x.dtype)
    lead = x.shape[:-1]
    spec = torch.stft(x.reshape(-1, x.shape[-1]), n_fft, hop, window=window.to(x.device), center=center,
                      pad_mode=pad_mode, return_complex=True)  # (B, F, N)
    return spec.reshape(*lead, *spec.shape[-2:])


def istft(spec: torch.Tensor, n_fft: int, hop: int, window: torch.Tensor | None = None,
          center: bool = True, length: int | None = None) -> torch.Tensor:
    """Inverse of :func:`stft`. spec: (..., F, N) complex -> (..., T) real (``length`` samples if given)."""
    if window is None:
        window = hann_window(n_fft, spec.device, spec.real.dtype)
    lead = spec.shape[:-2]
    x = torch.istft(spec.reshape(-1, *spec.shape[-2:]), n_fft, hop, window=window.to(spec.device),
                    center=center, length=length)  # (B, T)
    return x.reshape(*lead, x.shape[-1])


# ---------------------------------------------------------------------------------------------
# mel scale


def hz_to_mel(f: np.ndarray | float, htk: bool = False) -> np.ndarray:
    """Hz -> mel. HTK: 2595 log10(1 + f/700); Slaney: linear below 1 kHz, logarithmic above (librosa)."""
    f = np.asarray(f, dtype=np.float64)
    if htk:
        return 2595.0 * np.log10(1.0 + f / 700.0)
    f_sp = 200.0 / 3  # Hz per mel in the linear part
    min_log_hz, logstep = 1000.0, math.log(6.4) / 27.0
    min_log_mel = min_log_hz / f_sp
    mel = f / f_sp
    return np.where(f >= min_log_hz, min_log_mel + np.log(np.maximum(f, 1e-10) / min_log_hz) / logstep, mel)


def mel_to_hz(m: np.ndarray | float, htk: bool = False) -> np.ndarray:
    m = np.asarray(m, dtype=np.float64)
    if htk:
        return 700.0 * (10.0 ** (m / 2595.0) - 1.0)
    f_sp = 200.0 / 3
    min_log_hz, logstep = 1000.0, math.log(6.4) / 27.0
    min_log_mel = min_log_hz / f_sp
    return np.where(m >= min_log_mel, min_log_hz * np.exp(logstep * (m - min_log_mel)), f_sp * m)


def mel_filters(sr: int, n_fft: int, n_mels: int, fmin: float = 0.0, fmax: float | None = None,
                htk: bool = False, norm: str | None = "slaney") -> np.ndarray:
    """Triangular mel filter bank, (M, n_fft // 2 + 1) float32, equal to ``librosa.filters.mel``."""
    fmax = sr / 2.0 if fmax is None else float(fmax)
    fft_freqs = np.fft.rfftfreq(n_fft, 1.0 / sr)  # (F,)
    mel_f = mel_to_hz(np.linspace(hz_to_mel(fmin, htk), hz_to_mel(fmax, htk), n_mels + 2), htk)  # (M+2,)
    fdiff = np.diff(mel_f)  # (M+1,)
    ramps = mel_f[:, None] - fft_freqs[None, :]  # (M+2, F)
    lower = -ramps[:-2] / fdiff[:-1, None]  # rising edge, (M, F)
    upper = ramps[2:] / fdiff[1:, None]  # falling edge, (M, F)
    weights = np.maximum(0.0, np.minimum(lower, upper))
    if norm == "slaney":  # constant energy per channel
        weights *= (2.0 / (mel_f[2:n_mels + 2] - mel_f[:n_mels]))[:, None]
    elif norm is not None:
        raise ValueError(f"norm must be 'slaney' or None, not {norm!r}")
    return weights.astype(np.float32)


@functools.lru_cache(maxsize=None)
def _mel_tensor(n_mels: int, device: str) -> torch.Tensor:
    return torch.from_numpy(mel_filters(SAMPLE_RATE, N_FFT, n_mels)).to(device)  # (M, 201)


# ---------------------------------------------------------------------------------------------
# Whisper front end


def pad_or_trim(array: np.ndarray | torch.Tensor, length: int = N_SAMPLES, *, axis: int = -1):
    """Zero-pad or cut ``array`` along ``axis`` to ``length`` (Whisper's 30 s window)."""
    n = array.shape[axis]
    if torch.is_tensor(array):
        if n > length:
            array = array.narrow(axis, 0, length)
        elif n < length:
            pad = [0, 0] * array.ndim
            pad[2 * (array.ndim - 1 - (axis % array.ndim)) + 1] = length - n  # F.pad counts from the last dim
            array = F.pad(array, pad)
        return array
    if n > length:
        array = np.take(array, np.arange(length), axis=axis)
    elif n < length:
        widths = [(0, 0)] * array.ndim
        widths[axis] = (0, length - n)
        array = np.pad(array, widths)
    return array


def log_mel_spectrogram(audio: np.ndarray | torch.Tensor, n_mels: int = 80, padding: int = 0,
                        device: str | torch.device | None = None) -> torch.Tensor:
    """Whisper's log-mel. audio: (..., T) float at 16 kHz -> (..., M, T // 160) float32.

    Periodic Hann, n_fft 400, hop 160, centred (reflect), last frame dropped, power spectrum,
    mel, log10 clamped at 1e-10, floor at (max - 8), then (x + 4) / 4.
    """
    audio = _as_tensor(audio)
    if device is not None:
        audio = audio.to(device)
    if audio.dtype != torch.float32:  # float64 / float16 input: the filters and window are float32
        audio = audio.float()
    if padding > 0:
        audio = F.pad(audio, (0, padding))
    spec = stft(audio, N_FFT, HOP_LENGTH, torch.hann_window(N_FFT, device=audio.device))  # (..., 201, N+1)
    power = spec[..., :-1].abs() ** 2  # (..., 201, N)
    mel = _mel_tensor(n_mels, str(audio.device)) @ power  # (..., M, N)
    log_spec = torch.clamp(mel, min=1e-10).log10()
    log_spec = torch.maximum(log_spec, log_spec.max() - 8.0)
    return (log_spec + 4.0) / 4.0


# ---------------------------------------------------------------------------------------------
# Kaldi fbank (AST, BEATs, ...)


def kaldi_mel_banks(num_bins: int, padded_window: int, sample_rate: float, low_freq: float,
                    high_freq: float) -> np.ndarray:
    """Kaldi's mel banks: triangles in the mel domain (1127 ln(1 + f/700)), (M, padded_window // 2 + 1)."""
    nyquist = 0.5 * sample_rate
    if high_freq <= 0.0:
        high_freq += nyquist
    if not 0.0 <= low_freq < high_freq <= nyquist:
        raise ValueError(f"bad mel range: low_freq={low_freq}, high_freq={high_freq}, nyquist={nyquist}")
    mel = lambda f: 1127.0 * np.log(1.0 + np.asarray(f, np.float64) / 700.0)  # noqa: E731
    mel_low, mel_high = mel(low_freq), mel(high_freq)
    delta = (mel_high - mel_low) / (num_bins + 1)
    b = np.arange(num_bins, dtype=np.float64)[:, None]
    left, center, right = mel_low + b * delta, mel_low + (b + 1) * delta, mel_low + (b + 2) * delta  # (M, 1)
    n_fft_bins = padded_window // 2
    bin_mel = mel(sample_rate / padded_window * np.arange(n_fft_bins))[None, :]  # (1, F-1)
    up = (bin_mel - left) / (center - left)
    down = (right - bin_mel) / (right - center)
    banks = np.maximum(0.0, np.minimum(up, down))  # (M, F-1)
    return np.pad(banks, ((0, 0), (0, 1)))  # Nyquist bin gets weight 0, (M, F)


def _window(kind: str, n: int, dtype: torch.dtype) -> torch.Tensor:
    if kind == "povey":
        return torch.hann_window(n, periodic=False, dtype=dtype).pow(0.85)
    if kind in ("hanning", "hann"):
        return torch.hann_window(n, periodic=False, dtype=dtype)
    if kind == "hamming":
        return torch.hamming_window(n, periodic=False, alpha=0.54, beta=0.46, dtype=dtype)
    if kind == "rectangular":
        return torch.ones(n, dtype=dtype)
    if kind == "blackman":
        return torch.blackman_window(n, periodic=False, dtype=dtype)
    raise ValueError(f"unknown window {kind!r}")


def kaldi_fbank(waveform: np.ndarray | torch.Tensor, sample_rate: int = 16000, num_mel_bins: int = 128,
                frame_length: float = 25.0, frame_shift: float = 10.0, dither: float = 0.0,
                preemphasis: float = 0.97, window: str = "povey", remove_dc_offset: bool = True,
                round_to_power_of_two: bool = True, low_freq: float = 20.0, high_freq: float = 0.0,
                use_energy: bool = False, energy_floor: float = 0.0) -> torch.Tensor:
    """Kaldi-compatible log mel filter bank. waveform: (T,) or (1, T) -> (N, M) float32 (+1 column with energy).

    Frames are snipped at the edges (N = 1 + (T - win) // shift); computed in float64 internally.
    """
    x = _as_tensor(waveform).to(torch.float64).reshape(-1)  # (T,)
    win = int(sample_rate * frame_length * 0.001)
    shift = int(sample_rate * frame_shift * 0.001)
    padded = 1 << (win - 1).bit_length() if round_to_power_of_two else win
    eps = float(torch.finfo(torch.float32).eps)
    if x.numel() < win:
        return torch.zeros(0, num_mel_bins + int(use_energy))
    frames = x.unfold(0, win, shift).clone()  # (N, win)
    if dither != 0.0:
        frames += dither * torch.randn_like(frames)
    if remove_dc_offset:
        frames -= frames.mean(dim=1, keepdim=True)
    if use_energy:
        log_energy = frames.pow(2).sum(1).clamp(min=eps).log()  # (N,)
        if energy_floor > 0.0:
            log_energy = torch.maximum(log_energy, torch.tensor(math.log(energy_floor), dtype=x.dtype))
    if preemphasis != 0.0:
        prev = torch.cat([frames[:, :1], frames[:, :-1]], dim=1)  # x[-1] := x[0], as Kaldi
        frames = frames - preemphasis * prev
    frames = frames * _window(window, win, x.dtype)
    power = torch.fft.rfft(frames, n=padded).abs().pow(2)  # (N, padded // 2 + 1)
    banks = torch.from_numpy(kaldi_mel_banks(num_mel_bins, padded, sample_rate, low_freq, high_freq))  # (M, F)
    fbank = (power @ banks.T).clamp(min=eps).log()  # (N, M)
    if use_energy:
        fbank = torch.cat([log_energy[:, None], fbank], dim=1)
    return fbank.to(torch.float32)


def ast_features(audio_16k: np.ndarray | torch.Tensor, max_length: int = 1024, mean: float = AST_MEAN,
                 std: float = AST_STD, num_mel_bins: int = 128) -> np.ndarray:
    """AST input: (T,) mono at 16 kHz -> (max_length, num_mel_bins) float32, like ``ASTFeatureExtractor``.

    Kaldi fbank with a symmetric Hann window (25 ms / 10 ms, 512-point FFT, 20 Hz–8 kHz), zero-padded or
    cut to ``max_length`` frames (10.24 s by default), then ``(x - mean) / (2 * std)``.
    """
    fbank = kaldi_fbank(audio_16k, sample_rate=SAMPLE_RATE, num_mel_bins=num_mel_bins, window="hanning")
    out = np.zeros((max_length, num_mel_bins), np.float32)
    n = min(max_length, fbank.shape[0])
    out[:n] = fbank[:n].numpy()
    return (out - np.float32(mean)) / np.float32(std * 2)


def efficientat_mel(audio_32k: np.ndarray | torch.Tensor, n_mels: int = 128, sr: int = 32000, n_fft: int = 1024,
                    win_length: int = 800, hop: int = 320, fmin: float = 0.0, fmax: float = 16000.0) -> torch.Tensor:
    """EfficientAT's log-mel input: (T,) or (B, T) mono at 32 kHz -> (B, n_mels, N) float32, N = 1 + (T - 1) // hop.

    Pre-emphasis ``x[n+1] - 0.97 x[n]``, centred STFT (symmetric Hann of ``win_length`` inside ``n_fft``),
    power, Kaldi mel banks (``fmin``..``fmax``),
    ``log(x + 1e-5)`` and the fixed normalisation ``(x + 4.5) / 5``.
    """
    x = _as_tensor(audio_32k).to(torch.float32)
    x = x.reshape(1, -1) if x.ndim == 1 else x  # (B, T)
    x = x[:, 1:] - 0.97 * x[:, :-1]  # (B, T - 1)
    spec = stft(x, n_fft, hop, window=_padded_window(n_fft, win_length), pad_mode="reflect")  # (B, F, N)
    power = spec.real.square() + spec.imag.square()
    banks = torch.from_numpy(kaldi_mel_banks(n_mels, n_fft, sr, fmin, fmax)).to(torch.float32)  # (M, F)
    return ((banks @ power + 1e-5).log() + 4.5) / 5.0


@functools.lru_cache(maxsize=4)
def _padded_window(n_fft: int, win_length: int) -> torch.Tensor:
    """A symmetric Hann window of ``win_length`` centred in ``n_fft`` zeros (what torch.stft does with win_length)."""
    w = torch.hann_window(win_length, periodic=False)
    left = (n_fft - win_length) // 2
    return F.pad(w, (left, n_fft - win_length - left))
