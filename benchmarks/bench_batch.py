"""Batch throughput: files per minute on the same real files with 1 worker (in process), a pool of 2
worker processes and a local Ray (num_cpus=2), in one run.

The files are the tests' corpus (tests/test_batch.py: 12 sound icons, 5 LibriVox utterances, 3 cuts;
the 3 broken files left out), copied ``--copies`` times. The task is ``tag`` with the offline EfficientAT
tagger when it is installed, else ``transcribe`` with a tiny random CTC model (``--task``). Wall time is
the whole ``run_batch`` call: worker start-up and model loads included, as a user sees it.

    python benchmarks/bench_batch.py [--copies 2] [--task tag|transcribe]
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("HF_HUB_OFFLINE", "1")

from engine.batch import run_batch  # noqa: E402


def corpus(root: Path, copies: int) -> Path:
    from tests.test_batch import build_corpus

    good, _ = build_corpus(root / "c")
    src = root / "in"
    for k in range(copies):
        for f in good:
            dst = src / f"copy{k}" / f.parent.name / f.name
            dst.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy(f, dst)
    return src


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--copies", type=int, default=2)
    ap.add_argument("--task", choices=("tag", "transcribe"), default=None)
    args = ap.parse_args()
    task = args.task
    if task is None:
        ok = subprocess.run([sys.executable, str(ROOT / "main.py"), "models", "path", "efficientat-mn04-as",
                             "--no-download"], capture_output=True).returncode == 0
        task = "tag" if ok else "transcribe"
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        src = corpus(tmp, args.copies)
        n = len([p for p in src.rglob("*") if p.is_file()])
        opts: dict = {"formats": ["json"]}
        if task == "transcribe":
            from tests.test_transcribe_task import write_ctc_folder

            write_ctc_folder(tmp / "ctc")
            opts.update(engine="ctc", model=str(tmp / "ctc"))
        rows = []
        # the first row loads torch and the model in this process (cold); the second finds them loaded
        for label, kw in (("1 worker (in process), 1 thread, cold", dict(workers=1, threads=1)),
                          ("1 worker (in process), 2 threads, warm", dict(workers=1, threads=2)),
                          ("pool of 2 workers", dict(workers=2)),
                          ("local Ray, num_cpus=2", dict(ray="auto"))):
            if "ray" in kw:
                import ray

                ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False,
                         runtime_env={"env_vars": {"PYTHONPATH": str(ROOT)}})
            t = time.perf_counter()
            s = run_batch(None, task, [src], tmp / f"out{len(rows)}", opts, **kw)
            wall = time.perf_counter() - t
            if "ray" in kw:
                ray.shutdown()
            assert len(s.done) == n, s.lines()
            rows.append((label, n, wall, 60 * n / wall, s.audio_seconds / wall))
    print(f"\nbatch {task}, {n} real files ({rows[0][1]} per run), {os.cpu_count()} CPU cores\n")
    print("| backend | files | wall s | files/min | x real time |")
    print("|---|---|---|---|---|")
    for label, files, wall, fpm, rt in rows:
        print(f"| {label} | {files} | {wall:.1f} | {fpm:.1f} | {rt:.1f} |")


if __name__ == "__main__":
    main()
