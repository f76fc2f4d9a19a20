"""Word error rate on normalised text, for accuracy tests, benchmarks and evaluations."""

from __future__ import annotations

import re

_ABBREVIATIONS = {"mr": "mister", "mrs": "missus", "dr": "doctor", "st": "saint"}


def normalize_words(text: str) -> list[str]:
    """Lower case, hyphens as spaces, punctuation dropped, a few abbreviations spelled out."""
    text = re.sub(r"[^a-z0-9' ]+", " ", text.lower().replace("-", " "))
    return [_ABBREVIATIONS.get(w, w) for w in text.split()]


def word_errors(ref: str, hyp: str) -> tuple[int, int]:
    """(substitutions + insertions + deletions, reference words) after normalisation."""
    r, h = normalize_words(ref), normalize_words(hyp)
    d = list(range(len(h) + 1))  # edit distance row by row
    for i in range(1, len(r) + 1):
        prev, d[0] = d[0], i
        for j in range(1, len(h) + 1):
            prev, d[j] = d[j], min(d[j] + 1, d[j - 1] + 1, prev + (r[i - 1] != h[j - 1]))
    return d[len(h)], len(r)


def wer(refs: str | list[str], hyps: str | list[str]) -> float:
    """Word error rate of one transcript or of a corpus (errors summed over all references)."""
    if isinstance(refs, str):
        refs, hyps = [refs], [hyps]  # type: ignore[list-item]
    errors = words = 0
    for ref, hyp in zip(refs, hyps, strict=True):
        e, n = word_errors(ref, hyp)
        errors, words = errors + e, words + n
    return errors / max(1, words)
