"""Test media: write a known signal in any format the app claims to read."""

from __future__ import annotations

from pathlib import Path

import numpy as np

SF_FORMATS = {"wav": ("WAV", "PCM_16"), "flac": ("FLAC", "PCM_16"), "ogg": ("OGG", "VORBIS"),
              "opus": ("OGG", "OPUS"), "mp3": ("MP3", "MPEG_LAYER_III"), "aiff": ("AIFF", "PCM_16")}
AV_FORMATS = {"m4a": ("mp4", "aac"), "aac": ("adts", "aac"), "mp4": ("mp4", "aac"), "webm": ("webm", "libopus")}


def tone(sr: int, seconds: float, channels: int = 1, freq: float = 440.0) -> np.ndarray:
    """(channels, n) float32 sines, channel k at freq*(k+1), amplitude 0.5."""
    t = np.arange(int(sr * seconds)) / sr
    return np.stack([0.5 * np.sin(2 * np.pi * freq * (k + 1) * t) for k in range(channels)]).astype(np.float32)


def write(path: Path, audio: np.ndarray, sr: int) -> Path:
    """Write (channels, n) audio to `path`, choosing the encoder from the extension."""
    ext = path.suffix.lstrip(".").lower()
    if ext in SF_FORMATS:
        import soundfile as sf

        fmt, sub = SF_FORMATS[ext]
        sf.write(str(path), audio.T, sr, format=fmt, subtype=sub)
        return path
    import av

    container, codec = AV_FORMATS[ext]
    rate = 48000 if codec == "libopus" else sr
    if rate != sr:
        from engine.audio.io import resample

        audio = resample(audio, sr, rate)
    layout = "mono" if audio.shape[0] == 1 else "stereo"
    with av.open(str(path), "w", format=container) as out:
        s = out.add_stream(codec, rate=rate, layout=layout)
        frame_size = 960 if codec == "libopus" else 1024
        for i in range(0, audio.shape[1], frame_size):
            block = np.ascontiguousarray(audio[:, i:i + frame_size])
            if block.shape[1] < frame_size:
                block = np.pad(block, ((0, 0), (0, frame_size - block.shape[1])))
            frame = av.AudioFrame.from_ndarray(block, format="fltp", layout=layout)
            frame.sample_rate = rate
            for pkt in s.encode(frame):
                out.mux(pkt)
        for pkt in s.encode(None):
            out.mux(pkt)
    return path
