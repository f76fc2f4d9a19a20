"""`info` and `convert`: inspect and convert audio files."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from ..audio import io as audio
from ..errors import SonoscopeError
from . import EXIT_FAILED, EXIT_OK, file_error


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("info", help="describe audio files (format, rate, channels, duration)",
                       description="Describe audio files. Exit code 1 if any file is unreadable.")
    p.add_argument("files", nargs="+", metavar="FILE")
    p.add_argument("--json", action="store_true", help="one JSON object per line")
    p.set_defaults(func=cmd_info)

    p = sub.add_parser("convert", help="convert an audio file (format, sample rate, channels)",
                       description="Convert IN to OUT. The format follows OUT's extension unless --format "
                                   f"is given ({', '.join(audio.SAVE_FORMATS)}). OUT is written atomically.")
    p.add_argument("input", metavar="IN")
    p.add_argument("output", metavar="OUT")
    p.add_argument("--rate", type=int, help="resample to this rate (Hz)")
    p.add_argument("--mono", action="store_true", help="downmix to one channel")
    p.add_argument("--format", choices=sorted(audio.SAVE_FORMATS), help="output format")
    p.add_argument("--subtype", help="soundfile subtype, e.g. PCM_24 or FLOAT")
    p.add_argument("--force", action="store_true", help="overwrite OUT if it exists")
    p.set_defaults(func=cmd_convert)


def cmd_info(args: argparse.Namespace) -> int:
    code = EXIT_OK
    for f in args.files:
        try:
            i = audio.info(f)
        except SonoscopeError as e:
            code = EXIT_FAILED
            if args.json:
                print(json.dumps({"path": f, "error": str(e)}))
            else:
                print(file_error(f, e), file=sys.stderr)
            continue
        d = {"path": str(i.path), "format": i.format, "subtype": i.subtype, "samplerate": i.samplerate,
             "channels": i.channels, "frames": i.frames, "duration": round(i.duration, 3)}
        if args.json:
            print(json.dumps(d))
        else:
            m, s = divmod(i.duration, 60)
            print(f"{f}: {i.format}{'/' + i.subtype if i.subtype else ''}, {i.samplerate} Hz, "
                  f"{i.channels} ch, {int(m)}:{s:06.3f} ({i.frames} frames)")
    return code


def cmd_convert(args: argparse.Namespace) -> int:
    out = Path(args.output)
    fmt = audio.format_for(out, args.format)  # fail early on a bad format, before decoding
    if out.exists() and not args.force:
        print(f"error: {out} exists (use --force to overwrite)", file=sys.stderr)
        return EXIT_FAILED
    if Path(args.input).resolve() == out.resolve():
        print("error: IN and OUT are the same file", file=sys.stderr)
        return EXIT_FAILED
    data, sr = audio.load(args.input, sr=args.rate, mono=args.mono)
    audio.save(out, data, sr, format=fmt, subtype=args.subtype)
    i = audio.info(out)
    print(f"wrote {out}: {i.format}, {i.samplerate} Hz, {i.channels} ch, {i.duration:.3f} s", file=sys.stderr)
    return EXIT_OK
