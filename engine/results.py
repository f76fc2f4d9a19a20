"""The one result model: what every task produces and every export and panel reads.

* :class:`Word`: one word with its time span (seconds from the start of the file) and, where the
  model gives one, a probability. ``word`` is the text as the model wrote it: Whisper keeps the
  leading space of its tokens (so words join back into the segment text in any script); CTC and
  live words are bare. :attr:`Word.text` is always the bare word.
* :class:`Segment`: a run of words (a subtitle line). Whisper fills its decoder fields (``seek``,
  ``tokens``, ``temperature``, ``avg_logprob``, ...); other engines leave their defaults.
* :class:`Transcript`: the segments of one file, its language (``None`` when the engine cannot
  tell, e.g. a CTC model) and duration. :meth:`Transcript.from_words` cuts a word list into
  segments at pauses (CTC files, live sessions).
* :class:`SpeakerTurn`: who spoke when (start, end, speaker label "S1", "S2"... or a name). Words
  and segments carry a ``speaker`` once :func:`engine.speakers.diarize.assign_speakers` gave them
  one (``None`` otherwise: exports then leave speakers out entirely).
* :class:`TagEvent` / :class:`Tagging`: sound labels over time (label, start, end, peak score) and
  the file's top labels with their pooled scores.
* :class:`Analysis`: one file's timeline: its transcript (words with speakers), speaker turns,
  speaker names, sound tags, the models and options that made them and the audio's checksum
  (what ``engine.timeline`` saves next to the audio and every lane and export reads).

Nothing here imports torch or numpy.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, replace


@dataclass
class Word:
    word: str
    start: float  # seconds
    end: float
    probability: float | None = None
    speaker: str | None = None
    # live sessions: session-clock seconds (audio time 0 = the session's start) at which the word was
    # first on screen (tentative or committed) and at which it was committed
    shown: float | None = None
    committed: float | None = None

    @property
    def text(self) -> str:
        return self.word.strip()

    def to_dict(self) -> dict:
        return {k: v for k, v in asdict(self).items() if v is not None or k in ("word", "start", "end", "probability")}


@dataclass
class Segment:
    start: float
    end: float
    text: str
    words: list[Word] | None = None
    id: int = 0
    seek: int = 0  # Whisper: mel frame where the window that produced it began
    tokens: list[int] = field(default_factory=list)
    temperature: float = 0.0
    avg_logprob: float = 0.0
    compression_ratio: float = 0.0
    no_speech_prob: float = 0.0
    speaker: str | None = None

    def to_dict(self) -> dict:
        d = asdict(self)
        # openai-whisper's key order; a speaker (after the times) only where one was assigned
        keys = ("id", "seek", "start", "end", "speaker", "text", "tokens", "temperature", "avg_logprob",
                "compression_ratio", "no_speech_prob", "words")
        if d["words"] is not None:
            d["words"] = [w.to_dict() for w in self.words]
        return {k: d[k] for k in keys if k != "speaker" or d[k] is not None}


@dataclass
class Transcript:
    segments: list[Segment]
    language: str | None
    duration: float
    language_probs: dict[str, float] | None = None
    source: str = ""

    @property
    def text(self) -> str:
        return "".join(s.text for s in self.segments).strip()

    @property
    def words(self) -> list[Word]:
        return [w for s in self.segments for w in (s.words or [])]

    @property
    def has_speakers(self) -> bool:
        return any(s.speaker is not None for s in self.segments)

    def to_dict(self) -> dict:
        d = {"source": self.source, "language": self.language, "duration": self.duration,
             "text": self.text, "segments": [s.to_dict() for s in self.segments]}
        latency = live_latency(self.words)
        if latency is not None:
            d["latency"] = latency
        return d

    @classmethod
    def from_words(cls, words: list[Word], duration: float, language: str | None = None, source: str = "",
                   max_gap: float = 0.6, max_words: int = 14, max_len: float = 8.0) -> "Transcript":
        """Words (bare or with leading spaces) cut into subtitle-sized segments at pauses.

        A segment ends where the pause before the next word exceeds ``max_gap`` seconds, or when
        it holds ``max_words`` words or spans ``max_len`` seconds. Each segment spans exactly its
        words; the words get a leading space so that they join into the segment text.
        """
        groups: list[list[Word]] = []
        for w in words:
            cur = groups[-1] if groups else None
            if cur is None or (w.start - cur[-1].end > max_gap or len(cur) >= max_words
                               or w.end - cur[0].start > max_len):
                groups.append([])
            groups[-1].append(w)
        segs = []
        for i, g in enumerate(groups):
            ws = [replace(w, word=" " + w.text) for w in g]
            segs.append(Segment(ws[0].start, ws[-1].end, "".join(w.word for w in ws), ws, id=i))
        return cls(segs, language, duration, source=source)


def live_latency(words: list[Word]) -> dict | None:
    """How long after being said the words of a live session were committed and first shown:
    ``{"words", "committed": {"median", "p95", "max"}, "shown": {...}}`` in seconds after each word's
    end (None when no word carries a commit time)."""
    import numpy as np

    done = [w for w in words if w.committed is not None]
    if not done:
        return None

    def stats(x: list[float]) -> dict:
        a = np.asarray(x, np.float64)
        return {"median": round(float(np.median(a)), 3), "p95": round(float(np.percentile(a, 95)), 3),
                "max": round(float(a.max()), 3)}
    out = {"words": len(done), "committed": stats([w.committed - w.end for w in done])}
    shown = [w.shown - w.end for w in done if w.shown is not None]
    if shown:
        out["shown"] = stats(shown)
    return out


@dataclass
class SpeakerTurn:
    """One stretch of one speaker's voice (seconds from the start of the file)."""

    start: float
    end: float
    speaker: str  # "S1", "S2"... in order of first appearance

    @property
    def duration(self) -> float:
        return self.end - self.start


@dataclass
class TagEvent:
    label: str
    start: float  # seconds
    end: float
    score: float  # the peak score of the label over the event


@dataclass
class Tagging:
    """The sound labels of one file: ``tags`` [(label, score)] best first, pooled over the whole file,
    and ``events`` where a label's score stays above its threshold, in time order."""

    tags: list[tuple[str, float]]
    events: list[TagEvent]
    duration: float
    model: str = ""
    source: str = ""

    def to_dict(self) -> dict:
        return {"file": self.source, "model": self.model, "duration": self.duration,
                "tags": [{"label": label, "score": round(float(score), 4)} for label, score in self.tags],
                "events": [{"label": e.label, "start": round(e.start, 3), "end": round(e.end, 3),
                            "score": round(float(e.score), 4)} for e in self.events]}


@dataclass
class Analysis:
    """Everything known about one file, on one time axis (``engine.timeline``).

    ``transcript`` words and segments carry speaker *labels* ("S1"); ``names`` maps labels to the
    names the user gave ({"S1": "Alice"}), applied by every export. ``models`` is {part: model id}
    and ``options`` {part: options} of the parts that ran ("transcript", "speakers", "tags");
    ``sha256`` the audio's checksum when it was analysed; ``edits`` the user's edits, in order
    (already applied to the results). ``outputs`` (not saved) lists the files an export wrote, and
    ``reused`` says the results came from the sidecar without running a model."""

    source: str
    duration: float
    transcript: Transcript | None = None
    turns: list[SpeakerTurn] | None = None
    tagging: Tagging | None = None
    names: dict[str, str] = field(default_factory=dict)
    models: dict[str, str] = field(default_factory=dict)
    options: dict[str, dict] = field(default_factory=dict)
    sha256: str = ""
    edits: list[dict] = field(default_factory=list)
    outputs: list[str] = field(default_factory=list, compare=False)
    reused: bool = field(default=False, compare=False)

    def speaker_name(self, label: str | None) -> str | None:
        return self.names.get(label, label) if label else None
