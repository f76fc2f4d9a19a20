"""`models list|download|verify|path|remove|import`: manage the model store."""

from __future__ import annotations

import argparse
import json
import sys

from ..store import default_store
from . import EXIT_FAILED, EXIT_OK
from ._progress import StderrProgress


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("models", help="list, download, verify and remove models",
                       description="Manage models. The cache folder is set by SONOSCOPE_MODELS.")
    msub = p.add_subparsers(dest="models_command", metavar="ACTION", required=True)

    q = msub.add_parser("list", help="the catalog, with what is installed")
    q.add_argument("--task", help="only models for this task (transcribe, stems, ctc, vad, tts...)")
    q.add_argument("--json", action="store_true")
    q.set_defaults(func=cmd_list)

    q = msub.add_parser("download", help="fetch models (or unpack their offline packs)")
    q.add_argument("ids", nargs="+", metavar="ID")
    q.set_defaults(func=cmd_download)

    q = msub.add_parser("verify", help="check installed models against their checksums")
    q.add_argument("ids", nargs="*", metavar="ID", help="default: every installed model")
    q.set_defaults(func=cmd_verify)

    q = msub.add_parser("path", help="print a model's local folder (resolving it if needed)")
    q.add_argument("id", metavar="ID")
    q.add_argument("--no-download", action="store_true")
    q.set_defaults(func=cmd_path)

    q = msub.add_parser("remove", help="delete a cached model or forget an imported one")
    q.add_argument("ids", nargs="+", metavar="ID")
    q.set_defaults(func=cmd_remove)

    q = msub.add_parser("import", help="register a local model folder")
    q.add_argument("folder")
    q.add_argument("--id")
    q.add_argument("--family", default="")
    q.add_argument("--task", default="")
    q.add_argument("--format", default="")
    q.set_defaults(func=cmd_import)


def cmd_list(args: argparse.Namespace) -> int:
    store = default_store()
    rows = []
    for spec in store.catalog(args.task):
        where = store.installed_from(spec.id)
        rows.append({"id": spec.id, "task": spec.task, "family": spec.family, "size_mb": spec.size_mb,
                     "license": spec.license, "installed": where or "",
                     "installed_as": store.install_kind(spec.id) or "",  # in words: offline pack, downloaded...
                     "sources": ",".join(spec.source_types)})
    if args.json:
        print(json.dumps(rows, indent=1))
        return EXIT_OK
    print(f"{'ID':34} {'TASK':11} {'SIZE':>8}  {'LICENSE':13} INSTALLED")
    for r in rows:
        size = f"{r['size_mb']:.0f} MB" if r["size_mb"] else "?"
        print(f"{r['id']:34} {r['task']:11} {size:>8}  {r['license'][:13]:13} {r['installed_as'] or '-'}")
    print(f"models folder: {store.root}", file=sys.stderr)
    return EXIT_OK


def cmd_download(args: argparse.Namespace) -> int:
    store = default_store()
    for model_id in args.ids:
        folder = store.download(model_id, StderrProgress(model_id).state())
        print(folder)
    return EXIT_OK


def cmd_verify(args: argparse.Namespace) -> int:
    store = default_store()
    ids = args.ids or [s.id for s in store.catalog() if store.is_installed(s.id)]
    code = EXIT_OK
    for model_id in ids:
        ok, message = store.verify(model_id)
        print(("ok   " if ok else "FAIL ") + message)
        code = code if ok else EXIT_FAILED
    return code


def cmd_path(args: argparse.Namespace) -> int:
    store = default_store()
    folder = store.resolve(args.id, StderrProgress(args.id).state(), allow_download=not args.no_download)
    print(folder)
    return EXIT_OK


def cmd_remove(args: argparse.Namespace) -> int:
    store = default_store()
    for model_id in args.ids:
        print(store.remove(model_id), file=sys.stderr)
    return EXIT_OK


def cmd_import(args: argparse.Namespace) -> int:
    spec = default_store().import_folder(args.folder, args.id, args.family, args.task, args.format)
    print(spec.id)
    return EXIT_OK if spec else EXIT_FAILED
