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
    """ONNX Runtime sessions over a scoring core, on the best usable provider.

    ``model`` is a path or the serialized graph. ``known`` (optional) is the bundle's
    known-user core (``contract.M_ONNX_KNOWN``): a call whose users all have a table row
    runs it instead, the same answers without the fold-in nodes. ``provider`` is "cpu" or
    "cuda" (what actually runs); ``provider_note`` says why CUDA was not used when it was not.
    """

    def __init__(self, model: str | Path | bytes, provider: str | None = None,
                 threads: int | None = None, known: str | Path | bytes | None = None):
        choice = requested_provider(provider)
        options = ort.SessionOptions()
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        # Errors only: ONNX Runtime warns about every overridable initializer (``item_mask``
        # is one on purpose), which an app's console should not show.
        options.log_severity_level = 3
        # The exclusion width differs from user to user, and a memory pattern is planned per
        # new input shape: without it a user's first request is ~3 us faster (measured),
        # repeat shapes run the same, and the arena still recycles the buffers.
        options.enable_mem_pattern = False
        if threads:
            options.intra_op_num_threads = threads
        self.session, self.provider_note = _open(model, choice, options)
        self.provider = "cuda" if self.session.get_providers()[0] == PROVIDER_NAMES["cuda"] else "cpu"
        # The known-user core runs where the full one does (no second CUDA attempt).
        self.known_session = None if known is None else _open(known, self.provider, options)[0]
        self._outputs = list(C.OUTPUTS)
        # Passing run options saves ONNX Runtime building default ones on every call:
        # 2.5 us of a 20 us MovieLens-size call (measured, ONNX Runtime 1.31). Read-only in
        # ``run``, so one object serves every thread.
        self._run_options = ort.RunOptions()
        self._ks: dict[int, np.ndarray] = {}
        self.has_mask = C.INPUT_ITEM_MASK in {
            i.name for i in [*self.session.get_inputs(), *self.session.get_overridable_initializers()]}
        # Whether the history may be sent narrower than ``history_length`` (the exported
        # cores leave its width free; a hand-written graph may fix it): ``model_inputs``' trim.
        self.free_history = all(
            not isinstance(i.shape[1], int) for s in (self.session, self.known_session) if s
            for i in s.get_inputs() if i.name == C.INPUT_HISTORY)

    def top_k(self, users: np.ndarray, history: np.ndarray, exclude: np.ndarray,
              k: int, mask: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Run the scoring core; arrays as described in ``edgerec.contract``.

        ``mask`` (float32 [1 or B, n_items], 0 or -inf) is fed only when given, so a plain
        request costs what it did before masks existed. A core exported before ``item_mask``
        gets the masked-out items as extra exclusions instead: the same result, computed
        the slower way. Users sent as -1 (to fold in) need the full core; a call without
        any runs the known-user core when the bundle has one.
        """
        feed = {C.INPUT_USERS: users, C.INPUT_HISTORY: history, C.INPUT_EXCLUDE: exclude,
                C.INPUT_K: self._k_array(k)}
        if mask is not None:
            if self.has_mask:
                feed[C.INPUT_ITEM_MASK] = mask
            else:
                feed[C.INPUT_EXCLUDE] = _mask_as_exclusions(exclude, mask)
        session = self.session
        if self.known_session is not None and _all_known(users):
            session = self.known_session
        return session.run(self._outputs, feed, self._run_options)

    def _k_array(self, k: int) -> np.ndarray:
        """The ``k`` input, one read-only array per value, so a request builds none (ONNX
        Runtime only reads its inputs, so threads may share it)."""
        found = self._ks.get(k)
        if found is None:
            found = np.array(k, dtype=np.int64)
            found.flags.writeable = False
            self._ks[k] = found
        return found


def _all_known(users: np.ndarray) -> bool:
    """Whether the call has users and none is -1 (to fold in). One user, the common
    request, is read without a numpy reduction (``min`` costs 2-5 us, measured)."""
    if users.size == 1:
        return users.item() >= 0
    return bool(users.size) and users.min() >= 0


def _mask_as_exclusions(exclude: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """Exclusion rows that also hold every item the mask removes (for older cores)."""
    rows = np.broadcast_to(mask, (len(exclude), mask.shape[1]))
    removed = [np.flatnonzero(row == -np.inf) for row in rows]
    width = exclude.shape[1] + max(map(len, removed), default=0)
    out = np.full((len(exclude), width), mask.shape[1], dtype=np.int64)  # pad: n_items
    for row, ex, gone in zip(out, exclude, removed):
        row[:len(ex)] = ex
        row[len(ex):len(ex) + len(gone)] = gone
    return out


def _source(model: str | Path | bytes) -> str | bytes:
    return model if isinstance(model, bytes) else str(model)


def _open(model: str | Path | bytes, choice: str,
          options: ort.SessionOptions) -> tuple[ort.InferenceSession, str]:
    """(session, why CUDA was not used or "") for the provider ``choice``."""
    reason = ""
    if choice in ("auto", "cuda"):
        reason = cuda_unusable_reason()
        if reason is None:
            session, reason = _try_cuda(model, options)
            if session is not None:
                return session, ""
        if choice == "cuda":
            raise ProviderError(f"CUDA execution provider requested but unusable: {reason}")
    return ort.InferenceSession(_source(model), options, providers=[PROVIDER_NAMES["cpu"]]), reason


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
