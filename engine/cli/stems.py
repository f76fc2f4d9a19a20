"""`stems`: split music into 2, 4 or 5 stems with Spleeter."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from .. import defaults as D
from . import EXIT_FAILED, EXIT_OK, check_inputs, file_error
from ._progress import StderrProgress


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "stems", help="split music into stems (vocals, drums, bass, piano, other)",
        description="Separate each FILE into stems with Spleeter and write them as "
                    "OUT/<track name>/<stem>.<format> (existing files are never overwritten: a "
                    "number is added). The models cover 0-11 kHz; the band above goes to the "
                    "accompaniment (2 stems) or 'other' stem, so the stems add up to the original.")
    p.add_argument("files", nargs="+", metavar="FILE", help="audio files (any rate, any channel count)")
    p.add_argument("--stems", type=int, choices=(2, 4, 5), default=D.STEMS,
                   help=f"2: vocals/accompaniment, 4: vocals/drums/bass/other, 5: + piano (default {D.STEMS})")
    p.add_argument("--mode", choices=("soft", "wiener"), default=D.STEMS_MODE,
                   help=f"soft ratio masks or multichannel Wiener filtering (default {D.STEMS_MODE})")
    p.add_argument("--format", choices=("wav", "flac", "mp3"), default=D.STEMS_FORMAT,
                   help=f"output format (default {D.STEMS_FORMAT}; WAV stems are 32-bit float)")
    p.add_argument("--out", default="stems", metavar="DIR", help="output folder (default ./stems)")
    p.add_argument("--only", nargs="+", metavar="STEM", help="write only these stems (e.g. --only vocals)")
    p.add_argument("--sample-rate", default=None, metavar="HZ|input",
                   help="output rate: 'input' for the input file's rate, or a number (default 44100)")
    p.add_argument("--model", default=None, metavar="ID", help="catalog model id (default by --stems)")
    p.add_argument("--model-dir", default=None, metavar="DIR",
                   help="load weights from this folder instead (TF checkpoint, .ckpt files or safetensors)")
    p.add_argument("--threads", type=int, default=None, help="CPU threads for PyTorch")
    p.set_defaults(func=cmd_stems)


def cmd_stems(args: argparse.Namespace) -> int:
    rate = args.sample_rate
    if rate not in (None, "input"):
        try:
            rate = int(rate)
        except ValueError:
            print(f"error: --sample-rate takes a number or 'input', not {rate!r}", file=sys.stderr)
            return EXIT_FAILED
    files = check_inputs(args.files)  # milliseconds: before the model loads
    if not files:
        return EXIT_FAILED
    from .. import models  # torch: only once there is something to separate
    from ..compute import pick_device, set_threads
    from ..stems.separate import model_id_for, separate_file

    set_threads(args.threads)
    progress = StderrProgress("model")
    model = models.load(args.model_dir or args.model or model_id_for(args.stems), state=progress.state(),
                        family="spleeter", device=str(pick_device(None)))
    if len(model.stems) != args.stems and not args.model and not args.model_dir:
        print(f"error: the model has {len(model.stems)} stems, not {args.stems}", file=sys.stderr)
        return EXIT_FAILED
    failed = len(args.files) - len(files)  # the unreadable ones, reported by check_inputs
    for f in files:
        progress = StderrProgress(Path(f).name)
        try:
            result = separate_file(progress.state(), f, args.out, model=model, mode=args.mode, fmt=args.format,
                                   export=args.only, sample_rate=rate)
        except Exception as e:  # report and go on with the next file
            from ..errors import Cancelled, SonoscopeError

            if isinstance(e, Cancelled) or not isinstance(e, SonoscopeError):
                raise
            print(file_error(f, e), file=sys.stderr)
            failed += 1
            continue
        for stem, path in result.stems.items():
            print(f"{stem}\t{path}")
        if result.note:
            print(result.note, file=sys.stderr)
    return EXIT_FAILED if failed else EXIT_OK
