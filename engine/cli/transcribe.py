"""`transcribe`: speech to text (TXT, SRT, VTT, JSON) with Whisper (or another engine)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from .. import defaults as D
from . import EXIT_FAILED, EXIT_OK
from ._progress import StderrProgress


def _options(args: argparse.Namespace) -> dict:
    if args.engine == "ctc":
        return {"beam_size": args.beam_size}
    opts = dict(language=None if args.language in (None, "auto") else args.language, task=args.task,
                beam_size=args.beam_size if args.beam_size > 1 else None, word_timestamps=args.word_timestamps,
                initial_prompt=args.prompt, condition_on_previous_text=not args.no_condition,
                skip_silent_tail=not args.keep_silent_tail)
    if args.temperature is not None:
        opts["temperature"] = args.temperature
    return opts


def _int8(args: argparse.Namespace) -> bool | None:
    return True if getattr(args, "int8", False) else False if args.fp32 else None


def _speaker_count(value: str) -> int:
    if not value.isdigit() or int(value) < 1:
        raise argparse.ArgumentTypeError(f"--speakers takes a number of speakers (or nothing, to estimate it), "
                                         f"not {value!r}; put --speakers after the files")
    return int(value)


def _speaker_names(value: str) -> dict[str, str]:
    """Speaker names from ``S1=Alice,S2=Bob``, or from ``Alice,Bob`` (S1, S2... in order)."""
    names = {}
    for i, item in enumerate(part.strip() for part in value.split(",")):
        label, sep, name = item.partition("=")
        label, name = (label.strip(), name.strip()) if sep else (f"S{i + 1}", item)
        if name:
            names[label] = name
    return names


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "transcribe", help="speech to text: TXT, SRT, VTT or JSON transcripts",
        description="Transcribe each FILE (any length: 30 s windows are decoded in turn) and write "
                    "OUT/<name>.<format>; existing files are never overwritten (a number is added).")
    p.add_argument("files", nargs="+", metavar="FILE", help="audio or video files")
    p.add_argument("--engine", choices=("whisper", "ctc"), default="whisper",
                   help="whisper (default), or ctc: wav2vec2 / HuBERT")
    p.add_argument("--model", default=None,
                   help="model: catalog id (whisper-base), short name (tiny.en, base) or a folder "
                        f"(default {D.TRANSCRIBE_MODEL}; {D.CTC_MODEL} for ctc)")
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
    p.add_argument("--speakers", nargs="?", type=_speaker_count, const=0, default=None, metavar="N",
                   help="who spoke when: label every line and word with its speaker (S1, S2... in order of "
                        "appearance); N speakers, or estimate how many when N is left out")
    p.add_argument("--speaker-names", type=_speaker_names, default=None, metavar="NAMES",
                   help="names for the speakers, in order (Alice,Bob) or by label (S1=Alice,S2=Bob); "
                        "implies --speakers")
    p.add_argument("--overlapped", action="store_true",
                   help="two people talking over each other: separate the voices first (SepFormer), "
                        "transcribe each voice, merge by time (S1, S2...)")
    p.add_argument("--separator", default=None, metavar="ID|FOLDER",
                   help="the separation model for --overlapped (default: the catalog's SepFormer)")
    p.add_argument("--fp32", action="store_true", help="float32 weights instead of int8 on CPU")
    p.add_argument("--int8", action="store_true", help="int8 weights on CPU (the default there; never on a GPU)")
    p.add_argument("--print", action="store_true", help="also print the segments")
    p.add_argument("--threads", type=int, default=None, help="CPU threads for PyTorch")
    p.set_defaults(func=cmd_transcribe)


def cmd_transcribe(args: argparse.Namespace) -> int:
    from ..errors import Cancelled, SonoscopeError
    from ..transcribe.exports import export
    from ..transcribe.task import transcribe_file

    speakers = args.speakers if args.speakers is not None or args.speaker_names is None else 0

    model = args.model  # None: the shared default of the engine (engine/defaults.py), as in the app
    opts = _options(args)
    failed = 0
    for f in args.files:
        progress = StderrProgress(Path(f).name)
        try:
            if args.overlapped:
                from ..speakers.overlap import transcribe_overlapped

                result = transcribe_overlapped(progress.state(), f, args.separator, args.speaker_names,
                                               engine=args.engine, model=model, options=opts,
                                               int8=_int8(args), threads=args.threads)
            elif speakers is None:
                result = transcribe_file(progress.state(), f, engine=args.engine, model=model, options=opts,
                                         int8=_int8(args), threads=args.threads)
            else:
                from ..speakers.diarize import transcribe_with_speakers

                result = transcribe_with_speakers(progress.state(), f, speakers or None, args.speaker_names,
                                                  engine=args.engine, model=model, options=opts,
                                                  int8=_int8(args), threads=args.threads)
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
                who = f"{s.speaker}: " if s.speaker else ""
                print(f"[{s.start:8.2f} -> {s.end:8.2f}] {who}{s.text.strip()}")
    return EXIT_FAILED if failed else EXIT_OK
