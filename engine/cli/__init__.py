"""Headless command line: ``python main.py <command> ...`` on the same engine as the GUI.

Each module in this package that defines ``register(subparsers)`` adds one or more
commands; ``register`` adds a parser and sets ``func=handler`` on it. A handler
takes the parsed ``argparse.Namespace`` and returns an exit code.

Exit codes: 0 success, 1 the work failed (bad input, model error), 2 usage error,
130 cancelled (Ctrl+C).
"""

from __future__ import annotations

import argparse
import importlib
import pkgutil
import sys
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


def commands() -> set[str]:
    parser = build_parser()
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            return set(action.choices)
    return set()


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
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
