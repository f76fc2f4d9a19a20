"""`separate`: split a recording of two people talking into one track per speaker (SepFormer)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from . import EXIT_FAILED, EXIT_OK
from ._progress import StderrProgress

FOLDER_HINT = ("pass --model FOLDER with a SpeechBrain SepFormer folder (hyperparams.yaml, encoder.ckpt, "
               "masknet.ckpt, decoder.ckpt as published on the Hugging Face hub)")


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "separate", help="speaker separation: one track per speaker of a two-speaker recording",
        description="Separate the speakers of each FILE with SepFormer and write OUT/<track name>/speaker1.<format> "
                    "and speaker2.<format>, mono, at the input's sample rate and length (existing files are "
                    "never overwritten: a number is added). Long files are processed in 10 s chunks; each "
                    "speaker stays on the same track from chunk to chunk.")
    p.add_argument("files", nargs="+", metavar="FILE", help="audio files (any rate, any channel count)")
    p.add_argument("--model", default=None, metavar="ID|FOLDER",
                   help="catalog id (sepformer-wsj02mix, sepformer-whamr, sepformer-libri2mix) or a SpeechBrain "
                        "SepFormer folder (default sepformer-wsj02mix)")
    p.add_argument("--out", default="speakers", metavar="DIR", help="output folder (default ./speakers)")
    p.add_argument("--format", choices=("wav", "flac", "mp3"), default="wav", help="output format (default wav)")
    p.add_argument("--device", default=None, metavar="auto|cpu|cuda|mps", help="compute device (default auto)")
    p.add_argument("--threads", type=int, default=None, help="CPU threads for PyTorch")
    p.set_defaults(func=cmd_separate)


def cmd_separate(args: argparse.Namespace) -> int:
    from ..audio import io as audio_io
    from ..compute import set_threads
    from ..errors import Cancelled, ModelNotAvailable, SonoscopeError
    from ..speakers.separate import get_model, separate_speakers

    set_threads(args.threads)
    bad = []
    for f in args.files:  # bad inputs are reported before a model is loaded
        try:
            audio_io.info(f)
        except SonoscopeError as e:
            print(f"error: {f}: {e}", file=sys.stderr)
            bad.append(f)
    files = [f for f in args.files if f not in bad]
    if not files:
        return EXIT_FAILED
    progress = StderrProgress("model")
    try:
        model = get_model(args.model, progress.state(), args.device)
    except ModelNotAvailable as e:
        print(f"error: {e} Or {FOLDER_HINT}.", file=sys.stderr)
        return EXIT_FAILED
    failed = len(bad)
    for f in files:
        progress = StderrProgress(Path(f).name)
        try:
            result = separate_speakers(progress.state(), f, args.out, model=model, fmt=args.format)
        except Exception as e:  # report and go on with the next file
            if isinstance(e, Cancelled) or not isinstance(e, SonoscopeError):
                raise
            print(f"error: {f}: {e}", file=sys.stderr)
            failed += 1
            continue
        for name, path in result.speakers.items():
            print(f"{name}\t{path}")
    return EXIT_FAILED if failed else EXIT_OK
