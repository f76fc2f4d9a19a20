"""`transcribe`: speech to text (TXT, SRT, VTT, JSON) with Whisper (or another engine)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Callable

from . import EXIT_FAILED, EXIT_OK
from ._progress import StderrProgress


def _whisper(args: argparse.Namespace, files: list[str]) -> int:
    """Run Whisper on each file and write the requested exports; returns the number of failures."""
    from ..devices import set_threads

    from ..errors import Cancelled, SonoscopeError
    from ..whisper.exports import export
    from ..whisper.loading import load
    from ..whisper.transcribe import TranscribeOptions, transcribe

    set_threads(args.threads)
    model, tokenizer = load(args.model, state=StderrProgress("model").state(), int8=not args.fp32)
    opts = dict(language=None if args.language in (None, "auto") else args.language, task=args.task,
                beam_size=args.beam_size if args.beam_size > 1 else None, word_timestamps=args.word_timestamps,
                initial_prompt=args.prompt, condition_on_previous_text=not args.no_condition,
                skip_silent_tail=not args.keep_silent_tail)
    if args.temperature is not None:
        opts["temperature"] = args.temperature
    failed = 0
    for f in files:
        progress = StderrProgress(Path(f).name)
        try:
            result = transcribe(progress.state(), model, tokenizer, f, TranscribeOptions(**opts))
        except Exception as e:  # report and go on with the next file
            if isinstance(e, Cancelled) or not isinstance(e, (SonoscopeError, ValueError)):
                raise
            print(f"error: {f}: {e}", file=sys.stderr)
            failed += 1
            continue
        for fmt in args.format:
            path = export(result, Path(args.out) / f"{Path(f).stem}.{fmt}", fmt)
            print(f"{fmt}\t{path}")
        if args.print:
            for s in result.segments:
                print(f"[{s.start:8.2f} -> {s.end:8.2f}] {s.text.strip()}")
    return failed


# Transcription engines by name: each takes (args, files) and returns the number of failed files.
# Another engine (e.g. a CTC model) registers here and may add its own options in register().
def _ctc(args: argparse.Namespace, files: list[str]) -> int:
    from .live import transcribe_ctc_files  # wav2vec2 / HuBERT (CTC); --model defaults to wav2vec2-base-960h

    return transcribe_ctc_files(args, files)


ENGINES: dict[str, Callable[[argparse.Namespace, list[str]], int]] = {"whisper": _whisper, "ctc": _ctc}


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "transcribe", help="speech to text: TXT, SRT, VTT or JSON transcripts",
        description="Transcribe each FILE (any length: 30 s windows are decoded in turn) and write "
                    "OUT/<name>.<format>; existing files are never overwritten (a number is added).")
    p.add_argument("files", nargs="+", metavar="FILE", help="audio or video files")
    p.add_argument("--engine", choices=sorted(ENGINES), default="whisper", help="transcription engine (default whisper)")
    p.add_argument("--model", default="tiny.en",
                   help="model: catalog id (whisper-base), short name (tiny.en, base) or a folder (default tiny.en)")
    p.add_argument("--format", nargs="+", choices=("txt", "srt", "vtt", "json"), default=["srt"],
                   help="one or more output formats (default srt)")
    p.add_argument("--out", default=".", metavar="DIR", help="output folder (default: current folder)")
    p.add_argument("--language", default=None, help="spoken language code or name (default: detect)")
    p.add_argument("--task", choices=("transcribe", "translate"), default="transcribe",
                   help="transcribe, or translate to English (multilingual models)")
    p.add_argument("--beam-size", type=int, default=1, help="beam search width (default 1: greedy)")
    p.add_argument("--temperature", type=float, default=None,
                   help="a single sampling temperature (default: 0 with fallback 0.2..1.0)")
    p.add_argument("--word-timestamps", action="store_true", help="word timings (JSON export) from cross-attention")
    p.add_argument("--prompt", default=None, help="initial prompt: vocabulary or style to condition on")
    p.add_argument("--no-condition", action="store_true", help="do not condition each window on the previous text")
    p.add_argument("--keep-silent-tail", action="store_true",
                   help="decode the last window even when voice detection hears no speech in it")
    p.add_argument("--fp32", action="store_true", help="float32 weights instead of int8 on CPU")
    p.add_argument("--print", action="store_true", help="also print the segments")
    p.add_argument("--threads", type=int, default=None, help="CPU threads for PyTorch")
    p.set_defaults(func=cmd_transcribe)


def cmd_transcribe(args: argparse.Namespace) -> int:
    engine = ENGINES[args.engine]
    failed = engine(args, args.files)
    return EXIT_FAILED if failed else EXIT_OK
