"""The model store: packs (in place and assembled from parts), checksums, offline messages,
URL downloads with resume against a local HTTP server, hub downloads' progress and cancel,
imported folders, verify and remove."""

from __future__ import annotations

import hashlib
import http.server
import io
import json
import tarfile
import threading
from pathlib import Path

import pytest

from engine.errors import Cancelled, ChecksumMismatch, ModelError, ModelNotAvailable
from engine.jobs import JobState
from engine.store import MARKER, ModelStore


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def write_catalog(folder: Path, entries: list[dict]) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "test.json").write_text(json.dumps(entries))
    return folder


def fake_pack(monkeypatch, name: str, root: Path, files: dict[str, bytes]) -> None:
    """Make importlib.metadata find a distribution `name` whose files live under `root`."""
    import importlib.metadata as md

    for rel, data in files.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_bytes(data)

    class Dist:
        def locate_file(self, p):
            return root / p

    real = md.distribution

    def distribution(n):
        return Dist() if n == name else real(n)

    monkeypatch.setattr(md, "distribution", distribution)


@pytest.fixture
def store(tmp_path, monkeypatch):
    monkeypatch.delenv("SONOSCOPE_OFFLINE", raising=False)
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    return lambda entries: ModelStore(tmp_path / "cache", write_catalog(tmp_path / "catalog", entries))


def counting_sha256(monkeypatch) -> list[Path]:
    """Wrap engine.store._sha256: returns the list of files hashed so far."""
    import engine.store

    hashed, real = [], engine.store._sha256
    monkeypatch.setattr(engine.store, "_sha256", lambda path, state=None: hashed.append(Path(path)) or real(path, state))
    return hashed


def test_real_offline_packs_resolve_and_verify(tmp_path, monkeypatch):
    """The catalog's real packs (installed by the models extra) resolve in place and match their checksums."""
    hashed = counting_sha256(monkeypatch)
    s = ModelStore(tmp_path / "cache")
    for model_id, name in [("silero-vad", "silero_vad_16k.safetensors"),
                           ("piper-en_US-joe-medium", "en_US-joe-medium.onnx")]:
        assert s.installed_from(model_id).startswith("pack:")
        hashed.clear()
        folder = s.resolve(model_id)
        assert (folder / name).is_file()
        assert folder / name in hashed  # the first resolve checks the pack's files
        # resolving again uses the remembered verification: nothing is hashed
        hashed.clear()
        assert s.resolve(model_id) == folder and hashed == []
        assert ModelStore(tmp_path / "cache").resolve(model_id) == folder and hashed == []  # across sessions too
        ok, msg = s.verify(model_id)  # an explicit verify always re-reads the files
        assert ok, msg
    assert (tmp_path / "cache" / ".verified" / "silero-vad.json").is_file()


def test_pack_in_place_and_checksum_mismatch(store, tmp_path, monkeypatch):
    data = b"weights" * 1000
    fake_pack(monkeypatch, "fake-pack", tmp_path / "site", {"fake/m/model.bin": data, "fake/m/config.json": b"{}"})
    s = store([{"id": "m", "task": "t", "family": "f", "sources": [
        {"type": "pack", "package": "fake-pack", "files": {"model.bin": ["fake/m/model.bin"],
                                                          "config.json": ["fake/m/config.json"]},
         "sha256": {"model.bin": sha(data)}}]}])
    assert s.resolve("m") == tmp_path / "site" / "fake" / "m"  # used in place, nothing copied
    assert not s.cache_dir("m").exists()
    # the pack gets damaged (same size, so the remembered stamp must still catch the new mtime)
    import os
    import time
    p = tmp_path / "site" / "fake" / "m" / "model.bin"
    p.write_bytes(b"X" + data[1:])
    os.utime(p, ns=(time.time_ns() + 10**9, time.time_ns() + 10**9))
    with pytest.raises(ChecksumMismatch, match="does not match its checksum.*reinstall"):
        s.resolve("m")
    with pytest.raises(ChecksumMismatch):  # a failed check is not remembered as a pass
        s.resolve("m")
    ok, msg = s.verify("m")
    assert not ok and "mismatch" in msg and "model.bin" in msg


def test_a_verified_pack_is_hashed_again_only_when_a_file_changes(store, tmp_path, monkeypatch):
    import os

    data = b"weights" * 1000
    fake_pack(monkeypatch, "fake-pack", tmp_path / "site", {"fake/m/model.bin": data, "fake/m/config.json": b"{}"})
    s = store([{"id": "m", "task": "t", "family": "f", "sources": [
        {"type": "pack", "package": "fake-pack", "files": {"model.bin": ["fake/m/model.bin"],
                                                          "config.json": ["fake/m/config.json"]},
         "sha256": {"model.bin": sha(data)}}]}])
    hashed = counting_sha256(monkeypatch)
    p = tmp_path / "site" / "fake" / "m" / "model.bin"
    s.resolve("m")
    assert hashed == [p]  # only the file with a checksum
    for _ in range(3):
        s.resolve("m")
    assert hashed == [p]
    st = p.stat()
    os.utime(p, ns=(st.st_atime_ns, st.st_mtime_ns + 10**9))  # same bytes, new mtime: checked once more
    s.resolve("m")
    s.resolve("m")
    assert hashed == [p, p]


def test_pack_parts_are_concatenated_into_the_cache(store, tmp_path, monkeypatch):
    """A model split over two pip packages (as whisper-base is) is assembled into the cache."""
    import importlib.metadata as md

    a, b = b"A" * 3_000_000, b"B" * 1_234_567
    for site, rel, data in ((tmp_path / "site1", "p1/model.bin.part1", a), (tmp_path / "site2", "p2/model.bin.part2", b),
                            (tmp_path / "site1", "p1/config.json", b"{}")):
        (site / rel).parent.mkdir(parents=True, exist_ok=True)
        (site / rel).write_bytes(data)

    class Dist:
        def __init__(self, root):
            self.root = root

        def locate_file(self, p):
            return self.root / p

    real = md.distribution
    sites = {"parts-1": tmp_path / "site1", "parts-2": tmp_path / "site2"}
    monkeypatch.setattr(md, "distribution", lambda n: Dist(sites[n]) if n in sites else real(n))
    entry = {"id": "big", "task": "t", "family": "f", "sources": [
        {"type": "pack", "packages": ["parts-1", "parts-2"],
         "files": {"model.bin": ["p1/model.bin.part1", "p2/model.bin.part2"], "config.json": ["p1/config.json"]},
         "sha256": {"model.bin": sha(a + b)}}]}
    assert store([entry]).installed_from("big") == "pack:parts-1+parts-2"
    seen = []
    state = JobState(lambda st: seen.append(st.progress))
    folder = store([entry]).resolve("big", state)
    assert folder == tmp_path / "cache" / "big"
    assert (folder / "model.bin").read_bytes() == a + b
    assert (folder / MARKER).is_file()
    assert seen[-1] == 1.0 and seen == sorted(seen)
    # wrong checksum: nothing is left in the cache, not even a staging folder
    entry["id"] = "big2"
    entry["sources"][0]["sha256"]["model.bin"] = "0" * 64
    with pytest.raises(ChecksumMismatch):
        store([entry]).resolve("big2")
    assert sorted(p.name for p in (tmp_path / "cache").iterdir()) == ["big"]
    # with one of the two packages missing, the message names both
    del sites["parts-2"]
    entry["id"] = "big3"
    with pytest.raises(ModelNotAvailable, match="pip install parts-1 parts-2"):
        store([entry]).resolve("big3")


def test_offline_with_nothing_cached_says_what_to_do(store, monkeypatch):
    s = store([{"id": "w", "task": "t", "family": "f", "sources": [
        {"type": "pack", "package": "no-such-pack-xyz", "files": {"a": ["a"]}},
        {"type": "hub", "repo": "org/w", "files": ["a"]}]}])
    monkeypatch.setenv("SONOSCOPE_OFFLINE", "1")
    with pytest.raises(ModelNotAvailable) as e:
        s.resolve("w")
    msg = str(e.value)
    assert "pip install no-such-pack-xyz" in msg and "models download w" in msg and "offline" in msg
    with pytest.raises(ModelNotAvailable, match="unknown model 'nope'"):
        s.resolve("nope")


class RangeHandler(http.server.BaseHTTPRequestHandler):
    payload = b""
    requests: list = []
    cut_after: int | None = None

    def do_GET(self):  # noqa: N802
        rng = self.headers.get("Range")
        type(self).requests.append(rng)
        start = int(rng.split("=")[1].rstrip("-")) if rng else 0
        body = self.payload[start:]
        self.send_response(206 if rng else 200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if type(self).cut_after is not None:  # drop the connection part-way through
            self.wfile.write(body[: type(self).cut_after])
            type(self).cut_after = None
            return
        self.wfile.write(body)

    def log_message(self, *a):
        pass


def test_url_download_resumes_verifies_and_unpacks(store, tmp_path):
    buf = io.BytesIO()
    content = bytes(range(256)) * 4000
    with tarfile.open(fileobj=buf, mode="w:gz") as t:
        info = tarfile.TarInfo("model.data")
        info.size = len(content)
        t.addfile(info, io.BytesIO(content))
    archive = buf.getvalue()
    RangeHandler.payload, RangeHandler.requests, RangeHandler.cut_after = archive, [], len(archive) // 3
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), RangeHandler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        url = f"http://127.0.0.1:{server.server_port}/2stems.tar.gz"
        s = store([{"id": "u", "task": "t", "family": "f",
                    "sources": [{"type": "url", "url": url, "sha256": sha(archive)}]}])
        with pytest.raises((ModelNotAvailable, ChecksumMismatch)):
            s.resolve("u")  # the connection broke part-way: nothing installed
        assert not s.is_installed("u")
        folder = s.resolve("u")  # second try resumes from where it stopped
        assert RangeHandler.requests[-1] == f"bytes={len(archive) // 3}-"
        assert (folder / "model.data").read_bytes() == content
        assert s.verify("u")[0]
        assert "removed" in s.remove("u") and not s.is_installed("u")
    finally:
        server.shutdown()


def test_hub_download_reports_progress_and_cancels(store, tmp_path, monkeypatch):
    import huggingface_hub

    data = b"x" * 10_000

    def fake_download(repo, filename, revision=None, local_dir=None, tqdm_class=None, **kw):
        bar = tqdm_class(total=len(data), initial=0)
        out = Path(local_dir) / filename
        out.parent.mkdir(parents=True, exist_ok=True)
        with open(out, "wb") as f:
            for i in range(0, len(data), 1000):
                f.write(data[i:i + 1000])
                bar.update(1000)
        return str(out)

    monkeypatch.setattr(huggingface_hub, "hf_hub_download", fake_download)
    hub_reachable(monkeypatch)
    s = store([{"id": "h", "task": "t", "family": "f", "sources": [
        {"type": "hub", "repo": "org/h", "files": {"weights.bin": "sub/weights.bin"},
         "sha256": {"weights.bin": sha(data)}}]}])
    progress = []
    folder = s.resolve("h", JobState(lambda st: progress.append(round(st.progress, 2))))
    assert (folder / "weights.bin").read_bytes() == data
    assert 0.5 in progress and progress[-1] == 1.0
    s.remove("h")

    state = JobState()
    state.add_listener(lambda st: st.progress >= 0.3 and st.cancel())
    with pytest.raises(Cancelled):
        s.resolve("h", state)
    assert not s.is_installed("h")
    assert not [p for p in (tmp_path / "cache").iterdir() if p.name.startswith(".h.")]  # no staging left


def test_import_local_folder_and_forget(store, tmp_path):
    s = store([])
    folder = tmp_path / "mymodel"
    folder.mkdir()
    (folder / "config.json").write_text(json.dumps({"model_type": "whisper"}))
    spec = s.import_folder(folder, task="transcribe")
    assert spec.id == "local/mymodel" and spec.family == "whisper"
    assert s.resolve("local/mymodel") == folder.resolve()
    assert "local/mymodel" in [m.id for m in s.catalog("transcribe")]
    assert "left in place" in s.remove("local/mymodel")
    assert folder.is_dir()
    with pytest.raises(ModelNotAvailable):
        s.get("local/mymodel")
    with pytest.raises(ModelError, match="empty"):
        (tmp_path / "empty").mkdir()
        s.import_folder(tmp_path / "empty")


@pytest.fixture
def http_server():
    """A local HTTP server for RangeHandler: yields its base URL; requests are recorded."""
    RangeHandler.requests, RangeHandler.cut_after = [], None
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), RangeHandler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_port}"
    finally:
        server.shutdown()
        server.server_close()


def fake_hub(monkeypatch, files: dict[str, bytes]) -> list[str]:
    """huggingface_hub.hf_hub_download serving ``files`` (by remote name); returns the names asked for."""
    import huggingface_hub

    asked = []

    def fake_download(repo, filename, revision=None, local_dir=None, tqdm_class=None, **kw):
        asked.append(filename)
        out = Path(local_dir) / filename
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_bytes(files[filename])
        return str(out)

    monkeypatch.setattr(huggingface_hub, "hf_hub_download", fake_download)
    hub_reachable(monkeypatch)
    return asked


def hub_reachable(monkeypatch) -> None:
    """The faked hub counts as reachable (the store checks the connection before a download)."""
    import huggingface_hub.constants

    import engine.store

    real = engine.store.check_reachable
    monkeypatch.setattr(engine.store, "check_reachable",
                        lambda url, *a, **k: None if url == huggingface_hub.constants.ENDPOINT else real(url, *a, **k))


def test_a_completed_url_download_with_a_wrong_checksum_is_refused_and_deleted(store, tmp_path, http_server):
    RangeHandler.payload = b"not the archive you expected" * 100
    s = store([{"id": "u", "task": "t", "family": "f", "sources": [
        {"type": "url", "url": f"{http_server}/m.bin", "sha256": sha(b"the real archive")}]}])
    with pytest.raises(ChecksumMismatch, match="m.bin does not match its checksum"):
        s.resolve("u")
    assert RangeHandler.requests == [None]  # downloaded whole, then refused
    assert not s.is_installed("u") and not s.cache_dir("u").exists()
    assert list((tmp_path / "cache" / ".partial").iterdir()) == []  # not kept to resume from
    assert not [p for p in (tmp_path / "cache").iterdir() if p.name.startswith(".u.")]
    with pytest.raises(ChecksumMismatch):  # a second try downloads it all again (no stale resume)
        s.resolve("u")
    assert RangeHandler.requests == [None, None]


def test_a_completed_hub_download_with_a_wrong_checksum_is_refused_and_deleted(store, tmp_path, monkeypatch):
    good, bad = b"config", b"tampered weights"
    fake_hub(monkeypatch, {"config.json": good, "w.bin": bad})
    s = store([{"id": "h", "task": "t", "family": "f", "sources": [
        {"type": "hub", "repo": "org/h", "files": ["config.json", "w.bin"],
         "sha256": {"config.json": sha(good), "w.bin": sha(b"real weights")}}]}])
    with pytest.raises(ChecksumMismatch, match="downloaded w.bin does not match its checksum"):
        s.resolve("h")
    assert not s.is_installed("h") and not s.cache_dir("h").exists()
    partial = tmp_path / "cache" / ".partial" / "h"
    assert not (partial / "w.bin").exists()  # the bad file is deleted, never resumed from
    assert not [p for p in (tmp_path / "cache").iterdir() if p.name.startswith(".h.")]


def test_a_checksum_mismatch_stops_instead_of_trying_the_next_source(store, tmp_path, monkeypatch, http_server):
    asked = fake_hub(monkeypatch, {"w.bin": b"corrupt"})
    RangeHandler.payload = b"good"
    s = store([{"id": "m", "task": "t", "family": "f", "sources": [
        {"type": "hub", "repo": "org/m", "files": ["w.bin"], "sha256": {"w.bin": sha(b"good")}},
        {"type": "url", "url": f"{http_server}/w.bin", "sha256": sha(b"good")}]}])
    with pytest.raises(ChecksumMismatch):
        s.resolve("m")
    assert asked == ["w.bin"] and RangeHandler.requests == []  # the mirror was not tried
    assert not s.is_installed("m")
    # a source that is merely unreachable does fall through to the next one
    import huggingface_hub

    def unreachable(*a, **kw):
        raise OSError("network is unreachable")

    monkeypatch.setattr(huggingface_hub, "hf_hub_download", unreachable)
    folder = s.resolve("m")
    assert RangeHandler.requests == [None] and (folder / "w.bin").read_bytes() == b"good"


def test_verify_finds_a_tampered_or_missing_cached_file(store, monkeypatch):
    weights, config = b"W" * 5000, b"{}"
    fake_hub(monkeypatch, {"w.bin": weights, "config.json": config})
    s = store([{"id": "h", "task": "t", "family": "f", "sources": [
        {"type": "hub", "repo": "org/h", "files": ["w.bin", "config.json"],
         "sha256": {"w.bin": sha(weights), "config.json": sha(config)}}]}])
    folder = s.resolve("h")
    assert s.verify("h") == (True, f"h: OK (2 checksums) in {folder}")
    (folder / "w.bin").write_bytes(b"X" + weights[1:])  # same size, one byte changed
    ok, msg = s.verify("h")
    assert not ok and msg == "h: checksum mismatch in w.bin"
    (folder / "w.bin").unlink()
    ok, msg = s.verify("h")
    assert not ok and msg.startswith("h: missing w.bin")


def test_hub_source_of_a_space_downloads_from_the_space(store, tmp_path, monkeypatch):
    """The x-vector voices live in a Hugging Face *space*: the source's repo_type reaches the download."""
    import huggingface_hub

    data = b"v" * 100
    seen = []

    def fake_download(repo, filename, revision=None, local_dir=None, tqdm_class=None, repo_type=None, **kw):
        seen.append((repo, filename, repo_type))
        out = Path(local_dir) / filename
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_bytes(data)
        return str(out)

    monkeypatch.setattr(huggingface_hub, "hf_hub_download", fake_download)
    hub_reachable(monkeypatch)
    s = store([{"id": "v", "task": "t", "family": "f", "sources": [
        {"type": "hub", "repo": "org/space", "repo_type": "space", "files": {"v.npy": "v.npy"},
         "sha256": {"v.npy": sha(data)}}]},
        {"id": "m", "task": "t", "family": "f", "sources": [
            {"type": "hub", "repo": "org/model", "files": {"m.bin": "m.bin"}, "sha256": {"m.bin": sha(data)}}]}])
    s.resolve("v")
    s.resolve("m")
    assert seen == [("org/space", "v.npy", "space"), ("org/model", "m.bin", None)]
