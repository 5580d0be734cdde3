"""Warm starts: continue training from a bundle's weights on the store's events of today.

Why: retraining from scratch every night repeats what the last model already learned. A
warm start builds the model for today's id maps (users and items that appeared since get
new rows, initialised as a fresh model would initialise them), copies the rows of every id
the bundle knew and every other weight whole, and trains a few epochs on all interactions,
old and new, so the new events are learned without forgetting the old ones.

The bundle's ``trainer_state.npz`` holds the weights in the model's own order; the
manifest says which of them are indexed by users or items (``rows``) and the settings
the model was built with (``params``, after any data-driven sizing), so the rebuilt model
has the same shapes.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import tensorflow as tf

from .. import contract as C
from ..bundle import read_trainer_state
from ..errors import InputError
from .data import Interactions

# Epochs of a warm start, as a fraction of the epochs the bundle was trained for.
WARM_EPOCH_FRACTION = 0.25


def state_of(net) -> tuple[list[np.ndarray], dict]:
    """(weights, manifest entry) for ``bundle.write``'s trainer state."""
    indexed = net.indexed_weights()
    axis = {id(v): name for name in ("users", "items") for v in indexed[name]}
    rows = [axis.get(id(v)) for v in net.weights]
    params = dict(net.params)
    return net.get_weights(), {"rows": rows, "params": params}


class WarmStart:
    """A bundle's trainer state, ready to be loaded into a model built for new data."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self.manifest, self.weights = read_trainer_state(self.path)
        about = self.manifest[C.M_TRAINER_STATE]
        self.kind: str = self.manifest[C.M_MODEL_KIND]
        self.rows: list[str | None] = about["rows"]
        self.params: dict = about["params"]
        self.user_ids: list[str] = self.manifest[C.M_USER_IDS]
        self.item_ids: list[str] = self.manifest[C.M_ITEM_IDS]
        if len(self.rows) != len(self.weights):
            raise InputError(f"{self.path}: trainer state lists {len(self.rows)} weights but "
                             f"holds {len(self.weights)}")

    @property
    def full_epochs(self) -> int:
        """The epochs of the from-scratch training this bundle descends from."""
        params = self.manifest[C.M_TRAINING]["params"]
        return params.get("full_epochs") or params.get("trained_epochs") or 1

    def default_epochs(self) -> int:
        return max(2, round(WARM_EPOCH_FRACTION * self.full_epochs))

    def load_into(self, net, data: Interactions) -> dict:
        """Copy the saved weights into ``net`` (built and prepared for ``data``).

        Returns how the tables grew: {"new_users", "new_items", "kept_users", "kept_items"}.
        """
        maps = {"users": _row_map(self.user_ids, data.user_ids),
                "items": _row_map(self.item_ids, data.item_ids)}
        # Keras creates some weights on first use: score once so that all of them exist.
        net.score_all(tf.zeros([1], tf.int64), tf.fill([1, net.history_length], np.int64(net.n_items)))
        current = net.get_weights()
        if len(current) != len(self.weights):
            raise InputError(f"{self.path}: the saved {self.kind} has {len(self.weights)} weights, "
                             f"a new one {len(current)}: train from scratch")
        merged = []
        for n, (new, old, axis) in enumerate(zip(current, self.weights, self.rows)):
            if axis is None:
                if new.shape != old.shape:
                    raise InputError(f"{self.path}: weight {n} of the saved {self.kind} has shape "
                                     f"{old.shape}, the rebuilt model {new.shape}: train from scratch")
                merged.append(old)
                continue
            new_pos, old_pos = maps[axis]
            known = len(self.user_ids if axis == "users" else self.item_ids)
            out = new.copy()
            out[new_pos] = old[old_pos]
            extra = old.shape[0] - known  # rows past the ids (e.g. a padding row) stay last
            if extra:
                out[out.shape[0] - extra:] = old[known:]
            merged.append(out)
        net.set_weights(merged)
        return {"new_users": int(data.n_users - len(maps["users"][0])),
                "new_items": int(data.n_items - len(maps["items"][0])),
                "kept_users": int(len(maps["users"][0])), "kept_items": int(len(maps["items"][0]))}


def _row_map(old_ids: list[str], new_ids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(new positions, old positions) of the ids present in both."""
    old_index = {i: n for n, i in enumerate(old_ids)}
    pairs = [(n, old_index[i]) for n, i in enumerate(new_ids.tolist()) if i in old_index]
    if not pairs:
        return np.zeros(0, np.int64), np.zeros(0, np.int64)
    new_pos, old_pos = zip(*pairs)
    return np.array(new_pos, np.int64), np.array(old_pos, np.int64)
