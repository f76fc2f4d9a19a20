"""The TensorFlow-free checkpoint reader/writer (engine/tfcheckpoint.py) on real TF checkpoints,
and Spleeter's TF-format weights (2/4/5 stems) round-tripping through it into the PyTorch model."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from engine.devices import cpu_threads
from engine import tfcheckpoint as tfc
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
