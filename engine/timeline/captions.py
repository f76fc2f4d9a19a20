"""SDH captions (subtitles for the deaf and hard of hearing) from an :class:`~engine.results.Analysis`.

Speech cues come from the words (with their speakers, names applied); a cue names its speaker
("Alice: ...") when the speaker differs from the previous speech cue's. Non-speech sound events
(from the tags) get cues of their own: ``[music]``, ``[dog barking]``, ``[applause]``. AudioSet
labels are mapped to lower-case bracketed cues (:func:`cue_for_label`): speech-like labels
("Speech", "Narration, monologue", "Speech synthesizer"...) and room tones ("Inside, small room")
make none; instrument and genre labels are all ``[music]``; broad parents ("Animal") give way to a
specific cue where one overlaps.

Captioning rules (:data:`MAX_CHARS`, :data:`MAX_LINES`, :data:`MIN_DURATION`, :data:`MAX_DURATION`):
at most 2 lines of 42 characters, each cue shown 1-7 s, cues never overlap. Speech wins over a
sound where they meet: a sound cue is cut to the gaps between speech, and a sound heard only under
speech becomes the first line of that speech cue when there is room.

Nothing here imports numpy or loads a model.
"""

from __future__ import annotations

import csv
import re
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

from ..results import Analysis, TagEvent, Word

MAX_CHARS = 42
MAX_LINES = 2
MIN_DURATION = 1.0
MAX_DURATION = 7.0
MAX_GAP = 1.5  # seconds of silence that end a speech cue
MIN_SOUND = 0.3  # a sound cue shorter than this after speech took its time is not shown alone

SPEECH_LIKE = {"Speech", "Male speech, man speaking", "Female speech, woman speaking", "Child speech, kid speaking",
               "Conversation", "Narration, monologue", "Babbling", "Speech synthesizer", "Whispering",
               "Hubbub, speech noise, speech babble", "Chatter", "Shout", "Yell", "Children shouting", "Screaming"}
NO_CUE = {"Silence", "Inside, small room", "Inside, large room or hall", "Inside, public space",
          "Outside, urban or manmade", "Outside, rural or natural", "Echo", "Reverberation", "Noise",
          "Environmental noise", "Static", "Mains hum", "Hum", "Sound effect", "Field recording", "Sine wave",
          "White noise", "Pink noise", "Cacophony", "Distortion", "Vibration", "Throbbing", "Chirp tone"}
GENERIC = {"Animal": "animal sounds", "Domestic animals, pets": "animal sounds",
           "Livestock, farm animals, working animals": "animal sounds", "Wild animals": "animal sounds",
           "Vehicle": "vehicle", "Tools": "tools", "Mechanisms": "machinery", "Domestic sounds, home sounds": "noise"}
CUES = {
    "Dog": "dog barking", "Bark": "dog barking", "Bow-wow": "dog barking", "Yip": "dog yipping",
    "Howl": "dog howling", "Growling": "dog growling", "Whimper (dog)": "dog whimpering",
    "Cat": "cat meowing", "Meow": "cat meowing", "Purr": "cat purring", "Hiss": "hissing", "Caterwaul": "cat yowling",
    "Horse": "horse neighing", "Neigh, whinny": "horse neighing", "Clip-clop": "hooves clopping",
    "Cattle, bovinae": "cow mooing", "Moo": "cow mooing", "Pig": "pig oinking", "Oink": "pig oinking",
    "Sheep": "sheep bleating", "Bleat": "sheep bleating", "Goat": "goat bleating",
    "Chicken, rooster": "rooster crowing", "Crowing, cock-a-doodle-doo": "rooster crowing", "Cluck": "hen clucking",
    "Duck": "duck quacking", "Quack": "duck quacking", "Goose": "goose honking", "Honk": "honking",
    "Frog": "frog croaking", "Croak": "frog croaking", "Owl": "owl hooting", "Hoot": "owl hooting",
    "Bird": "birds chirping", "Bird vocalization, bird call, bird song": "birds chirping",
    "Chirp, tweet": "birds chirping", "Crow": "crow cawing", "Caw": "crow cawing",
    "Laughter": "laughter", "Giggle": "giggling", "Baby laughter": "baby laughing", "Chuckle, chortle": "chuckling",
    "Crying, sobbing": "crying", "Baby cry, infant cry": "baby crying", "Sigh": "sighs", "Cough": "coughing",
    "Sneeze": "sneezing", "Applause": "applause", "Clapping": "clapping", "Cheering": "cheering",
    "Crowd": "crowd noise", "Singing": "singing", "Whistling": "whistling", "Footsteps": "footsteps",
    "Knock": "knocking", "Door": "door", "Doorbell": "doorbell", "Telephone bell ringing": "phone ringing",
    "Ringtone": "phone ringing", "Alarm": "alarm", "Siren": "siren", "Thunder": "thunder", "Rain": "rain",
    "Wind": "wind", "Explosion": "explosion", "Gunshot, gunfire": "gunshots", "Engine": "engine running",
    "Car": "car passing", "Water": "water running", "Typing": "typing", "Glass": "glass clinking",
}
AUDIOSET_LABELS = Path(__file__).resolve().parent.parent / "catalog" / "audioset_labels.csv"


@lru_cache(maxsize=1)
def music_labels() -> frozenset[str]:
    """AudioSet's music branch (indices 137-282: "Music", every instrument, genre and mood)."""
    try:
        with open(AUDIOSET_LABELS, newline="", encoding="utf-8") as f:
            return frozenset(r["display_name"] for r in csv.DictReader(f) if 137 <= int(r["index"]) <= 282)
    except OSError:
        return frozenset({"Music", "Musical instrument"})


def cue_for_label(label: str) -> tuple[str, int] | None:
    """(cue text, specificity) of a tag label: 1 specific, 0 a broad parent; None: no cue (speech, room tone)."""
    if label in SPEECH_LIKE or label in NO_CUE:
        return None
    if label in CUES:
        return CUES[label], 1
    if label in music_labels() or label == "Music":
        return "music", 1
    if label in GENERIC:
        return GENERIC[label], 0
    return label.split(",")[0].strip().lower(), 1


def is_speech_label(label: str) -> bool:
    return label in SPEECH_LIKE


@dataclass
class Cue:
    start: float
    end: float
    lines: list[str]
    kind: str = "speech"  # or "sound"
    speaker: str | None = None
    labels: list[str] = field(default_factory=list)  # sound cues: the tag labels behind it

    @property
    def text(self) -> str:
        return "\n".join(self.lines)


def wrap(text: str, width: int = MAX_CHARS, lines: int = MAX_LINES) -> list[str] | None:
    """``text`` in at most ``lines`` lines of at most ``width`` characters, the lines as even as the
    words allow (a two-line cue is split where the longer line is shortest); None if it does not fit."""
    words = text.split()
    if not words:
        return []
    if len(text) <= width:
        return [" ".join(words)]
    if lines < 2:
        return None
    best = None
    for k in range(1, len(words)):
        a, b = " ".join(words[:k]), " ".join(words[k:])
        if len(a) <= width:
            rest = wrap(b, width, lines - 1)
            if rest is not None:
                cand = [a, *rest]
                score = max(len(x) for x in cand)
                if best is None or score < best[0]:
                    best = (score, cand)
    return best[1] if best else None


_NON_VERBAL = re.compile(r"^[\[(♪*].*[\])♪*]$|^♪+$")


def _spoken(words: list[Word]) -> list[Word]:
    """Words that are speech: Whisper's own "[Music]", "(barking)" or "♪" are left to the sound cues."""
    return [w for w in words if w.text and not _NON_VERBAL.match(w.text)]


def join_words(words: list[Word]) -> str:
    """The words as one line: Whisper's words carry their leading space (" cold", "-hearted"),
    bare words (CTC, live) are joined with spaces."""
    if any(w.word[:1].isspace() for w in words):
        return " ".join("".join(w.word for w in words).split())
    return " ".join(w.text for w in words)


def speech_cues(words: list[Word], name=lambda s: s) -> list[Cue]:
    """Words (in time order, with speaker labels) cut into cues: a new cue at a change of speaker,
    after a pause over ``MAX_GAP``, when the text would not fit 2 x 42 characters or the cue would
    last over 7 s, and after a sentence once the cue holds a line's worth."""
    cues: list[Cue] = []
    cur: list[Word] = []
    prev_speaker: list[str | None] = [None]

    def prefix(spk: str | None) -> str:
        return f"{name(spk)}: " if spk and spk != prev_speaker[0] else ""

    def close() -> None:
        if not cur:
            return
        spk = cur[0].speaker
        text = prefix(spk) + join_words(cur)
        lines = wrap(text) or [text]  # one word too long for a line: shown as it is
        cues.append(Cue(cur[0].start, cur[-1].end, lines, "speech", spk))
        if spk:
            prev_speaker[0] = spk
        cur.clear()

    for w in _spoken(words):
        if cur:
            text = prefix(cur[0].speaker) + join_words(cur + [w])
            if (w.speaker != cur[0].speaker or w.start - cur[-1].end > MAX_GAP or wrap(text) is None
                    or w.end - cur[0].start > MAX_DURATION
                    or (cur[-1].text[-1] in ".?!" and len(join_words(cur)) >= MAX_CHARS // 2)):
                close()
        cur.append(w)
    close()
    return cues


def _subtract(a: float, b: float, spans: list[tuple[float, float]]) -> list[tuple[float, float]]:
    out = [(a, b)]
    for s, e in spans:
        nxt = []
        for x, y in out:
            if e <= x or s >= y:
                nxt.append((x, y))
                continue
            if s > x:
                nxt.append((x, s))
            if e < y:
                nxt.append((e, y))
        out = nxt
    return out


def sound_cues(events: list[TagEvent], merge_gap: float = 1.0) -> list[Cue]:
    """One cue per sound (events of the same cue text within ``merge_gap`` joined; broad parents
    dropped where a specific cue overlaps them; overlapping different sounds share one cue)."""
    items = []  # [start, end, text, specificity, score, labels]
    for e in sorted(events, key=lambda e: e.start):
        c = cue_for_label(e.label)
        if c is None:
            continue
        for it in items:
            if it[2] == c[0] and e.start <= it[1] + merge_gap and e.end >= it[0] - merge_gap:
                it[0], it[1] = min(it[0], e.start), max(it[1], e.end)
                it[4] = max(it[4], e.score)
                it[5].append(e.label)
                break
        else:
            items.append([e.start, e.end, c[0], c[1], e.score, [e.label]])
    specific = [it for it in items if it[3] == 1]
    items = [it for it in items if it[3] == 1 or not any(s[0] < it[1] and s[1] > it[0] for s in specific)]
    items.sort(key=lambda it: it[0])
    groups: list[list] = []
    for it in items:
        if groups and it[0] < max(g[1] for g in groups[-1]):
            groups[-1].append(it)
        else:
            groups.append([it])
    cues = []
    for g in groups:
        a, b = min(it[0] for it in g), max(it[1] for it in g)
        ranked = sorted(g, key=lambda it: (-it[3], -it[4]))
        texts = [ranked[0][2]] + [it[2] for it in ranked[1:] if it[1] - it[0] >= 0.5 * (b - a)
                                  and it[2] != ranked[0][2]][:1]
        cues.append(Cue(a, b, [" ".join(f"[{t}]" for t in texts)], "sound",
                        labels=sorted({lb for it in g for lb in it[5]})))
    return cues


def build_cues(a: Analysis, sdh: bool = True) -> list[Cue]:
    """The caption cues of an analysis (its edits applied): speech, and with ``sdh`` the sounds,
    under the captioning rules."""
    words = a.transcript.words if a.transcript else []
    speech = speech_cues(words, lambda s: a.speaker_name(s) or s)
    sounds = sound_cues(a.tagging.events if (sdh and a.tagging) else [])
    spans = [(c.start, c.end) for c in speech]
    cues = list(speech)
    for s in sounds:
        parts = [(x, y) for x, y in _subtract(s.start, s.end, spans) if y - x >= MIN_SOUND]
        if not parts:  # heard only under speech: a first line of the speech cue it overlaps most
            host = max(speech, key=lambda c: min(c.end, s.end) - max(c.start, s.start), default=None)
            if host is not None and len(host.lines) < MAX_LINES and s.lines[0] not in host.lines:
                host.lines.insert(0, s.lines[0])
            continue
        for x, y in parts:  # long sounds: pieces of at most 7 s, each with the cue
            n = max(1, int(-(-(y - x) // MAX_DURATION)))
            step = (y - x) / n
            cues += [Cue(x + k * step, x + (k + 1) * step, list(s.lines), "sound", labels=s.labels) for k in range(n)]
    return _timing(sorted(cues, key=lambda c: (c.start, c.kind != "speech")))


def _timing(cues: list[Cue]) -> list[Cue]:
    """At least 1 s and at most 7 s per cue, no overlap (a cue ends where the next begins)."""
    out = [c for c in cues if c.lines]
    for i, c in enumerate(out):
        if c.end - c.start > MAX_DURATION:
            c.end = c.start + MAX_DURATION
        nxt = out[i + 1].start if i + 1 < len(out) else float("inf")
        if c.end > nxt:
            c.end = nxt
        if c.end - c.start < MIN_DURATION:
            c.end = min(c.start + MIN_DURATION, nxt)
        if c.end - c.start < MIN_DURATION:
            prev = out[i - 1].end if i > 0 else 0.0
            c.start = max(prev, c.end - MIN_DURATION)
    for c in out:
        c.start, c.end = round(c.start, 3), round(max(c.end, c.start + 0.001), 3)
    return out


# -- files ----------------------------------------------------------------------------------------------
def _ts(seconds: float, decimal: str) -> str:
    ms = max(0, int(round(seconds * 1000)))
    h, ms = divmod(ms, 3_600_000)
    m, ms = divmod(ms, 60_000)
    s, ms = divmod(ms, 1000)
    return f"{h:02d}:{m:02d}:{s:02d}{decimal}{ms:03d}"


def _clean(line: str) -> str:
    return line.replace("-->", "->")


def to_srt(cues: list[Cue]) -> str:
    return "\n".join(f"{i}\n{_ts(c.start, ',')} --> {_ts(c.end, ',')}\n" + "\n".join(map(_clean, c.lines)) + "\n"
                     for i, c in enumerate(cues, 1))


def to_vtt(cues: list[Cue]) -> str:
    return "WEBVTT\n\n" + "\n".join(f"{_ts(c.start, '.')} --> {_ts(c.end, '.')}\n" + "\n".join(map(_clean, c.lines))
                                    + "\n" for c in cues)


def render(a: Analysis, fmt: str, sdh: bool = True) -> str:
    """SRT or VTT text of the analysis' captions."""
    cues = build_cues(a, sdh)
    return to_srt(cues) if fmt == "srt" else to_vtt(cues)


def parse_cues(text: str) -> list[Cue]:
    """Cues of an SRT or WebVTT file (times and lines): what the tests and a round trip read back."""
    cues = []
    for block in re.split(r"\n\s*\n", text.strip()):
        rows = block.strip().splitlines()
        at = next((i for i, r in enumerate(rows[:2]) if "-->" in r), None)
        if at is None:
            continue
        a, b = (_parse_ts(x) for x in rows[at].split("-->"))
        lines = rows[at + 1:]
        kind = "sound" if lines and all(re.fullmatch(r"(\[[^\]]+\]\s*)+", ln) for ln in lines) else "speech"
        cues.append(Cue(a, b, lines, kind))
    return cues


def _parse_ts(s: str) -> float:
    h, m, rest = s.strip().replace(",", ".").split(":")
    return int(h) * 3600 + int(m) * 60 + float(rest)
