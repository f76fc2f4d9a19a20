"""Batch on a local Ray (num_cpus=2) started by the test: the same outputs as the local pool, and a
worker process SIGKILLed mid-file is retried (the actor restarts) and the batch completes."""

from __future__ import annotations

import json
import os
import signal
import threading
import time
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from engine.batch import run_batch
from engine.batch.manifest import NAME as MANIFEST
from tests.test_batch import LIBRIVOX, ROOT, build_corpus, hidden, outputs

ray = pytest.importorskip("ray")


@pytest.fixture(scope="module")
def local_ray():
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False,
             runtime_env={"env_vars": {"PYTHONPATH": str(ROOT), "HF_HUB_OFFLINE": "1", "SONOSCOPE_OFFLINE": "1"}})
    yield
    ray.shutdown()


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    """The corpus (20 real files, 3 broken), a 4-minute real recording (the LibriVox utterances ten times:
    long enough to be killed in), a tiny CTC model, and the local pool's outputs as the reference."""
    from tests.test_transcribe_task import write_ctc_folder

    root = tmp_path_factory.mktemp("corpus")
    good, bad = build_corpus(root / "corpus")
    speech = [sf.read(str(p), dtype="float32")[0] for p in sorted(LIBRIVOX.glob("*.wav"))]
    long = root / "long.wav"
    sf.write(str(long), np.concatenate(speech * 10), 16000)
    model = tmp_path_factory.mktemp("ctc")
    write_ctc_folder(model)
    inputs = [long, root / "corpus"]
    opts = dict(engine="ctc", model=str(model), formats=["srt", "json"])
    pool = root / "pool"
    s = run_batch(None, "transcribe", inputs, pool, opts, workers=2, threads=1)
    assert len(s.done) == 21 and len(s.failed) == 3
    return inputs, opts, pool, s


def test_ray_gives_the_same_outputs_as_the_local_pool(local_ray, setup, tmp_path):
    inputs, opts, pool, pooled = setup
    s = run_batch(None, "transcribe", inputs, tmp_path, opts, ray="auto")
    assert s.backend == "ray auto" and len(s.done) == 21
    assert sorted(s.failed) == sorted(pooled.failed)  # the same files, the same reasons
    assert outputs(tmp_path) == outputs(pool) and hidden(tmp_path) == []
    assert len(outputs(tmp_path)) == 2 * 21
    # the manifest stays on the driver: a second run on Ray skips all that is complete
    again = run_batch(None, "transcribe", inputs, tmp_path, opts, ray="auto")
    assert len(again.skipped) == 21 and len(again.done) == 0 and len(again.failed) == 3


def _busy_actor() -> int | None:
    """The pid of a Ray actor process that is running a file (its title is ray::BatchWorker.process)."""
    for p in Path("/proc").glob("[0-9]*"):
        try:
            title = (p / "cmdline").read_bytes().split(b"\0")[0]
        except OSError:
            continue
        if title.startswith(b"ray::BatchWorker.process"):
            return int(p.name)
    return None


def test_a_ray_worker_killed_mid_file_is_retried(local_ray, setup, tmp_path):
    inputs, opts, pool, _ = setup
    result: dict = {}
    t = threading.Thread(target=lambda: result.update(s=run_batch(None, "transcribe", inputs, tmp_path, opts,
                                                                  ray="auto", retries=2)))
    t.start()
    victim, deadline = None, time.monotonic() + 60
    while victim is None and time.monotonic() < deadline and t.is_alive():
        victim = _busy_actor()
        time.sleep(0.01)
    assert victim is not None, "no Ray worker was seen at work"
    os.kill(victim, signal.SIGKILL)
    # what the victim finished is fixed once it is dead and the driver has recorded its last results
    # (read before the kill, a file it finished between the read and the signal would look retried)
    time.sleep(1.0)
    try:
        before = json.loads((tmp_path / MANIFEST).read_text())["tasks"]["transcribe"]
    except (OSError, ValueError, KeyError):
        before = {}
    by_victim = {p for p, e in before.items() if e["worker"] == f"pid {victim}"}
    t.join(120)
    s = result["s"]
    assert len(s.done) == 21 and len(s.failed) == 3, s.lines()
    assert outputs(tmp_path) == outputs(pool) and hidden(tmp_path) == []
    records = json.loads((tmp_path / MANIFEST).read_text())["tasks"]["transcribe"]
    # the file it was working on was finished by another process (the restarted actor)
    assert {p for p, e in records.items() if e["worker"] == f"pid {victim}"} == by_victim
    assert len({e["worker"] for e in records.values()}) >= 2
    with pytest.raises(ProcessLookupError):
        os.kill(victim, 0)
