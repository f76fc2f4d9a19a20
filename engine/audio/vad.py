"""Voice activity: Silero VAD (ONNX through onnxruntime; no pickles, no TorchScript).

Speech probability per 32 ms frame (512 samples at 16 kHz), stateful for streaming.
"""

from __future__ import annotations

from importlib import resources

import numpy as np

from ..errors import ModelNotAvailable
from . import SPEECH_RATE



def _silero_onnx_path() -> str:
    """The Silero ONNX file: from the model store when it is installed there, else from the pip package.

    A store error other than "not installed" (a checksum mismatch, a broken cache) is raised: it
    must not be hidden by quietly using another copy."""
    from ..store import default_store

    try:
        folder = default_store().resolve("silero-vad", allow_download=False)
    except ModelNotAvailable:
        folder = None
    if folder is not None and (folder / "silero_vad.onnx").exists():
        return str(folder / "silero_vad.onnx")
    try:
        p = resources.files("silero_vad").joinpath("data", "silero_vad.onnx")
    except ModuleNotFoundError:
        raise ModelNotAvailable("the Silero VAD model is missing: pip install silero-vad") from None
    return str(p)


class SileroVAD:
    """Streaming speech probability for 32 ms frames (512 samples at 16 kHz), stateful."""

    frame = 512
    context = 64

    def __init__(self, path: str | None = None) -> None:
        import onnxruntime

        opts = onnxruntime.SessionOptions()
        opts.inter_op_num_threads = 1
        opts.intra_op_num_threads = 1
        self.session = onnxruntime.InferenceSession(path or _silero_onnx_path(), sess_options=opts,
                                                    providers=["CPUExecutionProvider"])
        self.reset()

    def reset(self) -> None:
        self._state = np.zeros((2, 1, 128), np.float32)
        self._context = np.zeros((1, self.context), np.float32)

    def __call__(self, frame: np.ndarray) -> float:
        x = np.concatenate([self._context, np.asarray(frame, np.float32).reshape(1, self.frame)], axis=1)
        out, self._state = self.session.run(None, {"input": x, "state": self._state,
                                                   "sr": np.array(SPEECH_RATE, np.int64)})
        self._context = x[:, -self.context:]
        return float(out.reshape(-1)[0])

    def probabilities(self, audio: np.ndarray) -> np.ndarray:
        """Speech probability per 512-sample frame of a whole signal (state reset first)."""
        self.reset()
        n = len(audio) // self.frame
        return np.array([self(audio[i * self.frame:(i + 1) * self.frame]) for i in range(n)], np.float32)


