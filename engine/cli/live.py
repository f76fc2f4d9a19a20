"""`live`: transcribe the default input device (or replay a file) as words are spoken.

Committed words are printed to stdout as soon as they are final; on a terminal the tentative
tail is shown greyed on stderr. Ctrl+C stops: the stream is finished (nothing heard is lost)
and, with ``--out``, the transcript is written (TXT, SRT, VTT or JSON by suffix) and with
``--save-audio`` the session's audio.

Also provides the ``ctc`` engine of ``transcribe`` (wav2vec2 / HuBERT).
"""

from __future__ import annotations

import argparse
import sys
import threading
from pathlib import Path

from . import EXIT_FAILED, EXIT_OK
from ._progress import StderrProgress

WHISPER_DEFAULT = "whisper-tiny.en"


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("live", help="live transcription from the microphone (or a replayed file)",
                       description="Transcribe the default input device while someone speaks. Committed "
                                   "words go to stdout; Ctrl+C stops and writes --out.")
    p.add_argument("--engine", choices=("ctc", "whisper"), default="whisper",
                   help="whisper: local agreement on a sliding window (default); ctc: wav2vec2/HuBERT chunks")
    p.add_argument("--model", default=None,
                   help=f"catalog id or folder (default {WHISPER_DEFAULT} / wav2vec2-base-960h)")
    p.add_argument("--out", default=None, metavar="FILE", help="write the transcript (.txt .srt .vtt .json)")
    p.add_argument("--save-audio", default=None, metavar="FILE", help="also save the session audio (WAV)")
    p.add_argument("--file", default=None, metavar="AUDIO", help="replay a recording instead of the microphone")
    p.add_argument("--realtime", action="store_true", help="with --file: feed it at real-time speed")
    p.add_argument("--device", default=None, help="input device name or index (default: system default)")
    p.add_argument("--seconds", type=float, default=None, help="stop after this many seconds")
    p.add_argument("--chunk", type=float, default=1.0, help="ctc: chunk seconds (default 1.0)")
    p.add_argument("--left", type=float, default=2.0, help="ctc: left context seconds (default 2.0)")
    p.add_argument("--right", type=float, default=0.5, help="ctc: look-ahead seconds (default 0.5)")
    p.add_argument("--step", type=float, default=1.0, help="whisper: seconds between re-transcriptions")
    p.add_argument("--fp32", action="store_true", help="float32 weights instead of int8")
    p.add_argument("--threads", type=int, default=None, help="CPU threads for PyTorch")
    p.set_defaults(func=cmd_live)


class _Printer:
    """Committed words to stdout; the tentative tail greyed on a terminal's stderr line."""

    def __init__(self) -> None:
        self.tty = sys.stderr.isatty()
        self.shown = 0

    def __call__(self, u) -> None:
        if self.tty:
            sys.stderr.write("\r\x1b[K")
        words = u.committed.split()
        if len(words) > self.shown:
            sys.stdout.write((" " if self.shown else "") + " ".join(words[self.shown:]))
            sys.stdout.flush()
            self.shown = len(words)
        if self.tty and u.tentative:
            sys.stderr.write("\x1b[90m" + u.tentative[-60:] + "\x1b[0m")
            sys.stderr.flush()
        if u.final:
            sys.stdout.write("\n")
            sys.stdout.flush()


def cmd_live(args: argparse.Namespace) -> int:
    import numpy as np
    from ..devices import set_threads

    from .. import audio as audio_io
    from ..errors import DeviceError
    from ..jobs import JobState
    from ..streaming import live_transcribe, make_streamer, open_input, replay, session_transcript

    set_threads(args.threads)
    source = None
    if args.file is None:  # open the device first: no point loading a model without one
        try:
            source = open_input(args.device)
        except DeviceError as e:
            print(f"error: no usable audio input device: {e}\n"
                  f"(use --file AUDIO to replay a recording instead)", file=sys.stderr)
            return EXIT_FAILED
    try:
        streamer = make_streamer(args.engine, args.model, StderrProgress("model").state(), int8=not args.fp32,
                                 chunk=args.chunk, left=args.left, right=args.right, step=args.step)
    except Exception:
        if source is not None:
            source.close()
        raise
    show = _Printer()
    if args.file is not None:
        a, sr = audio_io.load(args.file, sr=streamer.sample_rate, mono=True)
        if args.seconds:
            a = a[: int(args.seconds * sr)]
        updates = replay(streamer, a, block=0.1, on_update=show, realtime=args.realtime)
        audio, words = a, streamer.words
    else:
        state = JobState()
        result: dict = {}
        error: list[BaseException] = []

        def run() -> None:
            try:
                source.start()
                result.update(live_transcribe(state, streamer, source=source, on_update=show,
                                              max_seconds=args.seconds))
            except BaseException as e:  # reported by the main thread
                error.append(e)
            finally:
                source.close()

        th = threading.Thread(target=run, name="live", daemon=True)
        th.start()
        print("listening... (Ctrl+C to stop)", file=sys.stderr)
        try:
            while th.is_alive():
                th.join(0.2)
        except KeyboardInterrupt:
            state.cancel()
            th.join()
        if error:
            raise error[0]
        audio, words = result["audio"], result["words"]
        updates = result["updates"]
    duration = len(audio) / streamer.sample_rate
    if args.save_audio:
        from ..fileio import unique_path

        path = audio_io.save(unique_path(args.save_audio), np.asarray(audio, np.float32), streamer.sample_rate)
        print(f"audio\t{path}", file=sys.stderr)
    if args.out:
        from ..whisper.exports import export

        path = export(session_transcript(words, duration, args.file or "live"), args.out)
        print(f"transcript\t{path}", file=sys.stderr)
    if not updates or not updates[-1].final:
        return EXIT_FAILED
    return EXIT_OK


# ---------------------------------------------------------------------------------------------
# `transcribe --engine ctc`


def transcribe_ctc_files(args: argparse.Namespace, files: list[str]) -> int:
    """The ``ctc`` engine of ``transcribe``: returns the number of files that failed."""
    from ..devices import set_threads

    from ..ctc import transcribe_ctc
    from ..errors import Cancelled, SonoscopeError
    from ..models import wav2vec2
    from ..streaming import session_transcript
    from ..whisper.exports import export

    set_threads(getattr(args, "threads", None))
    name = args.model
    if not name or name in ("tiny.en",) or "whisper" in str(name) and not Path(name).exists():
        name = wav2vec2.DEFAULT_MODEL  # the whisper default does not apply to this engine
    model = wav2vec2.load(name, state=StderrProgress("model").state(), int8=not getattr(args, "fp32", False))
    beam = max(1, int(getattr(args, "beam_size", 1) or 1))
    failed = 0
    for f in files:
        progress = StderrProgress(Path(f).name)
        try:
            t = transcribe_ctc(progress.state(), model, f, beam_width=beam)
            from .. import audio as audio_io

            duration = audio_io.info(f).duration
        except Exception as e:
            if isinstance(e, Cancelled) or not isinstance(e, (SonoscopeError, ValueError)):
                raise
            print(f"error: {f}: {e}", file=sys.stderr)
            failed += 1
            continue
        result = session_transcript(t.words, duration, str(f))
        for fmt in args.format:
            path = export(result, Path(args.out) / f"{Path(f).stem}.{fmt}", fmt)
            print(f"{fmt}\t{path}")
        if getattr(args, "print", False):
            for s in result.segments:
                print(f"[{s.start:8.2f} -> {s.end:8.2f}] {s.text.strip()}")
    return failed
