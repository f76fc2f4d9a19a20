"""openai-whisper checkpoints of Sonoscope's Whisper modules: the reference model in parity tests
and the openai-whisper peer in benchmarks/bench_whisper.py get exactly the same weights."""

from __future__ import annotations

from engine.errors import CheckpointError
from engine.models.whisper import _OPENAI_SIMPLE, Whisper


def openai_state_dict(model: Whisper) -> dict:
    """The checkpoint dict of openai-whisper (``{"dims", "model_state_dict"}``) for this module's weights."""
    if getattr(model, "int8", False):
        raise CheckpointError("cannot export an int8-quantized model; load it again without quantization")
    c, sd, out = model.cfg, model.state_dict(), {}
    for side, n in (("encoder", c.n_audio_layer), ("decoder", c.n_text_layer)):
        for i in range(n):
            p = f"{side}.blocks.{i}."
            q, k, v = sd[p + "qkv.weight"].chunk(3)
            qb, _, vb = sd[p + "qkv.bias"].chunk(3)
            names = {"attn.query.weight": q, "attn.query.bias": qb, "attn.key.weight": k, "attn.value.weight": v,
                     "attn.value.bias": vb}
            for ours, theirs in _OPENAI_SIMPLE.items():
                if ours.startswith("cross") and side == "encoder":
                    continue
                for t in ("weight", "bias"):
                    names[f"{theirs}.{t}"] = sd[f"{p}{ours}.{t}"]
            if side == "decoder":
                ck, cv = sd[p + "cross_kv.weight"].chunk(2)
                _, cvb = sd[p + "cross_kv.bias"].chunk(2)
                names.update({"cross_attn.key.weight": ck, "cross_attn.value.weight": cv, "cross_attn.value.bias": cvb})
            out.update({p + k2: v2.clone() for k2, v2 in names.items()})
    for k in ("encoder.conv1.weight", "encoder.conv1.bias", "encoder.conv2.weight", "encoder.conv2.bias",
              "encoder.ln_post.weight", "encoder.ln_post.bias", "decoder.token_embedding.weight",
              "decoder.positional_embedding", "decoder.ln.weight", "decoder.ln.bias"):
        out[k] = sd[k].clone()
    out["encoder.positional_embedding"] = sd["encoder.positions"].clone()
    dims = {k: getattr(c, k) for k in ("n_mels", "n_audio_ctx", "n_audio_state", "n_audio_head", "n_audio_layer",
                                        "n_vocab", "n_text_ctx", "n_text_state", "n_text_head", "n_text_layer")}
    return {"dims": dims, "model_state_dict": out}
