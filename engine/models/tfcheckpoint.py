"""Read (and write) TensorFlow checkpoints without TensorFlow or protobuf.

A TF1/TF2 checkpoint ``PREFIX`` is two files (the "V2" tensor bundle format):

* ``PREFIX.index``: a LevelDB-style sorted string table (SSTable). Its entries map a
  variable name to a ``BundleEntryProto`` (dtype, shape, shard, offset, size, crc32c);
  the empty key holds a ``BundleHeaderProto`` (shard count, endianness, version).
* ``PREFIX.data-00000-of-00001``: the raw little-endian tensor bytes, back to back.

SSTable layout (all integers little endian, "varint" = protobuf base-128 varint)::

    [data block]* [meta-index block] [index block] [footer: 48 bytes]
    block   = entries, restart offsets (uint32 each), restart count (uint32),
              then a 5-byte trailer (compression type, masked crc32c)
    entry   = varint shared, varint unshared, varint value_len, key[shared:], value
    footer  = meta-index handle, index handle (varint offset, varint size each),
              zero padding to 40 bytes, magic 0xdb4775248b80fb57 (uint64)

The index block maps the last key of each data block to that block's handle.
Every tensor's crc32c is checked on read (vectorised with numpy: one hour of float32
weights checks in about a second).
"""

from __future__ import annotations

import os
import struct
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import numpy as np

from ..errors import CheckpointError
from ..fileio import atomic_path

TABLE_MAGIC = 0xDB4775248B80FB57
FOOTER_SIZE = 48

# tensorflow/core/framework/types.proto DataType -> numpy dtype
DTYPES: dict[int, np.dtype] = {
    1: np.dtype("<f4"), 2: np.dtype("<f8"), 3: np.dtype("<i4"), 4: np.dtype("u1"), 5: np.dtype("<i2"),
    6: np.dtype("i1"), 9: np.dtype("<i8"), 10: np.dtype("?"), 17: np.dtype("<u2"), 19: np.dtype("<f2"),
    22: np.dtype("<u4"), 23: np.dtype("<u8"),
}
DT_STRING, DT_BFLOAT16 = 7, 14
DTYPE_NAMES = {1: "float32", 2: "float64", 3: "int32", 4: "uint8", 5: "int16", 6: "int8", 7: "string",
               9: "int64", 10: "bool", 14: "bfloat16", 17: "uint16", 19: "float16", 22: "uint32",
               23: "uint64"}
NUMPY_TO_DT = {np.dtype(v).str.lstrip("<|"): k for k, v in DTYPES.items()}


# ---------------------------------------------------------------------------------------------
# protobuf wire format (just what the bundle protos use)


def read_varint(buf: bytes | memoryview, pos: int) -> tuple[int, int]:
    """Decode a base-128 varint at ``pos``; returns ``(value, new_pos)``."""
    result = shift = 0
    while True:
        if pos >= len(buf):
            raise CheckpointError("truncated varint in checkpoint index")
        b = buf[pos]
        pos += 1
        result |= (b & 0x7F) << shift
        if not b & 0x80:
            return result, pos
        shift += 7
        if shift > 63:
            raise CheckpointError("malformed varint in checkpoint index")


def encode_varint(value: int) -> bytes:
    if value < 0:
        value &= (1 << 64) - 1  # protobuf int64: two's complement, 10 bytes
    out = bytearray()
    while True:
        b = value & 0x7F
        value >>= 7
        if value:
            out.append(b | 0x80)
        else:
            out.append(b)
            return bytes(out)


def parse_message(buf: bytes | memoryview) -> dict[int, list]:
    """Split a protobuf message into ``{field number: [values]}`` (varints as int, the rest as bytes)."""
    fields: dict[int, list] = {}
    pos, end = 0, len(buf)
    while pos < end:
        tag, pos = read_varint(buf, pos)
        number, wire = tag >> 3, tag & 7
        if wire == 0:
            value, pos = read_varint(buf, pos)
        elif wire == 1:
            value, pos = bytes(buf[pos:pos + 8]), pos + 8
        elif wire == 2:
            n, pos = read_varint(buf, pos)
            value, pos = bytes(buf[pos:pos + n]), pos + n
        elif wire == 5:
            value, pos = bytes(buf[pos:pos + 4]), pos + 4
        else:
            raise CheckpointError(f"unsupported protobuf wire type {wire}")
        if pos > end:
            raise CheckpointError("truncated protobuf message in checkpoint index")
        fields.setdefault(number, []).append(value)
    return fields


def _field(number: int, wire: int, payload: bytes | int) -> bytes:
    tag = encode_varint(number << 3 | wire)
    if wire == 0:
        return tag + encode_varint(int(payload))
    if wire == 2:
        return tag + encode_varint(len(payload)) + payload
    if wire == 5:
        return tag + payload
    raise ValueError(wire)


def _signed64(v: int) -> int:
    return v - (1 << 64) if v >= 1 << 63 else v


# ---------------------------------------------------------------------------------------------
# crc32c (Castagnoli), vectorised over many lanes and recombined with GF(2) operators


def _make_table() -> np.ndarray:
    poly = 0x82F63B78
    table = np.zeros(256, np.uint32)
    for i in range(256):
        c = i
        for _ in range(8):
            c = (c >> 1) ^ poly if c & 1 else c >> 1
        table[i] = c
    return table


_TABLE = _make_table()


def _op_zero_byte() -> np.ndarray:
    """The linear map "feed one zero byte" on the raw register, as the images of its 32 basis bits."""
    cols = np.zeros(32, np.uint32)
    for bit in range(32):
        c = np.uint32(1 << bit)
        cols[bit] = _TABLE[int(c) & 0xFF] ^ (c >> np.uint32(8))
    return cols


def _op_tables(cols: np.ndarray) -> np.ndarray:
    """Byte-wise lookup tables (4, 256) that apply a 32x32 GF(2) operator given by its columns."""
    tables = np.zeros((4, 256), np.uint32)
    for k in range(4):
        for bit in range(8):
            sel = (np.arange(256) >> bit) & 1
            tables[k] ^= np.where(sel == 1, cols[8 * k + bit], 0).astype(np.uint32)
    return tables


def _apply(tables: np.ndarray, x: np.ndarray) -> np.ndarray:
    x = np.asarray(x, np.uint32)
    return (tables[0][x & 0xFF] ^ tables[1][(x >> 8) & 0xFF] ^ tables[2][(x >> 16) & 0xFF]
            ^ tables[3][x >> 24])


def _compose(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Columns of the operator "a after b"."""
    return _apply(_op_tables(a), b)


_ZERO_POWERS: list[np.ndarray] = []  # lookup tables of "feed 2**k zero bytes"


def _shift(x: np.ndarray, n: int) -> np.ndarray:
    """Raw registers ``x`` after feeding ``n`` zero bytes (one table application per set bit of n)."""
    if not _ZERO_POWERS:
        op = _op_zero_byte()
        for _ in range(64):
            _ZERO_POWERS.append(_op_tables(op))
            op = _compose(op, op)
    k = 0
    while n:
        if n & 1:
            x = _apply(_ZERO_POWERS[k], x)
        n >>= 1
        k += 1
    return x


def crc32c(data: bytes | memoryview | np.ndarray, lanes: int = 1 << 14) -> int:
    """Standard CRC-32C of ``data``.

    The raw CRC register (init 0) is linear in the data and unchanged by leading zero bytes,
    so the data is left-padded to ``lanes`` equal chunks whose CRCs are computed side by side,
    then folded pairwise: ``raw(A + B) = shift(raw(A), len(B)) ^ raw(B)``.
    """
    buf = np.frombuffer(data, np.uint8) if not isinstance(data, np.ndarray) else data.view(np.uint8).ravel()
    n = buf.size
    lanes = max(1, min(lanes, 1 << max(0, (n // 64).bit_length() - 1)))  # power of two, >= 64 bytes each
    chunk = -(-n // lanes) if n else 0
    crc = np.zeros(lanes, np.uint32)
    if n:
        padded = np.zeros(lanes * chunk, np.uint8)
        padded[lanes * chunk - n:] = buf
        cols = padded.reshape(lanes, chunk).T.copy()  # (chunk, lanes): one row per step
        table = _TABLE
        eight = np.uint32(8)
        for row in cols:
            crc = table[(crc ^ row) & 0xFF] ^ (crc >> eight)
        length = chunk
        while crc.size > 1:  # pairwise fold; lanes is a power of two
            crc = _shift(crc[0::2], length) ^ crc[1::2]
            length *= 2
    init = int(_shift(np.array([0xFFFFFFFF], np.uint32), n)[0])
    return int(crc[0]) ^ init ^ 0xFFFFFFFF


def mask_crc(crc: int) -> int:
    """LevelDB/TF masked CRC (stored form)."""
    return (((crc >> 15) | (crc << 17)) + 0xA282EAD8) & 0xFFFFFFFF


def unmask_crc(masked: int) -> int:
    rot = (masked - 0xA282EAD8) & 0xFFFFFFFF
    return ((rot >> 17) | (rot << 15)) & 0xFFFFFFFF


# ---------------------------------------------------------------------------------------------
# SSTable


def _read_block(data: bytes, offset: int, size: int, path: Path) -> list[tuple[bytes, bytes]]:
    if offset + size + 5 > len(data):
        raise CheckpointError(f"{path.name}: block at {offset} runs past the end of the file (truncated?)")
    block = memoryview(data)[offset:offset + size]
    compression = data[offset + size]
    if compression != 0:
        raise CheckpointError(f"{path.name}: compressed index blocks (type {compression}) are not supported")
    stored = struct.unpack_from("<I", data, offset + size + 1)[0]
    if unmask_crc(stored) != crc32c(bytes(data[offset:offset + size + 1])):
        raise CheckpointError(f"{path.name}: index block checksum mismatch (file damaged)")
    if size < 4:
        raise CheckpointError(f"{path.name}: index block too small")
    num_restarts = struct.unpack_from("<I", block, size - 4)[0]
    end = size - 4 - 4 * num_restarts
    if end < 0:
        raise CheckpointError(f"{path.name}: malformed index block")
    entries, pos, key = [], 0, b""
    while pos < end:
        shared, pos = read_varint(block, pos)
        unshared, pos = read_varint(block, pos)
        vlen, pos = read_varint(block, pos)
        if shared > len(key) or pos + unshared + vlen > end:
            raise CheckpointError(f"{path.name}: malformed index entry")
        key = key[:shared] + bytes(block[pos:pos + unshared])
        pos += unshared
        entries.append((key, bytes(block[pos:pos + vlen])))
        pos += vlen
    return entries


def read_table(path: str | os.PathLike) -> list[tuple[bytes, bytes]]:
    """All ``(key, value)`` pairs of an SSTable file, in key order."""
    path = Path(path)
    data = path.read_bytes()
    if len(data) < FOOTER_SIZE:
        raise CheckpointError(f"{path.name}: too short to be a TensorFlow checkpoint index")
    footer = data[-FOOTER_SIZE:]
    if struct.unpack_from("<Q", footer, 40)[0] != TABLE_MAGIC:
        raise CheckpointError(f"{path.name}: not a TensorFlow checkpoint index (bad magic number)")
    pos = 0
    _meta_off, pos = read_varint(footer, pos)
    _meta_size, pos = read_varint(footer, pos)
    index_off, pos = read_varint(footer, pos)
    index_size, pos = read_varint(footer, pos)
    out: list[tuple[bytes, bytes]] = []
    for _last_key, handle in _read_block(data, index_off, index_size, path):
        off, p = read_varint(handle, 0)
        size, _ = read_varint(handle, p)
        out.extend(_read_block(data, off, size, path))
    return out


def _block_bytes(entries: list[tuple[bytes, bytes]], restart_interval: int = 16) -> bytes:
    body, restarts, prev = bytearray(), [], b""
    for i, (key, value) in enumerate(entries):
        if i % restart_interval == 0:
            restarts.append(len(body))
            shared = 0
        else:
            shared = 0
            while shared < min(len(prev), len(key)) and prev[shared] == key[shared]:
                shared += 1
        body += encode_varint(shared) + encode_varint(len(key) - shared) + encode_varint(len(value))
        body += key[shared:] + value
        prev = key
    if not restarts:
        restarts = [0]
    for r in restarts:
        body += struct.pack("<I", r)
    body += struct.pack("<I", len(restarts))
    return bytes(body)


def write_table(path: str | os.PathLike, entries: list[tuple[bytes, bytes]], block_size: int = 4096) -> None:
    """Write sorted ``(key, value)`` pairs as an uncompressed SSTable (atomically)."""
    entries = sorted(entries)
    out = bytearray()
    index: list[tuple[bytes, bytes]] = []

    def put_block(block_entries: list[tuple[bytes, bytes]]) -> bytes:
        raw = _block_bytes(block_entries) + b"\x00"
        handle = encode_varint(len(out)) + encode_varint(len(raw) - 1)
        out.extend(raw + struct.pack("<I", mask_crc(crc32c(raw))))
        return handle

    current: list[tuple[bytes, bytes]] = []
    size = 0
    for key, value in entries:
        current.append((key, value))
        size += len(key) + len(value) + 8
        if size >= block_size:
            index.append((current[-1][0], put_block(current)))
            current, size = [], 0
    if current:
        index.append((current[-1][0], put_block(current)))
    meta_handle = put_block([])
    index_handle = put_block(index)
    footer = meta_handle + index_handle
    footer += b"\x00" * (40 - len(footer)) + struct.pack("<Q", TABLE_MAGIC)
    out.extend(footer)
    with atomic_path(path) as tmp:
        tmp.write_bytes(bytes(out))


# ---------------------------------------------------------------------------------------------
# tensor bundle


@dataclass(frozen=True)
class TensorEntry:
    name: str
    dtype: int  # TF DataType enum
    shape: tuple[int, ...]
    shard: int
    offset: int
    size: int
    crc32c: int | None  # masked, as stored

    @property
    def dtype_name(self) -> str:
        return DTYPE_NAMES.get(self.dtype, f"dtype{self.dtype}")


def _parse_shape(buf: bytes) -> tuple[int, ...]:
    f = parse_message(buf)
    if f.get(3, [0])[0]:  # unknown_rank
        raise CheckpointError("checkpoint tensor has an unknown rank")
    return tuple(_signed64(parse_message(d).get(1, [0])[0]) for d in f.get(2, []))


def _parse_entry(name: str, buf: bytes) -> TensorEntry:
    f = parse_message(buf)
    if f.get(7):
        raise CheckpointError(f"variable '{name}' is partitioned into slices, which is not supported")
    crc = f.get(6, [None])[0]
    return TensorEntry(name=name, dtype=f.get(1, [0])[0], shape=_parse_shape(f[2][0]) if 2 in f else (),
                       shard=f.get(3, [0])[0], offset=f.get(4, [0])[0], size=f.get(5, [0])[0],
                       crc32c=None if crc is None else struct.unpack("<I", crc)[0])


def _prefix(path: str | os.PathLike) -> str:
    """Accept ``PREFIX``, ``PREFIX.index``, a data shard, or a folder holding one checkpoint."""
    p = Path(path)
    if p.is_dir():
        indexes = sorted(p.glob("*.index"))
        if not indexes:
            ckpt = p / "checkpoint"  # TF "checkpoint" state file names the latest prefix
            raise CheckpointError(f"no TensorFlow checkpoint (*.index) in {p}" +
                                  (" (only a 'checkpoint' state file)" if ckpt.exists() else ""))
        if len(indexes) > 1:
            raise CheckpointError(f"{p} holds several checkpoints: {', '.join(i.name for i in indexes)}")
        return str(indexes[0])[: -len(".index")]
    s = str(p)
    if s.endswith(".index"):
        return s[: -len(".index")]
    if ".data-" in p.name:
        return s[: s.rindex(".data-")]
    return s


class CheckpointReader:
    """Random access to the variables of one TF checkpoint: ``reader[name] -> np.ndarray``."""

    def __init__(self, path: str | os.PathLike, verify: bool = True) -> None:
        self.prefix = _prefix(path)
        index = Path(self.prefix + ".index")
        if not index.exists():
            raise CheckpointError(f"checkpoint index not found: {index}")
        self.verify = verify
        self.entries: dict[str, TensorEntry] = {}
        self.num_shards = 1
        self.version = 0
        for key, value in read_table(index):
            if key == b"":
                h = parse_message(value)
                self.num_shards = h.get(1, [1])[0]
                if h.get(2, [0])[0] != 0:
                    raise CheckpointError(f"{index.name}: big-endian checkpoints are not supported")
                self.version = parse_message(h[3][0]).get(1, [0])[0] if 3 in h else 0
                continue
            name = key.decode("utf-8")
            self.entries[name] = _parse_entry(name, value)
        self._files: dict[int, np.memmap] = {}

    def __contains__(self, name: str) -> bool:
        return name in self.entries

    def __iter__(self) -> Iterator[str]:
        return iter(self.entries)

    def __len__(self) -> int:
        return len(self.entries)

    def keys(self) -> list[str]:
        return list(self.entries)

    def shapes(self) -> dict[str, tuple[int, ...]]:
        return {k: e.shape for k, e in self.entries.items()}

    def _shard(self, shard: int) -> np.memmap:
        if shard not in self._files:
            path = Path(f"{self.prefix}.data-{shard:05d}-of-{self.num_shards:05d}")
            if not path.exists():
                raise CheckpointError(f"checkpoint data file missing: {path.name}")
            self._files[shard] = np.memmap(path, np.uint8, mode="r") if path.stat().st_size else \
                np.zeros(0, np.uint8)
        return self._files[shard]

    def raw(self, name: str) -> bytes:
        e = self._entry(name)
        data = self._shard(e.shard)
        if e.offset + e.size > data.size:
            raise CheckpointError(f"variable '{name}' points past the end of its data file (truncated?)")
        buf = np.asarray(data[e.offset:e.offset + e.size])
        if self.verify and e.crc32c is not None and unmask_crc(e.crc32c) != crc32c(buf):
            raise CheckpointError(f"variable '{name}': checksum mismatch (damaged checkpoint)")
        return buf.tobytes()

    def _entry(self, name: str) -> TensorEntry:
        try:
            return self.entries[name]
        except KeyError:
            raise CheckpointError(f"variable '{name}' not in checkpoint {Path(self.prefix).name or self.prefix}") \
                from None

    def __getitem__(self, name: str) -> np.ndarray:
        e = self._entry(name)
        raw = self.raw(name)
        count = int(np.prod(e.shape, dtype=np.int64))
        if e.dtype == DT_STRING:
            return _decode_strings(raw, count, name).reshape(e.shape)
        if e.dtype == DT_BFLOAT16:
            bits = np.frombuffer(raw, "<u2").astype(np.uint32) << 16
            return bits.view(np.float32).reshape(e.shape)
        if e.dtype not in DTYPES:
            raise CheckpointError(f"variable '{name}' has unsupported dtype {e.dtype_name}")
        dt = DTYPES[e.dtype]
        if len(raw) != count * dt.itemsize:
            raise CheckpointError(f"variable '{name}': {len(raw)} bytes for shape {e.shape} {e.dtype_name}")
        return np.frombuffer(raw, dt).reshape(e.shape).astype(dt.newbyteorder("="), copy=True)

    def get(self, name: str, default=None):
        return self[name] if name in self.entries else default

    def items(self) -> Iterator[tuple[str, np.ndarray]]:
        for name in self.entries:
            yield name, self[name]


def _decode_strings(raw: bytes, count: int, name: str) -> np.ndarray:
    """String tensors: ``count`` varint lengths, a 4-byte masked crc of them, then the bytes."""
    pos, lengths = 0, []
    for _ in range(count):
        n, pos = read_varint(raw, pos)
        lengths.append(n)
    pos += 4
    out = np.empty(count, object)
    for i, n in enumerate(lengths):
        out[i] = raw[pos:pos + n]
        pos += n
    if pos != len(raw):
        raise CheckpointError(f"variable '{name}': malformed string tensor")
    return out


def load_checkpoint(path: str | os.PathLike, verify: bool = True) -> dict[str, np.ndarray]:
    """Every variable of a checkpoint as numpy arrays."""
    return dict(CheckpointReader(path, verify).items())


def write_checkpoint(prefix: str | os.PathLike, tensors: dict[str, np.ndarray]) -> Path:
    """Write numeric tensors as a single-shard TF V2 checkpoint (``PREFIX.index`` + data file).

    The inverse of :class:`CheckpointReader`, used to test the reader and to export weights.
    """
    prefix = str(_prefix(prefix))
    entries: list[tuple[bytes, bytes]] = []
    data = bytearray()
    for name in sorted(tensors):
        a = np.asarray(tensors[name])
        key = a.dtype.newbyteorder("<").str.lstrip("<|") if a.dtype.itemsize > 1 else a.dtype.str.lstrip("<|")
        if key not in NUMPY_TO_DT:
            raise CheckpointError(f"cannot write '{name}' of dtype {a.dtype}")
        raw = np.ascontiguousarray(a, a.dtype.newbyteorder("<")).tobytes()
        shape = b"".join(_field(2, 2, _field(1, 0, d)) for d in a.shape)
        msg = (_field(1, 0, NUMPY_TO_DT[key]) + _field(2, 2, shape) + _field(4, 0, len(data))
               + _field(5, 0, len(raw)) + _field(6, 5, struct.pack("<I", mask_crc(crc32c(raw)))))
        # proto3 omits default values: shard 0 and offset 0 need no field, but writing them is valid too
        entries.append((name.encode("utf-8"), msg))
        data += raw
    header = _field(1, 0, 1) + _field(3, 2, _field(1, 0, 1))  # num_shards=1, little endian, version 1
    entries.append((b"", header))
    with atomic_path(prefix + ".data-00000-of-00001") as tmp:
        tmp.write_bytes(bytes(data))
    write_table(prefix + ".index", entries)
    return Path(prefix + ".index")
