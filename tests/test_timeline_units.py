"""The timeline's parts without models: caption rules, label cues, event edges, the sidecar format,
edits, and the analysis job's bookkeeping (fake parts: cancel, reuse, settings changed)."""

from __future__ import annotations

import json

import numpy as np
import pytest
import soundfile as sf

from engine.errors import Cancelled, UnsupportedFormat
from engine.jobs import JobState
from engine.results import Analysis, Segment, SpeakerTurn, TagEvent, Tagging, Transcript, Word
from engine.timeline import analyze as A
from engine.timeline import captions as C
from engine.timeline import edits, events, project


def _words(spec):
    """[(text, start, end, speaker)] -> Whisper-style words (leading spaces)."""
    return [Word(" " + t, s, e, 0.9, spk) for t, s, e, spk in spec]


def _analysis(tmp_path, words=None, turns=None, tag_events=None) -> Analysis:
    path = tmp_path / "a.wav"
    sf.write(path, np.zeros(16000 * 30, np.float32), 16000)
    ws = words or _words([("Hello", 1.0, 1.4, "S1"), ("there.", 1.4, 1.9, "S1"), ("Hi", 5.0, 5.3, "S2")])
    t = Transcript([Segment(ws[0].start, ws[-1].end, "".join(w.word for w in ws), ws)], "en", 30.0)
    return Analysis(str(path), 30.0, t, turns or [SpeakerTurn(0.9, 2.0, "S1"), SpeakerTurn(4.9, 5.4, "S2")],
                    Tagging([("Dog", 0.9)], list(tag_events or []), 30.0, "fake"))


# -- captions --------------------------------------------------------------------------------------
def test_labels_map_to_lower_case_cues_and_speech_makes_none():
    assert C.cue_for_label("Dog") == ("dog barking", 1) and C.cue_for_label("Bark") == ("dog barking", 1)
    assert C.cue_for_label("Music") == ("music", 1) and C.cue_for_label("Trumpet") == ("music", 1)
    assert C.cue_for_label("Electric piano") == ("music", 1) and C.cue_for_label("Applause") == ("applause", 1)
    assert C.cue_for_label("Animal") == ("animal sounds", 0)
    assert C.cue_for_label("Printer") == ("printer", 1) and C.cue_for_label("Bicycle, tricycle") == ("bicycle", 1)
    for label in ("Speech", "Male speech, man speaking", "Speech synthesizer", "Narration, monologue",
                  "Inside, small room", "Silence"):
        assert C.cue_for_label(label) is None, label


def test_wrap_two_even_lines_of_42_or_none():
    assert C.wrap("short") == ["short"]
    text = "Had he married a more amiable woman, he might have been made still"
    lines = C.wrap(text)
    assert len(lines) == 2 and all(len(x) <= 42 for x in lines) and " ".join(lines) == text
    assert abs(len(lines[0]) - len(lines[1])) < 12
    assert C.wrap("x" * 43 + " y") is None and C.wrap(" ".join(["word"] * 30)) is None


def test_speech_cues_follow_the_rules_and_name_the_speaker_on_change():
    # 40 words of S1, one every 0.3 s (12 s in all), then S2
    spec = [(f"w{i}", 1 + 0.3 * i, 1.25 + 0.3 * i, "S1") for i in range(40)] + [("Yes.", 14.0, 14.2, "S2"),
                                                                                  ("No.", 16.5, 16.7, "S2")]
    a = Analysis("x.wav", 20.0, Transcript([Segment(1, 16.7, "", _words(spec))], "en", 20.0), names={"S2": "Bob"})
    cues = C.build_cues(a, sdh=True)
    for c in cues:
        assert len(c.lines) <= 2 and all(len(x) <= 42 for x in c.lines)
        assert 1.0 <= c.end - c.start + 1e-9 and c.end - c.start <= 7.0 + 1e-9
    assert all(c.end <= d.start for c, d in zip(cues, cues[1:]))
    assert [c.lines[0].split(":")[0] for c in cues if ":" in c.lines[0]] == ["S1", "Bob"]
    assert cues[0].lines[0].startswith("S1: w0") and not cues[1].lines[0].startswith("S1")
    bob = [c for c in cues if c.speaker == "S2"]
    assert bob[0].text == "Bob: Yes." and bob[1].text == "No." and bob[0].end - bob[0].start == pytest.approx(1.0)
    words = " ".join(c.text.replace("S1: ", "").replace("Bob: ", "").replace("\n", " ") for c in cues)
    assert words.split() == [f"w{i}" for i in range(40)] + ["Yes.", "No."]  # nothing lost


def test_sound_cues_merge_prefer_specific_and_give_way_to_speech(tmp_path):
    ev = [TagEvent("Animal", 3.0, 9.0, 0.8), TagEvent("Dog", 3.0, 9.5, 0.9), TagEvent("Bark", 3.5, 9.0, 0.6),
          TagEvent("Speech", 0.0, 3.0, 0.9), TagEvent("Music", 20.0, 29.0, 0.7), TagEvent("Piano", 28.5, 29.5, 0.3),
          TagEvent("Applause", 5.0, 5.4, 0.5)]
    a = _analysis(tmp_path, words=_words([("Hello", 1.0, 2.0, "S1"), ("again", 4.0, 4.6, "S1"),
                                          ("Yes", 24.0, 24.4, "S2")]), tag_events=ev)
    cues = C.build_cues(a, sdh=True)
    sounds = [c for c in cues if c.kind == "sound"]
    assert {c.lines[0] for c in sounds} == {"[dog barking]", "[music]"}  # no [animal sounds], no speech cue
    # speech wins: the dog is cut around "again" (4.0-4.6), the music around "Yes" (24.0-24.4)
    dog = [c for c in sounds if c.lines == ["[dog barking]"]]
    assert dog[0].start == pytest.approx(3.0) and dog[-1].end == pytest.approx(9.5)
    assert all(c.end <= 4.0 or c.start >= 4.6 for c in dog)
    music = [c for c in sounds if c.lines == ["[music]"]]
    assert music[0].start == pytest.approx(20.0) and music[-1].end == pytest.approx(29.5)
    assert all(c.end <= 24.0 or c.start >= 24.4 for c in music)
    assert all(c.end <= d.start for c, d in zip(cues, cues[1:]))
    assert not any("[dog barking]" in c.text for c in C.build_cues(a, sdh=False))  # no sound cues without SDH


def test_a_sound_only_under_speech_becomes_a_line_of_that_cue(tmp_path):
    a = _analysis(tmp_path, words=_words([("We", 1.0, 1.3, "S1"), ("clap", 1.3, 2.5, "S1")]),
                  turns=[SpeakerTurn(1.0, 2.5, "S1")], tag_events=[TagEvent("Applause", 1.2, 2.4, 0.7)])
    cues = C.build_cues(a)
    assert len(cues) == 1 and cues[0].lines == ["[applause]", "S1: We clap"]


def test_whisper_sound_words_are_left_to_the_sound_cues():
    ws = _words([("[Music]", 0.0, 3.0, None), ("♪", 3.0, 4.0, None), ("Hello.", 5.0, 5.5, None)])
    cues = C.speech_cues(ws)
    assert [c.text for c in cues] == ["Hello."]


def test_srt_and_vtt_round_trip_cues(tmp_path):
    a = _analysis(tmp_path, tag_events=[TagEvent("Dog", 10.0, 12.0, 0.9)])
    srt, vtt = C.render(a, "srt"), C.render(a, "vtt")
    assert srt.startswith("1\n00:00:01,000 --> ") and vtt.startswith("WEBVTT\n\n00:00:01.000 --> ")
    assert C.parse_cues(srt) == C.parse_cues(vtt) and [c.kind for c in C.parse_cues(srt)] == ["speech", "speech",
                                                                                               "sound"]


# -- event edges ------------------------------------------------------------------------------------
def test_events_are_moved_to_their_sound_and_speech_is_left_alone():
    sr = 16000
    x = np.zeros(sr * 12, np.float32)
    rng = np.random.default_rng(0)
    x[sr * 2:sr * 4] = 0.3 * rng.standard_normal(sr * 2)      # "speech" 2-4 s
    x[sr * 5:sr * 8] = 0.5 * rng.standard_normal(sr * 3)      # the sound 5-8 s
    x[int(sr * 8.9):int(sr * 9.0)] = 0.01 * rng.standard_normal(int(sr * 0.1))  # a faint click apart from it
    env = events.envelope_db(x)
    assert len(env) == pytest.approx(1200, abs=2)
    ev = [TagEvent("Dog", 4.0, 9.5, 0.9), TagEvent("Speech", 1.0, 5.0, 0.9), TagEvent("Hum", 10.5, 11.5, 0.4)]
    out = events.refine_events(ev, env, [(2.0, 4.0)], skip=C.is_speech_label)
    dog = next(e for e in out if e.label == "Dog")
    assert dog.start == pytest.approx(5.0, abs=0.03) and dog.end == pytest.approx(8.0, abs=0.03)
    assert next(e for e in out if e.label == "Speech") == ev[1]
    assert next(e for e in out if e.label == "Hum") == ev[2]  # no sound there: its times stay


# -- sidecar and edits --------------------------------------------------------------------------------
def test_sidecar_round_trip_and_bad_files(tmp_path):
    a = _analysis(tmp_path, tag_events=[TagEvent("Dog", 10.0, 12.0, 0.9)])
    a.models, a.options = {"tags": "fake"}, {"tags": {"threshold": 0.3}}
    side = project.save(a)
    assert side.name == "a.wav.sonoscope.json" and not list(tmp_path.glob(".a.wav*"))  # no temporary left
    b = project.load(tmp_path / "a.wav")
    assert b == a and b.reused
    assert json.loads(side.read_text())["audio"]["sha256"] == project.sha256_of(tmp_path / "a.wav")
    assert project.status(tmp_path / "a.wav")[0] == "valid"
    assert project.status(tmp_path / "b.wav") == ("missing", "b.wav has not been analysed yet")
    side.write_text("{not json")
    assert project.status(tmp_path / "a.wav")[0] == "broken"
    with pytest.raises(project.ProjectError, match="cannot be read"):
        project.load(tmp_path / "a.wav")
    side.write_text(json.dumps({"sonoscope": 99}))
    with pytest.raises(project.ProjectError, match="format 99 is not supported"):
        project.load(tmp_path / "a.wav")


def test_edits(tmp_path):
    a = _analysis(tmp_path, tag_events=[TagEvent("Dog", 10.0, 12.0, 0.9), TagEvent("Cat", 13.0, 14.0, 0.5)])
    edits.rename_speaker(a, "S1", "  Alice  ")
    assert a.names == {"S1": "Alice"} and project.load(a.source).names == {"S1": "Alice"}
    edits.correct_word(a, 1, "where.")
    assert a.transcript.segments[0].text == " Hello where. Hi" and a.transcript.words[1].word == " where."
    edits.delete_tag_event(a, 0)
    b = project.load(a.source)
    assert [e.label for e in b.tagging.events] == ["Cat"] and b.transcript.words[1].text == "where."
    assert edits.named_transcript(b).words[0].speaker == "Alice" and b.transcript.words[0].speaker == "S1"
    edits.rename_speaker(b, "S1", "", save=False)
    assert b.names == {}
    with pytest.raises(edits.EditError, match="no speaker 'S9'"):
        edits.rename_speaker(b, "S9", "X")
    with pytest.raises(edits.EditError, match="no word 7"):
        edits.correct_word(b, 7, "x")
    with pytest.raises(edits.EditError, match="to nothing"):
        edits.correct_word(b, 0, "  ")
    with pytest.raises(edits.EditError, match="no sound event 3"):
        edits.delete_tag_event(b, 3)
    assert edits.find_words(b, "hel") == [0] and edits.find_words(b, "WHERE") == [1]
    assert edits.find_words(b, "where hi") == [1] and edits.find_words(b, "") == []


# -- the job's bookkeeping, with fake parts ---------------------------------------------------------------
@pytest.fixture
def fake_parts(monkeypatch):
    import engine.speakers.diarize as Dz
    import engine.tags.task as Tg
    import engine.transcribe.task as Tt

    calls = []

    def diarize(state, path, speakers=None, **k):
        calls.append("speakers")
        state.update(progress=1.0)
        return [SpeakerTurn(0.9, 2.0, "S1")]

    def transcribe_file(state, path, **k):
        calls.append("transcript")
        state.update(progress=0.5)
        ws = _words([("Hello", 0.2, 1.4, None), ("there.", 1.4, 1.9, None)])  # "Hello" starts too early
        return Transcript([Segment(0.2, 1.9, " Hello there.", ws)], "en", 30.0)

    def tag_file(state, path, **k):
        calls.append("tags")
        return Tagging([("Dog", 0.9)], [TagEvent("Dog", 10.0, 12.0, 0.9)], 30.0, "fake-tagger")

    monkeypatch.setattr(Dz, "diarize", diarize)
    monkeypatch.setattr(Tt, "transcribe_file", transcribe_file)
    monkeypatch.setattr(Tg, "tag_file", tag_file)
    return calls


def test_analyze_job_reuses_recomputes_and_cancels_cleanly(tmp_path, fake_parts):
    path = tmp_path / "a.wav"
    sf.write(path, np.zeros(16000 * 30, np.float32), 16000)
    a = A.analyze_file(None, path, tmp_path / "out", formats=("srt", "json"))
    assert fake_parts == ["speakers", "transcript", "tags"] and not a.reused
    assert a.transcript.words[0].start == pytest.approx(0.9)  # fitted to the voiced turn
    assert a.transcript.words[0].speaker == "S1" and a.tagging.model == "fake-tagger"
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["a.json", "a.srt"]
    b = A.analyze_file(None, path)
    assert b.reused and fake_parts == ["speakers", "transcript", "tags"]  # nothing ran again
    c = A.analyze_file(None, path, tag_threshold=0.5)  # other settings: analysed again
    assert not c.reused and len(fake_parts) == 6
    # cancelled before the end: the sidecar is the old one, no export is written
    before = project.sidecar_path(path).read_text()
    state = JobState()
    state.add_listener(lambda s: s.cancel() if "tagging" in s.status else None)
    with pytest.raises(Cancelled):
        A.analyze_file(state, path, tmp_path / "out2", reuse=False)
    assert project.sidecar_path(path).read_text() == before and not (tmp_path / "out2").exists()
    with pytest.raises(UnsupportedFormat):
        A.analyze_file(None, path, tmp_path / "out3", formats=("docx",))
