"""``edgerec doctor`` / ``edgerec.doctor.providers_report``: which providers run here, and why not.

The CUDA verdicts are reached by monkeypatching what the machine reports (as in
``test_session.py``), so each reason is checked on a CI machine without a GPU.
"""

from __future__ import annotations

import json

import onnxruntime as ort
import pytest

from edgerec import doctor
from edgerec import session as S

from conftest import cli

CUDA, CPU = "CUDAExecutionProvider", "CPUExecutionProvider"


def test_the_probe_model_is_a_real_graph_the_cpu_runs():
    import numpy as np

    session = ort.InferenceSession(doctor.PROBE_MODEL, providers=[CPU])
    assert session.run(None, {"x": np.array([2.5], np.float32)})[0].tolist() == [2.5]


@pytest.mark.parametrize("providers, devices, reason", [
    ([CPU], 1, "this onnxruntime build has no CUDA support"),
    ([CUDA, CPU], 0, "no NVIDIA GPU or driver found"),
])
def test_the_report_says_why_cuda_cannot_run(monkeypatch, providers, devices, reason):
    monkeypatch.setattr(S.ort, "get_available_providers", lambda: providers)
    monkeypatch.setattr(S, "_cuda_device_count", lambda: devices)
    report = doctor.providers_report()
    assert report["providers"]["cpu"] == {"usable": True,
                                          "why": "a session opened on CPUExecutionProvider"}
    assert report["providers"]["cuda"] == {"usable": False, "why": reason}
    assert report["auto"] == "cpu" and report["compiled_in"] == providers


def test_a_driver_without_loadable_cuda_libraries_is_named(monkeypatch):
    """A device reported but ONNX Runtime places the session on the CPU: the libraries
    (what ``edgerec[cuda]`` installs) are what is missing."""
    real = ort.InferenceSession
    monkeypatch.setattr(S.ort, "get_available_providers", lambda: [CUDA, CPU])
    monkeypatch.setattr(S, "_cuda_device_count", lambda: 1)
    monkeypatch.setattr(S.ort, "preload_dlls", lambda **kw: None, raising=False)
    monkeypatch.setattr(S.ort, "InferenceSession",
                        lambda source, options, providers: real(source, options, providers=[CPU]))
    cuda = doctor.providers_report()["providers"]["cuda"]
    assert cuda == {"usable": False, "why": "CUDA execution provider requested but unusable: "
                                            "CUDA/cuDNN libraries could not be loaded"}


def test_cuda_wheels_lists_installed_nvidia_runtimes(monkeypatch):
    class Dist:
        def __init__(self, name, version):
            self.metadata, self.version = {"Name": name}, version

    monkeypatch.setattr(doctor.metadata, "distributions", lambda: [
        Dist("nvidia-cudnn-cu13", "9.27.0"), Dist("numpy", "2.0"),
        Dist("nvidia-cuda-runtime", "13.5.37")])
    assert doctor.cuda_wheels() == {"nvidia-cuda-runtime": "13.5.37", "nvidia-cudnn-cu13": "9.27.0"}


def test_doctor_command_prints_and_json_agree_with_the_api(mf):
    text = cli("doctor")
    assert text.returncode == 0, text.stderr
    report = doctor.providers_report()
    lines = text.stdout.splitlines()
    assert lines[0].startswith(f"onnxruntime  {report['onnxruntime']}")
    assert f"cpu          usable: {report['providers']['cpu']['why']}" in lines
    cuda = report["providers"]["cuda"]
    assert f"cuda         {'usable' if cuda['usable'] else 'unusable'}: {cuda['why']}" in lines
    assert lines[-1] == f"auto         {report['auto']}"
    as_json = cli("doctor", "--json", "--bundle", mf.bundle)
    assert as_json.returncode == 0, as_json.stderr
    assert json.loads(as_json.stdout)["providers"]["cpu"]["usable"] is True


def test_doctor_with_a_missing_bundle_is_one_line(tmp_path):
    out = cli("doctor", "--bundle", tmp_path / "nope")
    assert out.returncode == 1
    assert out.stderr.strip().splitlines() == [out.stderr.strip()]
    assert "nope" in out.stderr
