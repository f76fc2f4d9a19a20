"""Live Whisper: LocalAgreement-2 over a re-transcribed sliding window, gated by Silero VAD.

The window (from the end of the last committed word) is re-transcribed every ``step`` seconds;
the longest common word prefix of the last two hypotheses is committed; Silero VAD gates silence
(no decoding of silent windows; a pause flushes the hypothesis).
"""

from __future__ import annotations

import difflib
import math
import time
from typing import Callable

import numpy as np

from ... import defaults as D
from ...audio.dsp import SAMPLE_RATE
from ...audio.vad import SileroVAD
from ...compute import cpu_threads
from ...results import Word
from ..streaming import AudioBuffer, Streamer, StreamUpdate, join_words, word_key
from .longform import transcribe


TranscribeFn = Callable[[np.ndarray, str], list[Word]]  # (16 kHz audio, prompt) -> words, times from its start


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


LOOP_REPEATS = 4  # a run of words said this many times in a row within one window is a decoding loop
# Most tokens a live decode may write: SAMPLE_BASE + SAMPLE_PER_SECOND per second of window (fast speech is
# 3-4 words, about 5 tokens, a second). On a short window a decoding loop otherwise writes 224 tokens: 0.5 s
# windows took 1.2-1.5 s to decode, four times the usual, in benchmarks/bench_live.py.
SAMPLE_BASE, SAMPLE_PER_SECOND = 16, 8


def clean_words(words: list[Word]) -> list[Word]:
    """A hypothesis as words the live text can show: punctuation-only "words" (a loop of " ." tokens,
    a lone dash) join the word before them or go, and a decoding loop (the same 1-4 words
    :data:`LOOP_REPEATS` or more times in a row) is cut after its first time."""
    out: list[Word] = []
    for w in words:
        if word_key(w.word):
            out.append(w)
        elif out and set(w.word.strip()) <= set(".,!?;:…"):  # "word" "." -> "word.", never "word. . . ."
            last = out[-1]
            if not last.word.endswith(w.word.strip()):
                out[-1] = Word(last.word + w.word.strip(), last.start, max(last.end, w.end), last.probability)
    keys = [word_key(w.word) for w in out]
    for i in range(len(keys)):
        for n in range(1, 5):
            unit = keys[i:i + n]
            if len(unit) < n:
                break
            k = 1
            while keys[i + k * n:i + (k + 1) * n] == unit:
                k += 1
            if k >= LOOP_REPEATS:
                return out[:i + n]
    return out


class ThreadChoice:
    """Torch threads for live decodes: up to ``most``, one while other work holds the cores.

    On two otherwise idle cores a tiny.en decode takes 0.31 s on two threads and 0.56 s on one; beside
    a job on the same cores it takes 0.6-1.05 s on two and 0.5-0.6 s on one (a two-thread op waits for
    its slower half). The best time seen is kept per thread count and window length (``bucket``
    seconds: longer windows hold more words to decode); ``runs`` decodes in a row on several threads
    slower than ``slow`` x the best for their length, or than one thread's best for it, mean the
    cores are busy (one is a hiccup): the next ``probe`` decodes run on one thread, then several are
    tried again. The first decode runs on one thread, so that a session started beside a job has a
    one-thread time to compare with (its several-thread best would be a busy one)."""

    def __init__(self, most: int, slow: float = 1.6, probe: int = 10, bucket: float = 2.0, runs: int = 2) -> None:
        self.most, self.slow, self.probe, self.bucket, self.runs = max(1, most), slow, probe, bucket, runs
        self.n, self._left, self._slow = (1, 1, 0) if self.most > 1 else (1, 0, 0)
        self.best: dict[tuple[int, int], float] = {}  # (threads, window length bucket) -> seconds
        self.counts: dict[int, int] = {}  # decodes per thread count

    def record(self, n: int, seconds: float, window: float = 0.0) -> None:
        """A decode of a ``window`` seconds long took ``seconds`` on ``n`` threads."""
        key = (n, int(window // self.bucket))
        self.counts[n] = self.counts.get(n, 0) + 1
        best = self.best[key] = min(self.best.get(key, seconds), seconds)
        if n > 1:
            one = self.best.get((1, key[1]), float("inf"))
            self._slow = self._slow + 1 if seconds > min(self.slow * best, one) else 0
            if self._slow >= self.runs:
                self.n, self._left, self._slow = 1, self.probe, 0
        elif self.most > 1:
            self._left -= 1
            if self._left <= 0:
                self.n = self.most


def whisper_transcriber(model, tokenizer, language: str | None = None, beam_size: int | None = None,
                        threads: int | ThreadChoice | None = None,
                        short_context: float | None = D.LIVE_WHISPER_SHORT_CONTEXT,
                        word_timestamps: bool = D.LIVE_WHISPER_WORD_TIMES) -> TranscribeFn:
    """A :data:`TranscribeFn` on the engine's Whisper model (greedy, no temperature fallback), decoding
    on ``threads`` torch threads (None: as they are; the count is per calling thread; a
    :class:`ThreadChoice`: as it chooses, decode by decode). The encoder
    sees the window plus ``short_context`` seconds, not 30 s (None: 30 s; see ``TranscribeOptions``).

    Its ``language`` attribute is the session's language: the one asked for, "en" for an
    English-only model, else the language Whisper detects on the first window with speech."""

    def fn(audio: np.ndarray, prompt: str) -> list[Word]:
        n = threads.n if isinstance(threads, ThreadChoice) else threads
        start = time.perf_counter()
        with cpu_threads(n):
            t = transcribe(None, model, tokenizer, np.asarray(audio, np.float32), language=fn.language,
                           beam_size=beam_size, temperature=0.0, initial_prompt=prompt or None,
                           condition_on_previous_text=False, skip_silent_tail=False,  # the streamer has its VAD
                           short_context=short_context, word_timestamps=word_timestamps, single_window=True,
                           sample_len=SAMPLE_BASE + math.ceil(SAMPLE_PER_SECOND * len(audio) / SAMPLE_RATE))
        if isinstance(threads, ThreadChoice):
            threads.record(n, time.perf_counter() - start, len(audio) / SAMPLE_RATE)
        words: list[Word] = []
        for s in t.segments:
            if s.words:
                words += [Word(w.text, w.start, w.end, w.probability) for w in s.words if w.text]
            else:
                words += _segment_words(s.start, s.end, s.text)
        words = clean_words(words)
        if fn.language is None and words:
            fn.language = t.language
        return words

    fn.language = language or (None if tokenizer.multilingual else "en")
    fn.threads = threads
    return fn


def _after(done: list[Word], hyp: list[Word]) -> int:
    """Index in ``hyp`` just past the words matching ``done`` (already committed from this window).

    Hypotheses of the same window differ slightly between runs, so the committed words are found
    by aligning the word sequences rather than by counting."""
    a = [word_key(w.word) for w in done]
    b = [word_key(w.word) for w in hyp]
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

    def __init__(self, transcribe_fn: TranscribeFn, vad: SileroVAD | None = None, step: float = D.LIVE_WHISPER_STEP,
                 min_silence: float = D.LIVE_WHISPER_MIN_SILENCE, threshold: float = 0.5, max_window: float = 20.0,
                 pre_roll: float = 0.5, post_roll: float = 0.3, prompt_chars: int = 200,
                 min_window: float = D.LIVE_WHISPER_MIN_WINDOW, agree_gap: float = D.LIVE_WHISPER_AGREE_GAP,
                 sample_rate: int = SAMPLE_RATE) -> None:
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
        # a hypothesis is checked against the one decoded at least this long before it (two decodes 0.4 s
        # apart see nearly the same audio: their agreement would commit mishearings)
        self.agree_gap = int(agree_gap * sr)
        self.reset()

    @property
    def language(self) -> str | None:
        return getattr(self.transcribe_fn, "language", None)

    def reset(self) -> None:
        self.buf = AudioBuffer()
        self.vad.reset()
        self._vad_done = 0  # samples scored by the VAD
        self._speech_start: int | None = None  # first speech sample in the window
        self._speech_end = 0  # end of the last speech frame
        self._last_decode = 0  # buffer end at the last decode
        self._words: list[Word] = []
        self._prev: list[Word] = []  # previous hypothesis (uncommitted part)
        self._hist: list[tuple[int, int, list[Word]]] = []  # (buffer end, words committed before, hypothesis)
        self._in_window = 0  # committed words that come from the current window
        self._floor = 0  # audio before this was committed by an utterance's final decode: never re-read
        self._after_cut = False  # the window restarted mid-speech (words may straddle its start)
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
                if self._speech_start is None:  # first decode a step into the speech, not on its first frame
                    self._speech_start = self._vad_done
                    self._last_decode = max(self._last_decode, self._vad_done)
                self._speech_end = self._vad_done + f
            self._vad_done += f
        if final and self._speech_start is not None:
            self._speech_end = self.buf.end

    def _prompt(self) -> str:
        """Committed text from before the window (words inside it would be skipped by Whisper)."""
        before = self._words[:len(self._words) - self._in_window]
        return join_words(before)[-self.prompt_chars:]

    def _window_start(self) -> int:
        if self._in_window:
            return self.buf.start
        return max(self.buf.start, self._floor, (self._speech_start or self.buf.start) - self.pre_roll)

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
        # drop what was already committed from this window, and (after a cut in mid-speech) a repeat
        # of the committed tail. A window after a pause starts past the committed audio: a phrase
        # said twice is two phrases
        if self._in_window:
            words = words[_after(self._words[-self._in_window:], words):]
        elif self._words and self._after_cut:
            tail = [word_key(w.word) for w in self._words[-5:]]
            for k in range(min(5, len(words)), 0, -1):
                if [word_key(w.word) for w in words[:k]] == tail[-k:]:
                    words = words[k:]
                    break
        return words, dt

    def _commit(self, words: list[Word], new: list[Word]) -> None:
        self._words += words
        new += words
        self._in_window += len(words)

    def _reference(self) -> list[Word] | None:
        """The newest hypothesis decoded at least ``agree_gap`` before now, less the words committed since."""
        old = [i for i, (end, _, _) in enumerate(self._hist) if end <= self.buf.end - self.agree_gap]
        if not old:
            return None
        del self._hist[:old[-1]]  # older ones are never a reference again
        _, before, hyp = self._hist[0]
        return hyp[len(self._words) - before:]

    def _agree(self, new: list[Word]) -> float:
        hyp, dt = self._decode(self.buf.end)
        self._last_decode = self.buf.end
        n = 0
        ref = self._reference()
        if ref is not None and self._window_len(self.buf.end) >= self.min_window:
            while n < min(len(hyp), len(ref)) and word_key(hyp[n].word) == word_key(ref[n].word):
                n += 1
        self._hist.append((self.buf.end, len(self._words), hyp))
        self._commit(hyp[:n], new)
        self._prev = hyp[n:]
        self.tentative = join_words(self._prev)
        return dt

    def _final(self, end: int, new: list[Word]) -> float:
        end = min(end, self.buf.end)
        hyp, dt = self._decode(end)
        self._commit(hyp, new)
        self._restart(end)
        return dt

    def _restart(self, at: int) -> None:
        self.buf.drop_before(at - self.pre_roll)
        self._floor, self._after_cut = at, False
        self._prev, self._in_window, self.tentative, self._hist = [], 0, "", []
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
        self._prev, self._in_window, self.tentative, self._hist = [], 0, "", []
        self._speech_start = self.buf.start
        self._after_cut = True


