"""A private PulseAudio server with a virtual speaker and microphone, for real-audio tests.

``pulse_session()`` starts ``pulseaudio`` in a fresh ``XDG_RUNTIME_DIR`` with a null sink
``vsink`` (what is played goes nowhere audible) and a source ``vmic`` remapped from the
sink's monitor, so whatever is played into ``vsink`` is what a program recording from
the default input hears. PortAudio reaches it through ALSA's pulse plugin.

    from tests.pulse import pulse_session, play_into_mic
    with pulse_session() as pa:          # a private server for this block
        play_into_mic(tone(440, 1.0), 48000)   # blocking; returns when played
        ...

    pa = shared_pulse()                  # or: one server for the whole test process (fixtures)

Start it once per test session (each stream open/close costs 1-3 s; the server start ~1 s).
The process environment is changed while the session is active (XDG_RUNTIME_DIR,
PULSE_SERVER) so child processes find the same server; it is restored afterwards.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import tempfile
import threading
import time
from dataclasses import dataclass
from typing import Iterator

import numpy as np

SINK, SOURCE, RATE = "vsink", "vmic", 48000


@dataclass
class PulseSession:
    runtime_dir: str
    env: dict  # environment for child processes

    def pactl(self, *args: str) -> str:
        return subprocess.run(["pactl", *args], env=self.env, check=True, capture_output=True,
                              text=True, timeout=20).stdout


def _pactl(env: dict, *args: str) -> str:
    return subprocess.run(["pactl", *args], env=env, check=True, capture_output=True, text=True,
                          timeout=20).stdout


def available() -> str | None:
    """None if a session can be started here, else why not."""
    for exe in ("pulseaudio", "pactl"):
        if shutil.which(exe) is None:
            return f"{exe} is not installed (apt install pulseaudio pulseaudio-utils)"
    return None


@contextlib.contextmanager
def pulse_session(refresh_portaudio: bool = True) -> Iterator[PulseSession]:
    why = available()
    if why:
        raise RuntimeError(why)
    runtime = tempfile.mkdtemp(prefix="sonoscope-pulse-")
    os.chmod(runtime, 0o700)
    saved = {k: os.environ.get(k) for k in ("XDG_RUNTIME_DIR", "PULSE_SERVER", "PULSE_RUNTIME_PATH")}
    env = dict(os.environ)
    env.pop("PULSE_SERVER", None)
    env["XDG_RUNTIME_DIR"] = runtime
    env["PULSE_RUNTIME_PATH"] = os.path.join(runtime, "pulse")
    home = os.path.join(runtime, "home")
    os.makedirs(home)
    env["HOME"] = home  # pulse writes its cookie/config under HOME; keep the real one clean
    started = False
    keeper = None
    try:
        subprocess.run(["pulseaudio", "--daemonize=yes", "--exit-idle-time=-1", "--disallow-exit",
                        "--disable-shm=yes", "-n", "--load=module-native-protocol-unix",
                        "--log-target=stderr"],
                       env=env, check=True, timeout=30, capture_output=True)
        started = True
        for _ in range(100):
            if subprocess.run(["pactl", "info"], env=env, capture_output=True).returncode == 0:
                break
            time.sleep(0.05)
        else:
            raise RuntimeError("PulseAudio did not come up")
        _pactl(env, "load-module", "module-null-sink", f"sink_name={SINK}", f"rate={RATE}", "channels=2")
        _pactl(env, "load-module", "module-remap-source", f"master={SINK}.monitor",
               f"source_name={SOURCE}")
        _pactl(env, "set-default-sink", SINK)
        _pactl(env, "set-default-source", SOURCE)
        # Keep vmic running: a capture stream that attaches to an idle source waits ~2 s for
        # its first data; with one client always reading, new streams start at once.
        keeper = subprocess.Popen(["parec", "-d", SOURCE, "--raw", "--latency-msec=50"], env=env,
                                  stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
        flowing = threading.Event()

        def drain() -> None:
            while keeper.stdout.read(4096):
                flowing.set()

        threading.Thread(target=drain, daemon=True).start()
        flowing.wait(10)
        server = f"unix:{env['PULSE_RUNTIME_PATH']}/native"
        env["PULSE_SERVER"] = server
        os.environ.update({"XDG_RUNTIME_DIR": runtime, "PULSE_RUNTIME_PATH": env["PULSE_RUNTIME_PATH"],
                           "PULSE_SERVER": server})
        if refresh_portaudio:
            from engine.audio import devices as audio_devices

            audio_devices.refresh()
        yield PulseSession(runtime, env)
    finally:
        if keeper is not None:
            keeper.kill()
            keeper.wait(5)
        if started:
            subprocess.run(["pulseaudio", "--kill"], env=env, capture_output=True, timeout=20)
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
        if refresh_portaudio:
            try:
                from engine.audio import devices as audio_devices

                audio_devices.refresh()
            except Exception:
                pass
        shutil.rmtree(runtime, ignore_errors=True)


_shared: PulseSession | None = None
_shared_cm = None


def shared_pulse() -> PulseSession:
    """One session per test process, started on first use and stopped at exit.

    Use this from fixtures in any test file (several files each starting their own server
    would fight over the process environment)::

        @pytest.fixture(scope="session")
        def pulse():
            return shared_pulse()
    """
    global _shared, _shared_cm
    if _shared is None:
        import atexit

        _shared_cm = pulse_session()
        _shared = _shared_cm.__enter__()
        atexit.register(stop_shared_pulse)
    return _shared


def stop_shared_pulse() -> None:
    global _shared, _shared_cm
    if _shared_cm is not None:
        cm, _shared_cm, _shared = _shared_cm, None, None
        cm.__exit__(None, None, None)


def tone(freq: float, seconds: float, sr: int = RATE, amp: float = 0.5) -> np.ndarray:
    t = np.arange(int(seconds * sr)) / sr
    return (amp * np.sin(2 * np.pi * freq * t)).astype(np.float32)


def play_into_mic(audio: np.ndarray, sr: int = RATE, block: bool = True) -> threading.Thread | None:
    """Play ``audio`` ((n,) or (channels, n)) into ``vsink``; what the virtual mic will hear.

    With ``block=False`` it plays on a thread and returns it (join it before the session ends).
    """
    import sounddevice as sd

    a = np.asarray(audio, np.float32)
    a = a[:, None] if a.ndim == 1 else a.T

    def run() -> None:
        sd.play(a, sr, blocking=True)

    if block:
        run()
        return None
    th = threading.Thread(target=run, daemon=True)
    th.start()
    return th


def dominant_frequency(x: np.ndarray, sr: int) -> float:
    """The strongest frequency of a signal (parabolic interpolation between FFT bins)."""
    x = np.asarray(x, np.float64)
    if x.ndim == 2:
        x = x.mean(axis=0 if x.shape[0] < x.shape[1] else 1)
    x = x * np.hanning(len(x))
    spec = np.abs(np.fft.rfft(x))
    k = int(np.argmax(spec[1:])) + 1
    if 1 <= k < len(spec) - 1:
        a, b, c = np.log(spec[k - 1] + 1e-12), np.log(spec[k] + 1e-12), np.log(spec[k + 1] + 1e-12)
        k = k + 0.5 * (a - c) / (a - 2 * b + c)
    return float(k * sr / len(x))


def active_seconds(x: np.ndarray, sr: int, rms_threshold: float, frame: float = 0.01) -> tuple[float, int]:
    """(seconds of signal whose 10 ms RMS exceeds the threshold, first active sample)."""
    x = np.asarray(x, np.float32).reshape(-1)
    n = int(frame * sr)
    m = len(x) // n
    if m == 0:
        return 0.0, 0
    rms = np.sqrt(np.mean(np.square(x[:m * n].reshape(m, n)), axis=1))
    on = rms > rms_threshold
    return float(on.sum() * n / sr), int(np.argmax(on) * n) if on.any() else 0
