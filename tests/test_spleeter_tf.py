"""The TensorFlow-free checkpoint reader/writer (engine/tfcheckpoint.py) on real TF checkpoints,
and Spleeter's TF-format weights (2/4/5 stems) round-tripping through it into the PyTorch model."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from engine.compute import cpu_threads
from engine.models import tfcheckpoint as tfc
from engine.errors import CheckpointError
from engine.models import spleeter as sp

MUSICNN = Path(__import__("importlib").util.find_spec("musicnn").origin).parent
MUSICNN_CKPTS = ["MSD_musicnn", "MTT_musicnn", "MSD_vgg", "MTT_vgg"]


def _crc32c_bitwise(data: bytes) -> int:
    crc = 0xFFFFFFFF
    for b in data:
        crc ^= b
        for _ in range(8):
            crc = (crc >> 1) ^ 0x82F63B78 if crc & 1 else crc >> 1
    return crc ^ 0xFFFFFFFF


def test_crc32c_matches_the_standard():
    assert tfc.crc32c(b"123456789") == 0xE3069283  # the CRC-32C check value
    assert tfc.crc32c(b"") == 0
    assert tfc.crc32c(bytes(32)) == 0x8A9136AA  # RFC 3720 test vector
    assert tfc.crc32c(bytes(range(32))) == 0x46DD794E
    rng = np.random.default_rng(0)
    for n in (1, 63, 64, 65, 1000, 4097, 70001):  # vectorised lanes + left padding + folding
        data = rng.integers(0, 256, n, dtype=np.uint8).tobytes()
        assert tfc.crc32c(data) == _crc32c_bitwise(data), n
    for c in (0, 1, 0xDEADBEEF, 0xFFFFFFFF):
        assert tfc.unmask_crc(tfc.mask_crc(c)) == c


def test_varint_and_message_parsing():
    for v in (0, 1, 127, 128, 300, 2**31, 2**63 - 1):
        assert tfc.read_varint(tfc.encode_varint(v), 0) == (v, len(tfc.encode_varint(v)))
    assert tfc.encode_varint(300) == b"\xac\x02"  # the protobuf docs' example
    # field 1 varint 150 (docs example), field 2 bytes "hi", field 6 fixed32
    msg = b"\x08\x96\x01" + b"\x12\x02hi" + b"\x35\x01\x02\x03\x04"
    assert tfc.parse_message(msg) == {1: [150], 2: [b"hi"], 6: [b"\x01\x02\x03\x04"]}
    with pytest.raises(CheckpointError):
        tfc.parse_message(b"\x12\x05hi")  # length past the end


@pytest.mark.parametrize("name", MUSICNN_CKPTS)
def test_reads_real_tf_checkpoints_shipped_by_musicnn(name):
    folder = MUSICNN / name
    reader = tfc.CheckpointReader(folder)  # every tensor's crc32c is verified on read
    assert reader.num_shards == 1 and reader.version == 1
    assert len(reader) > 20
    data_size = (folder / ".data-00000-of-00001").stat().st_size
    spans = sorted((e.offset, e.size) for e in reader.entries.values())
    # the tensors tile the data file exactly: no gap, no overlap, nothing past the end
    assert spans[0][0] == 0 and sum(s for _, s in spans) == data_size
    assert all(a + s == b for (a, s), (b, _) in zip(spans, spans[1:]))
    values = dict(reader.items())
    for k, v in values.items():
        e = reader.entries[k]
        assert v.shape == e.shape, k
        assert v.nbytes == e.size, k
        if v.dtype.kind == "f":
            assert v.dtype == np.float32 and np.isfinite(v).all(), k
    variances = [k for k in values if k.endswith("moving_variance")]
    assert variances and all((values[k] > 0).all() for k in variances)
    # trained (not initial) batch-norm statistics
    assert any(not np.allclose(values[k], 1.0) for k in variances)
    # shapes agree with the model definition in musicnn/models.py and its config.json
    config = json.loads((folder / "config.json").read_text())
    n_classes = config["num_classes_dataset"]
    kernels = {k: v for k, v in values.items() if k.endswith("/kernel") and "/Adam" not in k}
    final = [v for v in kernels.values() if v.ndim == 2 and v.shape[1] == n_classes]
    assert final, f"no dense layer with {n_classes} outputs"
    for k, v in kernels.items():
        if v.ndim == 4:  # TF conv kernels: (kh, kw, in, out); in and out match the biases
            bias = values.get(k[: -len("kernel")] + "bias")
            assert bias is None or bias.shape == (v.shape[3],), k
        elif v.ndim == 2:
            bias = values.get(k[: -len("kernel")] + "bias")
            assert bias is None or bias.shape == (v.shape[1],), k
    # Adam slots mirror their variables
    for k, v in values.items():
        if k.endswith("/Adam") or k.endswith("/Adam_1"):
            assert v.shape == values[k.rsplit("/", 1)[0]].shape, k


def test_checkpoint_round_trip_and_damage_detection(tmp_path):
    src = tfc.load_checkpoint(MUSICNN / "MSD_vgg")
    rng = np.random.default_rng(1)
    extra = {"global_step": np.array(12345, np.int64), "ints": rng.integers(-5, 5, (3, 4)).astype(np.int32),
             "half": rng.standard_normal(7).astype(np.float16), "dbl": rng.standard_normal((2, 2)),
             "flag": np.array([True, False]), "empty": np.zeros((0, 3), np.float32)}
    tensors = {**src, **extra}
    tfc.write_checkpoint(tmp_path / "model", tensors)
    back = tfc.load_checkpoint(tmp_path / "model.index")
    assert back.keys() == tensors.keys()
    for k, v in tensors.items():
        assert back[k].dtype == v.dtype and back[k].shape == v.shape and np.array_equal(back[k], v), k

    # one flipped byte in the data file: the variable that holds it fails its checksum
    data = tmp_path / "model.data-00000-of-00001"
    reader = tfc.CheckpointReader(tmp_path / "model")
    e = max(reader.entries.values(), key=lambda e: e.size)
    raw = bytearray(data.read_bytes())
    raw[e.offset + e.size // 2] ^= 0x10
    data.write_bytes(bytes(raw))
    with pytest.raises(CheckpointError, match="checksum"):
        tfc.CheckpointReader(tmp_path / "model")[e.name]
    # a truncated index is refused with a readable error
    index = tmp_path / "model.index"
    index.write_bytes(index.read_bytes()[:-10])
    with pytest.raises(CheckpointError):
        tfc.CheckpointReader(index)
    with pytest.raises(CheckpointError, match="not found"):
        tfc.CheckpointReader(tmp_path / "nothing")


def _random_spleeter(stems: int, seed: int, filters=(16, 32, 64, 128, 256, 512)) -> sp.Spleeter:
    torch.manual_seed(seed)
    model = sp.Spleeter(sp.SpleeterConfig(stems=sp.STEMS[stems], filters=filters))
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.running_mean.uniform_(-0.2, 0.2)
                m.running_var.uniform_(0.5, 2.0)
                m.weight.uniform_(0.5, 1.5)
                m.bias.uniform_(-0.1, 0.1)
    return model.eval()


@pytest.mark.parametrize("stems, filters", [(4, (16, 32, 64, 128, 256, 512)),  # the real size
                                            (5, (8, 16, 16, 32, 32, 32))])  # smaller, to keep it quick
def test_random_4_and_5_stem_models_round_trip_through_tf_format(tmp_path, stems, filters):
    model = _random_spleeter(stems, seed=stems, filters=filters)
    variables = sp.to_tf_variables(model)
    # Keras names: per U-Net 7 conv2d, 6 conv2d_transpose, 12 batch_normalization, stems in order
    assert f"conv2d_{7 * stems - 1}/kernel" in variables and f"conv2d_{7 * stems}/kernel" not in variables
    assert f"conv2d_transpose_{6 * stems - 1}/bias" in variables
    assert f"batch_normalization_{12 * stems - 1}/moving_variance" in variables
    assert variables["conv2d/kernel"].shape == (5, 5, 2, filters[0])  # TF (kh, kw, in, out)
    assert variables["conv2d_transpose/kernel"].shape == (5, 5, filters[4], filters[5])  # (kh, kw, out, in)
    assert variables["conv2d_6/kernel"].shape == (4, 4, 1, 2)
    assert variables["conv2d_7/kernel"].shape == (5, 5, 2, filters[0])  # the second stem's first conv
    # a training checkpoint also holds optimizer slots and a step counter: they are ignored
    slots = {f"{k}/Adam": np.zeros_like(v) for k, v in list(variables.items())[:5]}
    folder = tmp_path / f"{stems}stems"
    tfc.write_checkpoint(folder / "model", {**variables, **slots, "global_step": np.array(7, np.int64)})
    (folder / "checkpoint").write_text('model_checkpoint_path: "model"\n')

    reader = tfc.CheckpointReader(folder / "model")
    assert set(reader.keys()) == set(variables) | set(slots) | {"global_step"}
    assert all(reader.entries[k].shape == v.shape for k, v in variables.items())
    assert reader["global_step"] == 7 and np.array_equal(reader["conv2d/kernel"], variables["conv2d/kernel"])
    loaded = sp.load_folder(folder)  # finds model.index, infers the stem count and the filters
    assert loaded.stems == sp.STEMS[stems] and loaded.cfg.filters == filters
    ref, got = model.state_dict(), loaded.state_dict()  # every weight read back bit-identical
    for k, v in ref.items():
        if not k.endswith("num_batches_tracked"):
            assert torch.equal(v, got[k]), k
    x = torch.rand(1, 2, 64, 128)
    # tiny convolutions: thread wake-ups would cost more than the work
    with cpu_threads(1), torch.inference_mode():
        assert torch.allclose(model(x), loaded(x.contiguous(memory_format=torch.channels_last)), atol=1e-5)


def test_tf_loader_refuses_a_checkpoint_of_another_model(tmp_path):
    shutil.copytree(MUSICNN / "MSD_vgg", tmp_path / "vgg")
    with pytest.raises(CheckpointError):
        sp.load_tf_checkpoint(tmp_path / "vgg")


# ---------------------------------------------------------------------------------------------
# Spleeter's own conventions, independent of the project's writer (to_tf_variables):
# the layer names and shapes that spleeter/model/functions/unet.py creates, and TensorFlow's
# convolution arithmetic (NHWC, kernels [kh, kw, in, out], [kh, kw, out, in] for transposed,
# "same" padding) computed in numpy.
#
# apply_unet(), once per instrument of the config's instrument_list, builds in this order:
#   6x  Conv2D(filters[i], (5, 5), strides 2, "same")  -> BatchNormalization -> conv activation
#   6x  Conv2DTranspose(filters[4 - i] or 1, (5, 5), strides 2, "same") -> deconv activation
#       -> BatchNormalization [-> Dropout] -> Concatenate([encoder conv output, this])
#   1x  Conv2D(2, (4, 4), dilation 2, "same")  (sigmoid, then Multiply with the input)
# The decoder starts from conv6 (before its batch norm) and concatenates conv5..conv1 (also before
# batch norm), skip first. Keras numbers each layer class globally: conv2d, conv2d_1, ...;
# batch_normalization, batch_normalization_1, ...; conv2d_transpose, conv2d_transpose_1, ...
# The official configs (configs/{2,4,5}stems/base_config.json):
#   2stems: ["vocals", "accompaniment"], unet.unet, default activations (LeakyReLU 0.2 / ReLU)
#   4stems: ["vocals", "drums", "bass", "other"], unet.unet, ELU / ELU
#   5stems: ["vocals", "piano", "drums", "bass", "other"], unet.softmax_unet, ELU / ELU: no sigmoid,
#           the masks are a softmax over the instruments of the final convs' outputs.

SPLEETER_CONFIGS = {
    2: (("vocals", "accompaniment"), "leaky_relu", "relu", False),
    4: (("vocals", "drums", "bass", "other"), "elu", "elu", False),
    5: (("vocals", "piano", "drums", "bass", "other"), "elu", "elu", True),
}


class _KerasNames:
    """Keras's automatic layer names: the first layer of a class is 'conv2d', the next 'conv2d_1'..."""

    def __init__(self) -> None:
        self.count: dict[str, int] = {}

    def __call__(self, kind: str) -> str:
        n = self.count.get(kind, 0)
        self.count[kind] = n + 1
        return kind if n == 0 else f"{kind}_{n}"


def _spleeter_tf_variables(n_instruments: int, filters, rng) -> tuple[dict[str, np.ndarray], list]:
    """Variables named and shaped as Spleeter's apply_unet creates them (creation order kept),
    with random values; also the per-instrument layer plan used by the numpy reference."""
    names = _KerasNames()
    variables: dict[str, np.ndarray] = {}
    plans = []

    def conv(kh, kw, cin, cout):
        n = names("conv2d")
        variables[f"{n}/kernel"] = (rng.standard_normal((kh, kw, cin, cout)) / np.sqrt(kh * kw * cin)).astype(np.float32)
        variables[f"{n}/bias"] = (0.1 * rng.standard_normal(cout)).astype(np.float32)
        return n

    def tconv(cin, cout):
        n = names("conv2d_transpose")
        variables[f"{n}/kernel"] = (rng.standard_normal((5, 5, cout, cin)) / np.sqrt(6.25 * cin)).astype(np.float32)
        variables[f"{n}/bias"] = (0.1 * rng.standard_normal(cout)).astype(np.float32)
        return n

    def bn(c):
        n = names("batch_normalization")
        variables[f"{n}/gamma"] = rng.uniform(0.5, 1.5, c).astype(np.float32)
        variables[f"{n}/beta"] = rng.uniform(-0.2, 0.2, c).astype(np.float32)
        variables[f"{n}/moving_mean"] = rng.uniform(-0.3, 0.3, c).astype(np.float32)
        variables[f"{n}/moving_variance"] = rng.uniform(0.3, 2.0, c).astype(np.float32)
        return n

    for _ in range(n_instruments):
        plan = {"down": [], "up": []}
        cin = 2
        for f in filters:
            plan["down"].append((conv(5, 5, cin, f), bn(f)))
            cin = f
        ups = [filters[4], filters[3], filters[2], filters[1], filters[0], 1]
        cin = filters[5]
        for i, f in enumerate(ups):
            plan["up"].append((tconv(cin, f), bn(f)))
            cin = 2 * f if i < 5 else f  # concatenated with the encoder conv of the same size
        plan["out"] = conv(4, 4, 1, 2)
        plans.append(plan)
    return variables, plans


def tf_conv2d(x: np.ndarray, k: np.ndarray, stride: int = 1, dilation: int = 1) -> np.ndarray:
    """tf.nn.conv2d, NHWC, kernel (kh, kw, in, out), padding "SAME" (extra padding at the end)."""
    N, H, W, _ = x.shape
    kh, kw = k.shape[:2]
    out, pads = [], []
    for size, ks in ((H, kh), (W, kw)):
        o = -(-size // stride)
        total = max((o - 1) * stride + (ks - 1) * dilation + 1 - size, 0)
        out.append(o)
        pads.append((total // 2, total - total // 2))
    xp = np.pad(x, ((0, 0), pads[0], pads[1], (0, 0)))
    y = np.zeros((N, out[0], out[1], k.shape[3]))
    for a in range(kh):
        for b in range(kw):
            patch = xp[:, a * dilation: a * dilation + stride * (out[0] - 1) + 1: stride,
                       b * dilation: b * dilation + stride * (out[1] - 1) + 1: stride]
            y += patch @ k[a, b]
    return y


def tf_conv2d_transpose(x: np.ndarray, k: np.ndarray, stride: int = 2) -> np.ndarray:
    """tf.nn.conv2d_transpose (the gradient of conv2d), NHWC, kernel (kh, kw, out, in), "SAME":
    output (N, H*stride, W*stride, out); input pixel (i, j) lands at (i*s + a - top, j*s + b - left)."""
    N, H, W, _ = x.shape
    kh, kw, cout, _ = k.shape
    OH, OW = H * stride, W * stride
    top = max((H - 1) * stride + kh - OH, 0) // 2
    left = max((W - 1) * stride + kw - OW, 0) // 2
    full = np.zeros((N, (H - 1) * stride + kh, (W - 1) * stride + kw, cout))
    for a in range(kh):
        for b in range(kw):
            full[:, a: a + stride * (H - 1) + 1: stride, b: b + stride * (W - 1) + 1: stride] += x @ k[a, b].T
    return full[:, top: top + OH, left: left + OW]


def _act(name: str, x: np.ndarray) -> np.ndarray:
    if name == "leaky_relu":
        return np.where(x > 0, x, 0.2 * x)
    if name == "relu":
        return np.maximum(x, 0)
    return np.where(x > 0, x, np.expm1(np.minimum(x, 0)))  # ELU, alpha 1


def _tf_bn(v: dict, name: str, x: np.ndarray) -> np.ndarray:  # Keras inference, epsilon 1e-3
    return ((x - v[f"{name}/moving_mean"]) / np.sqrt(v[f"{name}/moving_variance"] + 1e-3)
            * v[f"{name}/gamma"] + v[f"{name}/beta"])


def _tf_unet_logits(v: dict, plan: dict, x: np.ndarray, conv_act: str, deconv_act: str) -> np.ndarray:
    """apply_unet up to the last conv (the mask before its sigmoid), numpy float64, NHWC."""
    convs = []
    h = x
    for c, b in plan["down"]:
        z = tf_conv2d(h, v[f"{c}/kernel"], 2) + v[f"{c}/bias"]
        convs.append(z)
        h = _act(conv_act, _tf_bn(v, b, z))
    h = convs[5]
    for i, (t, b) in enumerate(plan["up"]):
        h = _tf_bn(v, b, _act(deconv_act, tf_conv2d_transpose(h, v[f"{t}/kernel"]) + v[f"{t}/bias"]))
        if i < 5:
            h = np.concatenate([convs[4 - i], h], axis=-1)
    c = plan["out"]
    return tf_conv2d(h, v[f"{c}/kernel"], 1, dilation=2) + v[f"{c}/bias"]


def test_numpy_tf_reference_follows_tf_padding_and_kernel_order():
    """The reference itself: an impulse through one-tap, asymmetric kernels lands where TF puts it."""
    x = np.zeros((1, 8, 8, 1))
    x[0, 4, 4] = 1.0
    k = np.zeros((5, 5, 1, 1))
    k[0, 3, 0, 0] = 1.0  # row tap 0, column tap 3
    # stride 2, "same" on 8: 4 outputs, 3 padding rows/cols, 1 before; output (i, j) reads input
    # (2i - 1 + a, 2j - 1 + b): the impulse at (4, 4) is read by tap (0, 3) from output (2.5, 1): none;
    y = tf_conv2d(x, k, 2)
    assert y.shape == (1, 4, 4, 1) and y.sum() == 0
    x[0, 4, 4], x[0, 3, 4] = 0.0, 1.0  # now (3, 4) = (2*2 - 1 + 0, 2*1 - 1 + 3)
    y = tf_conv2d(x, k, 2)
    assert y[0, 2, 1, 0] == 1.0 and y.sum() == 1.0
    # transposed (kernel [kh, kw, out, in]): input (i, j) -> output (2i + a - 1, 2j + b - 1)
    u = np.zeros((1, 4, 4, 1))
    u[0, 2, 1] = 1.0
    z = tf_conv2d_transpose(u, k)
    assert z.shape == (1, 8, 8, 1) and z[0, 3, 4, 0] == 1.0 and z.sum() == 1.0
    # conv2d_transpose is the adjoint (gradient) of conv2d with the very same kernel array (TF's
    # [kh, kw, out, in] of the transposed op is [kh, kw, in, out] of the forward one): <Ax, y> = <x, A^T y>
    rng = np.random.default_rng(0)
    k = rng.standard_normal((5, 5, 3, 4))
    a, b = rng.standard_normal((2, 16, 12, 3)), rng.standard_normal((2, 8, 6, 4))
    assert np.isclose((tf_conv2d(a, k, 2) * b).sum(), (a * tf_conv2d_transpose(b, k)).sum())
    # dilated 4x4 "same", stride 1: 6 padding rows, 3 before: tap (0, 3) reads (i - 3, j + 3)
    k4 = np.zeros((4, 4, 1, 1))
    k4[0, 3, 0, 0] = 1.0
    x = np.zeros((1, 8, 8, 1))
    x[0, 2, 5] = 1.0
    assert tf_conv2d(x, k4, 1, 2)[0, 5, 2, 0] == 1.0


@pytest.mark.parametrize("stems", [2, 4, 5])
def test_checkpoint_named_and_computed_as_spleeter_loads_to_the_same_outputs(tmp_path, stems):
    names, conv_act, deconv_act, softmax = SPLEETER_CONFIGS[stems]
    filters = (3, 4, 5, 6, 7, 8)  # all different: an in/out mix-up changes shapes
    rng = np.random.default_rng(stems)
    variables, plans = _spleeter_tf_variables(stems, filters, rng)
    # the real checkpoints keep the layers' numbering: e.g. the 2nd instrument's first conv is conv2d_7
    assert plans[1]["down"][0] == ("conv2d_7", "batch_normalization_12")
    assert plans[1]["up"][0] == ("conv2d_transpose_6", "batch_normalization_18")
    assert plans[-1]["out"] == f"conv2d_{7 * stems - 1}"
    folder = tmp_path / f"{stems}stems"
    tfc.write_checkpoint(folder / "model", {**variables, "global_step": np.array(1, np.int64)})
    model = sp.load_folder(folder)
    assert model.stems == names

    x = rng.uniform(0, 2, (1, 64, 128, 2))  # NHWC: (batch, frames, bins, channels)
    logits = np.stack([_tf_unet_logits(variables, p, x, conv_act, deconv_act) for p in plans])
    if softmax:  # softmax_unet: softmax over the instruments, then times the input
        e = np.exp(logits - logits.max(0))
        want = e / e.sum(0) * x
    else:
        want = 1 / (1 + np.exp(-logits)) * x
    want = want.transpose(0, 1, 4, 2, 3)  # (S, B, C, T, F): the PyTorch layout
    xt = torch.from_numpy(x.transpose(0, 3, 1, 2).astype(np.float32))
    with cpu_threads(1), torch.inference_mode():
        fused = model(xt.contiguous(memory_format=torch.channels_last)).numpy()
        for net in model.unets:
            net.fuse(False)
        plain = model(xt).numpy()
    scale = np.abs(want).max()
    assert np.abs(plain - want).max() < 1e-4 * scale
    assert np.abs(fused - want).max() < 1e-4 * scale
    # the project's own writer produces exactly Spleeter's names and shapes
    ours = sp.to_tf_variables(model)
    assert {k: v.shape for k, v in ours.items()} == {k: v.shape for k, v in variables.items()}
