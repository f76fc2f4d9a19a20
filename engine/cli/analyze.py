"""`analyze`: transcript, speakers and sound tags of each file as one job; SDH captions; a sidecar that reopens."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from .. import defaults as D
from . import EXIT_FAILED, EXIT_OK, check_inputs, file_error
from ._progress import StderrProgress

FORMATS = ("srt", "vtt", "txt", "json")  # engine.timeline.analyze.FORMATS


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "analyze", help="transcript + who spoke when + sound tags in one go; SDH captions (--sdh)",
        description="Analyse each FILE: transcribe it (Whisper, word times), find who spoke when and tag its sounds; "
                    "save the results next to it in FILE.sonoscope.json and write OUT/<name>.<format>. A file with a "
                    "valid project file (same audio checksum, same settings) is not analysed again: its saved "
                    "results, with the edits made in the app, are exported (--force analyses anyway). Existing "
                    "exports are never overwritten (a number is added).")
    p.add_argument("files", nargs="+", metavar="FILE", help="audio or video files")
    p.add_argument("--out", default=".", metavar="DIR", help="output folder (default: current folder)")
    p.add_argument("--format", nargs="+", choices=FORMATS, default=["srt", "vtt", "json"],
                   help="one or more output formats (default srt vtt json; json is the whole analysis)")
    p.add_argument("--sdh", action="store_true",
                   help="captions for the deaf and hard of hearing: sound events ([music], [dog barking]) get cues "
                        "of their own and lines name the speaker when it changes")
    p.add_argument("--model", default=None, help=f"Whisper model (default {D.TRANSCRIBE_MODEL})")
    p.add_argument("--language", default=None, help="spoken language code (default: detect)")
    p.add_argument("--speakers", type=int, default=None, metavar="N", help="number of speakers (default: estimate)")
    p.add_argument("--tag-model", default=None, metavar="ID|FOLDER", help="sound tagger (default: EfficientAT mn04)")
    p.add_argument("--threshold", type=float, default=D.TAG_THRESHOLD,
                   help=f"score at which a sound label makes an event (default {D.TAG_THRESHOLD})")
    p.add_argument("--skip", nargs="+", choices=("transcript", "speakers", "tags"), default=[],
                   help="parts not to run")
    p.add_argument("--force", action="store_true", help="analyse again even when the project file is valid")
    p.add_argument("--threads", type=int, default=None, help="CPU threads for PyTorch")
    p.set_defaults(func=cmd_analyze)


def cmd_analyze(args: argparse.Namespace) -> int:
    files = check_inputs(args.files)  # milliseconds: before any model loads
    if not files:
        return EXIT_FAILED
    from ..errors import Cancelled, SonoscopeError
    from ..timeline.analyze import PARTS, Part, analyze_file

    parts = [p for p in PARTS if p not in args.skip]
    failed = len(args.files) - len(files)  # the unreadable ones, reported by check_inputs
    for f in files:
        progress = StderrProgress(Path(f).name)
        state = progress.state()
        try:
            a = analyze_file(state, f, args.out, formats=args.format, sdh=args.sdh, parts=parts, model=args.model,
                             language=args.language, speakers=args.speakers, tag_model=args.tag_model,
                             tag_threshold=args.threshold, threads=args.threads, reuse=not args.force)
        except Exception as e:  # report and go on with the next file
            if isinstance(e, Cancelled) or not isinstance(e, SonoscopeError):
                raise
            print(file_error(f, e), file=sys.stderr)
            failed += 1
            continue
        for p in state.partials:
            if isinstance(p, Part) and p.name == "notice":
                print(f"note: {p.value}", file=sys.stderr)
        if a.reused:
            print(f"note: {Path(f).name}: results reopened from its project file (no model run)", file=sys.stderr)
        for out in a.outputs:
            print(f"{Path(out).suffix.lstrip('.')}\t{out}")
    return EXIT_FAILED if failed else EXIT_OK
