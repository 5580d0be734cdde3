"""ONNX Runtime sessions: which execution provider, and the scoring call itself.

onnxruntime-gpu lists ``CUDAExecutionProvider`` as available even on a machine with no GPU,
then prints a screen of errors when a session tries it. So CUDA is tried only when the
driver reports a device, with ONNX Runtime's logging silenced for that one attempt, and a
session is accepted as CUDA only if ONNX Runtime really placed it there.
"""

from __future__ import annotations

import contextlib
import ctypes
import io
import os
import sys
from pathlib import Path

import numpy as np
import onnxruntime as ort

from . import contract as C
from .errors import ProviderError

PROVIDER_NAMES = {"cpu": "CPUExecutionProvider", "cuda": "CUDAExecutionProvider"}
CHOICES = ("auto", "cpu", "cuda")
ENV_VAR = "EDGEREC_PROVIDER"


def _cuda_device_count() -> int:
    """Devices the NVIDIA driver reports, asked through the driver API (no CUDA toolkit)."""
    name = "nvcuda.dll" if sys.platform == "win32" else "libcuda.so.1"
    try:
        lib = ctypes.CDLL(name)
        count = ctypes.c_int(0)
        if lib.cuInit(0) != 0 or lib.cuDeviceGetCount(ctypes.byref(count)) != 0:
            return 0
        return count.value
    except (OSError, AttributeError):
        return 0


def cuda_unusable_reason() -> str | None:
    """Why CUDA cannot be used here, or None when it is worth trying."""
    if PROVIDER_NAMES["cuda"] not in ort.get_available_providers():
        return "this onnxruntime build has no CUDA support"
    if _cuda_device_count() == 0:
        return "no NVIDIA GPU or driver found"
    if hasattr(ort, "preload_dlls"):  # CUDA/cuDNN from nvidia-* wheels, if installed
        with contextlib.redirect_stdout(io.StringIO()):
            try:
                ort.preload_dlls(cuda=True, cudnn=True, msvc=False)
            except Exception:  # noqa: BLE001 - missing libraries show up in the session below
                pass
    return None


def requested_provider(provider: str | None) -> str:
    """The explicit choice, else ``$EDGEREC_PROVIDER``, else "auto"."""
    choice = (provider or os.environ.get(ENV_VAR) or "auto").lower()
    if choice not in CHOICES:
        raise ProviderError(f"unknown provider {choice!r}; choose from {', '.join(CHOICES)}")
    return choice


class Scorer:
    """One ONNX Runtime session over a scoring core, on the best usable provider.

    ``model`` is a path or the serialized graph. ``provider`` is "cpu" or "cuda" (what
    actually runs); ``provider_note`` says why CUDA was not used when it was not.
    """

    def __init__(self, model: str | Path | bytes, provider: str | None = None,
                 threads: int | None = None):
        choice = requested_provider(provider)
        options = ort.SessionOptions()
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        if threads:
            options.intra_op_num_threads = threads
        self.provider_note = ""
        self.session = None
        if choice in ("auto", "cuda"):
            reason = cuda_unusable_reason()
            if reason is None:
                self.session, reason = _try_cuda(model, options)
            if self.session is None:
                if choice == "cuda":
                    raise ProviderError(f"CUDA execution provider requested but unusable: {reason}")
                self.provider_note = reason
        if self.session is None:
            self.session = ort.InferenceSession(_source(model), options,
                                                providers=[PROVIDER_NAMES["cpu"]])
        self.provider = "cuda" if self.session.get_providers()[0] == PROVIDER_NAMES["cuda"] else "cpu"
        self._outputs = list(C.OUTPUTS)

    def top_k(self, users: np.ndarray, history: np.ndarray, exclude: np.ndarray,
              k: int) -> tuple[np.ndarray, np.ndarray]:
        """Run the scoring core; arrays as described in ``edgerec.contract``."""
        return self.session.run(self._outputs, {
            C.INPUT_USERS: users, C.INPUT_HISTORY: history, C.INPUT_EXCLUDE: exclude,
            C.INPUT_K: np.array(k, dtype=np.int64)})


def _source(model: str | Path | bytes) -> str | bytes:
    return model if isinstance(model, bytes) else str(model)


def _try_cuda(model: str | Path | bytes, options: ort.SessionOptions):
    """A CUDA session, or (None, reason); ONNX Runtime's own error spew is silenced."""
    ort.set_default_logger_severity(4)
    try:
        session = ort.InferenceSession(
            _source(model), options, providers=[PROVIDER_NAMES["cuda"], PROVIDER_NAMES["cpu"]])
    except Exception as exc:  # noqa: BLE001 - any failure means "not usable here"
        return None, f"CUDA session failed: {str(exc).splitlines()[0]}"
    finally:
        ort.set_default_logger_severity(2)
    if session.get_providers()[0] != PROVIDER_NAMES["cuda"]:
        return None, "CUDA/cuDNN libraries could not be loaded"
    return session, ""
