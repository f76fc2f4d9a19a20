"""Whisper speed: the same audio and weights through Sonoscope, openai-whisper, transformers and faster-whisper.

    .venv/bin/python benchmarks/bench_whisper.py [--model base] [--reps 3] [--threads 2] [--device cpu]

Audio (``--set``): the five LibriVox utterances of pocketsphinx-testdata with 0.5 s gaps.
``rotations``: five clips of ~27 s, the utterances in each rotated order, so that each clip ends
on a different utterance (one 30 s window each, and the end of a file is where the timestamp
seeking decides whether a second window is needed); ``long``: the five rotations joined into one
~136 s file (long-form seeking across window boundaries); ``clip``: the first rotation alone.
Default: ``rotations long``, summed. Weights: the CTranslate2 folder of the catalog
model (offline pack); faster-whisper reads it directly, the others get the same float32 weights
converted in memory. Every engine runs greedy decoding with timestamps except transformers
(plain greedy without timestamps: its Whisper generate needs a full generation config).
Sonoscope skips a final window in which Silero VAD hears no speech (TranscribeOptions.
skip_silent_tail); "faster-whisper int8 +vad" is the peer with its own Silero filter over the whole
file (vad_filter=True), which also cuts the silences between utterances.
Engines are interleaved, repetition by repetition, so that load from other processes on this
shared machine hits them alike; the median repetition is reported.

Columns: x real time (audio seconds / wall seconds), windows (30 s windows that produced
segments: int8 engines round differently, so the timestamp seeking can take one window more or
less for the same audio), s/window, decoder ms/token ((wall - windows x encoder time) / decoded
tokens; encoder time measured apart on one 30 s window), WER on the normalised text. Decoding
that falls back to higher temperatures (hallucination on a short silent tail, for instance)
shows up as a high ms/token.

``--whole``: the whole-process mode, one subprocess per run as a CLI user runs it (``main.py
transcribe FILE --model base --language en`` vs benchmarks/fw_transcribe.py, faster-whisper int8
on the same CTranslate2 folder), greedy and beam 5, a 1 s file and a ~60 s file of unseen short
phrases (tests/whisper_long.py); wall time, fallback windows per engine, WER (numbers spelled out).
"""

from __future__ import annotations

import argparse
import os
import re
import statistics
import sys
import time
import warnings
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(1, str(ROOT / "tests"))  # whisper_ref: the openai-whisper peer gets our exact weights
warnings.filterwarnings("ignore")

from engine.wer import wer  # noqa: E402

LIBRIVOX = Path("/usr/share/pocketsphinx/test/data/librivox")


def utterances() -> tuple[list[np.ndarray], list[str]]:
    import soundfile as sf

    audio, refs = [], []
    for line in (LIBRIVOX / "transcription").read_text().splitlines():
        m = re.match(r"\s*<s>(.*)</s>\s*\((.+)\)", line)
        a, _ = sf.read(LIBRIVOX / f"{m.group(2)}.wav", dtype="float32")
        audio.append(a)
        refs.append(m.group(1).strip())
    return audio, refs


def clip_set(names: list[str]) -> list[tuple[str, np.ndarray, str]]:
    """(name, 16 kHz audio, reference text) of each clip of the chosen sets."""
    audio, refs = utterances()
    gap = np.zeros(8000, np.float32)
    rotations = []
    for r in range(len(audio)):
        order = list(range(r, len(audio))) + list(range(r))
        rotations.append((f"rotation {r + 1}", np.concatenate([x for i in order for x in (audio[i], gap)]),
                          " ".join(refs[i] for i in order)))
    clips = []
    if "clip" in names:
        clips.append(rotations[0])
    if "rotations" in names:
        clips += rotations
    if "long" in names:
        clips.append(("long", np.concatenate([a for _, a, _ in rotations]), " ".join(t for _, _, t in rotations)))
    return clips


# -- weight conversion from Sonoscope's module to the peers' layouts -------------------------------

def to_openai(m):
    import whisper.model as ow

    from whisper_ref import openai_state_dict

    ckpt = openai_state_dict(m)
    model = ow.Whisper(ow.ModelDimensions(**ckpt["dims"]))
    model.load_state_dict(ckpt["model_state_dict"])
    return model.eval()


def to_transformers(m):
    from transformers import WhisperConfig, WhisperForConditionalGeneration

    c = m.cfg
    cfg = WhisperConfig(vocab_size=c.n_vocab, num_mel_bins=c.n_mels, d_model=c.n_audio_state,
                        encoder_layers=c.n_audio_layer, decoder_layers=c.n_text_layer,
                        encoder_attention_heads=c.n_audio_head, decoder_attention_heads=c.n_text_head,
                        encoder_ffn_dim=4 * c.n_audio_state, decoder_ffn_dim=4 * c.n_text_state,
                        max_source_positions=c.n_audio_ctx, max_target_positions=c.n_text_ctx)
    sd, out = m.state_dict(), {}
    for side in ("encoder", "decoder"):
        n = c.n_audio_layer if side == "encoder" else c.n_text_layer
        for i in range(n):
            p, o = f"{side}.blocks.{i}.", f"model.{side}.layers.{i}."
            q, k, v = sd[p + "qkv.weight"].chunk(3)
            qb, _, vb = sd[p + "qkv.bias"].chunk(3)
            out.update({o + "self_attn.q_proj.weight": q, o + "self_attn.q_proj.bias": qb,
                        o + "self_attn.k_proj.weight": k, o + "self_attn.v_proj.weight": v,
                        o + "self_attn.v_proj.bias": vb, o + "self_attn.out_proj.weight": sd[p + "out.weight"],
                        o + "self_attn.out_proj.bias": sd[p + "out.bias"],
                        o + "self_attn_layer_norm.weight": sd[p + "attn_ln.weight"],
                        o + "self_attn_layer_norm.bias": sd[p + "attn_ln.bias"],
                        o + "fc1.weight": sd[p + "fc1.weight"], o + "fc1.bias": sd[p + "fc1.bias"],
                        o + "fc2.weight": sd[p + "fc2.weight"], o + "fc2.bias": sd[p + "fc2.bias"],
                        o + "final_layer_norm.weight": sd[p + "mlp_ln.weight"],
                        o + "final_layer_norm.bias": sd[p + "mlp_ln.bias"]})
            if side == "decoder":
                ck, cv = sd[p + "cross_kv.weight"].chunk(2)
                _, cvb = sd[p + "cross_kv.bias"].chunk(2)
                out.update({o + "encoder_attn.q_proj.weight": sd[p + "cross_q.weight"],
                            o + "encoder_attn.q_proj.bias": sd[p + "cross_q.bias"],
                            o + "encoder_attn.k_proj.weight": ck, o + "encoder_attn.v_proj.weight": cv,
                            o + "encoder_attn.v_proj.bias": cvb,
                            o + "encoder_attn.out_proj.weight": sd[p + "cross_out.weight"],
                            o + "encoder_attn.out_proj.bias": sd[p + "cross_out.bias"],
                            o + "encoder_attn_layer_norm.weight": sd[p + "cross_ln.weight"],
                            o + "encoder_attn_layer_norm.bias": sd[p + "cross_ln.bias"]})
    out.update({"model.encoder.conv1.weight": sd["encoder.conv1.weight"], "model.encoder.conv1.bias": sd["encoder.conv1.bias"],
                "model.encoder.conv2.weight": sd["encoder.conv2.weight"], "model.encoder.conv2.bias": sd["encoder.conv2.bias"],
                "model.encoder.embed_positions.weight": sd["encoder.positions"],
                "model.encoder.layer_norm.weight": sd["encoder.ln_post.weight"],
                "model.encoder.layer_norm.bias": sd["encoder.ln_post.bias"],
                "model.decoder.embed_tokens.weight": sd["decoder.token_embedding.weight"],
                "model.decoder.embed_positions.weight": sd["decoder.positional_embedding"],
                "model.decoder.layer_norm.weight": sd["decoder.ln.weight"],
                "model.decoder.layer_norm.bias": sd["decoder.ln.bias"],
                "proj_out.weight": sd["decoder.token_embedding.weight"]})
    model = WhisperForConditionalGeneration(cfg)
    model.load_state_dict(out, strict=False)
    return model.eval()


# -- engines: each returns (setup() -> runner, encoder_time_fn); runner(audio) -> (text, n_tokens, windows)

def make_engines(folder: Path, device: str, threads: int, which: list[str]):
    import torch

    from engine.audio.dsp import log_mel_spectrogram, pad_or_trim
    from engine.models.whisper import load_model
    from engine.transcribe.whisper.tokenizer import Tokenizer
    from engine.transcribe.whisper.longform import transcribe

    base = load_model(folder)
    tk = Tokenizer(folder / "tokenizer.json", base.cfg.n_vocab)
    mel30 = log_mel_spectrogram(pad_or_trim(np.zeros(16000, np.float32)), base.cfg.n_mels)[None]
    engines = {}

    def sonoscope(int8: bool):
        m = load_model(folder, device=device)
        if int8:
            m.quantize_int8()

        def run(audio):
            r = transcribe(None, m, tk, audio, language="en")
            return r.text, sum(len(s.tokens) + 1 for s in r.segments), len({s.seek for s in r.segments})

        def enc():
            with torch.no_grad():
                t = time.perf_counter()
                m.encoder(mel30.to(device))
                if device == "cuda":
                    torch.cuda.synchronize()
                return time.perf_counter() - t
        return run, enc

    def faster(compute_type: str, vad: bool = False):
        from faster_whisper import WhisperModel

        fm = WhisperModel(str(folder), device=device, compute_type=compute_type, cpu_threads=threads)

        def run(audio):
            segs, _ = fm.transcribe(audio, beam_size=1, language="en", vad_filter=vad)
            segs = list(segs)
            return "".join(s.text for s in segs), sum(len(s.tokens) + 1 for s in segs), len({s.seek for s in segs})

        def enc():
            feats = fm.feature_extractor(np.zeros(16000 * 30, np.float32))[:, :3000]
            t = time.perf_counter()
            fm.encode(feats)
            return time.perf_counter() - t
        return run, enc

    def openai():
        import whisper

        om = to_openai(base).to(device)

        def run(audio):
            r = whisper.transcribe(om, audio, language="en", temperature=0.0, fp16=device == "cuda",
                                   beam_size=None, best_of=None)
            return r["text"], sum(len(s["tokens"]) + 1 for s in r["segments"]), len({s["seek"] for s in r["segments"]})

        def enc():
            with torch.no_grad():
                t = time.perf_counter()
                om.embed_audio(mel30.to(device))
                return time.perf_counter() - t
        return run, enc

    def hf(int8: bool):
        from transformers import WhisperFeatureExtractor
        from transformers.models.whisper.generation_whisper import WhisperGenerationMixin

        hm = to_transformers(base).to(device)
        if int8:
            from torch.ao.quantization import quantize_dynamic
            hm = quantize_dynamic(hm, {torch.nn.Linear}, dtype=torch.qint8)
        fe = WhisperFeatureExtractor(feature_size=base.cfg.n_mels)
        prompt = tk.sot_sequence("en") + [tk.no_timestamps]

        def run(audio):
            texts, n, windows = [], 0, 0
            for s in range(0, len(audio), 16000 * 30):  # fixed 30 s chunks (no timestamps to seek with)
                feats = fe(audio[s:s + 16000 * 30], sampling_rate=16000, return_tensors="pt").input_features
                with torch.no_grad():
                    out = super(WhisperGenerationMixin, hm).generate(
                        input_features=feats.to(device), decoder_input_ids=torch.tensor([prompt], device=device),
                        max_new_tokens=220, do_sample=False, num_beams=1, eos_token_id=tk.eot,
                        pad_token_id=tk.eot)
                toks = out[0, len(prompt):].tolist()
                n += len(toks)
                texts.append(tk.decode(toks))
                windows += 1
            return " ".join(texts), n, windows

        def enc():
            with torch.no_grad():
                t = time.perf_counter()
                hm.model.encoder(mel30.to(device))
                return time.perf_counter() - t
        return run, enc

    table = {"sonoscope int8": lambda: sonoscope(True), "sonoscope fp32": lambda: sonoscope(False),
             "faster-whisper int8": lambda: faster("int8"), "faster-whisper fp32": lambda: faster("float32"),
             "faster-whisper int8 +vad": lambda: faster("int8", vad=True),
             "openai-whisper": openai, "transformers": lambda: hf(False), "transformers int8": lambda: hf(True)}
    if device == "cuda":
        table = {"sonoscope fp32": table["sonoscope fp32"], "sonoscope fp16": None,
                 "faster-whisper fp16": lambda: faster("float16"), "faster-whisper fp32": table["faster-whisper fp32"],
                 "openai-whisper": openai, "transformers": lambda: hf(False)}
        table.pop("sonoscope fp16")
    for name, make in table.items():
        if which and not any(w in name for w in which):
            continue
        engines[name] = make()
    return engines


# -- whole process: one subprocess per run, as a CLI user runs it -----------------------------------

def whole_files(tmp: Path) -> list[tuple[str, Path, str]]:
    """A 1 s file (the start of "seven of clubs") and a ~60 s file of unseen short phrases, two
    speakers and more, each said twice (tests/whisper_long.py; not a file the int8 split was chosen
    or checked on)."""
    import soundfile as sf

    import voices
    import whisper_long

    one = tmp / "one-second.wav"
    sf.write(one, voices.clip("cards/003.wav")[:16000], 16000)
    audio, text = whisper_long.long_file("BCD", 58, 21)
    sixty = tmp / "sixty-seconds.wav"
    sf.write(sixty, audio, 16000)
    return [("1 s", one, "seven of clubs"), (f"{len(audio) / 16000:.0f} s", sixty, text)]


def whole_process(args, folder: Path) -> None:
    """Wall time of whole processes (start-up, model load, decoding, export): ``main.py transcribe``
    (the int8 default, and --fp32) vs faster-whisper int8 (benchmarks/fw_transcribe.py) on the same
    CTranslate2 weights, greedy and beam 5; fallback windows (distinct windows with a segment decoded
    above temperature 0) and WER from each run's JSON."""
    import json
    import subprocess
    import tempfile

    from whisper_long import wer as spoken_wer

    tmp = Path(tempfile.mkdtemp(prefix="bench-whole-"))
    files = whole_files(tmp)
    env = dict(os.environ, HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1")
    beams = [1, 5]

    def command(engine: str, file: Path, beam: int, out: Path) -> list[str]:
        if engine.startswith("faster-whisper"):
            return [sys.executable, str(ROOT / "benchmarks" / "fw_transcribe.py"), str(file), str(folder),
                    str(out / f"{file.stem}.json"), "--beam-size", str(beam), "--threads", str(args.threads)]
        return [sys.executable, str(ROOT / "main.py"), "transcribe", str(file), "--model", args.model,
                "--language", "en", "--beam-size", str(beam), "--threads", str(args.threads),
                "--format", "json", "--out", str(out)] + (["--fp32"] if "fp32" in engine else [])

    engines = [e for e in ("sonoscope fp32", "sonoscope int8", "faster-whisper int8")
               if not args.only or any(w in e for w in args.only)]
    results: dict[tuple, list] = {}
    for engine in engines:
        out = tmp / "warm"
        out.mkdir(exist_ok=True)
        subprocess.run(command(engine, files[0][1], 1, out), env=env, capture_output=True, cwd=tmp)
        for f in out.iterdir():
            f.unlink()
    for rep in range(args.reps):
        for fname, file, ref in files:
            for beam in beams:
                for engine in engines:  # interleaved: load from other processes hits them alike
                    out = tmp / f"{engine.replace(' ', '_')}-{file.stem}-{beam}-{rep}"
                    out.mkdir()
                    t = time.perf_counter()
                    proc = subprocess.run(command(engine, file, beam, out), env=env, capture_output=True,
                                          text=True, cwd=tmp)
                    wall = time.perf_counter() - t
                    if proc.returncode != 0:
                        raise SystemExit(f"{engine} failed on {file}:\n{proc.stderr[-3000:]}")
                    segs = json.loads((out / f"{file.stem}.json").read_text())["segments"]
                    text = " ".join(s["text"] for s in segs)
                    fallbacks = len({s["seek"] for s in segs if s["temperature"] > 0})
                    results.setdefault((fname, beam, engine), []).append((wall, fallbacks, spoken_wer(ref, text)))
    print(f"\nWhisper {args.model}, whole process (one subprocess per run: start-up, model load, decoding, "
          f"JSON export), {args.threads} threads, median of {args.reps} interleaved runs "
          f"(machine shared with other processes)\n")
    print("| file | beam | engine | wall s | fallback windows | WER | each run s |")
    print("|---|---|---|---|---|---|---|")
    for (fname, beam, engine), rs in results.items():
        walls = [r[0] for r in rs]
        print(f"| {fname} | {beam} | {engine} | {statistics.median(walls):.2f} | "
              f"{'/'.join(str(r[1]) for r in rs)} | {statistics.median(r[2] for r in rs) * 100:.1f}% | "
              f"{' '.join(f'{w:.2f}' for w in walls)} |")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default="base", help="catalog model (default base)")
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--set", nargs="+", default=["rotations", "long"], choices=["clip", "rotations", "long"],
                    help="test audio (default: rotations long)")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--only", nargs="*", default=[], help="engines whose name contains one of these words")
    ap.add_argument("--whole", action="store_true",
                    help="whole-process mode: one subprocess per run (main.py transcribe vs faster-whisper)")
    args = ap.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    import torch

    torch.set_num_threads(args.threads)
    from engine.transcribe.whisper.loading import resolve_folder

    folder = resolve_folder(args.model)
    if args.whole:
        return whole_process(args, folder)
    clips = clip_set(args.set)
    dur = sum(len(a) for _, a, _ in clips) / 16000
    engines = make_engines(folder, args.device, args.threads, args.only)
    times: dict[str, list[float]] = {k: [] for k in engines}
    enc_times: dict[str, list[float]] = {k: [] for k in engines}
    outputs: dict[str, list[tuple]] = {}

    def run_all(run):
        return [run(a) for _, a, _ in clips]

    for name, (run, enc) in engines.items():  # warm-up
        run(clips[0][1])
        enc()
    for rep in range(args.reps):
        for name, (run, enc) in engines.items():
            t = time.perf_counter()
            outputs[name] = run_all(run)
            times[name].append(time.perf_counter() - t)
            enc_times[name].append(enc())
    print(f"\nWhisper {args.model} on {len(clips)} clips, {dur:.1f} s of speech ({' + '.join(args.set)}), "
          f"{args.device}, {args.threads} threads, median of {args.reps} interleaved runs "
          f"(machine shared with other processes)\n")
    print("| engine | wall s | x real time | windows | s/window | encoder ms | decoder ms/token | tokens | WER |")
    print("|---|---|---|---|---|---|---|---|---|")
    hyp_ref = [ref for _, _, ref in clips]
    for name in engines:
        wall = statistics.median(times[name])
        e = statistics.median(enc_times[name])
        n = sum(o[1] for o in outputs[name])
        windows = sum(o[2] for o in outputs[name])
        per_tok = (wall - windows * e) / max(1, n) * 1000
        err = wer(" ".join(hyp_ref), " ".join(o[0] for o in outputs[name]))
        print(f"| {name} | {wall:.2f} | {dur / wall:.1f} | {windows} | {wall / max(1, windows):.2f} | "
              f"{e * 1000:.0f} | {per_tok:.1f} | {n} | {err * 100:.1f}% |")
    print("\nwall s of each repetition: " + "; ".join(
        f"{name} " + " ".join(f"{t:.2f}" for t in times[name]) for name in engines))
    if len(clips) > 1:
        print("windows per clip: " + "; ".join(
            f"{name} " + " ".join(str(o[2]) for o in outputs[name]) for name in engines))


if __name__ == "__main__":
    main()
