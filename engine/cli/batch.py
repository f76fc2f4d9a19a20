"""`batch`: one task over many files, resumable (a manifest in the output folder), locally or on Ray."""

from __future__ import annotations

import argparse
import sys

from . import EXIT_FAILED, EXIT_OK
from ._progress import StderrProgress

# task -> [(flag, option name, argparse keywords)]; every default is None: the task's own applies
# (engine/batch/tasks.py), and what was given goes into the manifest's options hash
OPTIONS: dict[str, list[tuple[str, str, dict]]] = {
    "transcribe": [
        ("--engine", "engine", dict(choices=("whisper", "ctc"), help="whisper (default) or ctc")),
        ("--model", "model", dict(help="catalog id, short name or folder (default: the engine's default)")),
        ("--format", "formats", dict(nargs="+", choices=("txt", "srt", "vtt", "json"), help="formats (default srt)")),
        ("--language", "language", dict(help="spoken language (default: detect)")),
        ("--task", "task", dict(choices=("transcribe", "translate"), help="transcribe, or translate to English")),
        ("--beam-size", "beam_size", dict(type=int, help="beam width (default 1: greedy)")),
        ("--word-timestamps", "word_timestamps", dict(action="store_true", help="word timings (JSON)")),
        ("--fp32", "fp32", dict(action="store_true", help="float32 weights instead of int8 on CPU")),
    ],
    "stems": [
        ("--stems", "stems", dict(type=int, choices=(2, 4, 5), help="2, 4 or 5 stems (default 2)")),
        ("--mode", "mode", dict(choices=("soft", "wiener"), help="mask mode (default soft)")),
        ("--format", "format", dict(choices=("wav", "flac", "mp3"), help="output format (default wav)")),
        ("--only", "only", dict(nargs="+", metavar="STEM", help="write only these stems")),
        ("--sample-rate", "sample_rate", dict(metavar="HZ|input", help="output rate (default 44100)")),
        ("--model", "model", dict(metavar="ID|FOLDER", help="catalog id or weights folder (default by --stems)")),
    ],
    "tag": [
        ("--format", "formats", dict(nargs="+", choices=("json", "csv", "audacity"), help="formats (default json)")),
        ("--model", "model", dict(metavar="ID|FOLDER", help="tagger (default: the offline EfficientAT mn04)")),
        ("--top", "top", dict(type=int, help="top labels kept per file")),
        ("--threshold", "threshold", dict(type=float, help="score at which a label makes an event")),
        ("--hop", "hop", dict(type=float, help="seconds between windows")),
        ("--window", "window", dict(type=float, help="window seconds (default: the model's own)")),
    ],
    "separate": [
        ("--model", "model", dict(metavar="ID|FOLDER", help="SepFormer id or folder (default sepformer-wsj02mix)")),
        ("--format", "format", dict(choices=("wav", "flac", "mp3"), help="output format (default wav)")),
    ],
    "speak": [
        ("--voice", "voice", dict(help="voice id (default: the offline voice)")),
        ("--speed", "speed", dict(type=float, help="speaking rate (default 1.0)")),
        ("--speaker", "speaker", dict(help="speaker of a multi-speaker voice")),
        ("--format", "format", dict(choices=("wav", "flac", "mp3", "ogg"), help="audio format (default wav)")),
    ],
    "analyze": [
        ("--format", "formats", dict(nargs="+", choices=("srt", "vtt", "json"), help="formats (default all three)")),
        ("--sdh", "sdh", dict(action="store_true", help="subtitles for the deaf and hard of hearing")),
    ],
}


def register(sub: argparse._SubParsersAction) -> None:
    from ..batch.tasks import TASKS

    p = sub.add_parser(
        "batch", help="run a task over many files: resumable, on worker processes or a Ray cluster",
        description="Run TASK on every INPUT (files, folders searched for audio and video, or .txt files "
                    "listing paths; for speak, .txt files to read) and write the outputs under --out, a "
                    "file's place below a folder kept. DIR/batch-manifest.json records each input's hash, the "
                    "options and the outputs: a second run skips what is complete. Exit 1 if any file failed.")
    tasks = p.add_subparsers(dest="task", metavar="TASK", required=True)
    for name, spec in TASKS.items():
        t = tasks.add_parser(name, help=spec.help, description=f"batch {name}: {spec.help}")
        t.add_argument("inputs", nargs="+", metavar="INPUT", help="files, folders or .txt lists of paths")
        t.add_argument("--out", required=True, metavar="DIR", help="output folder (holds the manifest)")
        t.add_argument("--workers", type=int, default=None, metavar="N",
                       help="worker processes (default 1: this process); with --ray: actors (default one per "
                            "CPU, or per GPU)")
        t.add_argument("--ray", nargs="?", const="auto", default=None, metavar="auto|ADDRESS",
                       help="run on Ray: 'auto' joins this machine's cluster or starts a local one")
        t.add_argument("--threads", type=int, default=None, help="torch threads per worker (default: the "
                                                                   "cores divided between the workers)")
        t.add_argument("--retries", type=int, default=1, help="retries of a file whose worker died (default 1)")
        for flag, dest, kw in OPTIONS.get(name, []):
            t.add_argument(flag, dest=f"opt_{dest}", default=None, **kw)
        t.set_defaults(func=cmd_batch)


class _Printer:
    """Progress on stderr; one line per finished file on stdout (``done``/``failed``/``skipped``)."""

    def __init__(self) -> None:
        self.progress = StderrProgress("batch")
        self.seen = 0

    def __call__(self, state) -> None:
        for ev in state.partials[self.seen:]:
            if ev.status in ("done", "skipped"):
                print(f"{ev.status}\t{ev.path}\t{' '.join(ev.outputs)}", flush=True)
            elif ev.status == "failed":
                print(f"failed\t{ev.path}: {ev.error}", flush=True)
        self.seen = len(state.partials)
        self.progress(state)


def cmd_batch(args: argparse.Namespace) -> int:
    from ..batch import run_batch
    from ..jobs import JobState

    options = {dest: getattr(args, f"opt_{dest}") for _, dest, _ in OPTIONS.get(args.task, [])}
    for k, v in options.items():
        if k == "sample_rate" and v not in (None, "input"):
            try:
                options[k] = int(v)
            except ValueError:
                print(f"error: --sample-rate takes a number or 'input', not {v!r}", file=sys.stderr)
                return EXIT_FAILED
    summary = run_batch(JobState(_Printer()), args.task, args.inputs, args.out, options, workers=args.workers,
                        ray=args.ray, threads=args.threads, retries=args.retries)
    for line in summary.lines():
        print(line, file=sys.stderr)
    return EXIT_OK if summary.ok else EXIT_FAILED
