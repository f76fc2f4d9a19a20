"""Headless command line: ``python main.py <command> ...`` on the same engine as the GUI.

Each module in this package that defines ``register(subparsers)`` adds one or more
commands; ``register`` adds a parser and sets ``func=handler`` on it. A handler
takes the parsed ``argparse.Namespace`` and returns an exit code.

Exit codes: 0 success, 1 the work failed (bad input, model error), 2 usage error,
130 cancelled (Ctrl+C).
"""

from __future__ import annotations

import argparse
import functools
import importlib
import os
import pkgutil
import sys
from pathlib import Path
from typing import Sequence

from ..errors import Cancelled, SonoscopeError

EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_CANCELLED = 0, 1, 2, 130


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="sonoscope",
        description="Sonoscope: an AI audio workstation. With no command (or only file paths) the "
                    "desktop app starts; with a command it runs headless.")
    from .. import __version__

    parser.add_argument("--version", action="version", version=f"sonoscope {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for mod in sorted(pkgutil.iter_modules(__path__), key=lambda m: m.name):
        if mod.name.startswith("_"):
            continue
        module = importlib.import_module(f"{__name__}.{mod.name}")
        register = getattr(module, "register", None)
        if register is not None:
            register(sub)
    return parser


@functools.lru_cache(maxsize=1)
def _parser() -> argparse.ArgumentParser:
    """The parser, built once per process: ``main.py`` asks for the command names (GUI or CLI?
    a missing file?) before it parses, and each build imports every command module."""
    return build_parser()


def commands() -> set[str]:
    parser = _parser()
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            return set(action.choices)
    return set()


def main(argv: Sequence[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    if getattr(args, "func", None) is None:
        parser.print_help(sys.stderr)
        return EXIT_USAGE
    try:
        return int(args.func(args) or 0)
    except Cancelled:
        print("cancelled", file=sys.stderr)
        return EXIT_CANCELLED
    except KeyboardInterrupt:
        print("\ninterrupted", file=sys.stderr)
        return EXIT_CANCELLED
    except SonoscopeError as e:
        print(f"error: {e}", file=sys.stderr)
        return EXIT_FAILED


# -- helpers shared by the commands ------------------------------------------------------------------
def looks_like_path(arg: str) -> bool:
    """A first argument that names a file rather than a (mistyped) command: it has a folder part
    or an extension (``missing.wav``, ``./x``), or something by that name exists."""
    return (os.sep in arg or "/" in arg or bool(Path(arg).suffix) or os.path.exists(arg)) and not arg.startswith("-")


def not_found_message(argv: Sequence[str]) -> str | None:
    """With only paths given (the app's way of being started on files) but some missing: the lines
    to print ("error: x.wav: file not found"), else None (a command: argparse takes over)."""
    if not argv or argv[0] in commands() or not all(looks_like_path(a) for a in argv):
        return None
    missing = [a for a in argv if not os.path.exists(a)]
    if not missing:
        return None
    return "\n".join(f"error: {a}: file not found" for a in missing)


def file_error(path: str | os.PathLike, error: BaseException | str) -> str:
    """``error: PATH: reason`` with the file named once: engine errors already start with the file's
    name (``bad.wav: not a readable audio file``), which is dropped here."""
    msg, path = str(error), str(path)
    for prefix in (path + ": ", Path(path).name + ": "):
        if msg.startswith(prefix):
            msg = msg[len(prefix):]
            break
    for suffix in (f" ({path})", f" ({Path(path).absolute()})"):
        if msg.endswith(suffix):
            msg = msg[: -len(suffix)]
            break
    return f"error: {path}: {msg}"


def check_inputs(files: Sequence[str]) -> list[str]:
    """The readable ones of ``files``, judged by each file's header (milliseconds, before any model is
    loaded: a typo in a file name must not cost a model load first); one error line on stderr for
    each of the others."""
    from ..audio import io as audio
    from ..errors import SonoscopeError

    good, errors = [], []
    for f in files:
        if not os.path.exists(f):
            errors.append(f"error: {f}: file not found")
            continue
        try:
            audio.info(f)
        except SonoscopeError as e:
            errors.append(file_error(f, e))
            continue
        good.append(f)
    for line in errors:
        print(line, file=sys.stderr)
    return good
