"""Long-form transcription: sequential 30 s windows with timestamp-based seeking (as openai-whisper).

Each window is decoded with temperature fallback; the predicted timestamp pairs split it into
segments, and the next window starts at the last complete timestamp (or after the window when
it ended on a single timestamp). Audio is streamed from the file and only the current window
(plus a little context) is kept, so memory stays bounded on hour-long files; segments are
handed to ``state.add_partial`` as soon as a window is done, and ``state.check()`` is called
between decoding steps so a job can be cancelled at any point.

Features follow faster-whisper: the window's log-mel is computed from the audio around it (with
enough context that its frames equal a whole-file STFT) and zero-padded in feature space to 3000
frames. The log-mel floor (max - 8) is taken per window rather than over the whole file.
"""

from __future__ import annotations

import dataclasses

import functools
import itertools
import logging
import os
import threading
from dataclasses import dataclass
from typing import Iterator, Sequence

import numpy as np
import torch

from ...audio import io as audio_io
from ...audio.dsp import HOP_LENGTH, N_FRAMES, SAMPLE_RATE, log_mel_spectrogram
from ...audio.vad import SileroVAD
from ...jobs import JobState, null_state
from ...models.whisper import Whisper
from ...results import Segment, Transcript
from .alignment import add_word_timestamps
from .decoding import DecodingOptions, DecodingResult, decode, detect_language
from .tokenizer import TIME_PRECISION, Tokenizer, normalize_language

log = logging.getLogger(__name__)

INPUT_STRIDE = 2  # mel frames per audio token
FEATURE_CONTEXT = 3 * HOP_LENGTH  # samples read either side of a window (> n_fft / 2)


class AudioReader:
    """16 kHz mono samples from a file (streamed) or an array, read in increasing windows.

    ``read(start, stop)`` returns samples [start, stop) of the signal followed by ``HOP_LENGTH``
    zeros (the padding faster-whisper adds), cut at that padded end; data before the last
    ``start`` is dropped.
    """

    def __init__(self, source: str | os.PathLike | np.ndarray) -> None:
        if isinstance(source, np.ndarray):
            a = np.asarray(source, np.float32)
            if a.ndim != 1:
                raise ValueError("audio arrays must be mono (samples,) at 16 kHz")
            self.buf, self.base, self.eof, self._it = a, 0, True, None
            self.estimate = len(a)
        else:
            info = audio_io.info(source)
            self.estimate = int(info.frames * SAMPLE_RATE / max(1, info.samplerate))
            self._it: Iterator[np.ndarray] | None = audio_io.stream(source, sr=SAMPLE_RATE, mono=True)
            self.buf, self.base, self.eof = np.zeros(0, np.float32), 0, False

    @property
    def length(self) -> int | None:
        """Number of samples, once the end of the stream has been seen."""
        return self.base + len(self.buf) if self.eof else None

    def _fill(self, stop: int) -> None:
        parts = [self.buf]
        have = self.base + len(self.buf)
        while not self.eof and have < stop:
            try:
                block = next(self._it)
            except StopIteration:
                self.eof = True
                break
            parts.append(np.asarray(block, np.float32).reshape(-1))
            have += parts[-1].shape[0]
        if len(parts) > 1:
            self.buf = np.concatenate(parts)

    def read(self, start: int, stop: int) -> np.ndarray:
        self._fill(stop)
        if start > self.base:  # forget what lies before the window
            drop = min(start - self.base, len(self.buf))
            self.buf, self.base = self.buf[drop:], self.base + drop
        out = self.buf[max(0, start - self.base):max(0, stop - self.base)]
        if self.eof:
            end = self.base + len(self.buf) + HOP_LENGTH
            stop = min(stop, end)
            if start + len(out) < stop:
                out = np.concatenate([out, np.zeros(stop - start - len(out), np.float32)])
        return out


def window_features(reader: AudioReader, seek: int, n_frames: int, n_mels: int) -> tuple[torch.Tensor, np.ndarray]:
    """Log-mel frames [seek, seek + n_frames) zero-padded to (n_mels, 3000), and the window's samples."""
    a = seek * HOP_LENGTH
    start = max(0, a - FEATURE_CONTEXT)
    x = reader.read(start, (seek + n_frames) * HOP_LENGTH + FEATURE_CONTEXT)
    mel = log_mel_spectrogram(torch.from_numpy(np.ascontiguousarray(x)), n_mels)  # frames at start/HOP + j
    first = (a - start) // HOP_LENGTH
    mel = mel[:, first:first + n_frames]
    out = torch.zeros(n_mels, N_FRAMES)
    out[:, :mel.shape[1]] = mel
    return out, x[a - start:a - start + n_frames * HOP_LENGTH]


TAIL_SPEECH = 0.25  # Silero speech probability that some 32 ms frame of a final window must reach
_vad_lock = threading.Lock()


@functools.lru_cache(maxsize=1)
def _window_vad():
    """The Silero VAD for the silent-tail and missed-speech checks, or None where it cannot be loaded
    (both checks skipped)."""
    try:
        return SileroVAD()
    except Exception as e:  # no onnxruntime or no model: decode as openai-whisper does
        log.info("silent-tail and missed-speech checks off: %s", e)
        return None


def _speech_probabilities(audio: np.ndarray) -> np.ndarray | None:
    """Silero speech probability per 32 ms frame of ``audio`` (16 kHz), or None without a VAD."""
    vad = _window_vad()
    if vad is None:
        return None
    with _vad_lock:
        return vad.probabilities(audio)


def silent(audio: np.ndarray) -> bool:
    """True when Silero VAD hears no speech in any 32 ms frame of ``audio`` (16 kHz)."""
    p = _speech_probabilities(audio)
    if p is None:
        return False
    return p.size == 0 or float(p.max()) < TAIL_SPEECH


GAP_SPEECH = 0.5  # seconds of speech in one stretch that no word covers: missed
GAP_GUARD = 1.0  # speech that starts this close to a window's start is left (the window was decoded from there)
GAP_BRIDGE = 0.3  # pauses shorter than this do not split a stretch of speech
WORD_REACH = 1.2  # a word covers at most this long before its end (alignment stretches first words over pauses)
MAX_MISSES = 3  # windows in a row cut at missed speech; then a window is taken as decoded (a model that hears nothing)
WORD_PAD = 0.2  # seconds either side of a word that count as covered (alignment jitter)


def first_missed_speech(samples: np.ndarray, time_offset: float, words: list, upto: float) -> float | None:
    """File time (s) where the first stretch of speech starts that Silero VAD hears in the window's
    ``samples`` (starting at ``time_offset``) before ``upto`` but that ``words`` leave mostly
    uncovered (at least half of it, and GAP_SPEECH seconds); None when there is none (or no VAD)."""
    p = _speech_probabilities(samples) if len(samples) else None
    if p is None:
        return None
    hop = SileroVAD.frame / SAMPLE_RATE
    t = time_offset + (np.arange(len(p)) + 0.5) * hop
    speech = p >= 0.5
    covered = np.zeros(len(p), bool)
    for w in words:
        covered |= (t >= max(w.start, w.end - WORD_REACH) - WORD_PAD) & (t <= w.end + WORD_PAD)
    missed = speech & ~covered & (t < upto)
    # stretches of speech, pauses shorter than GAP_BRIDGE inside one phrase bridged
    edges = np.flatnonzero(np.diff(np.concatenate([[0], speech.astype(np.int8), [0]])))
    stretches: list[list[int]] = []
    for a, b in zip(edges[::2], edges[1::2]):
        if stretches and (a - stretches[-1][1]) * hop < GAP_BRIDGE:
            stretches[-1][1] = b
        else:
            stretches.append([a, b])
    for a, b in stretches:
        if t[a] - hop / 2 < time_offset + GAP_GUARD:  # decoded from here already: not again
            continue
        n = int(missed[a:b].sum())  # a phrase skipped, not the end of one the alignment cut short
        if n * hop >= GAP_SPEECH and n >= 0.5 * (b - a):
            return float(t[a + int(np.argmax(missed[a:b]))] - hop / 2)
    return None


@dataclass
class TranscribeOptions:
    language: str | None = None
    task: str = "transcribe"
    beam_size: int | None = None  # None/1: greedy
    best_of: int | None = 5
    patience: float | None = None
    length_penalty: float | None = None
    temperature: float | Sequence[float] = (0.0, 0.2, 0.4, 0.6, 0.8, 1.0)
    compression_ratio_threshold: float | None = 2.4
    logprob_threshold: float | None = -1.0
    no_speech_threshold: float | None = 0.6
    condition_on_previous_text: bool = True
    prompt_reset_on_temperature: float = 0.5
    initial_prompt: str | None = None
    word_timestamps: bool = False
    suppress_tokens: str | list[int] | None = "-1"
    suppress_blank: bool = True
    without_timestamps: bool = False
    max_initial_timestamp: float = 1.0
    # A final window (less than 30 s of audio left) in which Silero VAD hears no speech is not
    # decoded. The seeking often leaves a sliver of silence at the end of a file; on it Whisper
    # hallucinates and falls back through every temperature (16 s of CPU on a 0.2 s tail of
    # benchmarks/bench_whisper.py) before its no-speech rule drops the text.
    skip_silent_tail: bool = True
    # A window whose greedy decode loops (compression ratio over the threshold) while conditioned on
    # the previous text is decoded greedily once more without that text before any sampling: on
    # phrases said twice the prompt primes loops ("Ten of clubs." x 40 for 25 s of other speech) and
    # the sampled fallback that follows is a different transcript on every run.
    retry_without_prompt: bool = True
    # Seconds of padding the encoder sees after a window shorter than 30 s (None: the whole 30 s, as
    # trained). The encoder's cost is in its 1500 positions whatever the speech; a live window of 4 s
    # encoded as 4 + ``short_context`` seconds is several times cheaper (whisper.cpp's audio_ctx).
    short_context: float | None = None
    # Speech that Silero VAD hears in a decoded window but that no word covers (Whisper skipped it:
    # most often a phrase said twice written once) is decoded again: the next window starts there
    # (see :func:`first_missed_speech`; words are aligned for the check even when not asked for).
    fill_gaps: bool = True
    # Most tokens decoded in one window (None: half the text context, 224, as openai-whisper). Live caps it
    # by the window's length: on a short window a decoding loop otherwise runs to 224 tokens.
    sample_len: int | None = None
    # Audio shorter than 30 s decoded once (live): text after the last complete segment ends at the end
    # of the audio rather than being decoded again from its start (and no word moves the next seek).
    single_window: bool = False


def decode_with_fallback(model: Whisper, tokenizer: Tokenizer, features: torch.Tensor, opts: TranscribeOptions,
                         language: str, prompt: list[int], audio_features: torch.Tensor | None = None,
                         check=None) -> DecodingResult:
    temps = [opts.temperature] if isinstance(opts.temperature, (int, float)) else list(opts.temperature)
    result = None
    if audio_features is None:
        audio_features = model.encoder(features[None].to(model.device, model.dtype))
    for t in temps:
        d = DecodingOptions(task=opts.task, language=language, temperature=t,
                            beam_size=opts.beam_size if t == 0 else None, patience=opts.patience if t == 0 else None,
                            best_of=opts.best_of if t > 0 else None, length_penalty=opts.length_penalty,
                            prompt=prompt or None, suppress_tokens=opts.suppress_tokens,
                            suppress_blank=opts.suppress_blank, without_timestamps=opts.without_timestamps,
                            max_initial_timestamp=opts.max_initial_timestamp, sample_len=opts.sample_len)
        result = decode(model, tokenizer, None, d, audio_features=audio_features, check=check)[0]
        fallback = False
        if opts.compression_ratio_threshold is not None and result.compression_ratio > opts.compression_ratio_threshold:
            fallback = True
            if t == 0 and prompt and opts.retry_without_prompt and not opts.initial_prompt:
                bare = decode(model, tokenizer, None, dataclasses.replace(d, prompt=None),
                              audio_features=audio_features, check=check)[0]
                if bare.compression_ratio <= opts.compression_ratio_threshold and (
                        opts.logprob_threshold is None or bare.avg_logprob >= opts.logprob_threshold):
                    result, fallback = bare, False
        if opts.logprob_threshold is not None and result.avg_logprob < opts.logprob_threshold:
            fallback = True
        if (opts.no_speech_threshold is not None and result.no_speech_prob > opts.no_speech_threshold
                and opts.logprob_threshold is not None and result.avg_logprob < opts.logprob_threshold):
            fallback = False  # silence: keep the result, the caller skips the window
        if not fallback:
            break
    assert result is not None
    return result


def split_segments(tokenizer: Tokenizer, tokens: list[int], time_offset: float, seek: int, segment_size: int,
                   segment_duration: float, keep_tail: bool = False) -> tuple[list[dict], int, bool]:
    """Cut a window's tokens into segments at consecutive timestamp pairs; returns the next seek.

    ``keep_tail``: the tokens after the last complete segment are a last segment up to the window's
    end (the next seek is past the window) instead of being decoded again from there."""
    tb = tokenizer.timestamp_begin
    single_ending = len(tokens) >= 2 and tokens[-2] < tb <= tokens[-1]
    consecutive = [i for i in range(1, len(tokens)) if tokens[i] >= tb and tokens[i - 1] >= tb]
    segments = []
    if consecutive:
        slices = consecutive + ([len(tokens)] if single_ending else [])
        last = 0
        for cur in slices:
            part = tokens[last:cur]
            segments.append(dict(seek=seek, start=time_offset + (part[0] - tb) * TIME_PRECISION,
                                 end=time_offset + (part[-1] - tb) * TIME_PRECISION, tokens=part))
            last = cur
        if keep_tail and not single_ending and any(t < tb for t in tokens[last:]):
            segments.append(dict(seek=seek, start=time_offset + (tokens[last - 1] - tb) * TIME_PRECISION,
                                 end=time_offset + segment_duration, tokens=tokens[last:]))
        if single_ending or keep_tail:
            seek += segment_size
        else:
            seek += (tokens[last - 1] - tb) * INPUT_STRIDE
    else:
        duration = segment_duration
        stamps = [t for t in tokens if t >= tb]
        if stamps and stamps[-1] != tb:
            duration = (stamps[-1] - tb) * TIME_PRECISION
        segments.append(dict(seek=seek, start=time_offset, end=time_offset + duration, tokens=tokens))
        seek += segment_size
    return segments, seek, single_ending


def tidy_segments(segments: list[Segment], floor: float, ceiling: float) -> None:
    """Make a window's segments tell the truth, in place: every time inside [``floor``, ``ceiling``]
    (the end of the previous segment, the end of the audio the window holds), segments and words in
    order without overlaps, and a segment with words spanning exactly its words.

    Whisper predicts timestamps up to the end of its 30 s window even when the audio stops earlier,
    and word alignment can drift past the segment's timestamps: both would give cues that end after
    the file or overlap the next one."""
    for s in segments:
        if s.words:
            for w in s.words:
                w.start = round(min(max(w.start, floor), ceiling), 3)
                w.end = round(min(max(w.end, w.start), ceiling), 3)
                floor = w.end
            s.start, s.end = s.words[0].start, s.words[-1].end
        else:
            s.start = round(min(max(s.start, floor), ceiling), 3)
            s.end = round(min(max(s.end, s.start), ceiling), 3)
        floor = s.end


@torch.inference_mode()
def transcribe(state: JobState | None, model: Whisper, tokenizer: Tokenizer,
               audio: str | os.PathLike | np.ndarray, options: TranscribeOptions | None = None,
               **kwargs) -> Transcript:
    """Transcribe a file (streamed, any length) or a 16 kHz mono array; segments go to ``state.add_partial``."""
    state = state or null_state()
    opts = options or TranscribeOptions()
    for k, v in kwargs.items():
        if not hasattr(opts, k):
            raise TypeError(f"unknown option {k!r}")
        setattr(opts, k, v)
    reader = AudioReader(audio)
    n_mels = model.cfg.n_mels
    language = normalize_language(opts.language) if opts.language else None
    if not tokenizer.multilingual:
        if language not in (None, "en"):
            raise ValueError(f"This model is English-only; it cannot transcribe language {language!r}")
        language = "en"
        if opts.task == "translate":
            opts.task = "transcribe"  # English-only models cannot translate (and need not)
    language_probs = None

    seek = 0
    all_tokens: list[int] = []
    prompt_reset_since = 0
    misses = 0  # windows in a row that were cut at missed speech
    if opts.initial_prompt:
        all_tokens.extend(tokenizer.encode(" " + opts.initial_prompt.strip()))
    segments: list[Segment] = []
    state.update(progress=0.0, status="transcribing")
    while True:
        state.check()
        n = reader.length
        if n is None:
            reader._fill(seek * HOP_LENGTH + N_FRAMES * HOP_LENGTH + FEATURE_CONTEXT)
            n = reader.length
        content_frames = n // HOP_LENGTH if n is not None else None
        if content_frames is not None and seek >= content_frames:
            break
        segment_size = N_FRAMES if content_frames is None else min(N_FRAMES, content_frames - seek)
        time_offset = seek * HOP_LENGTH / SAMPLE_RATE
        segment_duration = segment_size * HOP_LENGTH / SAMPLE_RATE
        features, samples = window_features(reader, seek, segment_size, n_mels)
        if opts.skip_silent_tail and segment_size < N_FRAMES and silent(samples):
            seek += segment_size
            _progress(state, seek, reader)
            continue
        if opts.short_context is not None and segment_size < N_FRAMES:
            keep = segment_size + round(opts.short_context * SAMPLE_RATE / HOP_LENGTH)
            features = features[:, :min(N_FRAMES, keep + keep % INPUT_STRIDE)]
        audio_features = model.encoder(features[None].to(model.device, model.dtype))
        state.check()
        if language is None:
            langs, probs = detect_language(model, tokenizer, audio_features)
            language, language_probs = langs[0], probs[0]
            state.update(status=f"language: {language}")
        result = decode_with_fallback(model, tokenizer, features, opts, language, all_tokens[prompt_reset_since:],
                                      audio_features, check=state.check)
        if opts.no_speech_threshold is not None:
            skip = result.no_speech_prob > opts.no_speech_threshold
            if opts.logprob_threshold is not None and result.avg_logprob > opts.logprob_threshold:
                skip = False
            if skip:
                seek += segment_size
                _progress(state, seek, reader)
                continue
        once = opts.single_window and segment_size < N_FRAMES
        parts, new_seek, single_ending = split_segments(tokenizer, result.tokens, time_offset, seek, segment_size,
                                                        segment_duration, keep_tail=once)
        current: list[Segment] = []
        for p in parts:
            text = tokenizer.decode(p["tokens"])
            if p["start"] == p["end"] or not text.strip():
                continue
            current.append(Segment(round(p["start"], 3), round(p["end"], 3), text, id=len(segments) + len(current),
                                   seek=seek, tokens=p["tokens"],
                                   temperature=result.temperature, avg_logprob=result.avg_logprob,
                                   compression_ratio=result.compression_ratio, no_speech_prob=result.no_speech_prob))
        if opts.word_timestamps and current:
            add_word_timestamps(model, tokenizer, current, audio_features, segment_size, language)
            if not single_ending and not once:
                last_end = next((w.end for s in reversed(current) for w in reversed(s.words or [])), None)
                if last_end is not None and last_end > time_offset:
                    new_seek = max(seek + 1, round(last_end * SAMPLE_RATE / HOP_LENGTH))
        missed = False
        if opts.fill_gaps and current and not once and misses < MAX_MISSES:
            current, new_seek, missed = _decode_missed_speech_again(model, tokenizer, current, audio_features, samples,
                                                                    opts, language, seek, segment_size, new_seek)
        misses = misses + 1 if missed else 0
        seek = max(new_seek, seek + 1)  # always move forward
        tidy_segments(current, segments[-1].end if segments else 0.0, time_offset + segment_duration)
        for s in current:
            segments.append(s)
            all_tokens.extend(t for t in s.tokens)
            state.add_partial(s)
        if not opts.condition_on_previous_text or result.temperature > opts.prompt_reset_on_temperature or missed:
            prompt_reset_since = len(all_tokens)  # missed speech is decoded without the text that skipped it
        _progress(state, seek, reader)
    duration = (reader.length or 0) / SAMPLE_RATE
    state.update(progress=1.0, status="done")
    return Transcript(segments, language or "en", duration, language_probs,
                      source=str(audio) if not isinstance(audio, np.ndarray) else "")


def _decode_missed_speech_again(model: Whisper, tokenizer: Tokenizer, current: list[Segment],
                                audio_features: torch.Tensor, samples: np.ndarray, opts: TranscribeOptions,
                                language: str, seek: int, segment_size: int,
                                new_seek: int) -> tuple[list[Segment], int, bool]:
    """A window's segments cut before the first speech no word covers, the seek that decodes it again,
    and whether any was missed; unchanged when all its speech is covered."""
    if not opts.word_timestamps:  # aligned for the check only
        add_word_timestamps(model, tokenizer, current, audio_features, segment_size, language)
    time_offset = seek * HOP_LENGTH / SAMPLE_RATE
    words = [w for s in current for w in s.words or []]
    gap = first_missed_speech(samples, time_offset, words, new_seek * HOP_LENGTH / SAMPLE_RATE)
    if gap is not None:
        current = _cut_before(tokenizer, current, gap)
        new_seek = max(seek + 1, round((gap - WORD_PAD) * SAMPLE_RATE / HOP_LENGTH))
        log.debug("speech at %.2f s was not transcribed: decoding again from there", gap)
    if not opts.word_timestamps:
        for s in current:
            s.words = None
    return current, new_seek, gap is not None


def _cut_before(tokenizer: Tokenizer, segments: list[Segment], gap: float) -> list[Segment]:
    """The segments' words that start before ``gap`` (file time, s) and end by ``gap + WORD_PAD``, each
    segment's text and tokens cut to its kept words (text tokens only: the prompt is reset after a
    cut); segments left without words dropped. A word that reaches past the gap (one
    word stretched over seconds of speech when the text came out of order) is decoded again with
    the missed speech rather than kept beside it: kept, it would be written twice."""
    kept = []
    for s in segments:
        if not s.words:  # no alignment: cut by the segment's own times
            if s.start >= gap:
                break
            s.end = min(s.end, gap)
            kept.append(s)
            continue
        words = list(itertools.takewhile(lambda w: w.start < gap and w.end <= gap + WORD_PAD, s.words))
        if len(words) == len(s.words):
            s.end = min(s.end, gap)
            kept.append(s)
            continue
        if words:
            s.words, s.text = words, "".join(w.word for w in words)
            s.tokens, s.end = tokenizer.encode(s.text), words[-1].end
            kept.append(s)
        break
    return kept


def _progress(state: JobState, seek: int, reader: AudioReader) -> None:
    total = (reader.length or reader.estimate or 1) / HOP_LENGTH
    state.update(progress=min(0.999, seek / max(total, 1)),
                 status=f"{seek * HOP_LENGTH / SAMPLE_RATE:.0f} s / {total * HOP_LENGTH / SAMPLE_RATE:.0f} s")

