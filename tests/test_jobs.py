"""engine.jobs: JobState/SubState reporting, run_job outcomes and the single-worker JobRunner."""

from __future__ import annotations

import threading
import time

import pytest

from engine.errors import Cancelled, ModelNotAvailable
from engine.jobs import Job, JobRunner, JobState, JobStatus, null_state, run_job

TIMEOUT = 10


@pytest.fixture
def runner_events():
    events: list[tuple[int, str, float]] = []
    lock = threading.Lock()

    def on_event(job, kind):
        with lock:
            events.append((job.id, kind, job.state.progress))

    runner = JobRunner(on_event=on_event, name="test-engine")
    yield runner, events
    runner.shutdown(timeout=TIMEOUT)


def test_state_update_clamps_and_notifies():
    seen = []
    s = JobState(listener=lambda st: seen.append((st.progress, st.status)))
    s.update(progress=0.25, status="loading")
    s.update(progress=7)
    s.update(progress=-1, status="back")
    s.add_partial("word")
    assert seen == [(0.25, "loading"), (1.0, "loading"), (0.0, "back"), (0.0, "back")]
    assert s.partials == ["word"] and not s.cancelled
    s.cancel()
    assert s.cancelled
    with pytest.raises(Cancelled):
        s.check()
    with pytest.raises(Cancelled):  # update checks too
        s.update(progress=0.5)
    assert null_state().progress == 0.0


def test_min_interval_throttles_but_keeps_final_and_status():
    seen = []
    s = JobState(listener=lambda st: seen.append(st.progress), min_interval=3600)
    s.update(progress=0.1)  # the first notification passes
    for i in range(2, 10):
        s.update(progress=i / 10)
    s.update(status="almost")  # status-only updates are always sent
    s.update(progress=1.0)  # the end is always sent
    assert seen == [0.1, 0.9, 1.0]


def test_substate_maps_progress():
    s = JobState()
    a = s.sub(0.0, 0.5)
    b = s.sub(0.5, 1.0)
    a.update(progress=0.5, status="step 1")
    assert s.progress == pytest.approx(0.25) and s.status == "step 1"
    a.update(progress=2.0)  # clamped inside its slice
    assert s.progress == pytest.approx(0.5)
    nested = b.sub(0.5, 1.0)  # the last quarter of the job
    nested.update(progress=0.5)
    assert s.progress == pytest.approx(0.875)
    nested.update(status="only status")
    assert s.progress == pytest.approx(0.875) and s.status == "only status"
    nested.add_partial(1)
    assert s.partials == [1]
    s.cancel()
    assert nested.cancelled
    with pytest.raises(Cancelled):
        nested.check()


def _job(fn, *args, **kwargs):
    return Job("test", fn, args, kwargs)


def test_run_job_outcomes():
    ok = run_job(_job(lambda st, a, b=0: a + b, 2, b=3))
    assert ok.status is JobStatus.DONE and ok.result == 5 and ok.error is None and ok.wait(0)

    def typed(st):
        raise ModelNotAvailable("Whisper base is not installed: pip install sonoscope[models]")

    f = run_job(_job(typed))
    assert f.status is JobStatus.FAILED and f.result is None
    assert f.error == "Whisper base is not installed: pip install sonoscope[models]" and f.detail is None

    def bug(st):
        raise ValueError("shapes do not match")

    b = run_job(_job(bug))
    assert b.status is JobStatus.FAILED and b.error == "ValueError: shapes do not match"
    assert "Traceback" in b.detail and "bug" in b.detail

    def oom(st):
        raise MemoryError()

    assert run_job(_job(oom)).error == "Out of memory"

    pre = _job(lambda st: "never")
    pre.cancel()
    c = run_job(pre)
    assert c.status is JobStatus.CANCELLED and c.result is None and c.error == "Cancelled"
    assert ok.remaining is None  # finished: nothing left to estimate

    def slow(st):
        time.sleep(0.05)

    sj = run_job(_job(slow))
    assert sj.elapsed >= 0.05 and sj.elapsed == sj.finished - sj.started  # wall time of the run, frozen at the end


def test_runner_runs_in_order_on_one_worker_thread(runner_events):
    runner, events = runner_events
    log: list[tuple[str, int]] = []
    active = [0]
    overlap = []

    def work(state, name, steps):
        active[0] += 1
        if active[0] > 1:
            overlap.append(name)
        for i in range(steps):
            time.sleep(0.002)
            state.update(progress=(i + 1) / steps, status=f"{name} {i}")
        state.add_partial(f"{name} done")
        log.append((name, threading.get_ident()))
        active[0] -= 1
        return name.upper()

    jobs = [runner.submit(f"job{i}", work, f"job{i}", 5) for i in range(4)]
    assert all(j.wait(TIMEOUT) for j in jobs)
    assert [n for n, _ in log] == ["job0", "job1", "job2", "job3"]
    threads = {t for _, t in log}
    assert len(threads) == 1 and threading.get_ident() not in threads and not overlap
    assert [j.status for j in jobs] == [JobStatus.DONE] * 4
    assert [j.result for j in jobs] == ["JOB0", "JOB1", "JOB2", "JOB3"]
    assert jobs[0].state.partials == ["job0 done"] and jobs[3].state.status == "job3 4"
    deadline = time.monotonic() + TIMEOUT  # "finished" is emitted just after the job's done event is set
    while sum(k == "finished" for _, k, _ in events) < 4 and time.monotonic() < deadline:
        time.sleep(0.005)
    for j in jobs:
        kinds = [k for i, k, _ in events if i == j.id]
        assert kinds[0] == "started" and kinds[-1] == "finished"
        assert kinds.count("progress") == 5 and kinds.count("partial") == 1
        progress = [p for i, k, p in events if i == j.id and k == "progress"]
        assert progress == sorted(progress) and progress[-1] == 1.0
    # the events of job k all come before those of job k+1
    order = [i for i, k, _ in events if k == "started"]
    assert order == [j.id for j in jobs]


def test_cancel_running_job(runner_events):
    runner, events = runner_events
    started = threading.Event()

    def long_job(state):
        started.set()
        for i in range(1000):
            time.sleep(0.005)
            state.update(progress=i / 1000)
        return "finished anyway"

    job = runner.submit("long", long_job)
    after = runner.submit("after", lambda st: "ran")
    assert started.wait(TIMEOUT)
    assert job.status is JobStatus.RUNNING and runner.current is job
    job.cancel()
    assert job.wait(TIMEOUT)
    assert job.status is JobStatus.CANCELLED and job.result is None and job.error == "Cancelled"
    assert job.state.progress < 1.0
    assert after.wait(TIMEOUT) and after.status is JobStatus.DONE and after.result == "ran"  # the queue goes on


def test_cancel_queued_job_never_runs(runner_events):
    runner, _ = runner_events
    gate = threading.Event()
    ran = []
    first = runner.submit("blocker", lambda st: gate.wait(TIMEOUT))
    queued = runner.submit("queued", lambda st: ran.append(1))
    queued.cancel()
    gate.set()
    assert first.wait(TIMEOUT) and queued.wait(TIMEOUT)
    assert queued.status is JobStatus.CANCELLED and not ran


def test_failed_job_reports_message_and_runner_survives(runner_events):
    runner, events = runner_events

    def bad(state):
        state.update(progress=0.3)
        raise ModelNotAvailable("No model 'whisper-huge' in the catalog")

    j = runner.submit("bad", bad)
    ok = runner.submit("ok", lambda st: 42)
    assert j.wait(TIMEOUT) and ok.wait(TIMEOUT)
    assert j.status is JobStatus.FAILED and j.error == "No model 'whisper-huge' in the catalog"
    assert ok.result == 42


def test_observer_errors_do_not_break_jobs(capsys):
    def on_event(job, kind):
        raise RuntimeError(f"observer bug on {kind}")

    runner = JobRunner(on_event=on_event)
    try:
        def work(state):
            state.update(progress=0.5)
            state.add_partial("x")
            return "fine"

        j = runner.submit("w", work)
        assert j.wait(TIMEOUT)
        assert j.status is JobStatus.DONE and j.result == "fine"
    finally:
        runner.shutdown(timeout=TIMEOUT)
    assert "observer bug" in capsys.readouterr().err


def test_shutdown_cancels_everything():
    runner = JobRunner()
    started = threading.Event()

    def spin(state):
        started.set()
        while True:
            state.check()
            time.sleep(0.002)

    a = runner.submit("spin", spin)
    b = runner.submit("queued", lambda st: 1)
    assert started.wait(TIMEOUT)
    runner.shutdown(timeout=TIMEOUT)
    assert a.status is JobStatus.CANCELLED and b.status is JobStatus.CANCELLED
    assert not runner._thread.is_alive()


def test_remaining_estimate():
    j = _job(lambda st: None)
    j.status = JobStatus.RUNNING
    j.started = time.monotonic() - 10.0
    j.state.update(progress=0.25)
    assert j.remaining == pytest.approx(30.0, rel=0.05)


def test_jobs_wait_as_queued_and_sessions_run_beside_them():
    """A second job waits (QUEUED) behind a running one; a live session starts at once on its own thread."""
    runner = JobRunner()
    gate = threading.Event()
    try:
        first = runner.submit("first", lambda st: gate.wait(10))
        second = runner.submit("second", lambda st: threading.current_thread().name)
        session_thread = []

        def session(st):
            session_thread.append(threading.current_thread().name)
            while not st.cancelled:
                time.sleep(0.01)
            return "stopped"

        live = runner.start_session("live", session)
        deadline = time.monotonic() + 5
        while not session_thread and time.monotonic() < deadline:
            time.sleep(0.01)
        assert first.status is JobStatus.RUNNING and second.status is JobStatus.QUEUED
        assert live.status is JobStatus.RUNNING and live.session and session_thread[0] != "engine"
        gate.set()
        assert second.wait(5) and second.result == "engine"  # jobs run on the engine thread, in order
        live.cancel()
        assert live.wait(5) and live.result == "stopped" and live.status is JobStatus.DONE
    finally:
        gate.set()
        runner.shutdown()
