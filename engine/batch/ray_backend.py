"""The batch on Ray: each file a task on actors that keep their model loaded; the manifest stays here.

``ray`` (the ``cluster`` extra) is imported inside these functions only, so the engine imports
without it. :func:`connect` joins a running cluster (``ADDRESS``, or ``auto``: the one this machine
is part of) and, for ``auto`` with no cluster, starts a local one. Actors (``BatchWorker``) run the
same :func:`engine.batch.worker.process` as the local pool: one CPU each (threads to match), or one
GPU each when the cluster has GPUs. A file whose actor dies (a killed process, a lost node) is
retried on the restarted actor, which Ray may place on another node (``max_restarts`` /
``max_task_retries``); when the retries are spent the file is recorded as failed and a fresh actor
takes its place. The driver keeps one call in flight per actor, so it always knows what runs where.

Outputs are written by the workers under the output folder, so on a cluster of several machines
that folder (and the inputs) must be on a file system every node sees; there the engine's code is
shipped to the workers with the job (``py_modules``), torch and the models must be installed on them.
"""

from __future__ import annotations

import collections
import os
from pathlib import Path
from typing import Any

from ..errors import Cancelled, SonoscopeError
from ..jobs import JobState

ENGINE_DIR = Path(__file__).resolve().parents[1]


class BatchWorker:
    """A Ray actor: sets its torch threads once; its model cache outlives the files."""

    def __init__(self, threads: int | None) -> None:
        from ..compute import set_threads

        set_threads(threads)

    def pid(self) -> int:
        return os.getpid()

    def process(self, task: str, path: str, key: str, out_dir: str, options: dict,
                known: dict | None) -> dict[str, Any]:
        from . import worker

        try:
            return worker.process(JobState(), task, path, key, out_dir, options, known)
        except Cancelled:
            return {"status": "cancelled"}


def connect(address: str) -> bool:
    """Join the cluster at ``address`` ("auto": this machine's, else start a local one). True when
    this call started Ray in this process (the caller shuts it down after)."""
    try:
        import ray
    except ImportError:
        raise SonoscopeError("--ray needs Ray: pip install 'sonoscope[cluster]'") from None
    if ray.is_initialized():
        return False
    local = {"env_vars": {"PYTHONPATH": os.pathsep.join(
        p for p in (str(ENGINE_DIR.parent), os.environ.get("PYTHONPATH", "")) if p)}}
    if address == "auto":
        try:
            ray.init(address="auto", runtime_env={"py_modules": [str(ENGINE_DIR)]}, log_to_driver=False)
        except ConnectionError:  # no cluster here: a local one, on this machine's cores
            ray.init(runtime_env=local, log_to_driver=False, include_dashboard=False)
    else:
        try:
            ray.init(address=address, runtime_env={"py_modules": [str(ENGINE_DIR)]}, log_to_driver=False)
        except (ConnectionError, ValueError) as e:
            raise SonoscopeError(f"cannot reach the Ray cluster at {address}: {e}") from None
    return True


def actor_plan(resources: dict, workers: int, files: int) -> tuple[int, dict]:
    """(actors, resources per actor): one per GPU when there are GPUs, else one per CPU; ``workers``
    (> 0) caps them, and so does the number of files."""
    gpus, cpus = float(resources.get("GPU", 0)), max(1, int(resources.get("CPU", 1)))
    n = workers if workers > 0 else (int(gpus) if gpus >= 1 else cpus)
    n = max(1, min(n, files))
    if gpus >= 1:
        return n, {"num_gpus": min(1.0, gpus / n), "num_cpus": 1}
    return n, {"num_cpus": max(1, cpus // n)}


def run_ray(jobs: list, task: str, out: Path, opts: dict, hooks, state: JobState, address: str,
            workers: int, retries: int) -> None:
    if not jobs:
        return
    started = connect(address)
    import ray
    from ray.exceptions import RayError

    try:
        n, res = actor_plan(ray.cluster_resources(), workers, len(jobs))
        threads = int(res["num_cpus"])
        actor_cls = ray.remote(max_restarts=max(0, retries), max_task_retries=max(0, retries), **res)(BatchWorker)
        idle = [actor_cls.remote(threads) for _ in range(n)]
        todo = collections.deque(jobs)
        flying: dict[Any, tuple[Any, Any]] = {}
        while todo or flying:
            if state.cancelled:
                for _, actor in flying.values():
                    ray.kill(actor)  # outputs are staged: a killed actor leaves no partial file
                return
            while idle and todo:
                j, actor = todo.popleft(), idle.pop()
                flying[actor.process.remote(*j.args(task, out, opts))] = (j, actor)
                hooks.start(j.index, "ray")
            ready, _ = ray.wait(list(flying), num_returns=1, timeout=0.25)
            for ref in ready:
                j, actor = flying.pop(ref)
                try:
                    rec = ray.get(ref)
                    idle.append(actor)
                except RayError as e:  # the retries are spent: record it, start a fresh actor
                    rec = {"status": "failed", "key": j.input.key, "outputs": {},
                           "error": f"the Ray worker was lost ({type(e).__name__}) after {retries} retries"}
                    idle.append(actor_cls.remote(threads))
                hooks.result(j.index, rec)
    finally:
        if started:
            ray.shutdown()
