"""Word timestamps from cross-attention: dynamic time warping over the alignment heads.

The window's text tokens are fed once more through the decoder (teacher forcing) while the
cross-attention scores of the alignment heads are kept. Each head's scores are softmaxed
over audio frames, standardised per frame, median-filtered, averaged over heads; DTW then
finds the monotonic path between tokens and audio frames (20 ms each), and a word starts
where the path first reaches its first token.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from ...audio.dsp import HOP_LENGTH, SAMPLE_RATE, TOKENS_PER_SECOND
from ...models.whisper import Whisper
from ...results import Word
from .tokenizer import Tokenizer

PREPEND_PUNCTUATIONS = "\"'“¿([{-"
APPEND_PUNCTUATIONS = "\"'.。,，!！?？:：”)]}、"


@dataclass
class WordTiming:
    word: str
    tokens: list[int]
    start: float
    end: float
    probability: float


def median_filter(x: torch.Tensor, width: int) -> torch.Tensor:
    """Median over a sliding window along the last axis (reflect padding)."""
    if width <= 1 or x.shape[-1] <= width // 2:
        return x
    pad = width // 2
    shape = x.shape
    y = F.pad(x.reshape(-1, 1, shape[-1]), (pad, pad), mode="reflect").reshape(*shape[:-1], -1)
    return y.unfold(-1, width, 1).sort(dim=-1).values[..., pad]


def dtw(cost: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Monotonic alignment path through ``cost`` (N, M): (row indices, column indices).

    Rows are vectorised: within a row, c[j] = x[j] + min(a[j], c[j-1]) with a[j] the best of the
    diagonal and upper neighbours, which is a prefix minimum over a[k] - S[k-1] plus S[j].
    """
    n, m = cost.shape
    acc = np.full((n + 1, m + 1), np.inf)
    acc[0, 0] = 0.0
    trace = np.zeros((n + 1, m + 1), np.int8)
    for i in range(1, n + 1):
        x = cost[i - 1].astype(np.float64)
        diag, up = acc[i - 1, :-1], acc[i - 1, 1:]
        a = np.minimum(diag, up)
        s = np.cumsum(x)
        s_prev = np.concatenate([[0.0], s[:-1]])
        with np.errstate(invalid="ignore"):
            c = s + np.minimum.accumulate(a - s_prev)
        acc[i, 1:] = c
        left = acc[i, :-1]
        # openai-whisper's tie order: diagonal, then up, else left
        t = np.full(m, 2, np.int8)
        t[(up < diag) & (up < left)] = 1
        t[(diag < up) & (diag < left)] = 0
        trace[i, 1:] = t
    trace[0, :] = 2
    trace[:, 0] = 1
    i, j = n, m
    rows, cols = [], []
    while i > 0 or j > 0:
        rows.append(i - 1)
        cols.append(j - 1)
        t = trace[i, j]
        if t == 0:
            i, j = i - 1, j - 1
        elif t == 1:
            i -= 1
        else:
            j -= 1
    return np.array(rows[::-1]), np.array(cols[::-1])


def alignment_heads(model: Whisper) -> list[tuple[int, int]]:
    heads = model.cfg.alignment_heads
    if heads:
        return [tuple(h) for h in heads]
    n, h = model.cfg.n_text_layer, model.cfg.n_text_head  # default: every head of the upper half
    return [(layer, head) for layer in range(n // 2, n) for head in range(h)]


@torch.inference_mode()
def find_alignment(model: Whisper, tokenizer: Tokenizer, text_tokens: list[int], audio_features: torch.Tensor,
                   num_frames: int, language: str | None = None, medfilt_width: int = 7) -> list[WordTiming]:
    """Word timings (seconds from the window start) for text tokens decoded from one window.

    ``audio_features`` is the encoder output (Ta, D) or (1, Ta, D); ``num_frames`` the mel frames
    of real audio in the window (the rest was padding).
    """
    if not text_tokens:
        return []
    xa = audio_features if audio_features.ndim == 3 else audio_features[None]
    sot = tokenizer.sot_sequence(language) + [tokenizer.no_timestamps]
    tokens = torch.tensor([sot + list(text_tokens) + [tokenizer.eot]], device=xa.device)
    logits, weights = model.decoder(tokens, model.decoder.cross_kv(xa), want_weights=True)
    probs = logits[0, len(sot) - 1:, :tokenizer.eot].float().softmax(-1)
    text_probs = probs[torch.arange(len(text_tokens)), torch.tensor(text_tokens)].tolist()
    w = torch.stack([weights[layer][0, head] for layer, head in alignment_heads(model)])  # (heads, T, Ta)
    w = w[:, :, :max(1, num_frames // 2)].softmax(-1)
    std, mean = torch.std_mean(w, dim=-2, keepdim=True, unbiased=False)
    w = (w - mean) / std.clamp_min(1e-10)
    w = median_filter(w, medfilt_width)
    matrix = w.mean(0)[len(sot) - 1:-1]  # rows predicting the text tokens and <|endoftext|>
    text_idx, time_idx = dtw(-matrix.double().cpu().numpy())

    words, word_tokens = tokenizer.split_words(list(text_tokens) + [tokenizer.eot])
    if len(word_tokens) <= 1:
        return []
    bounds = np.pad(np.cumsum([len(t) for t in word_tokens[:-1]]), (1, 0))
    jumps = np.pad(np.diff(text_idx), (1, 0), constant_values=1).astype(bool)
    jump_times = time_idx[jumps] / TOKENS_PER_SECOND
    starts, ends = jump_times[bounds[:-1]], jump_times[bounds[1:]]
    probs_w = [float(np.mean(text_probs[i:j])) for i, j in zip(bounds[:-1], bounds[1:])]
    return [WordTiming(word, toks, float(s), float(e), p)
            for word, toks, s, e, p in zip(words, word_tokens, starts, ends, probs_w)]


def merge_punctuations(alignment: list[WordTiming], prepended: str = PREPEND_PUNCTUATIONS,
                       appended: str = APPEND_PUNCTUATIONS) -> None:
    """Attach leading punctuation to the next word and trailing punctuation to the previous one."""
    i = len(alignment) - 2
    j = len(alignment) - 1
    while i >= 0:
        prev, cur = alignment[i], alignment[j]
        if prev.word.startswith(" ") and prev.word.strip() in prepended:
            cur.word = prev.word + cur.word
            cur.tokens = prev.tokens + cur.tokens
            prev.word, prev.tokens = "", []
        else:
            j = i
        i -= 1
    i, j = 0, 1
    while j < len(alignment):
        prev, cur = alignment[i], alignment[j]
        if not prev.word.endswith(" ") and cur.word in appended:
            prev.word = prev.word + cur.word
            prev.tokens = prev.tokens + cur.tokens
            cur.word, cur.tokens = "", []
        else:
            i = j
        j += 1


def add_word_timestamps(model: Whisper, tokenizer: Tokenizer, segments: list, audio_features: torch.Tensor,
                        num_frames: int, language: str | None = None) -> None:
    """Fill ``segment.words`` for the segments of one window (times in seconds from the file start)."""
    text_per_segment = [[t for t in s.tokens if t < tokenizer.eot] for s in segments]
    text_tokens = [t for toks in text_per_segment for t in toks]
    alignment = find_alignment(model, tokenizer, text_tokens, audio_features, num_frames, language)
    merge_punctuations(alignment)
    time_offset = segments[0].seek * HOP_LENGTH / SAMPLE_RATE
    # cap overly long words at segment-like boundaries (openai-whisper's heuristic)
    durations = np.array([w.end - w.start for w in alignment if w.word])
    durations = durations[durations.nonzero()]
    median = min(0.7, float(np.median(durations))) if len(durations) else 0.0
    max_dur = median * 2
    if len(durations) and max_dur > 0:
        for i in range(1, len(alignment)):
            w = alignment[i]
            if w.end - w.start > max_dur and w.word.strip() in ".。!！?？":
                w.end = w.start + max_dur
    k = 0  # walk the alignment with the segments' token counts
    for seg, toks in zip(segments, text_per_segment):
        count, words = 0, []
        while k < len(alignment) and count < len(toks):
            w = alignment[k]
            k += 1
            if w.word:
                start = round(time_offset + w.start, 3)
                end = round(time_offset + w.end, 3)
                words.append(Word(w.word, start, end, round(w.probability, 4)))
            count += len(w.tokens)
        if words:
            # keep words inside their segment when the alignment drifted past its edges
            if words[0].end - seg.start > 0.5 and words[0].start < seg.start:
                words[0].start = seg.start
            if words[-1].start < seg.end < words[-1].end:
                words[-1].end = max(words[-1].start, seg.end)
        seg.words = words
