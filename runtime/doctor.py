"""Which execution providers can run here, and why not: ``edgerec doctor``.

A GPU that stays unused is silent by design (``provider="auto"`` falls back to the CPU
without ONNX Runtime's error spew), so this is where a user finds out why: no NVIDIA
driver, an ONNX Runtime build without CUDA, or CUDA/cuDNN libraries that do not load
(the ``cuda`` extra brings the ones onnxruntime-gpu was built against). The
verdict comes from really opening a session on each provider, as serving would, not from
ONNX Runtime's list of compiled-in providers, which names CUDA on any machine.
"""

from __future__ import annotations

from importlib import metadata
from pathlib import Path

import onnxruntime as ort

from . import contract as C
from .errors import BundleError, EdgerecError
from .session import PROVIDER_NAMES, Scorer, cuda_unusable_reason

# A one-node ONNX graph (Identity of a float input "x", opset 17) serialised, so the probe
# needs no bundle and the runtime no ``onnx`` package. Made with
# onnx.helper.make_model(make_graph([make_node("Identity", ["x"], ["y"])], "probe",
# [make_tensor_value_info("x", FLOAT, [1])], [make_tensor_value_info("y", FLOAT, [1])]),
# opset_imports=[make_opsetid("", 17)], ir_version=8).SerializeToString().
PROBE_MODEL = bytes.fromhex(
    "08083a3b0a100a017812017922084964656e74697479120570726f62655a0f0a0178120a0a08080112040a"
    "020801620f0a0179120a0a08080112040a02080142040a001011")


def _runtime_package() -> str:
    """Which ONNX Runtime distribution provides the ``onnxruntime`` module."""
    for name in ("onnxruntime-gpu", "onnxruntime"):
        try:
            return f"{name} {metadata.version(name)}"
        except metadata.PackageNotFoundError:
            continue
    return f"onnxruntime {ort.__version__} (not installed by pip)"


def cuda_wheels() -> dict[str, str]:
    """The NVIDIA runtime wheels installed (name: version): what the ``cuda`` extra adds."""
    wanted = ("nvidia-cuda-runtime", "nvidia-cudnn", "nvidia-cublas", "nvidia-cufft",
              "nvidia-curand", "nvidia-cuda-nvrtc", "nvidia-nvjitlink")
    found = {}
    for dist in metadata.distributions():
        name = (dist.metadata["Name"] or "").lower()
        if name.startswith(wanted):
            found[name] = dist.version
    return dict(sorted(found.items()))


def _probe(provider: str, model: str | Path | bytes) -> tuple[bool, str]:
    """(usable, why) from opening a session as serving does."""
    if provider == "cuda":
        reason = cuda_unusable_reason()
        if reason is not None:
            return False, reason
    try:
        scorer = Scorer(model, provider)
    except EdgerecError as exc:
        return False, str(exc)
    if scorer.provider != provider:
        return False, scorer.provider_note or f"the session ran on {scorer.provider}"
    return True, f"a session opened on {PROVIDER_NAMES[provider]}"


def providers_report(bundle: str | Path | None = None) -> dict:
    """Which providers can run here and why not, from a real session on each.

    ``bundle`` probes with that bundle's scoring core instead of a one-node graph (a model
    may need kernels the probe does not). Keys: ``onnxruntime`` (the installed package),
    ``compiled_in`` (providers the build lists), ``cuda_wheels`` (see ``cuda_wheels``),
    ``providers`` ({"cpu"|"cuda": {"usable", "why"}}) and ``auto`` (what
    ``provider="auto"`` picks here).
    """
    model = PROBE_MODEL if bundle is None else Path(bundle) / C.MODEL_FILE
    if bundle is not None and not model.is_file():
        raise BundleError(f"{bundle}: no {C.MODEL_FILE} here (not a bundle)")
    providers = {}
    for name in ("cpu", "cuda"):
        usable, why = _probe(name, model)
        providers[name] = {"usable": usable, "why": why}
    return {"onnxruntime": _runtime_package(), "compiled_in": ort.get_available_providers(),
            "cuda_wheels": cuda_wheels(), "providers": providers,
            "auto": "cuda" if providers["cuda"]["usable"] else "cpu"}
