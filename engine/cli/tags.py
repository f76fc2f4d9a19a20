"""`tag`: sound labels of each file (AudioSet tagging) and labelled events over time."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from .. import defaults as D
from . import EXIT_FAILED, EXIT_OK, check_inputs, file_error
from ._progress import StderrProgress


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("tag", help="sound classification: top labels and labelled events over time",
                       description="Tag each FILE with sound labels (AudioSet, 527 classes, by default) and write "
                                   "OUT/<name>.<ext> per format: JSON (top tags and events), CSV of events, "
                                   "an Audacity label track (.txt). Existing files are never overwritten.")
    p.add_argument("files", nargs="+", metavar="FILE", help="audio or video files")
    p.add_argument("--format", nargs="+", choices=("json", "csv", "audacity"), default=["json"],
                   help="one or more output formats (default json)")
    p.add_argument("--out", default=".", metavar="DIR", help="output folder (default: current folder)")
    p.add_argument("--model", default=None, metavar="ID|FOLDER",
                   help="tagger: catalog id or folder (EfficientAT, AST or a wav2vec2 classifier; "
                        "default: the offline EfficientAT mn04)")
    p.add_argument("--top", type=int, default=D.TAG_TOP, help=f"top labels kept per file (default {D.TAG_TOP})")
    p.add_argument("--threshold", type=float, default=D.TAG_THRESHOLD,
                   help=f"score at which a label makes an event (default {D.TAG_THRESHOLD})")
    p.add_argument("--hop", type=float, default=D.TAG_HOP, help=f"seconds between windows (default {D.TAG_HOP:g})")
    p.add_argument("--window", type=float, default=None, help="window seconds (default: the model's own)")
    p.add_argument("--print", action="store_true", help="also print the top labels")
    p.add_argument("--threads", type=int, default=None, help="CPU threads for PyTorch")
    p.set_defaults(func=cmd_tag)


def cmd_tag(args: argparse.Namespace) -> int:
    files = check_inputs(args.files)  # milliseconds: before the tagger loads
    if not files:
        return EXIT_FAILED
    from ..errors import Cancelled, SonoscopeError
    from ..tags.exports import export
    from ..tags.task import tag_file  # torch: only once there is something to tag

    failed = len(args.files) - len(files)  # the unreadable ones, reported by check_inputs
    for f in files:
        progress = StderrProgress(Path(f).name)
        try:
            result = tag_file(progress.state(), f, model=args.model, window=args.window, hop=args.hop,
                              threshold=args.threshold, top=args.top, threads=args.threads)
        except Exception as e:  # report and go on with the next file
            if isinstance(e, Cancelled) or not isinstance(e, SonoscopeError):
                raise
            print(file_error(f, e), file=sys.stderr)
            failed += 1
            continue
        for fmt in args.format:
            print(f"{fmt}\t{export(result, args.out, Path(f).stem, fmt)}")
        if args.print:
            for label, score in result.tags:
                print(f"{score:6.3f}  {label}")
    return EXIT_FAILED if failed else EXIT_OK
