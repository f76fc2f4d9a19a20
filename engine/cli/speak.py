"""`speak`: text to speech into a file (or the default output device) with an installed voice."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from . import EXIT_FAILED, EXIT_OK, EXIT_USAGE
from ._progress import StderrProgress

FORMATS = ("wav", "flac", "ogg", "opus", "mp3", "aiff")


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("speak", help="text to speech: speak text into an audio file or the speakers",
                       description="Speak TEXT (or --text-file) with a voice (default: the offline Piper voice) "
                                   "into --out, sentence by sentence (any length), and/or --play it. Numbers, "
                                   "years, times, money and common abbreviations are read as words.")
    p.add_argument("text", nargs="?", default=None, metavar="TEXT", help="the text to speak")
    p.add_argument("--text-file", default=None, metavar="FILE|-", help="read the text from a file (- for stdin)")
    p.add_argument("--out", default=None, metavar="FILE", help="output audio file (WAV, FLAC, OGG, Opus, MP3, AIFF)")
    p.add_argument("--format", default=None, choices=FORMATS, help="output format (default: from --out's extension)")
    p.add_argument("--voice", default=None, metavar="ID|PATH",
                   help="catalog voice id, Piper folder or .onnx file (default: piper-en_US-joe-medium)")
    p.add_argument("--speed", type=float, default=1.0, help="speaking rate, 1 = the voice's own (0.25 to 4)")
    p.add_argument("--speaker", default=None, metavar="N|NAME", help="speaker of a multi-speaker voice")
    p.add_argument("--play", action="store_true", help="also play it on the default output device")
    p.add_argument("--list-voices", action="store_true", help="list the voices (installed or downloadable) and exit")
    p.set_defaults(func=cmd_speak)


def _read_text(args: argparse.Namespace) -> str | None:
    if args.text_file is None:
        return args.text
    if args.text_file == "-":
        return sys.stdin.read()
    path = Path(args.text_file)
    if not path.is_file():
        print(f"error: {path}: file not found", file=sys.stderr)
        return None
    try:
        return path.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError:
        return path.read_text(encoding="latin-1")


def cmd_speak(args: argparse.Namespace) -> int:
    if args.list_voices:
        from ..speech.voices import list_voices

        for v in list_voices():
            print(f"{v.id}\t{'installed' if v.installed else 'download to use'}\t{v.name}")
        return EXIT_OK
    if (args.text is None) == (args.text_file is None):
        print("error: give the text, or --text-file FILE (- for stdin), not both", file=sys.stderr)
        return EXIT_USAGE
    if args.out is None and not args.play:
        print("error: give --out FILE and/or --play", file=sys.stderr)
        return EXIT_USAGE
    text = _read_text(args)
    if text is None:
        return EXIT_FAILED
    from ..speech.text import check_text

    check_text(text)  # nothing to say: an error before the voice loads
    speaker = int(args.speaker) if args.speaker is not None and args.speaker.isdigit() else args.speaker
    if args.out is not None:
        from ..speech.task import speak_file

        progress = StderrProgress(Path(args.out).name)
        result = speak_file(progress.state(), text, args.out, voice=args.voice, speed=args.speed,
                            speaker=speaker, fmt=args.format)
        for w in result.warnings:
            print(f"warning: {w}", file=sys.stderr)
        print(f"{result.format}\t{result.path}\t{result.duration:.2f} s\t{result.sample_rate} Hz")
        if args.play:
            return _play_file(result.path)
        return EXIT_OK
    return _play_text(text, args, speaker)


def _play_file(path: Path) -> int:
    from ..audio.playback import Playback

    player = Playback()
    try:
        player.load_file(path)
        player.play()
        player.wait(timeout=player.duration + 10)
    finally:
        player.close()
    return EXIT_OK


def _play_text(text: str, args: argparse.Namespace, speaker) -> int:
    """Stream to the default output: the first sentence plays while the rest is synthesised."""
    from ..speech.stream import SpeechStream

    speech = SpeechStream(text, args.voice, speed=args.speed, speaker=speaker)
    try:
        speech.start()
        speech.wait()
    except KeyboardInterrupt:
        speech.stop()
        raise
    finally:
        speech.close()
    if speech.underruns or speech.starved:
        print(f"warning: {speech.underruns} output underrun(s), {speech.starved / speech.source.samplerate:.2f} s "
              "of silence while synthesis caught up", file=sys.stderr)
    return EXIT_OK
