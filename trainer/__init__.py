"""Training (TensorFlow/Keras): interactions from the store in, a fitted model out.

Import this only where TensorFlow is installed (``pip install edgerec[train]``); the
runtime never does. TensorFlow itself is imported in one place, ``backend``, which sets
its environment first.
"""

from .data import Interactions, load_interactions, temporal_split
from .registry import AUTO, MODEL_KINDS, model_kind
from .train import FitResult, Progress, fit, quiet

__all__ = ["AUTO", "FitResult", "Interactions", "MODEL_KINDS", "Progress", "fit",
           "load_interactions", "model_kind", "quiet", "temporal_split"]
