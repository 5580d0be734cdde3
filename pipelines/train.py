"""``edgerec train``: fit a model on a store and export it as a bundle, in one call."""

from __future__ import annotations

from pathlib import Path

from ..exporters.onnx import check_weights_dtype, export_bundle
from ..trainer import FitResult, Progress, fit, quiet


def train_bundle(store, out: str | Path, model: str | None = None, progress: Progress = quiet,
                 weights_dtype: str = "float32", **params) -> tuple[Path, FitResult]:
    """Fit a model on the store and export it as a bundle: ``edgerec train`` in one call.

    ``params`` go to ``edgerec.trainer.fit`` (``warm_start``, epochs, the kind's settings);
    ``weights_dtype`` to ``export_bundle``. Returns (the bundle's path, the fit).
    """
    check_weights_dtype(weights_dtype)  # before the training, not after
    result = fit(store, model, progress=progress, **params)
    return export_bundle(result, out, progress, weights_dtype=weights_dtype), result
