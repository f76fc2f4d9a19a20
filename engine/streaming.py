"""Pure, file-replayable streaming transcription state machines (no threads, no devices).

Both engines share one interface::

    s = CTCStreamer(model)             # or WhisperStreamer(...)
    s.insert_audio(samples)            # float32 mono at s.sample_rate, any block size
    update = s.process()               # runs whatever work is ready -> StreamUpdate | None
    last = s.finish()                  # flush: everything becomes committed

A :class:`StreamUpdate` carries the *committed* text (final, only ever grows: a later
committed text always starts with an earlier one) and a *tentative* tail that may still
change. :func:`replay` feeds a file's samples block by block and records every update, so a
live session can be reproduced exactly from its audio.

CTC engine: the encoder runs on chunks of ``chunk`` seconds with ``left`` seconds of left
context and ``right`` seconds of right (look-ahead) context. Frames of a chunk are final once
their right context has arrived; they are decoded greedily, and words followed by a final
word delimiter are committed. The look-ahead frames give the tentative tail.

Whisper engine: local agreement of consecutive hypotheses (LocalAgreement-2) over a sliding
window: the window (from the end of the last committed word) is re-transcribed every
``step`` seconds; the longest common word prefix of the last two hypotheses is committed;
Silero VAD gates silence (no decoding of silent windows; a pause flushes the hypothesis).

Around the state machines: :func:`make_streamer` (engine + model id -> streamer),
:func:`live_transcribe` (a job function reading an ``engine.live.InputStream`` or a
:class:`ReplaySource` until cancelled), :func:`session_transcript` (words -> exportable
transcript), :func:`word_latencies` (simulated live latency).
"""

from __future__ import annotations

import re
import threading
import time
from dataclasses import asdict, dataclass, field
from typing import Any, Callable, Iterable

import numpy as np
import torch
import torch.nn.functional as F

from .ctc import CTCVocab, Word

SAMPLE_RATE = 16000


@dataclass
class StreamUpdate:
    committed: str  # all committed text so far (never changes, only grows)
    tentative: str  # the current tail that may still change
    new_words: list[Word] = field(default_factory=list)  # words committed by this update
    audio_time: float = 0.0  # seconds of audio inserted so far
    final_time: float = 0.0  # audio up to here is final (committed or known silent)
    compute_s: float = 0.0  # model time spent for this update
    final: bool = False  # set by finish()

    @property
    def text(self) -> str:
        return (self.committed + (" " if self.committed and self.tentative else "") + self.tentative).strip()

    def to_dict(self) -> dict:
        d = asdict(self)
        d["new_words"] = [asdict(w) for w in self.new_words]
        return d


class Streamer:
    """The interface of every live engine: ``insert_audio`` / ``process`` / ``finish``.

    Subclasses keep incoming audio in ``self.buf`` (an :class:`_AudioBuffer`), the committed
    words in ``self._words`` and set ``self.finished`` once :meth:`finish` ran.
    """

    sample_rate: int
    buf: "_AudioBuffer"
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
        return _join(self._words)


def _join(words: Iterable[Word]) -> str:
    return " ".join(w.word for w in words)


class _AudioBuffer:
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

    def __init__(self, model, chunk: float = 1.0, left: float = 2.0, right: float = 0.5,
                 keep_logits: bool = False, vocab: CTCVocab | None = None, stats: str = "running",
                 cache_features: bool = True) -> None:
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
        self.buf = _AudioBuffer()
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
        spent = 0.0
        while self.frames_available() >= self.next_frame + self.chunk + self.right:
            spent += self._step(self.next_frame + self.chunk, self.next_frame + self.chunk + self.right, new)
        if not spent:
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
        self.buf, self._wave_m, self._wave_done, self._conv_m, self._conv_done = _AudioBuffer(), _Moments(), 0, _Moments(), 0
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
        return Word("".join(c["char"] for c in chars), round(s * fs, 3), round(e * fs, 3), s, e)

    def _tentative(self, ids: np.ndarray) -> str:
        chars = [c["char"] for c in self.partial]
        prev = self.prev_id
        for i in (int(x) for x in ids):
            if i != prev and i != self.vocab.blank:
                chars.append(self.vocab.char(i))
            prev = i
        return re.sub(r" +", " ", "".join(chars)).strip()


# ---------------------------------------------------------------------------------------------
# replay / measurement


def replay(streamer: Streamer, audio: np.ndarray, block: float = 0.1,
           on_update: Callable[[StreamUpdate], None] | None = None, realtime: bool = False) -> list[StreamUpdate]:
    """Feed ``audio`` in blocks of ``block`` seconds, call ``process`` after each, then ``finish``.

    Returns every emitted update (the last one final). With ``realtime`` the feeding waits so
    that audio arrives no faster than it would from a microphone.
    """
    sr = streamer.sample_rate
    n = max(1, int(round(block * sr)))
    out: list[StreamUpdate] = []
    t0 = time.perf_counter()
    for i in range(0, len(audio), n):
        if realtime:
            wait = (i + n) / sr - (time.perf_counter() - t0)
            if wait > 0:
                time.sleep(wait)
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


# ---------------------------------------------------------------------------------------------
# voice activity (Silero VAD, ONNX through onnxruntime: no pickles, no TorchScript)


def _silero_onnx_path() -> str:
    try:
        from .store import default_store

        folder = default_store().resolve("silero-vad", allow_download=False)
        p = folder / "silero_vad.onnx"
        if p.exists():
            return str(p)
    except Exception:  # the store may not know it; fall back to the installed package
        pass
    from importlib import resources

    try:
        p = resources.files("silero_vad").joinpath("data", "silero_vad.onnx")
    except ModuleNotFoundError:
        from .errors import ModelNotAvailable

        raise ModelNotAvailable("the Silero VAD model is missing: pip install silero-vad") from None
    return str(p)


class SileroVAD:
    """Streaming speech probability for 32 ms frames (512 samples at 16 kHz), stateful."""

    frame = 512
    context = 64

    def __init__(self, path: str | None = None) -> None:
        import onnxruntime

        opts = onnxruntime.SessionOptions()
        opts.inter_op_num_threads = 1
        opts.intra_op_num_threads = 1
        self.session = onnxruntime.InferenceSession(path or _silero_onnx_path(), sess_options=opts,
                                                    providers=["CPUExecutionProvider"])
        self.reset()

    def reset(self) -> None:
        self._state = np.zeros((2, 1, 128), np.float32)
        self._context = np.zeros((1, self.context), np.float32)

    def __call__(self, frame: np.ndarray) -> float:
        x = np.concatenate([self._context, np.asarray(frame, np.float32).reshape(1, self.frame)], axis=1)
        out, self._state = self.session.run(None, {"input": x, "state": self._state,
                                                   "sr": np.array(16000, np.int64)})
        self._context = x[:, -self.context:]
        return float(out.reshape(-1)[0])

    def probabilities(self, audio: np.ndarray) -> np.ndarray:
        """Speech probability per 512-sample frame of a whole signal (state reset first)."""
        self.reset()
        n = len(audio) // self.frame
        return np.array([self(audio[i * self.frame:(i + 1) * self.frame]) for i in range(n)], np.float32)


# ---------------------------------------------------------------------------------------------
# Whisper: local agreement over a sliding window

TranscribeFn = Callable[[np.ndarray, str], list[Word]]  # (16 kHz audio, prompt) -> words, times from its start


def _norm_word(w: str) -> str:
    return re.sub(r"[^\w']", "", w.lower())


def _segment_words(start: float, end: float, text: str) -> list[Word]:
    """Split a segment's text into words with times interpolated by character count."""
    parts = text.split()
    if not parts:
        return []
    total = sum(len(p) + 1 for p in parts)
    out, pos = [], 0
    for p in parts:
        a = start + (end - start) * pos / total
        pos += len(p) + 1
        out.append(Word(p, round(a, 3), round(start + (end - start) * pos / total, 3)))
    return out


def whisper_transcriber(model, tokenizer, language: str | None = None, beam_size: int | None = None) -> TranscribeFn:
    """A :data:`TranscribeFn` on the engine's Whisper model (greedy, no temperature fallback)."""
    from .whisper.transcribe import transcribe

    def fn(audio: np.ndarray, prompt: str) -> list[Word]:
        t = transcribe(None, model, tokenizer, np.asarray(audio, np.float32), language=language,
                       beam_size=beam_size, temperature=0.0, initial_prompt=prompt or None,
                       condition_on_previous_text=False, skip_silent_tail=False)  # the streamer has its own VAD
        words: list[Word] = []
        for s in t.segments:
            if getattr(s, "words", None):
                words += [Word(w.word.strip(), w.start, w.end) for w in s.words if w.word.strip()]
            else:
                words += _segment_words(s.start, s.end, s.text)
        return words

    return fn


def load_whisper_transcriber(model_id: str = "whisper-tiny.en", state=None, **kw) -> TranscribeFn:
    """Resolve a catalog Whisper model through the store and wrap it for :class:`WhisperStreamer`."""
    from .models.whisper import load_model
    from .store import default_store
    from .whisper.tokenizer import Tokenizer

    folder = default_store().resolve(model_id, state)
    model = load_model(folder)
    return whisper_transcriber(model, Tokenizer(folder, n_vocab=model.cfg.n_vocab), **kw)


def _after(done: list[Word], hyp: list[Word]) -> int:
    """Index in ``hyp`` just past the words matching ``done`` (already committed from this window).

    Hypotheses of the same window differ slightly between runs, so the committed words are found
    by aligning the word sequences rather than by counting."""
    import difflib

    a = [_norm_word(w.word) for w in done]
    b = [_norm_word(w.word) for w in hyp]
    blocks = [m for m in difflib.SequenceMatcher(None, a, b, autojunk=False).get_matching_blocks() if m.size]
    if not blocks:
        return min(len(done), len(hyp))
    last = blocks[-1]
    return min(len(hyp), last.b + last.size + (len(a) - (last.a + last.size)))


class WhisperStreamer(Streamer):
    """LocalAgreement-2 streaming on a re-transcribed sliding window, gated by Silero VAD.

    * Audio with no speech is not decoded (the window is trimmed to a short pre-roll).
    * While someone speaks, the window (from the end of the last committed text) is transcribed
      every ``step`` seconds; words on which the last two hypotheses agree are committed, the
      rest of the newest hypothesis is the tentative tail.
    * After ``min_silence`` seconds of silence the utterance is transcribed once more and
      committed whole; the window then restarts. A window longer than ``max_window`` is cut
      after its committed words.
    """

    def __init__(self, transcribe_fn: TranscribeFn, vad: SileroVAD | None = None, step: float = 1.0,
                 min_silence: float = 0.6, threshold: float = 0.5, max_window: float = 20.0,
                 pre_roll: float = 0.5, post_roll: float = 0.3, prompt_chars: int = 200,
                 min_window: float = 4.0, sample_rate: int = SAMPLE_RATE) -> None:
        self.transcribe_fn = transcribe_fn
        self.vad = vad if vad is not None else SileroVAD()
        self.sample_rate = sample_rate
        sr = sample_rate
        self.step, self.min_silence = int(step * sr), int(min_silence * sr)
        self.threshold, self.max_window = threshold, int(max_window * sr)
        self.pre_roll, self.post_roll = int(pre_roll * sr), int(post_roll * sr)
        self.prompt_chars = prompt_chars
        # Whisper drops or changes the first word of very short windows: no agreement commits
        # before the window holds this much audio (the words show as tentative meanwhile)
        self.min_window = int(min_window * sr)
        self.reset()

    def reset(self) -> None:
        self.buf = _AudioBuffer()
        self.vad.reset()
        self._vad_done = 0  # samples scored by the VAD
        self._speech_start: int | None = None  # first speech sample in the window
        self._speech_end = 0  # end of the last speech frame
        self._last_decode = 0  # buffer end at the last decode
        self._words: list[Word] = []
        self._prev: list[Word] = []  # previous hypothesis (uncommitted part)
        self._in_window = 0  # committed words that come from the current window
        self.tentative = ""
        self.finished = False
        self.decode_times: list[float] = []

    # -- interface: insert_audio / words / committed come from Streamer ------------------------------
    def process(self) -> StreamUpdate | None:
        self._run_vad()
        sr = self.sample_rate
        if self._speech_start is None:  # nothing but silence: keep a short pre-roll
            self.buf.drop_before(self.buf.end - self.pre_roll)
            return None
        new: list[Word] = []
        spent = 0.0
        if self._vad_done - self._speech_end >= self.min_silence:  # the utterance is over
            spent = self._final(self._speech_end + self.post_roll, new)
        elif self.buf.end - self._last_decode >= self.step:
            spent = self._agree(new)
            if self.buf.end - self.buf.start > self.max_window:
                self._cut()
        else:
            return None
        return StreamUpdate(self.committed, self.tentative, new, self.buf.end / sr,
                            self._final_time() / sr, spent)

    def finish(self) -> StreamUpdate:
        self._run_vad(final=True)
        new: list[Word] = []
        spent = 0.0
        if self._speech_start is not None:
            spent = self._final(self.buf.end, new)
        self.tentative = ""
        self.finished = True
        return StreamUpdate(self.committed, "", new, self.buf.end / self.sample_rate,
                            self.buf.end / self.sample_rate, spent, final=True)

    # -- internals ------------------------------------------------------------------------------
    def _final_time(self) -> int:
        return self.buf.start if self._speech_start is not None else self.buf.end

    def _run_vad(self, final: bool = False) -> None:
        f = self.vad.frame
        while self._vad_done + f <= self.buf.end:
            p = self.vad(self.buf.get(self._vad_done, self._vad_done + f))
            if p >= self.threshold:
                if self._speech_start is None:
                    self._speech_start = self._vad_done
                self._speech_end = self._vad_done + f
            self._vad_done += f
        if final and self._speech_start is not None:
            self._speech_end = self.buf.end

    def _prompt(self) -> str:
        """Committed text from before the window (words inside it would be skipped by Whisper)."""
        before = self._words[:len(self._words) - self._in_window]
        return _join(before)[-self.prompt_chars:]

    def _window_start(self) -> int:
        if self._in_window:
            return self.buf.start
        return max(self.buf.start, (self._speech_start or self.buf.start) - self.pre_roll)

    def _window_len(self, end: int) -> int:
        return end - self._window_start()

    def _decode(self, end: int) -> tuple[list[Word], float]:
        start = self._window_start()
        audio = self.buf.get(start, end)
        t = time.perf_counter()
        words = self.transcribe_fn(audio, self._prompt()) if len(audio) else []
        dt = time.perf_counter() - t
        self.decode_times.append(dt)
        off = start / self.sample_rate
        words = [Word(w.word, round(w.start + off, 3), round(w.end + off, 3)) for w in words]
        # drop what was already committed from this window, and a repeat of the committed tail
        if self._in_window:
            words = words[_after(self._words[-self._in_window:], words):]
        elif self._words:
            tail = [_norm_word(w.word) for w in self._words[-5:]]
            for k in range(min(5, len(words)), 0, -1):
                if [_norm_word(w.word) for w in words[:k]] == tail[-k:]:
                    words = words[k:]
                    break
        return words, dt

    def _commit(self, words: list[Word], new: list[Word]) -> None:
        self._words += words
        new += words
        self._in_window += len(words)

    def _agree(self, new: list[Word]) -> float:
        hyp, dt = self._decode(self.buf.end)
        self._last_decode = self.buf.end
        n = 0
        if self._window_len(self.buf.end) >= self.min_window:
            while n < min(len(hyp), len(self._prev)) and _norm_word(hyp[n].word) == _norm_word(self._prev[n].word):
                n += 1
        self._commit(hyp[:n], new)
        self._prev = hyp[n:]
        self.tentative = _join(self._prev)
        return dt

    def _final(self, end: int, new: list[Word]) -> float:
        end = min(end, self.buf.end)
        hyp, dt = self._decode(end)
        self._commit(hyp, new)
        self._restart(end)
        return dt

    def _restart(self, at: int) -> None:
        self.buf.drop_before(at - self.pre_roll)
        self._prev, self._in_window, self.tentative = [], 0, ""
        self._speech_start = None
        # speech already seen after `at` (rare) starts the next window
        self._last_decode = self.buf.end
        if self._speech_end > at:
            self._speech_start = at

    def _cut(self) -> None:
        """Window too long: restart it after the last committed word of this window."""
        if self._in_window:
            at = int(self._words[-1].end * self.sample_rate)
        else:  # nothing agreed for max_window seconds: commit the hypothesis but its last word
            keep = self._prev[:-1]
            self._commit(keep, [])
            at = int(keep[-1].end * self.sample_rate) if keep else self.buf.end - self.pre_roll
        self.buf.drop_before(at)
        self._prev, self._in_window, self.tentative = [], 0, ""
        self._speech_start = self.buf.start


# ---------------------------------------------------------------------------------------------
# live driver (a job: runs until cancelled or max_seconds)


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


class ReplaySource:
    """An ``engine.live.InputStream`` look-alike that plays an array into a ring buffer at
    ``speed`` times real time (a recording standing in for the microphone)."""

    def __init__(self, audio: np.ndarray, samplerate: int, speed: float = 1.0, block: float = 0.02) -> None:
        from .live import RingBuffer

        a = np.asarray(audio, np.float32)
        self.audio = a.reshape(-1) if a.ndim == 1 else a.mean(axis=0 if a.shape[0] < a.shape[1] else 1)
        self.samplerate, self.channels = int(samplerate), 1
        self.speed, self.block = float(speed), max(1, int(block * samplerate))
        self.ring = RingBuffer(int(samplerate * 60), 1)
        self._stop = threading.Event()
        self._done = threading.Event()
        self._thread: threading.Thread | None = None

    autostart = True  # live_transcribe starts it after taking its read cursor

    @property
    def finished(self) -> bool:
        return self._done.is_set()

    def start(self) -> "ReplaySource":
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="replay", daemon=True)
            self._thread.start()
        return self

    def _run(self) -> None:
        t0 = time.monotonic()
        for i in range(0, len(self.audio), self.block):
            if self._stop.is_set():
                break
            wait = i / self.samplerate / self.speed - (time.monotonic() - t0)
            if wait > 0:
                time.sleep(wait)
            self.ring.write(self.audio[i:i + self.block, None])
        self._done.set()

    def cursor(self) -> int:
        return self.ring.written

    def read(self, cursor: int, max_frames: int | None = None):
        return self.ring.read_from(cursor, max_frames)

    def latest(self, n: int) -> np.ndarray:
        return self.ring.latest(n)

    def close(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(5)
        self._done.set()

    stop = close


def make_streamer(engine: str, model: str | None = None, state=None, int8: bool = True, chunk: float = 1.0,
                  left: float = 2.0, right: float = 0.5, step: float = 1.0, device: str = "cpu"):
    """A ready streamer for ``engine`` ("ctc" | "whisper") and a catalog id or folder (None: default)."""
    if engine == "ctc":
        from .models import wav2vec2

        m = wav2vec2.load(model or wav2vec2.DEFAULT_MODEL, state=state, int8=int8, device=device)
        return CTCStreamer(m, chunk=chunk, left=left, right=right)
    if engine == "whisper":
        from .whisper.loading import load

        m, tok = load(model or "whisper-tiny.en", state=state, int8=int8, device=device)
        return WhisperStreamer(whisper_transcriber(m, tok), step=step)
    raise ValueError(f"unknown live engine {engine!r}")


def open_input(device=None, samplerate: int = SAMPLE_RATE):
    """An :class:`engine.live.InputStream` at 16 kHz if the device takes it, else at its own rate."""
    from .errors import DeviceError
    from .live import InputStream

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

    Every :class:`StreamUpdate` goes to ``state.add_partial`` (and ``on_update``). Stops when the
    job is cancelled (a normal stop, not an error) or after ``max_seconds``; then finishes the
    stream and returns ``{"words", "text", "audio" (16 kHz float32), "updates"}``. With
    ``record_to`` the session audio is also written there (WAV).
    """
    own = source is None
    src = open_input(device) if own else source
    rs = _Resampler(src.samplerate, streamer.sample_rate)
    chunks: list[np.ndarray] = []
    updates: list[StreamUpdate] = []

    def emit(u: StreamUpdate) -> None:
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
        t0 = time.monotonic()
        while not state.cancelled:
            if max_seconds is not None and time.monotonic() - t0 >= max_seconds:
                break
            ended = getattr(src, "finished", False)  # a replayed recording came to its end
            data, cursor, _lost = src.read(cursor)
            if len(data):
                mono = data if data.ndim == 1 else (data[:, 0] if data.shape[1] == 1 else data.mean(axis=1))
                x = rs(mono)
                chunks.append(x)
                streamer.insert_audio(x)
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
        from .audio import save

        save(record_to, audio, streamer.sample_rate)
    return {"words": streamer.words, "text": updates[-1].committed, "audio": audio, "updates": updates,
            "sample_rate": streamer.sample_rate}


def session_transcript(words: list[Word], duration: float, source: str = ""):
    """Committed words as an :class:`engine.whisper.transcribe.Transcript` (for the TXT/SRT/VTT/JSON
    exports of ``engine.whisper.exports``), cut into segments at pauses."""
    from .ctc import to_segments
    from .whisper.transcribe import Segment, Transcript
    from .whisper.transcribe import Word as TWord

    segs = [Segment(id=i, seek=0, start=s["start"], end=s["end"], text=" " + s["text"], tokens=[],
                    words=[TWord(w.start, w.end, " " + w.word, 1.0) for w in s["words"]])
            for i, s in enumerate(to_segments(words))]
    return Transcript(segs, "en", duration, source=source)
