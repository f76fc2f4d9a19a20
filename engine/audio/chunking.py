"""One model-agnostic overlap-add harness for every model that processes long audio.

``overlap_add(fn, source, segment, overlap)`` cuts the signal into segments of
``segment`` samples that overlap by ``overlap`` samples, runs ``fn`` on each (the model
knows nothing of chunking), cross-fades the overlapping parts with linear ramps and
normalises by the summed weights, so a constant model output stays constant.

Output is either collected into one array or handed, in order, to a ``sink`` as soon
as a region is final: with a streaming source and sink, memory stays bounded by a few
segments whatever the file length.
"""

from __future__ import annotations

from typing import Callable, Iterator, Protocol

import numpy as np

from ..jobs import JobState

SegmentFn = Callable[[np.ndarray], np.ndarray]
Sink = Callable[[np.ndarray, int], None]


class Source(Protocol):
    """A long signal read on demand (e.g. a file being decoded): ``(..., length)`` samples."""

    length: int

    def read(self, start: int, stop: int) -> np.ndarray: ...


class ArraySource:
    def __init__(self, audio: np.ndarray) -> None:
        self.audio = audio
        self.length = audio.shape[-1]

    def read(self, start: int, stop: int) -> np.ndarray:
        return self.audio[..., start:stop]


def fade_window(segment: int, overlap: int) -> np.ndarray:
    """Flat window with linear ramps of ``overlap`` samples at both ends (never exactly zero)."""
    w = np.ones(segment, np.float32)
    if overlap > 0:
        ramp = (np.arange(overlap, dtype=np.float32) + 0.5) / overlap
        w[:overlap] = ramp
        w[-overlap:] = np.minimum(w[-overlap:], ramp[::-1])
    return w


def segment_starts(length: int, segment: int, overlap: int) -> list[int]:
    stride = segment - overlap
    return list(range(0, max(1, length - overlap), stride)) if length > segment else [0]


def overlap_add(fn: SegmentFn, source: np.ndarray | Source, segment: int, overlap: int,
                state: JobState | None = None, sink: Sink | None = None,
                out_length_ratio: int = 1) -> np.ndarray | None:
    """Run ``fn`` over overlapping segments and cross-fade the results.

    ``fn`` takes ``(..., segment)`` and returns ``(..., segment * out_length_ratio)`` with any
    leading shape (e.g. ``(stems, channels, n)``). The last segment is zero-padded to full
    length and its output trimmed. Returns the whole output ``(..., length)`` or, with
    ``sink``, calls ``sink(block, start)`` for consecutive final blocks and returns None.
    Progress and cancellation go through ``state``.
    """
    if not 0 <= overlap < segment:
        raise ValueError(f"overlap ({overlap}) must be in [0, segment={segment})")
    src = ArraySource(source) if isinstance(source, np.ndarray) else source
    length = src.length
    if length <= 0:
        raise ValueError("empty input")
    r = out_length_ratio
    stride = segment - overlap
    starts = segment_starts(length, segment, overlap)
    window = np.repeat(fade_window(segment, overlap), r) if r > 1 else fade_window(segment, overlap)
    acc: np.ndarray | None = None  # weighted output of the current segment span, (..., segment*r)
    wacc = np.zeros(segment * r, np.float32)
    out: np.ndarray | None = None
    emitted = 0

    def emit(block: np.ndarray, start: int) -> None:
        nonlocal out
        if sink is not None:
            sink(block, start)
            return
        if out is None:
            out = np.zeros(block.shape[:-1] + (length * r,), block.dtype)
        out[..., start:start + block.shape[-1]] = block

    for k, s in enumerate(starts):
        if state is not None:
            state.check()
        chunk = src.read(s, min(s + segment, length))
        n = chunk.shape[-1]
        if n < segment:
            pad = [(0, 0)] * (chunk.ndim - 1) + [(0, segment - n)]
            chunk = np.pad(chunk, pad)
        y = np.asarray(fn(chunk))
        if state is not None:  # cancelled while the model ran: deliver nothing more
            state.check()
        if y.shape[-1] != segment * r:
            raise ValueError(f"segment function returned {y.shape[-1]} samples for {segment} "
                             f"(expected {segment * r})")
        if acc is None:
            acc = np.zeros(y.shape[:-1] + (segment * r,), np.float32)
        # weights never reach zero, so edges without a neighbour normalise to weight 1
        acc += y * window
        wacc += window
        last = k == len(starts) - 1
        if last:
            valid = (length - s) * r
            emit(acc[..., :valid] / wacc[:valid], emitted)
            emitted += valid
        else:
            final = stride * r
            emit(acc[..., :final] / wacc[:final], emitted)
            emitted += final
            acc = np.concatenate([acc[..., final:], np.zeros_like(acc[..., :final])], axis=-1)
            wacc = np.concatenate([wacc[final:], np.zeros(final, np.float32)])
        if state is not None:
            state.update(progress=(k + 1) / len(starts))
    return out


class StreamSource:
    """A :class:`Source` over a block iterator, keeping only the unread tail in memory.

    Reads must move forward (overlapping the previous read is fine), as overlap_add does.
    """

    def __init__(self, blocks: Iterator[np.ndarray], length: int, channels: int = 2) -> None:
        self.blocks = blocks
        self.length = length
        self.channels = channels
        self.buf = np.zeros((channels, 0), np.float32)
        self.buf_start = 0
        self.exhausted = False
        self.extra = 0  # samples the stream had beyond `length` (should be 0)

    def read(self, start: int, stop: int) -> np.ndarray:
        if start < self.buf_start:
            raise ValueError("StreamSource reads must move forward")
        drop = start - self.buf_start
        if drop:
            self.buf = self.buf[:, drop:]
            self.buf_start = start
        parts = [self.buf]
        have = self.buf.shape[1]
        while have < stop - start and not self.exhausted:
            try:
                b = next(self.blocks)
            except StopIteration:
                self.exhausted = True
                break
            parts.append(b)
            have += b.shape[1]
        if len(parts) > 1:
            self.buf = np.concatenate(parts, axis=1)
        out = self.buf[:, : stop - start]
        if out.shape[1] < stop - start:
            out = np.pad(out, ((0, 0), (0, stop - start - out.shape[1])))
        return out
