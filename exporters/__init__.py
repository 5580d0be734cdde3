"""Export (tf2onnx): a fitted model becomes an ONNX scoring core inside a bundle.

Only the model -> ONNX step: conversion, the parity check against Keras, and packing the
bundle. Training it first, evaluating it and the nightly update are ``edgerec.pipelines``.
"""

from .onnx import ExportError, export_bundle, export_factors

__all__ = ["ExportError", "export_bundle", "export_factors"]
