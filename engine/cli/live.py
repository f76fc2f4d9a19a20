"""`live`: transcribe the default input device (or replay a file) as words are spoken.

Committed words are printed to stdout as soon as they are final; on a terminal the tentative
tail is shown greyed on stderr. Ctrl+C stops: the stream is finished (nothing heard is lost)
and, with ``--out``, the transcript is written (TXT, SRT, VTT or JSON by suffix) and with
``--save-audio`` the session's audio.
"""

from __future__ import annotations

import argparse
import sys
import threading

from .. import defaults as D
from . import EXIT_FAILED, EXIT_OK, check_inputs
from ._progress import StderrProgress

def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("live", help="live transcription from the microphone (or a replayed file)",
                       description="Transcribe the default input device while someone speaks. Committed "
                                   "words go to stdout; Ctrl+C stops and writes --out.")
    p.add_argument("--engine", choices=("ctc", "whisper"), default=D.LIVE_ENGINE,
                   help=f"whisper: local agreement on a sliding window; ctc: wav2vec2/HuBERT chunks "
                        f"(default {D.LIVE_ENGINE})")
    p.add_argument("--model", default=None,
                   help=f"catalog id or folder (default {D.LIVE_MODELS['whisper']} / {D.LIVE_MODELS['ctc']})")
    p.add_argument("--out", default=None, metavar="FILE", help="write the transcript (.txt .srt .vtt .json)")
    p.add_argument("--save-audio", default=None, metavar="FILE", help="also save the session audio (WAV)")
    p.add_argument("--file", default=None, metavar="AUDIO", help="replay a recording instead of the microphone")
    p.add_argument("--realtime", action="store_true", help="with --file: feed it at real-time speed")
    p.add_argument("--device", default=None, help="input device name or index (default: system default)")
    p.add_argument("--seconds", type=float, default=None, help="stop after this many seconds")
    p.add_argument("--chunk", type=float, default=D.LIVE_CTC_CHUNK,
                   help=f"ctc: chunk seconds (default {D.LIVE_CTC_CHUNK})")
    p.add_argument("--left", type=float, default=D.LIVE_CTC_LEFT,
                   help=f"ctc: left context seconds (default {D.LIVE_CTC_LEFT})")
    p.add_argument("--right", type=float, default=D.LIVE_CTC_RIGHT,
                   help=f"ctc: look-ahead seconds (default {D.LIVE_CTC_RIGHT}; longer is more accurate, later)")
    p.add_argument("--step", type=float, default=D.LIVE_WHISPER_STEP, help="whisper: seconds between re-transcriptions")
    p.add_argument("--fp32", action="store_true", help="float32 weights instead of int8")
    p.add_argument("--threads", type=int, default=None,
                   help="CPU threads for PyTorch (whisper decodes on 2 by default; 1 is steadier beside other work)")
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


def _print_latency(words, fast_replay: bool) -> None:
    """The session's latency summary on stderr (also in the JSON transcript, as "latency")."""
    from ..results import live_latency

    lat = live_latency(words)
    if lat is None:
        if fast_replay:
            print("latency: not measured (the replay ran faster than real time; add --realtime)", file=sys.stderr)
        return
    c, s = lat["committed"], lat.get("shown", {})
    print(f"latency after each word's end, {lat['words']} words: committed median {c['median']:.2f} s, "
          f"p95 {c['p95']:.2f} s; first shown median {s.get('median', 0):.2f} s, p95 {s.get('p95', 0):.2f} s",
          file=sys.stderr)


def cmd_live(args: argparse.Namespace) -> int:
    if args.file is not None:  # a missing or broken recording is reported at once, before any import
        if not check_inputs([args.file]):
            return EXIT_FAILED
    import numpy as np

    from ..audio import io as audio_io
    from ..compute import set_threads
    from ..errors import DeviceError
    from ..jobs import JobState
    from ..results import Transcript
    from ..transcribe.live import ReplaySource, live_transcribe, make_streamer, open_input
    from ..transcribe.streaming import replay

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
                                 chunk=args.chunk, left=args.left, right=args.right, step=args.step,
                                 threads=args.threads)
    except Exception:
        if source is not None:
            source.close()
        raise
    show = _Printer()
    if args.file is not None and args.realtime:  # a recording standing in for the microphone: the live path
        source = ReplaySource(args.file, samplerate=streamer.sample_rate)
    if source is None:
        a, sr = audio_io.load(args.file, sr=streamer.sample_rate, mono=True)
        if args.seconds:
            a = a[: int(args.seconds * sr)]
        updates = replay(streamer, a, block=0.1, on_update=show)
        audio, words = a, streamer.words
    else:
        state = JobState()
        result: dict = {}
        error: list[BaseException] = []

        def run() -> None:
            try:
                if not getattr(source, "autostart", False):
                    source.start()
                result.update(live_transcribe(state, streamer, source=source, on_update=show,
                                              max_seconds=args.seconds))
            except BaseException as e:  # reported by the main thread
                error.append(e)
            finally:
                source.close()

        th = threading.Thread(target=run, name="live", daemon=True)
        th.start()
        print("listening... (Ctrl+C to stop)" if args.file is None else f"replaying {args.file} in real time...",
              file=sys.stderr)
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
    _print_latency(words, args.file is not None and not args.realtime)
    if args.save_audio:
        from ..fileio import unique_path

        path = audio_io.save(unique_path(args.save_audio), np.asarray(audio, np.float32), streamer.sample_rate)
        print(f"audio\t{path}", file=sys.stderr)
    if args.out:
        from ..transcribe.exports import export

        transcript = Transcript.from_words(words, duration, streamer.language, source=args.file or "live")
        path = export(transcript, args.out)
        print(f"transcript\t{path}", file=sys.stderr)
    if not updates or not updates[-1].final:
        return EXIT_FAILED
    return EXIT_OK
