"""Pipelines: the jobs that chain the layers below, as one call each.

``train_bundle`` (fit, then export), ``evaluate`` (split, fit, export, serve, measure) and
``update`` (warm-start, gate by replay, publish). They sit on top: they use the trainer,
the exporter and the runtime's public API (``Recommender``, ``replay``, ``serving``), and
nothing below imports them. The CLI's ``train``, ``evaluate`` and ``update`` commands are
thin wrappers over these functions.
"""

from .evaluate import evaluate
from .train import train_bundle
from .update import update

__all__ = ["evaluate", "train_bundle", "update"]
