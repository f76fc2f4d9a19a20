"""CTC decoding: greedy and prefix beam search, optional lexicon + word n-gram rescoring, timestamps.

Inputs are per-frame logits or log-probabilities ``(T, V)`` from a CTC model (one frame per
``frame_seconds``, 20 ms for wav2vec2/HuBERT). A :class:`CTCVocab` says which id is the blank
and which token separates words.

* :func:`greedy_ids` / :func:`ids_to_text` reproduce ``Wav2Vec2CTCTokenizer.decode`` exactly
  (collapse repeats, drop blanks, delimiter -> space, strip).
* :func:`greedy` returns a :class:`Transcript` with character and word timestamps computed from
  the frame indices (as ``output_char_offsets``/``output_word_offsets`` do).
* :func:`beam_search` is a CTC prefix beam search. With a :class:`WordLM` (unigram/bigram counts
  over a word list, optionally a closed lexicon) it adds ``alpha * log P(word | previous)`` and
  ``beta`` per word whenever a word is completed, and with ``lexicon_only`` prunes prefixes that
  no lexicon word starts with, so misspelled-but-plausible words snap to real ones.

pyctcdecode + kenlm were considered: kenlm ships only as a source distribution that needs a C++
build, so the lexicon / word n-gram rescoring is implemented here in plain Python.
"""

from __future__ import annotations

import math
import re
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from itertools import groupby
from typing import Iterable, Sequence

import numpy as np

from ..audio import io as audio_io
from ..audio.chunking import ArraySource, StreamSource, overlap_add, segment_starts
from ..results import Transcript, Word

FRAME_SECONDS = 0.02  # wav2vec2 / HuBERT: 320 samples at 16 kHz
NEG_INF = -float("inf")


@dataclass
class CTCVocab:
    tokens: list[str]  # id -> token string
    blank: int = 0
    delimiter: str = "|"
    do_lower_case: bool = False
    clean_up_spaces: bool = False

    @classmethod
    def from_config(cls, cfg) -> "CTCVocab":
        """From a :class:`engine.models.wav2vec2.Wav2Vec2Config` (vocab.json + tokenizer config)."""
        tokens = list(cfg.vocab) or [f"<{i}>" for i in range(cfg.vocab_size)]  # no vocab.json: ids
        tokens += [f"<{i}>" for i in range(len(tokens), cfg.vocab_size)]
        return cls(tokens, cfg.pad_token_id, cfg.word_delimiter_token, cfg.do_lower_case,
                   cfg.clean_up_tokenization_spaces)

    @property
    def delimiter_id(self) -> int | None:
        try:
            return self.tokens.index(self.delimiter)
        except ValueError:
            return None

    def char(self, i: int) -> str:
        t = self.tokens[i]
        t = " " if t == self.delimiter else t
        return t.lower() if self.do_lower_case else t


@dataclass
class Hypothesis:
    """One decoding of a logit sequence: its text, characters and words with times, and score."""

    text: str
    chars: list[dict] = field(default_factory=list)  # {"char", "id", "start_frame", "end_frame", "start", "end"}
    words: list[Word] = field(default_factory=list)
    score: float = 0.0


def log_softmax(logits: np.ndarray) -> np.ndarray:
    x = np.asarray(logits, np.float64)
    m = x.max(-1, keepdims=True)
    return x - m - np.log(np.exp(x - m).sum(-1, keepdims=True))


def _clean_up(text: str) -> str:
    for a, b in ((" .", "."), (" ?", "?"), (" !", "!"), (" ,", ","), (" ' ", "'"), (" n't", "n't"),
                 (" 'm", "'m"), (" 's", "'s"), (" 've", "'ve"), (" 're", "'re")):
        text = text.replace(a, b)
    return text


# ---------------------------------------------------------------------------------------------
# greedy


def greedy_ids(logits: np.ndarray) -> np.ndarray:
    """Best id per frame, (T, V) -> (T,)."""
    return np.asarray(logits).argmax(-1)


def ids_to_text(ids: Sequence[int], vocab: CTCVocab) -> str:
    """Frame ids -> text, exactly like ``Wav2Vec2CTCTokenizer.decode`` (special tokens kept)."""
    chars = [vocab.tokens[k] for k, _ in groupby(int(i) for i in ids)]
    pad = vocab.tokens[vocab.blank]
    text = "".join(" " if c == vocab.delimiter else c for c in chars if c != pad).strip()
    if vocab.do_lower_case:
        text = text.lower()
    return _clean_up(text) if vocab.clean_up_spaces else text


def char_offsets(ids: Sequence[int], vocab: CTCVocab, frame_offset: int = 0,
                 frame_seconds: float = FRAME_SECONDS) -> list[dict]:
    """One entry per emitted character (runs of equal ids collapsed, blanks dropped).

    ``start_frame`` is the first frame of the run, ``end_frame`` one past its last frame.
    """
    out, t = [], 0
    for k, run in groupby(int(i) for i in ids):
        n = len(list(run))
        if k != vocab.blank:
            s, e = frame_offset + t, frame_offset + t + n
            out.append({"char": vocab.char(k), "id": k, "start_frame": s, "end_frame": e,
                        "start": round(s * frame_seconds, 3), "end": round(e * frame_seconds, 3)})
        t += n
    return out


def words_from_chars(chars: list[dict]) -> list[Word]:
    """Characters (from :func:`char_offsets`) grouped into words at spaces; times from the characters."""
    words: list[Word] = []
    cur: list[dict] = []

    def flush() -> None:
        if cur:
            words.append(Word("".join(c["char"] for c in cur), cur[0]["start"], cur[-1]["end"]))
            cur.clear()

    for c in chars:
        if c["char"] == " ":
            flush()
        else:
            cur.append(c)
    flush()
    return words


def greedy(logits: np.ndarray, vocab: CTCVocab, frame_offset: int = 0,
           frame_seconds: float = FRAME_SECONDS) -> Hypothesis:
    ids = greedy_ids(logits)
    chars = char_offsets(ids, vocab, frame_offset, frame_seconds)
    lp = log_softmax(logits)
    score = float(lp[np.arange(len(ids)), ids].sum()) if len(ids) else 0.0
    return Hypothesis(ids_to_text(ids, vocab), chars, words_from_chars(chars), score)


# ---------------------------------------------------------------------------------------------
# word language model / lexicon


class WordLM:
    """Unigram + bigram word model with add-k smoothing, interpolated; natural-log probabilities.

    ``lexicon`` is the closed word list (every word with a count); prefixes of its words are kept
    in a set so a beam can be restricted to spellings that lead to a known word.
    """

    def __init__(self, unigrams: dict[str, float], bigrams: dict[tuple[str, str], float] | None = None,
                 k: float = 0.5, bigram_weight: float = 0.6, unk_logprob: float = -12.0,
                 lower: bool = False) -> None:
        self.lower = lower
        norm = (lambda w: w.lower()) if lower else (lambda w: w.upper())
        self.norm = norm
        self.unigrams: Counter = Counter()
        for w, c in unigrams.items():
            self.unigrams[norm(w)] += c
        self.bigrams: Counter = Counter()
        for (a, b), c in (bigrams or {}).items():
            self.bigrams[(norm(a), norm(b))] += c
        self.context: Counter = Counter()
        for (a, _), c in self.bigrams.items():
            self.context[a] += c
        self.k, self.lam, self.unk = k, bigram_weight, unk_logprob
        self.total = sum(self.unigrams.values())
        self.V = max(1, len(self.unigrams))
        self.prefixes = {w[:i] for w in self.unigrams for i in range(len(w) + 1)}
        self._cache: dict[tuple[str | None, str], float] = {}

    @classmethod
    def from_text(cls, text: str, **kw) -> "WordLM":
        """Counts from running text (any casing, punctuation except apostrophes dropped)."""
        sentences = [re.findall(r"[A-Za-z']+", s) for s in re.split(r"[.!?\n]+", text)]
        uni: Counter = Counter()
        bi: Counter = Counter()
        for words in sentences:
            words = [w.upper() for w in words]
            uni.update(words)
            bi.update(zip(words, words[1:]))
        return cls(dict(uni), dict(bi), **kw)

    @classmethod
    def from_words(cls, words: Iterable[str], **kw) -> "WordLM":
        return cls(dict(Counter(w for w in words if w)), **kw)

    def is_prefix(self, partial: str) -> bool:
        return self.norm(partial) in self.prefixes

    def is_word(self, w: str) -> bool:
        return self.norm(w) in self.unigrams

    def logprob(self, word: str, prev: str | None = None) -> float:
        key = (prev, word)
        if key in self._cache:
            return self._cache[key]
        w = self.norm(word)
        if w not in self.unigrams:
            lp = self.unk
        else:
            p_uni = (self.unigrams[w] + self.k) / (self.total + self.k * self.V)
            p = p_uni
            if prev is not None:
                v = self.norm(prev)
                if self.context[v]:
                    p = self.lam * self.bigrams[(v, w)] / self.context[v] + (1 - self.lam) * p_uni
            lp = math.log(p)
        self._cache[key] = lp
        return lp


# ---------------------------------------------------------------------------------------------
# prefix beam search


def _lae(a: float, b: float) -> float:
    if a == NEG_INF:
        return b
    if b == NEG_INF:
        return a
    m = max(a, b)
    return m + math.log1p(math.exp(-abs(a - b)))


@dataclass
class _Info:
    lm: float  # alpha * sum log P(words) + beta * n_words for completed words
    prev: str | None  # last completed word (bigram context)
    partial: str  # characters of the word being spelled
    starts: tuple[int, ...]  # frame at which each token of the prefix was emitted, on its most probable path
    valid: bool = True
    emit: float = NEG_INF  # log probability of the best path that emitted the last token at starts[-1]
    ends: tuple[int, ...] = ()  # one past the last frame of each token's run on that path


def beam_search(logits: np.ndarray, vocab: CTCVocab, beam_width: int = 16, lm: WordLM | None = None,
                alpha: float = 0.5, beta: float = 1.0, lexicon_only: bool = False,
                token_prune: float = -10.0, top_k: int = 12, frame_offset: int = 0,
                frame_seconds: float = FRAME_SECONDS, n_best: int = 1) -> Hypothesis | list[Hypothesis]:
    """CTC prefix beam search over ``logits`` (T, V); returns the best :class:`Hypothesis`.

    Per frame only tokens within ``token_prune`` nats of the best (at most ``top_k``) are expanded.
    With ``lm``: each completed word adds ``alpha * lm.logprob(word, prev) + beta``; with
    ``lexicon_only`` a prefix whose current word is not the start of a lexicon word is dropped.
    Character times are the frames where the most probable path into each prefix emitted its characters
    (not where some improbable path first created the prefix).
    """
    lp = log_softmax(logits)
    T, V = lp.shape
    blank, delim = vocab.blank, vocab.delimiter_id
    # prefix -> [log P(ending in blank), log P(ending in non-blank)]
    beams: dict[tuple[int, ...], list[float]] = {(): [0.0, NEG_INF]}
    info: dict[tuple[int, ...], _Info] = {(): _Info(0.0, None, "", ())}

    def extend(prefix: tuple[int, ...], c: int, t: int, emit: float) -> tuple[int, ...] | None:
        new = prefix + (c,)
        if new in info:
            known = info[new]
            if known.valid and emit > known.emit:  # a more probable path emits the token here
                known.starts, known.emit = info[prefix].starts + (t,), emit
                known.ends = info[prefix].ends + (t + 1,)
            return new if known.valid else None
        old = info[prefix]
        if c == delim:
            if not old.partial:  # a delimiter with no word before it: stays the same prefix
                return prefix
            word = old.partial
            score = old.lm
            if lm is not None:
                if lexicon_only and not lm.is_word(word):
                    info[new] = _Info(0, None, "", (), valid=False)
                    return None
                score += alpha * lm.logprob(word, old.prev) + beta
            info[new] = _Info(score, word, "", old.starts + (t,), emit=emit, ends=old.ends + (t + 1,))
            return new
        partial = old.partial + vocab.tokens[c]
        if lm is not None and lexicon_only and not lm.is_prefix(partial):
            info[new] = _Info(0, None, "", (), valid=False)
            return None
        info[new] = _Info(old.lm, old.prev, partial, old.starts + (t,), emit=emit, ends=old.ends + (t + 1,))
        return new

    for t in range(T):
        row = lp[t]
        order = np.argsort(row)[::-1][:top_k]
        best = row[order[0]]
        cands = [int(c) for c in order if row[c] >= best + token_prune and c != blank]
        nxt: dict[tuple[int, ...], list[float]] = defaultdict(lambda: [NEG_INF, NEG_INF])
        for prefix, (pb, pnb) in beams.items():
            total = _lae(pb, pnb)
            e = nxt[prefix]
            e[0] = _lae(e[0], total + row[blank])
            last = prefix[-1] if prefix else None
            for c in cands:
                p = row[c]
                if c == last:
                    e[1] = _lae(e[1], pnb + p)  # repeat collapses into the same prefix
                    if pnb + p >= total + row[blank]:  # the token goes on rather than falls silent
                        inf = info[prefix]
                        inf.ends = inf.ends[:-1] + (t + 1,)
                    if pb > NEG_INF:
                        new = extend(prefix, c, t, pb + p)  # a repeat after a blank is a new character
                        if new is not None:
                            n = nxt[new]
                            n[1] = _lae(n[1], pb + p)
                    continue
                new = extend(prefix, c, t, total + p)
                if new is None:
                    continue
                n = nxt[new]
                n[1] = _lae(n[1], total + p)
        scored = sorted(nxt.items(), key=lambda kv: _lae(*kv[1]) + info[kv[0]].lm, reverse=True)
        beams = dict(scored[:beam_width])

    # finish the word in progress
    finals = []
    for prefix, (pb, pnb) in beams.items():
        inf = info[prefix]
        score = _lae(pb, pnb) + inf.lm
        if lm is not None and inf.partial:
            if lexicon_only and not lm.is_word(inf.partial):
                continue
            score += alpha * lm.logprob(inf.partial, inf.prev) + beta
        finals.append((score, prefix))
    if not finals:  # every beam ended inside a non-word: fall back to the best acoustic prefix
        finals = [(_lae(*v), k) for k, v in beams.items()]
    finals.sort(key=lambda x: x[0], reverse=True)
    out = []
    for score, prefix in finals[:max(1, n_best)]:
        starts, ends = info[prefix].starts, info[prefix].ends
        chars = []
        for i, (c, s) in enumerate(zip(prefix, starts)):
            e = min(T, max(ends[i] if i < len(ends) else s + 1, s + 1))
            chars.append({"char": vocab.char(c), "id": c, "start_frame": frame_offset + s,
                          "end_frame": frame_offset + e, "start": round((frame_offset + s) * frame_seconds, 3),
                          "end": round((frame_offset + e) * frame_seconds, 3)})
        text = re.sub(r" +", " ", "".join(vocab.char(c) for c in prefix)).strip()
        if vocab.clean_up_spaces:
            text = _clean_up(text)
        out.append(Hypothesis(text, chars, words_from_chars(chars), float(score)))
    return out if n_best > 1 else out[0]


# ---------------------------------------------------------------------------------------------
# whole files: logits through the overlap-add harness, then decoding


def long_logits(model, audio, state=None, segment: float = 20.0, overlap: float = 2.0) -> np.ndarray:
    """CTC logits ``(T, V)`` of a long signal (16 kHz mono array or a file path), memory bounded.

    Segments of ``segment`` seconds overlapping by ``overlap`` go through
    :func:`engine.audio.chunking.overlap_add`; each segment's logits are held at the model's frame rate
    (repeated over the samples of their frame) so the harness cross-fades them, and the frame
    values are read back from the merged signal. ``T`` equals the whole-signal frame count.
    """
    cfg = model.config
    sr, stride, field = cfg.sampling_rate, cfg.frame_stride, cfg.receptive_field
    seg = max(2, round(segment * sr / stride)) * stride
    ov = min(seg - stride, max(0, round(overlap * sr / stride)) * stride)
    if isinstance(audio, np.ndarray):
        src = ArraySource(np.asarray(audio, np.float32)[None])
    else:
        info = audio_io.info(audio)
        length = int(round(info.frames * sr / info.samplerate))
        blocks = (np.asarray(b, np.float32).reshape(1, -1) for b in audio_io.stream(audio, sr=sr, mono=True))
        src = StreamSource(blocks, length, channels=1)
    length = src.length
    n_frames = cfg.num_frames(length)
    if n_frames <= 0:
        return np.zeros((0, cfg.vocab_size), np.float32)
    frames: list[np.ndarray] = []
    starts = iter(segment_starts(length, seg, ov))

    def fn(chunk: np.ndarray) -> np.ndarray:  # (1, seg) -> (V, seg)
        # the harness zero-pads the last segment: run the model on the real samples only
        start = next(starts)
        if start + seg >= length:  # the last segment: exactly the frames of the real samples
            lg = model.logits(chunk[0, :max(length - start, field)])
        else:  # its last frame reaches 80 samples past the segment (they lie in the cross-fade)
            lg = model.logits(np.pad(chunk[0], (0, field - stride)))
        out = np.repeat(lg.T, stride, axis=1)
        if out.shape[1] < seg:
            out = np.pad(out, ((0, 0), (0, seg - out.shape[1])), mode="edge")
        return out[:, :seg]

    def sink(block: np.ndarray, start: int) -> None:
        first = (-start) % stride
        frames.append(block[:, first::stride].T.copy())

    overlap_add(fn, src, seg, ov, state=state, sink=sink)
    out = np.concatenate(frames)
    return out[:n_frames]


def transcribe_ctc(state, model, audio, beam_width: int = 1, lm: WordLM | None = None, alpha: float = 0.5,
                   beta: float = 1.0, lexicon_only: bool = False, segment: float = 20.0) -> Transcript:
    """Transcribe a file or 16 kHz array with a CTC model: greedy (``beam_width`` 1) or beam search.

    Word times come from the model's own frame stride (the product of its conv strides)."""
    cfg = model.config
    vocab = CTCVocab.from_config(cfg)
    logits = long_logits(model, audio, state, segment=segment)
    if state is not None:
        state.update(status="decoding")
    fs = cfg.frame_stride / cfg.sampling_rate
    if beam_width <= 1 and lm is None:
        hyp = greedy(logits, vocab, frame_seconds=fs)
    else:
        hyp = beam_search(logits, vocab, beam_width=max(2, beam_width), lm=lm, alpha=alpha, beta=beta,
                          lexicon_only=lexicon_only, frame_seconds=fs)
    duration = len(audio) / cfg.sampling_rate if isinstance(audio, np.ndarray) else audio_io.info(audio).duration
    return Transcript.from_words(hyp.words, duration, language=None,
                                 source="" if isinstance(audio, np.ndarray) else str(audio))
