"""The speak job: text to audio, sentence by sentence, for playback or straight into a file.

:func:`synthesize` is a generator of float32 blocks (one per sentence, at the voice's rate) for
playback that starts after the first sentence; :func:`speak_file` is the job the Speak panel, the
``speak`` command and batch runs call: it streams the sentences into an encoder writing a temporary
file beside the target (renamed over it at the end), so memory stays bounded by one sentence
whatever the length of the text, progress follows the characters spoken, and a cancelled or failed
job leaves no file behind.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterable, Iterator

import numpy as np

from ..errors import Cancelled, InvalidAudio
from ..jobs import JobState, null_state
from . import text as T
from .voices import DEFAULT_VOICE, VoiceError, load_voice

log = logging.getLogger(__name__)

MIN_SPEED, MAX_SPEED = 0.25, 4.0
PAUSE = 0.15  # seconds of silence between sentences


@dataclass
class SpeakResult:
    path: Path
    voice: str
    sample_rate: int
    duration: float          # seconds of audio written
    sentences: int
    format: str
    dropped: str = ""        # characters of the text no voice could say (dropped, with a warning)
    warnings: list[str] = field(default_factory=list)


def check_speed(speed: float) -> float:
    speed = float(speed)
    if not MIN_SPEED <= speed <= MAX_SPEED:
        raise VoiceError(f"speed {speed:g} is out of range ({MIN_SPEED:g} to {MAX_SPEED:g}; 1 is the voice's own)")
    return speed


QUICK_WORDS = 6  # quick_start: the first block holds about this many words


def quick_parts(sentence: str, words: int = QUICK_WORDS) -> list[str]:
    """A long sentence cut in two so that its head can be heard sooner: at the first clause mark
    (, ; :) within ``2 * words`` words, else after ``words`` words when more than ``2 * words``
    follow; a short sentence stays whole."""
    w = sentence.split()
    if len(w) <= 2 * words:
        return [sentence]
    for k, tok in enumerate(w[:2 * words]):
        if tok[-1] in ",;:" and 2 <= k + 1 < len(w):
            return [" ".join(w[:k + 1]), " ".join(w[k + 1:])]
    return [" ".join(w[:words]), " ".join(w[words:])]


def synthesize(text: str | Iterable[str], voice=None, *, speed: float = 1.0, speaker: int | str | None = None,
               state: JobState | None = None, pause: float = PAUSE,
               on_sentence: Callable[[int, str], None] | None = None,
               on_drop: Callable[[str], None] | None = None, quick_start: bool = False) -> Iterator[np.ndarray]:
    """Audio of ``text`` as float32 ``(samples,)`` blocks at the voice's rate, one per sentence (the
    pause before a sentence is part of its block). ``voice``: a loaded voice (``load_voice``), a
    catalog id, a Piper folder / ``.onnx`` file, or None for the default offline voice.
    ``quick_start`` (playback): a long first sentence comes in two blocks (:func:`quick_parts`), so
    that the first sound waits for a few words only.

    Bad input fails before any audio: :class:`~engine.speech.text.TextError` for text with nothing
    to say, :class:`~engine.speech.voices.VoiceError` for a speed or speaker the voice lacks."""
    state = state or null_state()
    if isinstance(text, str):
        T.check_text(text)
    speed = check_speed(speed)
    v = voice if hasattr(voice, "say") else load_voice(voice, state)
    v.speaker_id(speaker)  # an unknown speaker fails now
    gap = np.zeros(int(round(pause * v.sample_rate)), np.float32)
    for i, sentence in enumerate(T.prepare(text, on_drop=on_drop)):
        state.check()
        if on_sentence is not None:
            on_sentence(i, sentence)
        for j, part in enumerate(quick_parts(sentence) if quick_start and i == 0 else [sentence]):
            if j:
                state.check()
            audio = v.say(part, speed=speed, speaker=speaker)
            yield np.concatenate([gap, audio]) if i and len(gap) else audio


class _StreamWriter:
    """Blocks of mono float32 into an open soundfile (resampled on the fly where the format needs it)."""

    def __init__(self, path: Path, fmt: str, sr: int) -> None:
        import soundfile as sf

        from ..audio import io as audio_io

        _, subtype, _ = audio_io.SAVE_FORMATS[fmt]
        self.out_sr = sr if audio_io.rate_supported(fmt, sr) else 48000
        self._resampler = None
        if self.out_sr != sr:
            import soxr

            self._resampler = soxr.ResampleStream(sr, self.out_sr, 1, dtype="float32")
        self.frames = 0
        self._clip = not subtype.startswith(("FLOAT", "DOUBLE"))
        self._f = sf.SoundFile(str(path), "w", samplerate=self.out_sr, channels=1, subtype=subtype,
                               format=audio_io.soundfile_format(fmt, subtype))

    def write(self, block: np.ndarray, last: bool = False) -> None:
        if self._resampler is not None:
            block = self._resampler.resample_chunk(block, last=last)
        if not np.all(np.isfinite(block)):
            raise InvalidAudio("the voice produced NaN or infinite samples")
        if self._clip:
            block = np.clip(block, -1.0, 1.0)
        if len(block):
            self._f.write(np.ascontiguousarray(block, np.float32))
            self.frames += len(block)

    def close(self) -> None:
        self._f.close()


def speak_file(state: JobState | None, text: str, out_path: str | os.PathLike, *, voice: str | None = None,
               speed: float = 1.0, speaker: int | None = None, fmt: str | None = None) -> "SpeakResult":
    """Speak ``text`` into ``out_path`` (WAV, FLAC, OGG, Opus, MP3 or AIFF: from ``fmt`` or the
    extension), atomically, sentence by sentence, at the voice's own rate (Opus: 48 kHz).

    Progress is the share of characters spoken; ``state.check()`` between sentences cancels, and a
    cancelled or failed job leaves no file (and never replaces an existing one)."""
    import soundfile as sf

    from ..audio import io as audio_io
    from ..fileio import atomic_path

    state = state or null_state()
    path = Path(out_path)
    fmt = audio_io.format_for(path, fmt)  # an unknown format fails before the voice loads
    T.check_text(text)
    speed = check_speed(speed)
    v = load_voice(voice, state.sub(0.0, 0.02))
    v.speaker_id(speaker)
    total = max(1, len(text))
    done = [0, 0]  # characters spoken (approximate: normalised text is longer), sentences
    dropped: dict[str, None] = {}
    warnings: list[str] = []

    def on_drop(chars: str) -> None:
        new = "".join(c for c in chars if c not in dropped)
        dropped.update(dict.fromkeys(chars))
        if new:
            msg = f"dropped characters the voice cannot say: {' '.join(new)}"
            log.warning(msg)
            warnings.append(msg)

    def on_sentence(i: int, sentence: str) -> None:
        done[1] = i + 1
        state.update(progress=0.02 + 0.98 * min(1.0, done[0] / total), status=f"sentence {i + 1}")
        done[0] += len(sentence)

    state.update(progress=0.02, status="speaking")
    try:
        with atomic_path(path) as tmp:
            writer = _StreamWriter(tmp, fmt, v.sample_rate)
            try:
                for block in synthesize(text, v, speed=speed, speaker=speaker, state=state,
                                        on_sentence=on_sentence, on_drop=on_drop):
                    writer.write(block)
                    state.check()
                writer.write(np.zeros(0, np.float32), last=True)
            finally:
                writer.close()
    except (Cancelled, T.TextError, VoiceError):
        raise
    except (OSError, sf.LibsndfileError) as e:
        raise audio_io.write_error(path, fmt, e) from None
    state.update(progress=1.0, status="done")
    return SpeakResult(path=path, voice=getattr(v, "id", str(voice or DEFAULT_VOICE)), sample_rate=writer.out_sr,
                       duration=writer.frames / writer.out_sr, sentences=done[1], format=fmt,
                       dropped="".join(dropped), warnings=warnings)
