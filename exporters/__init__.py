"""Export (tf2onnx): a fitted model becomes an ONNX scoring core inside a bundle."""

from .. import trainer  # noqa: F401 - first, so TensorFlow starts with its log level set
from .onnx import ExportError, export_bundle, export_factors, train_bundle  # noqa: E402
from .evaluate import evaluate  # noqa: E402
from .update import update  # noqa: E402

__all__ = ["ExportError", "evaluate", "export_bundle", "export_factors", "train_bundle", "update"]
