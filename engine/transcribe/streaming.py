"""Pure, file-replayable streaming transcription state machines (no threads, no devices).

Every live engine shares one interface::

    s = CTCStreamer(model)             # or transcribe.whisper.streaming.WhisperStreamer(...)
    s.insert_audio(samples)            # float32 mono at s.sample_rate, any block size
    update = s.process()               # runs whatever work is ready -> StreamUpdate | None
    last = s.finish()                  # flush: everything becomes committed

A :class:`StreamUpdate` carries the *committed* text (final, only ever grows: a later
committed text always starts with an earlier one) and a *tentative* tail that may still
change. :func:`replay` feeds a file's samples block by block and records every update, so a
live session can be reproduced exactly from its audio; :func:`word_latencies` simulates the
latency of a live session.

CTC engine (here): the encoder runs on chunks of ``chunk`` seconds with ``left`` seconds of left
context and ``right`` seconds of right (look-ahead) context. Frames of a chunk are final once
their right context has arrived; they are decoded greedily, and words followed by a final
word delimiter are committed. The look-ahead frames give the tentative tail.

The Whisper engine (local agreement) is in :mod:`engine.transcribe.whisper.streaming`; the
session that runs a streamer on the microphone is :mod:`engine.transcribe.live`.
"""

from __future__ import annotations

import re
import time
from dataclasses import asdict, dataclass, field
from typing import Any, Callable, Iterable

import numpy as np
import torch
import torch.nn.functional as F

from .. import defaults as D
from ..results import Word
from .ctc import CTCVocab


@dataclass
class StreamUpdate:
    committed: str  # all committed text so far (never changes, only grows)
    tentative: str  # the current tail that may still change
    new_words: list[Word] = field(default_factory=list)  # words committed by this update
    audio_time: float = 0.0  # seconds of audio inserted so far
    final_time: float = 0.0  # audio up to here is final (committed or known silent)
    compute_s: float = 0.0  # model time spent for this update
    final: bool = False  # set by finish()
    lag: float | None = None  # live: session seconds behind the audio when this update was out (see SessionClock)

    @property
    def text(self) -> str:
        return (self.committed + (" " if self.committed and self.tentative else "") + self.tentative).strip()

    def to_dict(self) -> dict:
        d = asdict(self)
        d["new_words"] = [asdict(w) for w in self.new_words]
        return d


class Streamer:
    """The interface of every live engine: ``insert_audio`` / ``process`` / ``finish``.

    Subclasses keep incoming audio in ``self.buf`` (an :class:`AudioBuffer`), the committed
    words in ``self._words`` and set ``self.finished`` once :meth:`finish` ran.
    """

    sample_rate: int
    language: str | None = None  # the session's language, where the engine knows it
    buf: "AudioBuffer"
    _words: list[Word]
    finished: bool

    def insert_audio(self, samples: np.ndarray) -> None:
        if self.finished:
            raise RuntimeError("insert_audio after finish(); call reset() first")
        self.buf.append(samples)

    def process(self) -> StreamUpdate | None:
        raise NotImplementedError

    def finish(self) -> StreamUpdate:
        raise NotImplementedError

    @property
    def words(self) -> list[Word]:
        return list(self._words)

    @property
    def committed(self) -> str:
        return join_words(self._words)


def join_words(words: Iterable[Word]) -> str:
    return " ".join(w.word for w in words)


class AudioBuffer:
    """Samples from absolute index ``start`` on; older samples are dropped when no longer needed."""

    def __init__(self) -> None:
        self.data = np.zeros(0, np.float32)
        self.start = 0

    @property
    def end(self) -> int:
        return self.start + self.data.size

    def append(self, x: np.ndarray) -> None:
        x = np.asarray(x, np.float32).reshape(-1)
        if x.size:
            self.data = np.concatenate([self.data, x])

    def get(self, a: int, b: int) -> np.ndarray:
        a, b = max(a, self.start), min(b, self.end)
        return self.data[a - self.start:b - self.start]

    def drop_before(self, a: int) -> None:
        if a > self.start:
            k = min(a, self.end) - self.start
            self.data = self.data[k:].copy()
            self.start += k


class _Moments:
    """Running count / sum / sum of squares (float64), per channel or scalar."""

    def __init__(self) -> None:
        self.n, self.s1, self.s2 = 0, 0.0, 0.0

    def add(self, x: np.ndarray, axis: int = -1) -> None:
        x = np.asarray(x, np.float64)
        if x.shape[axis] == 0:
            return
        self.n += x.shape[axis]
        self.s1 = self.s1 + x.sum(axis)
        self.s2 = self.s2 + (x * x).sum(axis)

    def mean_var(self) -> tuple[Any, Any]:
        m = self.s1 / self.n
        return m, np.maximum(self.s2 / self.n - m * m, 0.0)


# ---------------------------------------------------------------------------------------------
# CTC (wav2vec2 / HuBERT)


class CTCStreamer(Streamer):
    """Chunked CTC transcription with left/right context (see module docstring).

    ``model`` is an :class:`engine.models.wav2vec2.Wav2Vec2Model` with a CTC head (or anything
    with ``.config`` and ``forward(wave (1, N)) -> logits (1, T, V)``). ``keep_logits`` keeps
    every final frame's logits in :attr:`logits` (tests, offline rescoring).
    """

    def __init__(self, model, chunk: float = D.LIVE_CTC_CHUNK, left: float = D.LIVE_CTC_LEFT,
                 right: float = D.LIVE_CTC_RIGHT,
                 keep_logits: bool = False, vocab: CTCVocab | None = None, stats: str = "running",
                 cache_features: bool = True, catch_up: float = 8.0) -> None:
        cfg = model.config
        self.model, self.cfg = model, cfg
        self.sample_rate = cfg.sampling_rate
        self.vocab = vocab or CTCVocab.from_config(cfg)
        self.stride = cfg.frame_stride
        self.field = cfg.receptive_field
        self.frame_seconds = self.stride / self.sample_rate
        self.chunk = max(1, round(chunk / self.frame_seconds))
        self.left = max(0, round(left / self.frame_seconds))
        self.right = max(0, round(right / self.frame_seconds))
        self.keep_logits = keep_logits
        # behind by several chunks (a slow machine, a stall): the pending chunks are made final by one
        # window of up to this many seconds instead of one window each (re-decoding skipped, no audio)
        self.catch_up = max(self.chunk, round(catch_up / self.frame_seconds))
        # Whole-utterance statistics (waveform normalisation, the first conv's group norm): with
        # "running" they come from all audio so far (up to the window's end), with "window" each
        # window uses its own (like chunked offline pipelines); fix_stats() pins them.
        if stats not in ("running", "window"):
            raise ValueError(f"stats must be 'running' or 'window', not {stats!r}")
        self.stats_mode = stats
        self.fixed_stats = None
        self.cache_features = cache_features
        first = model.wav2vec2.feature_extractor.conv_layers[0]
        self._conv0 = first.conv if first.norm == "group" else None
        self.reset()

    def reset(self) -> None:
        self.buf = AudioBuffer()
        self.next_frame = 0  # first frame that is not final yet
        self.prev_id = -1  # id of the last final frame (repeats collapse across chunks)
        self._words: list[Word] = []
        self.partial: list[dict] = []  # final characters of the word in progress
        self.tentative = ""
        self.finished = False
        self._logits: list[np.ndarray] = []
        self.chunk_times: list[float] = []  # model seconds per window
        self._wave_m = _Moments()  # raw samples [0, _wave_done)
        self._wave_done = 0
        self._conv_m = _Moments()  # bias-free first conv of the raw samples, positions [0, _conv_done)
        self._conv_done = 0
        self._feat: torch.Tensor | None = None  # projected CNN features of frames [_feat_start, ...)
        self._feat_start = 0

    # -- interface: insert_audio / words / committed come from Streamer ------------------------------
    @property
    def logits(self) -> np.ndarray:
        return np.concatenate(self._logits) if self._logits else np.zeros((0, self.cfg.vocab_size), np.float32)

    def frames_available(self) -> int:
        return self.cfg.num_frames(self.buf.end)

    def process(self) -> StreamUpdate | None:
        new: list[Word] = []
        spent, steps = 0.0, 0
        while self.frames_available() >= self.next_frame + self.chunk + self.right:
            ready = self.frames_available() - self.right - self.next_frame  # frames that could be final
            n = min(self.catch_up, max(self.chunk, ready - ready % self.chunk))
            spent += self._step(self.next_frame + n, self.next_frame + n + self.right, new)
            steps += 1
        if not steps:  # (not `spent`: a coarse clock can measure a step as 0 s)
            return None
        return self._update(new, spent)

    def finish(self) -> StreamUpdate:
        new: list[Word] = []
        spent = 0.0
        avail = self.frames_available()
        while self.next_frame < avail:
            c1 = min(avail, self.next_frame + self.chunk)
            spent += self._step(c1, min(avail, c1 + self.right), new, stats_upto=self.buf.end)
        if self.partial:  # the end of the audio ends the last word
            new.append(self._word(self.partial))
            self._words.append(new[-1])
            self.partial = []
        self.tentative = ""
        self.finished = True
        return self._update(new, spent, final=True)

    # -- internals ------------------------------------------------------------------------------
    def _update(self, new: list[Word], spent: float, final: bool = False) -> StreamUpdate:
        return StreamUpdate(self.committed, self.tentative, new, self.buf.end / self.sample_rate,
                            self.next_frame * self.frame_seconds, spent, final)

    def _stats(self, upto: int) -> tuple[tuple[float, float] | None, tuple[torch.Tensor, torch.Tensor] | None]:
        """Running statistics over samples [0, upto): waveform (mean, var) and first-conv group norm."""
        if self.fixed_stats is not None:
            return self.fixed_stats
        if self.stats_mode == "window":
            return None, None
        wave_stats = None
        if self.cfg.do_normalize:
            self._wave_m.add(self.buf.get(self._wave_done, upto))
            self._wave_done = max(self._wave_done, upto)
            wave_stats = self._wave_m.mean_var()
        if self._conv0 is None:
            return wave_stats, None
        conv = self._conv0
        k, st = conv.kernel_size[0], conv.stride[0]
        positions = (upto - k) // st + 1
        if positions > self._conv_done:
            seg = self.buf.get(self._conv_done * st, (positions - 1) * st + k)
            with torch.inference_mode():
                y = F.conv1d(torch.from_numpy(np.ascontiguousarray(seg))[None, None].to(conv.weight.dtype),
                             conv.weight, None, st)[0]
            self._conv_m.add(y.double().numpy(), axis=-1)
            self._conv_done = positions
        mean, var = self._conv_m.mean_var()
        if wave_stats is not None:  # the conv is linear: normalising the input rescales its statistics
            m, v = wave_stats
            s = np.sqrt(v + 1e-7)
            wsum = conv.weight.detach().double().sum((1, 2)).numpy()
            mean, var = (mean - m * wsum) / s, var / (s * s)
        if conv.bias is not None:
            mean = mean + conv.bias.detach().double().numpy()
        dt = conv.weight.dtype
        return wave_stats, (torch.as_tensor(mean, dtype=dt), torch.as_tensor(var, dtype=dt))

    def fix_stats(self, audio: np.ndarray | None) -> None:
        """Pin the normalisation statistics to those of ``audio`` (e.g. a whole file, or a calibration
        recording); None goes back to the configured mode."""
        self.fixed_stats = None
        if audio is None:
            return
        saved = (self.buf, self._wave_m, self._wave_done, self._conv_m, self._conv_done, self.stats_mode)
        self.buf, self._wave_m, self._wave_done, self._conv_m, self._conv_done = AudioBuffer(), _Moments(), 0, _Moments(), 0
        self.stats_mode = "running"
        self.buf.append(audio)
        fixed = self._stats(self.buf.end)
        self.buf, self._wave_m, self._wave_done, self._conv_m, self._conv_done, self.stats_mode = saved
        self.fixed_stats = fixed

    def _window_logits(self, w0: int, w1: int, stats_upto: int | None = None) -> tuple[np.ndarray, float]:
        a, b = w0 * self.stride, (w1 - 1) * self.stride + self.field
        wave = self.buf.get(a, b)
        t = time.perf_counter()
        wave_stats, conv_stats = self._stats(max(b, stats_upto or 0))
        with torch.inference_mode():
            if not self.cache_features or self.stats_mode == "window" and self.fixed_stats is None:
                out = self.model(self.model.prepare(wave, wave_stats), conv_stats)[0].float().cpu().numpy()
            else:
                out = self._cached_forward(w0, w1, wave_stats, conv_stats)
        dt = time.perf_counter() - t
        self.chunk_times.append(dt)
        if out.shape[0] != w1 - w0:
            raise RuntimeError(f"model returned {out.shape[0]} frames for a window of {w1 - w0}")
        return out, dt

    def _cached_forward(self, w0: int, w1: int, wave_stats, conv_stats) -> np.ndarray:
        """CNN features are local (frame k sees samples [320k, 320k + 400)): frames computed by an
        earlier window are reused, only the new ones go through the CNN; the transformer and the
        head run on the whole window. Exact with fixed statistics; with running statistics the
        reused frames keep the statistics of their time (a small difference)."""
        net = self.model.wav2vec2
        f0, cached = self._feat_start, self._feat
        have = 0 if cached is None or f0 > w0 else max(0, min(w1, f0 + cached.shape[1]) - w0)
        a, b = (w0 + have) * self.stride, (w1 - 1) * self.stride + self.field
        parts = [cached[:, w0 - f0:w0 - f0 + have]] if have else []
        if w1 > w0 + have:
            x = self.model.prepare(self.buf.get(a, b), wave_stats)
            parts.append(net.features(x, conv_stats))
        feats = torch.cat(parts, 1) if len(parts) > 1 else parts[0]  # (1, w1 - w0, D)
        self._feat, self._feat_start = feats, w0
        return self.model.head(net.encoder(feats))[0].float().cpu().numpy()

    def _step(self, c1: int, w1: int, new: list[Word], stats_upto: int | None = None) -> float:
        """Make frames [next_frame, c1) final using a window up to w1 (exclusive)."""
        c0 = self.next_frame
        w0 = max(0, c0 - self.left)
        logits, dt = self._window_logits(w0, w1, stats_upto)
        final = logits[c0 - w0:c1 - w0]
        if self.keep_logits:
            self._logits.append(final)
        self._consume(final.argmax(-1), c0, new)
        self.next_frame = c1
        self.buf.drop_before(max(0, c1 - self.left) * self.stride)
        self.tentative = self._tentative(logits[c1 - w0:].argmax(-1))
        return dt

    def _consume(self, ids: np.ndarray, offset: int, new: list[Word]) -> None:
        blank, delim = self.vocab.blank, self.vocab.delimiter
        for k, i in enumerate(int(x) for x in ids):
            t = offset + k
            if i == self.prev_id:
                if i != blank and self.partial and self.vocab.tokens[i] != delim:
                    self.partial[-1]["end_frame"] = t + 1
                continue
            self.prev_id = i
            if i == blank:
                continue
            if self.vocab.tokens[i] == delim:
                if self.partial:
                    w = self._word(self.partial)
                    self._words.append(w)
                    new.append(w)
                    self.partial = []
                continue
            self.partial.append({"char": self.vocab.char(i), "start_frame": t, "end_frame": t + 1})

    def _word(self, chars: list[dict]) -> Word:
        s, e = chars[0]["start_frame"], chars[-1]["end_frame"]
        fs = self.frame_seconds
        return Word("".join(c["char"] for c in chars), round(s * fs, 3), round(e * fs, 3))

    def _tentative(self, ids: np.ndarray) -> str:
        chars = [c["char"] for c in self.partial]
        prev = self.prev_id
        for i in (int(x) for x in ids):
            if i != prev and i != self.vocab.blank:
                chars.append(self.vocab.char(i))
            prev = i
        return re.sub(r" +", " ", "".join(chars)).strip()


# ---------------------------------------------------------------------------------------------
# the session clock: when words were shown and committed


def word_key(word: str) -> str:
    """A word as compared between hypotheses: lower case, letters, digits and apostrophes only."""
    return re.sub(r"[^\w']", "", word.lower())


class SessionClock:
    """Stamps a live session's words with the session-clock time (seconds since the session's audio
    started, so directly comparable with word times) at which each was first shown and committed, and
    each update with its ``lag``: how far the engine is behind the audio (now - audio inserted so far).

    A word is "shown" when the displayed text (committed words + tentative tail) first had that word
    (case and punctuation aside) at its position: a tentative tail that ran ahead with other words
    does not count as showing it.
    """

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self.clock = clock
        self.t0: float | None = None
        self._seen: list[dict[str, float]] = []  # per word position: word -> first time it was shown there
        self._committed = 0

    def start(self, at: float | None = None) -> None:
        self.t0 = self.clock() if at is None else at

    def now(self) -> float:
        if self.t0 is None:
            self.start()
        return self.clock() - self.t0

    def stamp(self, u: StreamUpdate, words: list[Word]) -> StreamUpdate:
        """``words``: the streamer's committed words (its own objects: they get the stamps)."""
        now = self.now()
        u.lag = round(max(0.0, now - u.audio_time), 3)
        on_screen = [w.word for w in words[self._committed:]] + u.tentative.split()
        for k, text in enumerate(on_screen, self._committed):
            if k == len(self._seen):
                self._seen.append({})
            self._seen[k].setdefault(word_key(text), now)
        for k in range(self._committed, len(words)):
            w = words[k]
            w.committed = round(now, 3)
            w.shown = round(min(now, self._seen[k].get(word_key(w.word), now)), 3)
            self._seen[k] = {}  # settled: nothing more to remember there
        self._committed = len(words)
        return u


# ---------------------------------------------------------------------------------------------
# replay / measurement


def replay(streamer: Streamer, audio: np.ndarray, block: float = 0.1,
           on_update: Callable[[StreamUpdate], None] | None = None) -> list[StreamUpdate]:
    """Feed ``audio`` in blocks of ``block`` seconds as fast as it goes, call ``process`` after each,
    then ``finish``. Returns every emitted update (the last one final). (At real-time speed, with
    the words' commit times: :class:`~engine.audio.capture.ReplaySource` into ``live_transcribe``.)
    """
    sr = streamer.sample_rate
    n = max(1, int(round(block * sr)))
    out: list[StreamUpdate] = []
    for i in range(0, len(audio), n):
        streamer.insert_audio(audio[i:i + n])
        u = streamer.process()
        if u is not None:
            out.append(u)
            if on_update:
                on_update(u)
    u = streamer.finish()
    out.append(u)
    if on_update:
        on_update(u)
    return out


def check_monotonic(updates: list[StreamUpdate]) -> None:
    """Raise AssertionError if a committed text ever changed (each must extend the previous)."""
    prev = ""
    for k, u in enumerate(updates):
        if not u.committed.startswith(prev):
            raise AssertionError(f"update {k}: committed text changed from {prev!r} to {u.committed!r}")
        prev = u.committed


def word_latencies(streamer_factory: Callable[[], Streamer], audio: np.ndarray, block: float = 0.1,
                   reference_words: list[Word] | None = None) -> dict[str, Any]:
    """Simulate a live session (audio arriving in real time, processing between blocks).

    For each committed word: latency = (audio time when the block that made it committed arrived
    + compute time of that update) - word end time. Also returns per-update compute times and the
    real-time factor (total compute / audio duration).
    """
    s = streamer_factory()
    sr = s.sample_rate
    n = max(1, int(round(block * sr)))
    lat, computes = [], []
    backlog = 0.0  # compute that has not finished when the next block arrives delays later words
    for i in range(0, len(audio), n):
        s.insert_audio(audio[i:i + n])
        u = s.process()
        arrived = min(len(audio), i + n) / sr
        if u is None:
            backlog = max(0.0, backlog - block)
            continue
        computes.append(u.compute_s)
        backlog = max(0.0, backlog - block) + u.compute_s
        for w in u.new_words:
            lat.append(arrived + backlog - w.end)
    u = s.finish()
    computes.append(u.compute_s)
    dur = len(audio) / sr
    return {"latencies": lat, "compute": computes, "rtf": sum(computes) / dur if dur else 0.0,
            "words": s.words}
