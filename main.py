"""Sonoscope entry point.

``python main.py`` (or ``python main.py FILE...``) starts the desktop app;
``python main.py COMMAND ...`` runs headless (``python main.py --help`` lists commands).
"""

from __future__ import annotations

import os
import sys


def _wants_gui(argv: list[str]) -> bool:
    if not argv:
        return True
    if argv[0] in ("gui", "app"):
        return True
    if argv[0].startswith("-"):
        return False
    # Only file or folder paths (as a file manager passes them): open them in the app.
    from engine.cli import commands

    return argv[0] not in commands() and all(os.path.exists(a) for a in argv)


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if _wants_gui(argv):
        if argv and argv[0] in ("gui", "app"):
            argv = argv[1:]
        from app import run_app

        return run_app(argv)
    from engine.cli import EXIT_FAILED, not_found_message
    from engine.cli import main as cli_main

    missing = not_found_message(argv)  # `main.py missing.wav`: say so, not "invalid choice"
    if missing is not None:
        print(missing, file=sys.stderr)
        return EXIT_FAILED
    return cli_main(argv)


if __name__ == "__main__":
    sys.exit(main())
