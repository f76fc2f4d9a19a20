"""faster-whisper as a CLI user runs it, for bench_whisper.py's whole-process mode.

    python benchmarks/fw_transcribe.py FILE CT2_FOLDER OUT.json [--beam-size 1] [--threads 2] [--compute-type int8]

Transcribes FILE (English, temperature fallback and conditioning on the previous text: the
faster-whisper defaults, as the Sonoscope CLI's) and writes the segments (seek, start, end, text,
temperature, avg_logprob) as JSON, the shape of ``main.py transcribe --format json``.
"""

from __future__ import annotations

import argparse
import json


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("file")
    ap.add_argument("folder")
    ap.add_argument("out")
    ap.add_argument("--beam-size", type=int, default=1)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--compute-type", default="int8")
    args = ap.parse_args()
    from faster_whisper import WhisperModel

    model = WhisperModel(args.folder, device="cpu", compute_type=args.compute_type, cpu_threads=args.threads)
    segments, _ = model.transcribe(args.file, language="en", beam_size=args.beam_size)
    out = [dict(seek=s.seek, start=s.start, end=s.end, text=s.text, temperature=s.temperature,
                avg_logprob=s.avg_logprob) for s in segments]
    with open(args.out, "w", encoding="utf-8") as f:
        json.dump({"segments": out}, f)


if __name__ == "__main__":
    main()
