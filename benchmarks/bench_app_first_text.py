"""The app's time from clicking Transcribe to the first segment on screen, as a user waits it.

    .venv/bin/python benchmarks/bench_app_first_text.py [--model base] [--reps 2]

Each run is a fresh process (Qt offscreen): the main window with its panels, one file selected,
the Transcribe panel's model set, Run clicked; the panel's own report (``first_shown``: click ->
first row in its table, model load and decoding included) and the time to the finished transcript
are printed. Cases: the model's prepared file already in the cache (every use after the first),
and removed first (the first use after a download: it is written again). Files: a 1 s clip and
bench_whisper.py's unseen ~60 s file of phrases said twice. The CLI's whole process on the same
files is bench_whisper.py --whole.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(1, str(ROOT / "tests"))


def one_run(file: str, model: str, out: str) -> None:
    """In the child: open the window, click Run, wait for the first row and the end."""
    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    from PySide6.QtWidgets import QApplication

    app = QApplication.instance() or QApplication([])
    from app import create_window
    from qtwindow import NO_AUDIO, make_settings

    w = create_window(settings=make_settings(Path(tempfile.mkdtemp())), audio=NO_AUDIO, check_compute=False)
    w.resize(1200, 800)
    w.show()
    w.load_panels()
    app.processEvents()
    panel = w.panels["TranscribePanel"]
    panel.model.setCurrentIndex(panel.model.findData(f"whisper-{model}"))
    w.ctx.set_selection([Path(file)])
    app.processEvents()
    clicked = time.monotonic()
    panel.run_button.click()
    while file not in panel.transcripts:
        app.processEvents()
        time.sleep(0.005)
        if time.monotonic() - clicked > 600:
            raise SystemExit("no transcript after 600 s")
    done = time.monotonic() - clicked
    Path(out).write_text(json.dumps({"first": panel.first_shown.get(file), "done": done,
                                     "segments": len(panel.transcripts[file].segments)}))
    w.close()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default="base")
    ap.add_argument("--reps", type=int, default=2)
    ap.add_argument("--child", nargs=2, metavar=("FILE", "OUT"), help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        return one_run(args.child[0], args.model, args.child[1])
    from bench_whisper import whole_files

    from engine.store import default_store

    tmp = Path(tempfile.mkdtemp(prefix="bench-app-"))
    files = whole_files(tmp)
    env = dict(os.environ, HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1", QT_QPA_PLATFORM="offscreen")
    prepared = default_store().root / ".prepared"

    def run(file: Path) -> dict:
        out = tmp / "r.json"
        proc = subprocess.run([sys.executable, __file__, "--model", args.model, "--child", str(file), str(out)],
                              env=env, capture_output=True, text=True)
        if proc.returncode != 0:
            raise SystemExit(proc.stderr[-3000:])
        return json.loads(out.read_text())

    run(files[0][1])  # the prepared file exists and the OS file cache is warm
    rows = []
    for case in ("prepared", "first use"):
        for name, file, _ in files:
            rs = []
            for _ in range(args.reps):
                if case == "first use":
                    for p in prepared.glob("whisper-*.safetensors"):  # every precision: the app's is the default
                        p.unlink()
                rs.append(run(file))
            rows.append((case, name, rs))
    print(f"\nWhisper {args.model} (the app's default precision), Transcribe clicked in a fresh app process, "
          f"median of {args.reps}\n")
    print("| model cache | file | click -> first text on screen s | click -> transcript done s | segments |")
    print("|---|---|---|---|---|")
    for case, name, rs in rows:
        print(f"| {case} | {name} | {statistics.median(r['first'] for r in rs):.2f} | "
              f"{statistics.median(r['done'] for r in rs):.2f} | {rs[0]['segments']} |")


if __name__ == "__main__":
    main()
