"""SpeechT5 TTS + HiFi-GAN parity with transformers on tiny random checkpoints saved by save_pretrained:
the same number of mel frames (stop token), the same mel and the same waveform."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from engine import models
from engine.errors import CheckpointError
from engine.models.hifigan import load_model as load_hifigan
from engine.models.speecht5 import CharTokenizer, load_model, load_tokenizer, load_xvector
from engine.speech.speecht5 import generate, speak

TEXT = "hello world, this is a test."
CHARS = "abcdefghijklmnopqrstuvwxyz ,.'?!"


@pytest.fixture(scope="module")
def spm_model(tmp_path_factory):
    """A SentencePiece character model with SpeechT5's special ids (<s>=0, <pad>=1, </s>=2, <unk>=3)."""
    import sentencepiece as spm

    d = tmp_path_factory.mktemp("spm")
    corpus = d / "corpus.txt"
    corpus.write_text("\n".join([CHARS, TEXT, "the quick brown fox jumps over the lazy dog!",
                                 "what's up? okay, fine."] * 20))
    spm.SentencePieceTrainer.train(input=str(corpus), model_prefix=str(d / "spm_char"), model_type="char",
                                   vocab_size=len(set(CHARS)) + 4, bos_id=0, pad_id=1, eos_id=2, unk_id=3,
                                   character_coverage=1.0, minloglevel=2)
    return d / "spm_char.model"


CONFIGS = {
    "r2-default-shape": dict(reduction_factor=2, encoder_layers=2, decoder_layers=2, encoder_attention_heads=2,
                             decoder_attention_heads=2, speech_decoder_postnet_layers=5),
    "r1-deep-4heads": dict(reduction_factor=1, encoder_layers=3, decoder_layers=3, encoder_attention_heads=4,
                           decoder_attention_heads=4, speech_decoder_postnet_layers=3),
    "r2-1layer-postnet2": dict(reduction_factor=2, encoder_layers=1, decoder_layers=1, encoder_attention_heads=1,
                               decoder_attention_heads=2, speech_decoder_postnet_layers=2),
}


def _tiny_tts(folder, spm_model, seed, **kw):
    from transformers import SpeechT5Config, SpeechT5ForTextToSpeech

    import sentencepiece as spm

    vocab = spm.SentencePieceProcessor(model_file=str(spm_model)).get_piece_size()
    cfg = SpeechT5Config(vocab_size=vocab, hidden_size=32, encoder_ffn_dim=48, decoder_ffn_dim=48,
                         speech_decoder_prenet_units=24, speech_decoder_postnet_units=24, speaker_embedding_dim=512,
                         max_speech_positions=600, max_text_positions=120, encoder_max_relative_position=16,
                         num_mel_bins=80, **kw)
    torch.manual_seed(seed)
    model = SpeechT5ForTextToSpeech(cfg).eval()
    with torch.no_grad():  # a stop head that fires after a while, and post-net statistics that matter
        model.speech_decoder_postnet.prob_out.bias.fill_(-3.0)
        for layer in model.speech_decoder_postnet.layers:
            layer.batch_norm.running_mean.normal_(0, 0.1)
            layer.batch_norm.running_var.uniform_(0.5, 1.5)
        model.speecht5.encoder.prenet.encode_positions.alpha.fill_(0.7)
        model.speecht5.decoder.prenet.encode_positions.alpha.fill_(1.3)
    model.save_pretrained(folder)
    import shutil

    shutil.copy(spm_model, folder / "spm_char.model")
    return model


def _tiny_vocoder(folder, seed, **kw):
    from transformers import SpeechT5HifiGan, SpeechT5HifiGanConfig

    cfg = SpeechT5HifiGanConfig(upsample_initial_channel=32, upsample_rates=[4, 4], upsample_kernel_sizes=[8, 8],
                                resblock_kernel_sizes=[3, 5], resblock_dilation_sizes=[[1, 3], [1, 2]], **kw)
    torch.manual_seed(seed)
    voc = SpeechT5HifiGan(cfg).eval()
    with torch.no_grad():
        voc.mean.normal_(0, 0.5)
        voc.scale.uniform_(0.5, 2.0)
    voc.save_pretrained(folder)
    return voc


def test_tokenizer_matches_transformers(spm_model):
    from transformers import SpeechT5Tokenizer

    ours = load_tokenizer(spm_model.parent)
    ref = SpeechT5Tokenizer(str(spm_model))
    for text in [TEXT, "what's up? okay!", "a b  c"]:
        assert ours.encode(text) == ref(text)["input_ids"]
    assert ours.unknown("héllo #1") == "é#1"
    assert ours.clean("héllo") == "hllo"


@pytest.mark.parametrize("name", list(CONFIGS))
def test_generate_speech_parity(tmp_path, spm_model, name):
    from transformers import SpeechT5Tokenizer

    kw = CONFIGS[name]
    ref_model = _tiny_tts(tmp_path / "tts", spm_model, seed=len(name), **kw)
    ref_voc = _tiny_vocoder(tmp_path / "voc", seed=3)
    ours, voc = load_model(tmp_path / "tts"), load_hifigan(tmp_path / "voc")
    ids = SpeechT5Tokenizer(str(spm_model))(TEXT, return_tensors="pt")["input_ids"]
    spk = torch.randn(1, 512, generator=torch.Generator().manual_seed(7))
    for seed in (0, 1):
        torch.manual_seed(seed)
        ref_mel = ref_model.generate_speech(ids, spk, threshold=0.5, minlenratio=0.0, maxlenratio=4.0)
        torch.manual_seed(seed)
        mel = generate(ours, ids[0], spk[0].numpy(), threshold=0.5, maxlenratio=4.0, rng="transformers")
        assert mel.shape == ref_mel.shape, (mel.shape, ref_mel.shape)
        assert 4 <= mel.shape[0] and mel.shape[0] % kw["reduction_factor"] == 0
        torch.testing.assert_close(mel, ref_mel, atol=1e-4, rtol=0)
        with torch.no_grad():
            ref_wave = ref_voc(ref_mel)
        wave = voc(mel)
        assert wave.shape == ref_wave.shape == (mel.shape[0] * 16,)
        torch.testing.assert_close(wave, ref_wave, atol=1e-4, rtol=0)
    # the stop token decides the length: a head that never fires runs to maxlenratio
    with torch.no_grad():
        ref_model.speech_decoder_postnet.prob_out.bias.fill_(-30.0)
        ours.prob_out.bias.fill_(-30.0)
    torch.manual_seed(5)
    ref_mel = ref_model.generate_speech(ids, spk, maxlenratio=3.0)
    torch.manual_seed(5)
    mel = generate(ours, ids[0], spk[0], maxlenratio=3.0, rng="transformers")
    assert mel.shape == ref_mel.shape and mel.shape[0] == int(ids.shape[1] * 3.0 / kw["reduction_factor"]) * kw["reduction_factor"]
    torch.testing.assert_close(mel, ref_mel, atol=1e-4, rtol=0)
    # and minlenratio holds it back
    with torch.no_grad():
        ref_model.speech_decoder_postnet.prob_out.bias.fill_(30.0)
        ours.prob_out.bias.fill_(30.0)
    torch.manual_seed(6)
    ref_mel = ref_model.generate_speech(ids, spk, minlenratio=1.0, maxlenratio=3.0)
    torch.manual_seed(6)
    mel = generate(ours, ids[0], spk[0], minlenratio=1.0, maxlenratio=3.0, rng="transformers")
    assert mel.shape == ref_mel.shape
    torch.testing.assert_close(mel, ref_mel, atol=1e-4, rtol=0)


def test_vocoder_parity_with_weight_norm_and_without_normalisation(tmp_path):
    from transformers import SpeechT5HifiGan

    ref = _tiny_vocoder(tmp_path / "v1", seed=11, normalize_before=False)
    ref.apply_weight_norm()  # saved as weight-normalised parametrisations: folded on loading
    ref.save_pretrained(tmp_path / "v2")
    ours = load_hifigan(tmp_path / "v2")
    mel = torch.randn(37, 80)
    with torch.no_grad():
        want = SpeechT5HifiGan.from_pretrained(tmp_path / "v1").eval()(mel)
    torch.testing.assert_close(ours(mel), want, atol=1e-4, rtol=0)
    torch.testing.assert_close(ours(mel[None])[0], want, atol=1e-4, rtol=0)


def test_pytorch_bin_checkpoints_and_the_model_registry(tmp_path, spm_model):
    ref = _tiny_tts(tmp_path / "tts", spm_model, seed=1, **CONFIGS["r1-deep-4heads"])
    ref.save_pretrained(tmp_path / "bin", safe_serialization=False) if "safe_serialization" in \
        ref.save_pretrained.__code__.co_varnames else None
    folder = tmp_path / "bin"
    if not (folder / "pytorch_model.bin").exists():  # transformers 5 writes safetensors only
        folder.mkdir(exist_ok=True)
        (folder / "config.json").write_text((tmp_path / "tts" / "config.json").read_text())
        torch.save(ref.state_dict(), folder / "pytorch_model.bin")
    a, b = load_model(tmp_path / "tts"), load_model(folder)
    for (ka, va), (kb, vb) in zip(a.state_dict().items(), b.state_dict().items()):
        assert ka == kb and torch.equal(va, vb)
    assert models.detect_family(tmp_path / "tts") == "speecht5"
    m = models.load(tmp_path / "tts", int8=False)
    assert m.config.reduction_factor == 1 and "speecht5" in models.FAMILIES and "hifigan" in models.FAMILIES


def test_bad_checkpoints_are_clear_errors(tmp_path, spm_model):
    (tmp_path / "a").mkdir()
    (tmp_path / "a" / "config.json").write_text('{"model_type": "speecht5"}')
    (tmp_path / "a" / "model.safetensors").write_bytes(b"not a safetensors file")
    with pytest.raises(CheckpointError, match="unreadable weights"):
        load_model(tmp_path / "a")
    with pytest.raises(CheckpointError, match="speecht5_hifigan"):
        load_hifigan(tmp_path / "a")
    with pytest.raises(CheckpointError, match="SentencePiece"):
        load_tokenizer(tmp_path / "a")
    np.save(tmp_path / "x.npy", np.ones(10, np.float32))
    with pytest.raises(CheckpointError, match="512-d"):
        load_xvector(tmp_path / "x.npy")
    np.save(tmp_path / "y.npy", np.ones(512, np.float32))
    assert load_xvector(tmp_path / "y.npy").shape == (512,)
    from safetensors.numpy import save_file

    save_file({"xvector": np.full((1, 512), 0.5, np.float32)}, str(tmp_path / "z.safetensors"))
    assert float(load_xvector(tmp_path / "z.safetensors")[0]) == 0.5


def test_speak_one_sentence_with_fast_masks_and_speed(tmp_path, spm_model):
    _tiny_tts(tmp_path / "tts", spm_model, seed=2, **CONFIGS["r2-default-shape"])
    _tiny_vocoder(tmp_path / "voc", seed=4)
    model, voc = load_model(tmp_path / "tts"), load_hifigan(tmp_path / "voc")
    tok = load_tokenizer(tmp_path / "tts")
    x = np.random.default_rng(0).standard_normal(512).astype(np.float32)
    torch.manual_seed(0)
    a = speak(model, voc, tok, TEXT, x)
    torch.manual_seed(0)
    b = speak(model, voc, tok, TEXT, x, speed=2.0)
    assert a.dtype == np.float32 and len(a) % 16 == 0 and np.all(np.isfinite(a))
    assert len(b) == pytest.approx(len(a) / 2, abs=32)
    calls = []
    with pytest.raises(RuntimeError):
        generate(model, tok.encode(TEXT), x, check=lambda: calls.append(1) or (len(calls) > 2 and (_ for _ in ()).throw(RuntimeError())))
    assert len(calls) == 3
    assert isinstance(tok, CharTokenizer)
