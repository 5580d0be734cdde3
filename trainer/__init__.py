"""Training (TensorFlow/Keras): interactions from the store in, a fitted model out.

Import this only where TensorFlow is installed (``pip install edgerec[train]``); the
runtime never does.
"""

import os

# TensorFlow's C++ start-up chatter (oneDNN, CPU features) would bury training progress;
# oneDNN's reordered float sums would also make runs differ in the last bits.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "0")

from .data import Interactions, load_interactions, temporal_split  # noqa: E402
from .models import MODEL_KINDS  # noqa: E402
from .train import FitResult, fit  # noqa: E402

__all__ = ["FitResult", "Interactions", "MODEL_KINDS", "fit", "load_interactions", "temporal_split"]
