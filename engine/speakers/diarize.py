"""Who spoke when: speaker turns of a file, and transcripts with speakers.

:func:`diarize` (a job function, as the Speakers panel and ``main.py transcribe --speakers`` run it):

1. the file is streamed at 16 kHz mono through Silero VAD (32 ms frames); voiced regions are the
   stretches above ``vad_threshold`` (ended by ``min_silence`` below ``vad_threshold - 0.15``,
   padded, at least ``min_speech`` long), cut every ``MAX_REGION`` seconds;
2. each closed region is embedded with the GE2E speaker encoder (``engine.models.ge2e``) in
   windows of ``window`` seconds every ``step`` seconds (a region shorter than a window is one
   window of its own length): only a region and a batch of windows are held, whatever the length;
3. the windows are clustered agglomeratively (average linkage on cosine distance): into the
   ``speakers`` given, or, when ``speakers`` is None, cut at ``threshold`` (the cosine distance
   at which two groups of windows stop being one voice, measured on real recordings, see
   ``benchmarks/bench_diarization.py``). Windows shorter than ``RELIABLE`` (too short to shape
   the clusters) and, on long files, windows beyond ``MAX_CLUSTER`` then join the nearest cluster
   centroid (every window does: one k-means step);
4. inside each region the windows' speakers are re-chosen by Viterbi (:func:`resegment`): a change
   of speaker without a pause must gain ``change_penalty`` in cosine similarity to the centroids;
5. each stretch of a region goes to the window whose centre is nearest; runs shorter than
   ``min_turn`` join their neighbour; runs of one speaker with at most ``merge_gap`` of silence
   between them become one :class:`~engine.results.SpeakerTurn`. Speakers are labelled "S1",
   "S2"... in order of first appearance. Silence (or no speech at all) gives no turns.

:func:`assign_speakers` gives every word and segment of a transcript the speaker of the turn it
overlaps most (segments holding words of several speakers are split at the changes), with the
names the user gave. :func:`transcribe_with_speakers` runs both and merges them.
"""

from __future__ import annotations

import dataclasses
import os
from typing import Iterator, Mapping

import numpy as np

from ..audio import SPEECH_RATE
from ..audio import io as audio_io
from ..errors import SonoscopeError
from ..jobs import JobState, null_state
from ..results import Segment, SpeakerTurn, Transcript, Word

MODEL = "ge2e-resemblyzer"
FRAME = 512  # Silero VAD frame at 16 kHz (32 ms)
HOP = 160  # GE2E mel hop (10 ms)
WINDOW = 1.5  # seconds of audio per embedding
STEP = 0.75  # seconds between windows
MIN_REGION = 0.25  # voiced regions shorter than this are not embedded (they take a neighbour's speaker)
RELIABLE = 0.5  # windows at least this long shape the clusters; shorter ones join the nearest one
THRESHOLD = 0.36  # cosine distance (average linkage) where the speaker count estimate cuts the tree
CHANGE_PENALTY = 0.2  # cosine similarity a change of speaker inside a pause-free region must gain
MAX_SPEAKERS = 10
MAX_REGION = 30.0  # seconds: longer voiced stretches are embedded piece by piece
MAX_CLUSTER = 2000  # windows clustered at once; beyond, a spread subset (the rest by centroid)
BATCH = 32  # windows per encoder call


@dataclasses.dataclass
class _Window:
    region: int
    start: int  # samples
    end: int
    frames: int


# ---------------------------------------------------------------------------------------------
# voiced regions, online


class _Regions:
    """Silero-style speech regions from per-frame speech probabilities, one frame at a time.

    A region opens at a frame >= ``threshold`` and closes after ``min_silence`` frames below
    ``threshold - 0.15``; it is kept when it spans at least ``min_speech`` frames, and padded by
    ``pad`` samples on each side (never over the previous region). A region reaching ``max_len``
    samples is cut there and goes on as a new one. Regions are (start, end) in samples."""

    def __init__(self, threshold: float, min_speech: int, min_silence: int, pad: int, max_len: int) -> None:
        self.threshold, self.neg = threshold, max(0.01, threshold - 0.15)
        self.min_speech, self.min_silence, self.max_len = min_speech, min_silence, max_len
        self.pad = min(pad, min_silence * FRAME)  # the padding after a region is decoded when it closes
        self.start: int | None = None  # first frame of the open region
        self.cont = False  # the open region continues one cut at max_len
        self.last = -1  # last frame >= threshold
        self.prev_end = 0  # sample where the previous region ended

    def push(self, i: int, p: float) -> list[tuple[int, int]]:
        out = []
        if p >= self.threshold:
            if self.start is None:
                self.start, self.cont = i, False
            self.last = i
        elif self.start is not None and p < self.neg and i - self.last >= self.min_silence:
            out += self._close(self.last + 1)
        if self.start is not None and (i + 1 - self.start) * FRAME >= self.max_len:
            out += self._close(i + 1, cut=True)
        return out

    def finish(self) -> list[tuple[int, int]]:
        return self._close(self.last + 1) if self.start is not None else []

    def _close(self, end_frame: int, cut: bool = False) -> list[tuple[int, int]]:
        start, cont = self.start, self.cont
        self.start, self.cont = (end_frame, True) if cut else (None, False)
        if end_frame <= start or (not cont and not cut and end_frame - start < self.min_speech):
            return []
        s = max(self.prev_end, start * FRAME - self.pad)
        e = end_frame * FRAME + (0 if cut else self.pad)
        self.prev_end = e
        return [(s, e)]


# ---------------------------------------------------------------------------------------------
# stage 1-2: voiced regions and their window embeddings


@dataclasses.dataclass
class Embedded:
    """What the streaming pass keeps: voiced regions, their windows and one embedding per window."""

    regions: list[tuple[int, int]]  # samples at 16 kHz
    windows: list[_Window]
    embeddings: np.ndarray  # (K, 256)
    duration: float  # seconds


def _check_speakers(speakers) -> int | None:
    if speakers is None:
        return None
    if isinstance(speakers, bool) or not isinstance(speakers, (int, np.integer)) or speakers < 1:
        raise SonoscopeError(f"the number of speakers must be a whole number of at least 1, not {speakers!r} "
                             f"(or None to estimate it)")
    if speakers > 50:
        raise SonoscopeError(f"{speakers} speakers is more than diarization can tell apart (at most 50)")
    return int(speakers)


def _blocks(path) -> tuple[Iterator[np.ndarray], int]:
    """16 kHz mono blocks of a file (streamed) or of a 16 kHz mono array, and the expected sample count."""
    if isinstance(path, np.ndarray):
        a = np.asarray(path, np.float32)
        if a.ndim != 1:
            raise SonoscopeError(f"an array to diarize must be 16 kHz mono, shape (samples,), not {a.shape}")
        if not np.isfinite(a).all():
            raise SonoscopeError("the audio holds NaN or infinite samples")
        return iter([a[i:i + (1 << 16)] for i in range(0, len(a), 1 << 16)]), len(a)
    info = audio_io.info(path)  # a missing, empty or broken file fails here, with its reason
    return audio_io.stream(path, sr=SPEECH_RATE, mono=True), int(info.frames * SPEECH_RATE / info.samplerate)


def embed_voiced(state: JobState | None, path: str | os.PathLike | np.ndarray, encoder, *, window: float = WINDOW,
                 step: float = STEP, vad_threshold: float = 0.5, min_speech: float = 0.25,
                 min_silence: float = 0.25, speech_pad: float = 0.05, threads: int | None = 1,
                 vad=None) -> Embedded:
    """Stages 1-2: stream the audio through the VAD and embed the windows of each voiced region
    (``encoder``: a loaded :class:`~engine.models.ge2e.GE2E`). Holds one region and one batch at a time."""
    from ..audio.vad import SileroVAD
    from ..compute import cpu_threads
    from ..models.ge2e import mel_spectrogram

    state = state or null_state()
    blocks, total = _blocks(path)
    vad = vad or SileroVAD()
    vad.reset()
    tracker = _Regions(vad_threshold, max(1, round(min_speech * SPEECH_RATE / FRAME)),
                       max(1, round(min_silence * SPEECH_RATE / FRAME)), round(speech_pad * SPEECH_RATE),
                       round(MAX_REGION * SPEECH_RATE))
    win, hop = max(1, round(window * SPEECH_RATE / HOP)), max(1, round(step * SPEECH_RATE / HOP))
    regions: list[tuple[int, int]] = []
    windows: list[_Window] = []
    embeds: list[np.ndarray] = []
    pending: list[tuple[_Window, object]] = []

    def embed_pending(force: bool = False) -> None:
        while pending and (force or len(pending) >= BATCH):
            chunk = pending[:BATCH]
            del pending[:BATCH]
            state.check()
            embeds.append(encoder.embed_frames([m for _, m in chunk], batch=BATCH))
            windows.extend(w for w, _ in chunk)

    def add_region(s: int, e: int, audio: np.ndarray) -> None:
        regions.append((s, e))
        if len(audio) < MIN_REGION * SPEECH_RATE:
            return
        mel = mel_spectrogram(audio)  # (N, 40), frame f centred on sample s + 160 f
        n = mel.shape[0]
        starts = [0] if n <= win else list(range(0, n - win + 1, hop))
        if n > win and starts[-1] + win < n:
            starts.append(n - win)  # a last window ending with the region
        for f0 in starts:
            f1 = min(n, f0 + win)
            pending.append((_Window(len(regions) - 1, s + f0 * HOP, min(e, s + f1 * HOP), f1 - f0), mel[f0:f1]))
        embed_pending()

    with cpu_threads(threads):  # the mel STFTs and the LSTM
        buf, base, pos, frame_i = np.zeros(0, np.float32), 0, 0, 0  # buf[0] is sample `base`; VAD has seen `pos`
        for block in blocks:
            state.check()
            buf = np.concatenate([buf, np.asarray(block, np.float32).reshape(-1)])
            while pos + FRAME <= base + len(buf):
                p = vad(buf[pos - base:pos - base + FRAME])
                pos += FRAME
                for s, e in tracker.push(frame_i, p):
                    add_region(s, e, buf[s - base:e - base])
                frame_i += 1
            # keep what the open region (or the padding before the next one) needs
            keep = tracker.start * FRAME - tracker.pad if tracker.start is not None else pos - tracker.pad
            keep = max(base, keep)
            buf, base = buf[keep - base:], keep
            state.update(progress=min(1.0, pos / max(1, total)))
        end = base + len(buf)
        for s, e in tracker.finish():
            e = min(e, end)
            add_region(s, e, buf[s - base:e - base])
        embed_pending(force=True)
    E = np.concatenate(embeds) if embeds else np.zeros((0, 256), np.float32)
    return Embedded(regions, windows, E, end / SPEECH_RATE)


# ---------------------------------------------------------------------------------------------
# stage 3: clustering


def cluster(embeddings: np.ndarray, speakers: int | None = None, threshold: float = THRESHOLD,
            max_speakers: int = MAX_SPEAKERS, reliable: np.ndarray | None = None) -> np.ndarray:
    """Cluster ids (K,) of unit embeddings (K, D): average-linkage agglomeration on cosine distance,
    into ``speakers`` clusters or cut at ``threshold``; only the ``reliable`` ones (all by default, at
    most ``MAX_CLUSTER`` spread over the file) build the tree, then every embedding joins the
    nearest cluster centroid."""
    from scipy.cluster.hierarchy import fcluster, linkage

    E = np.asarray(embeddings, np.float64)
    k = len(E)
    if k == 0:
        return np.zeros(0, int)
    if k == 1 or speakers == 1:
        return np.zeros(k, int)
    idx = np.arange(k)
    if reliable is not None and int(np.sum(reliable)) >= max(2, speakers or 2):
        idx = np.flatnonzero(reliable)
    if len(idx) > MAX_CLUSTER:
        idx = idx[np.linspace(0, len(idx) - 1, MAX_CLUSTER).round().astype(int)]
    if len(idx) < 2:
        return np.zeros(k, int)
    tree = linkage(E[idx], method="average", metric="cosine")
    if speakers:
        ids = fcluster(tree, min(speakers, len(idx)), "maxclust")
    else:
        ids = fcluster(tree, threshold, "distance")
        if ids.max() > max_speakers:
            ids = fcluster(tree, max_speakers, "maxclust")
    cents = np.stack([E[idx][ids == c].mean(0) for c in np.unique(ids)])
    cents /= np.linalg.norm(cents, axis=1, keepdims=True)
    return np.argmax(E @ cents.T, axis=1)


def resegment(emb: Embedded, labels: np.ndarray, penalty: float = 0.0) -> np.ndarray:
    """Labels of each region's windows re-chosen by Viterbi: the sequence of speakers that maximises
    the windows' cosine similarity to their speaker's centroid less ``penalty`` per change of
    speaker inside the region (a pause-free stretch rarely changes speaker for one window)."""
    labels = np.asarray(labels).copy()
    if penalty <= 0 or len(labels) == 0:
        return labels
    E = emb.embeddings.astype(np.float64)
    ids = np.unique(labels)
    cents = np.stack([E[labels == c].mean(0) for c in ids])
    cents /= np.linalg.norm(cents, axis=1, keepdims=True)
    sims = E @ cents.T  # (K, C)
    by_region: dict[int, list[int]] = {}
    for i, w in enumerate(emb.windows):
        by_region.setdefault(w.region, []).append(i)
    for idx in by_region.values():
        idx = sorted(idx, key=lambda i: emb.windows[i].start)
        score = sims[idx[0]].copy()
        back = np.zeros((len(idx), len(ids)), int)
        for t in range(1, len(idx)):
            stay, move = score, score.max() - penalty
            back[t] = np.where(stay >= move, np.arange(len(ids)), int(score.argmax()))
            score = np.maximum(stay, move) + sims[idx[t]]
        path = [int(score.argmax())]
        for t in range(len(idx) - 1, 0, -1):
            path.append(int(back[t, path[-1]]))
        labels[idx] = ids[path[::-1]]
    return labels


# ---------------------------------------------------------------------------------------------
# stage 4: turns


def _relabel_short(runs: list[list], min_len: float, gap: float) -> bool:
    """Give a run shorter than ``min_len`` the speaker of its longer neighbour within ``gap``. Changed?"""
    changed = False
    for i, r in enumerate(runs):
        if r[1] - r[0] >= min_len:
            continue
        near = [runs[j] for j in (i - 1, i + 1) if 0 <= j < len(runs) and runs[j][2] != r[2]
                and (runs[j][0] - r[1] if j > i else r[0] - runs[j][1]) <= gap]
        if near:
            r[2] = max(near, key=lambda n: n[1] - n[0])[2]
            changed = True
    return changed


def _merge(runs: list[list], gap: float) -> list[list]:
    out: list[list] = []
    for r in runs:
        if out and out[-1][2] == r[2] and r[0] - out[-1][1] <= gap:
            out[-1][1] = max(out[-1][1], r[1])
        else:
            out.append(list(r))
    return out


def turns_from(emb: Embedded, labels: np.ndarray, min_turn: float = 0.5, merge_gap: float = 0.5) -> list[SpeakerTurn]:
    """Speaker turns from clustered windows: each stretch of a region to its nearest window centre,
    short runs to their neighbour, one speaker's runs across short pauses joined, "S1"... by first appearance."""
    by_region: dict[int, list[tuple[float, int]]] = {}
    for w, c in zip(emb.windows, labels):
        by_region.setdefault(w.region, []).append(((w.start + w.end) / 2 / SPEECH_RATE, int(c)))
    pieces: list[list] = []
    for r, (s, e) in enumerate(emb.regions):
        s, e = s / SPEECH_RATE, e / SPEECH_RATE
        ws = sorted(by_region.get(r, []))
        if not ws:
            pieces.append([s, e, None])
            continue
        cuts = [s] + [(a[0] + b[0]) / 2 for a, b in zip(ws, ws[1:])] + [e]
        runs = _merge([[cuts[i], cuts[i + 1], c] for i, (_, c) in enumerate(ws)], 0.0)
        while len(runs) > 1 and _relabel_short(runs, min_turn, 0.0):
            runs = _merge(runs, 0.0)
        pieces += runs
    labelled = [p for p in pieces if p[2] is not None]
    if not labelled:
        return []
    for p in pieces:  # a region too short to embed: the speaker of the nearest labelled stretch
        if p[2] is None:
            p[2] = min(labelled, key=lambda q: max(q[0] - p[1], p[0] - q[1], 0.0))[2]
    runs = _merge(pieces, merge_gap)
    while len(runs) > 1 and _relabel_short(runs, min_turn, merge_gap):
        runs = _merge(runs, merge_gap)
    names: dict[int, str] = {}
    for r in runs:
        names.setdefault(r[2], f"S{len(names) + 1}")
    return [SpeakerTurn(round(a, 3), round(b, 3), names[c]) for a, b, c in runs]


# ---------------------------------------------------------------------------------------------
# the job


def diarize(state: JobState | None, path: str | os.PathLike | np.ndarray, speakers: int | None = None, *,
            model: str | os.PathLike = MODEL, window: float = WINDOW, step: float = STEP,
            threshold: float = THRESHOLD, max_speakers: int = MAX_SPEAKERS, change_penalty: float = CHANGE_PENALTY,
            min_turn: float = 0.5, merge_gap: float = 0.5, vad_threshold: float = 0.5, min_silence: float = 0.25,
            device: str | None = "auto", threads: int | None = 1, vad=None) -> list[SpeakerTurn]:
    """Who spoke when in a file (any length, streamed; any rate and channel count) or a 16 kHz mono array.

    ``speakers``: how many people speak (None: estimate it, up to ``max_speakers``). The other
    arguments are the stages' parameters (module docstring). ``threads``: torch threads for the
    encoder (None leaves the setting alone; one was fastest on a busy 2-core machine). An empty
    list means no speech was heard.
    """
    from .. import models
    from ..compute import pick_device

    state = state or null_state()
    speakers = _check_speakers(speakers)
    if not (0.2 <= window <= 10.0 and 0.05 <= step <= window):
        raise SonoscopeError(f"windows of {window} s every {step} s: use 0.2-10 s windows and a step up to the window")
    if not 0.0 < threshold < 2.0:
        raise SonoscopeError(f"the distance threshold is a cosine distance between 0 and 2, not {threshold}")
    if max_speakers < 1:
        raise SonoscopeError(f"max_speakers must be at least 1, not {max_speakers}")
    if change_penalty < 0:
        raise SonoscopeError(f"the change penalty is a similarity gain of 0 or more, not {change_penalty}")
    if not isinstance(path, np.ndarray):
        audio_io.info(path)  # a bad file fails before the model loads
    encoder = models.load(model, state=state.sub(0.0, 0.03), device=str(pick_device(device)), family="ge2e")
    sub = state.sub(0.03, 0.97)
    sub.update(progress=0.0, status="finding speakers")
    emb = embed_voiced(sub, path, encoder, window=window, step=step, vad_threshold=vad_threshold,
                       min_silence=min_silence, threads=threads, vad=vad)
    state.update(progress=0.97, status="grouping voices")
    reliable = np.array([w.frames * HOP >= RELIABLE * SPEECH_RATE for w in emb.windows], bool)
    labels = cluster(emb.embeddings, speakers, threshold, max_speakers, reliable)
    labels = resegment(emb, labels, change_penalty)
    turns = turns_from(emb, labels, min_turn, merge_gap)
    state.update(progress=1.0, status="done")
    return turns


# ---------------------------------------------------------------------------------------------
# transcripts with speakers


def check_names(names: Mapping[str, str] | None) -> dict[str, str]:
    """Speaker names ({"S1": "Alice"}) checked and tidied (blank names dropped); None gives {}."""
    if names is None:
        return {}
    if not isinstance(names, Mapping):
        raise SonoscopeError("speaker names are a mapping of labels to names, e.g. {'S1': 'Alice'}")
    out = {}
    for k, v in names.items():
        if not isinstance(k, str) or not isinstance(v, str):
            raise SonoscopeError(f"speaker names map text to text, not {k!r} -> {v!r}")
        if v.strip():
            out[k] = " ".join(v.split())
    return out


class _Lookup:
    """The speaker of a time span: the turn it overlaps most, else the nearest turn."""

    def __init__(self, turns: list[SpeakerTurn]) -> None:
        self.turns = sorted(turns, key=lambda t: t.start)
        self.starts = np.array([t.start for t in self.turns])

    def __call__(self, a: float, b: float) -> str:
        i = int(np.searchsorted(self.starts, b))  # turns[:i] start before the span ends
        best, best_ov = None, 0.0
        j = i - 1
        while j >= 0 and self.turns[j].end > a:  # turns do not overlap: their ends are in order too
            ov = min(b, self.turns[j].end) - max(a, self.turns[j].start)
            if ov > best_ov:
                best, best_ov = self.turns[j], ov
            j -= 1
        if best is None:
            near = [self.turns[k] for k in (i - 1, i) if 0 <= k < len(self.turns)]
            best = min(near, key=lambda t: max(t.start - b, a - t.end))
        return best.speaker


def assign_speakers(transcript: Transcript, turns: list[SpeakerTurn], names: Mapping[str, str] | None = None,
                    split: bool = True) -> Transcript:
    """A copy of ``transcript`` whose words and segments carry the speaker of the turn they overlap
    most (the nearest turn for one spoken in a pause), shown as ``names[label]`` where a name was given.

    With ``split`` a segment whose words belong to several speakers becomes one segment per run of
    words (times from the words; decoder tokens are not split and are left out of the parts).
    Without turns (no speech found) the transcript comes back without speakers."""
    names = check_names(names)
    if not turns:
        return dataclasses.replace(transcript, segments=[dataclasses.replace(s) for s in transcript.segments])
    who = _Lookup(turns)

    def label(a: float, b: float) -> str:
        s = who(a, max(a, b))
        return names.get(s, s)
    segments: list[Segment] = []
    for seg in transcript.segments:
        if not seg.words:
            segments.append(dataclasses.replace(seg, speaker=label(seg.start, seg.end)))
            continue
        words = [dataclasses.replace(w, speaker=label(w.start, w.end)) for w in seg.words]
        runs: list[list[Word]] = []
        for w in words:
            if split and runs and runs[-1][-1].speaker != w.speaker:
                runs.append([w])
            elif runs:
                runs[-1].append(w)
            else:
                runs.append([w])
        if len(runs) == 1:
            durs: dict[str, float] = {}
            for w in words:
                durs[w.speaker] = durs.get(w.speaker, 0.0) + max(1e-3, w.end - w.start)
            segments.append(dataclasses.replace(seg, words=words, speaker=max(durs, key=durs.get)))
            continue
        for run in runs:
            segments.append(dataclasses.replace(seg, start=run[0].start, end=run[-1].end, words=run, tokens=[],
                                                text="".join(w.word for w in run), speaker=run[0].speaker))
    for i, seg in enumerate(segments):
        seg.id = i
    return dataclasses.replace(transcript, segments=segments)


def rename_speakers(transcript: Transcript, names: Mapping[str, str]) -> Transcript:
    """A copy with speaker labels replaced by the names given (e.g. {"S1": "Alice"}); others kept."""
    names = check_names(names)
    segs = [dataclasses.replace(s, speaker=names.get(s.speaker, s.speaker) if s.speaker else None,
                                words=None if s.words is None else [
                                    dataclasses.replace(w, speaker=names.get(w.speaker, w.speaker) if w.speaker else None)
                                    for w in s.words]) for s in transcript.segments]
    return dataclasses.replace(transcript, segments=segs)


def transcribe_with_speakers(state: JobState | None, path: str | os.PathLike | np.ndarray,
                             speakers: int | None = None, names: Mapping[str, str] | None = None,
                             engine: str = "whisper", model: str | os.PathLike | None = None,
                             options: dict | None = None, device: str | None = "auto", int8: bool | None = None,
                             threads: int | None = None, diarize_options: dict | None = None) -> Transcript:
    """Transcribe (as :func:`engine.transcribe.task.transcribe_file`, Whisper with word timestamps)
    and find who spoke when (:func:`diarize`, ``speakers`` given or estimated), then give every
    segment and word its speaker (:func:`assign_speakers`, lines split at speaker changes)."""
    from ..transcribe.task import transcribe_file

    state = state or null_state()
    speakers = _check_speakers(speakers)
    names = check_names(names)
    if not isinstance(path, np.ndarray):
        audio_io.info(path)  # a bad file fails before any model loads
    options = dict(options or {})
    if engine == "whisper":
        options["word_timestamps"] = True  # lines are split where the speaker changes
    transcript = transcribe_file(state.sub(0.0, 0.8), path, engine=engine, model=model, options=options,
                                 device=device, int8=int8, threads=threads)
    turns = diarize(state.sub(0.8, 1.0), path, speakers, device=device, **(diarize_options or {}))
    return assign_speakers(transcript, turns, names)
