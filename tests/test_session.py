"""Execution provider choice (``edgerec.session``): every branch, without a GPU.

The CUDA side is reached by monkeypatching what the machine reports (the onnxruntime
build's providers, the driver's device count, the session ONNX Runtime returns), so the
choice and each fall-back is exercised on any CI machine. Where a real GPU exists, the
last test also serves from it and compares with the CPU.
"""

from __future__ import annotations

import ctypes

import numpy as np
import onnxruntime as ort
import pytest

from edgerec import Recommender
from edgerec import session as S
from edgerec.errors import ProviderError

pytestmark = pytest.mark.runtime

CUDA, CPU = "CUDAExecutionProvider", "CPUExecutionProvider"


class PlacedSession:
    """A real CPU session that reports the providers ONNX Runtime would have placed it on."""

    def __init__(self, real, placed):
        self._real, self._placed = real, placed

    def get_providers(self):
        return list(self._placed)

    def __getattr__(self, name):
        return getattr(self._real, name)


@pytest.fixture
def machine(monkeypatch):
    """A machine whose onnxruntime build has CUDA and whose driver reports one device;
    ``machine.cuda_session`` says what a CUDA session attempt gives ("cuda", "cpu" or an
    exception). Records the providers asked for and the logger severities set."""

    class Machine:
        cuda_session: object = "cuda"
        asked: list = []
        severities: list = []

    m = Machine()
    m.asked, m.severities = [], []
    real = ort.InferenceSession

    def session(source, options, providers):
        m.asked.append(list(providers))
        if CUDA not in providers:
            return real(source, options, providers=providers)
        if isinstance(m.cuda_session, Exception):
            raise m.cuda_session
        placed = [CUDA, CPU] if m.cuda_session == "cuda" else [CPU]
        return PlacedSession(real(source, options, providers=[CPU]), placed)

    monkeypatch.setattr(S.ort, "get_available_providers", lambda: [CUDA, CPU])
    monkeypatch.setattr(S, "_cuda_device_count", lambda: 1)
    monkeypatch.setattr(S.ort, "preload_dlls", lambda **kw: None, raising=False)
    monkeypatch.setattr(S.ort, "InferenceSession", session)
    monkeypatch.setattr(S.ort, "set_default_logger_severity", m.severities.append)
    monkeypatch.delenv(S.ENV_VAR, raising=False)
    return m


@pytest.mark.parametrize("choice", [None, "auto", "cuda"])
def test_cuda_is_chosen_when_a_session_lands_there(svd, machine, choice):
    with Recommender.open(svd.bundle, svd.store, provider=choice) as rec:
        assert rec.provider == "cuda" and rec.scorer.provider_note == ""
        recs = rec.recommend("u1", n=5)
    assert machine.asked == [[CUDA, CPU]]  # CUDA first, the CPU for any op CUDA lacks
    assert machine.severities == [4, 2]  # ONNX Runtime silenced for the attempt only
    with Recommender.open(svd.bundle, svd.store, provider="cpu") as cpu:
        assert cpu.provider == "cpu" and list(cpu.recommend("u1", n=5)) == list(recs)


@pytest.mark.parametrize("outcome, reason", [
    (RuntimeError("CUDA failure 100: no CUDA-capable device\nmore lines"),
     "CUDA session failed: CUDA failure 100: no CUDA-capable device"),
    ("cpu", "CUDA/cuDNN libraries could not be loaded"),
])
def test_a_failed_cuda_session_falls_back_to_cpu_or_fails_when_cuda_was_asked(svd, machine,
                                                                              outcome, reason):
    machine.cuda_session = outcome
    scorer = S.Scorer(svd.bundle / "model.onnx")
    assert scorer.provider == "cpu" and scorer.provider_note == reason
    assert machine.asked[-1] == [CPU] and machine.severities == [4, 2]
    with pytest.raises(ProviderError) as info:
        S.Scorer(svd.bundle / "model.onnx", provider="cuda")
    assert str(info.value) == f"CUDA execution provider requested but unusable: {reason}"


@pytest.mark.parametrize("providers, devices, reason", [
    ([CPU], 1, "this onnxruntime build has no CUDA support"),
    ([CUDA, CPU], 0, "no NVIDIA GPU or driver found"),
])
def test_cuda_is_not_even_tried_where_it_cannot_work(svd, machine, monkeypatch, providers, devices,
                                                     reason):
    monkeypatch.setattr(S.ort, "get_available_providers", lambda: providers)
    monkeypatch.setattr(S, "_cuda_device_count", lambda: devices)
    assert S.cuda_unusable_reason() == reason
    scorer = S.Scorer(svd.bundle / "model.onnx", provider="auto")
    assert scorer.provider == "cpu" and scorer.provider_note == reason
    assert machine.asked == [[CPU]] and machine.severities == []  # no CUDA attempt at all
    monkeypatch.setenv(S.ENV_VAR, "CUDA")  # the environment variable, any case
    with pytest.raises(ProviderError, match=f"requested but unusable: {reason}"):
        S.Scorer(svd.bundle / "model.onnx")
    monkeypatch.setenv(S.ENV_VAR, "cpu")
    assert S.Scorer(svd.bundle / "model.onnx", provider="auto").provider_note == reason  # explicit wins


def test_preloading_cuda_libraries_is_quiet_and_never_fatal(machine, monkeypatch, capsys):
    calls = []

    def preload(**kwargs):
        calls.append(kwargs)
        print("a note from preload_dlls")
        raise OSError("libcudnn.so.9: cannot open shared object file")

    monkeypatch.setattr(S.ort, "preload_dlls", preload)
    assert S.cuda_unusable_reason() is None  # a missing library shows up in the session instead
    assert calls == [{"cuda": True, "cudnn": True, "msvc": False}]
    assert capsys.readouterr().out == ""


class FakeDriver:
    def __init__(self, init=0, count=2, status=0):
        self.init, self.count, self.status = init, count, status

    def cuInit(self, flags):
        return self.init

    def cuDeviceGetCount(self, ref):
        ref._obj.value = self.count
        return self.status


@pytest.mark.parametrize("driver, expected", [
    (FakeDriver(), 2),
    (FakeDriver(init=100), 0),       # CUDA_ERROR_NO_DEVICE from cuInit
    (FakeDriver(status=3), 0),       # a failed count
    (OSError("libcuda.so.1: cannot open shared object file"), 0),  # no driver installed
    (object(), 0),                   # a library without the driver API
])
def test_device_count_asks_the_driver(monkeypatch, driver, expected):
    def load(name):
        if isinstance(driver, Exception):
            raise driver
        assert name in ("libcuda.so.1", "nvcuda.dll")
        return driver

    monkeypatch.setattr(ctypes, "CDLL", load)
    assert S._cuda_device_count() == expected


def test_on_a_real_gpu_cuda_serves_what_the_cpu_serves(svd):
    """Runs only where CUDA is usable (e.g. `make test` on a GPU machine)."""
    if S.cuda_unusable_reason() is not None:
        pytest.skip(f"no usable CUDA here: {S.cuda_unusable_reason()}")
    with Recommender.open(svd.bundle, svd.store, provider="cuda") as gpu, \
            Recommender.open(svd.bundle, svd.store, provider="cpu") as cpu:
        assert gpu.provider == "cuda"
        users = gpu.store.user_ids()[:50]
        for a, b in zip(gpu.recommend_many(users, n=10), cpu.recommend_many(users, n=10)):
            assert [r.item_id for r in a] == [r.item_id for r in b]
            np.testing.assert_allclose([r.score for r in a], [r.score for r in b], rtol=1e-4, atol=1e-4)
