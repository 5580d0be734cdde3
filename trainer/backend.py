"""TensorFlow and Keras, imported in one place, after their environment is set.

TensorFlow reads these variables once, when it is first imported: its C++ start-up
chatter (oneDNN, CPU features) would bury training progress, and oneDNN's reordered float
sums would make runs differ in the last bits. Every module of the trainer and exporters
takes ``tf`` and ``keras`` from here (import-linter forbids importing them elsewhere), so
whichever entry point comes first, a library call, ``edgerec train`` or a test, the
environment is set before TensorFlow starts.
"""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "0")

import keras  # noqa: E402
import tensorflow as tf  # noqa: E402

__all__ = ["keras", "tf"]
