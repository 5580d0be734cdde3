"""Warm starts: continue training from a bundle's weights on the store's events of today.

Why: retraining from scratch every night repeats what the last model already learned. A
warm start builds the model for today's id maps (users and items that appeared since get
new rows, initialised as a fresh model would initialise them), copies the rows of every id
the bundle knew and every other weight whole, and trains a few epochs on all interactions,
old and new, so the new events are learned without forgetting the old ones.

Weights are matched by name, never by position: the bundle's ``trainer_state.npz`` holds
them in the model's order (``w0``, ``w1``, ...) and the manifest's ``trainer_state`` entry
names each (``names``: its path inside the model, e.g. ``user_embedding/embeddings``), says
which are indexed by users or items (``rows``) and gives the settings the model was built
with (``params``, after any data-driven sizing), so the rebuilt model has the same shapes.
A weight missing on either side, one that changed shape or axis, or a saved state without
names is an error that says to train from scratch: a change in the order layers are made
can never swap two same-shaped tables silently.
"""

from __future__ import annotations

import io
from collections import Counter
from pathlib import Path

import numpy as np

from .. import contract as C
from ..bundle import read_checked, read_manifest, recover
from ..errors import BundleError, InputError
from .backend import tf
from .data import Interactions

# Epochs of a warm start, as a fraction of the epochs the bundle was trained for.
WARM_EPOCH_FRACTION = 0.25


def weight_names(net) -> list[str]:
    """The name of each of ``net.weights``: its Keras path below the model, e.g.
    ``user_embedding/embeddings``. Stable across processes as long as every layer is
    named where it is made (an auto-numbered name, such as ``dense_3``, is not)."""
    names = [w.path.split("/", 1)[1] if w.path.startswith(f"{net.name}/") else w.path
             for w in net.weights]
    twice = sorted(name for name, count in Counter(names).items() if count > 1)
    if twice:
        raise InputError(f"{net.kind}: several weights are named {', '.join(twice)}; "
                         "a warm start could not tell them apart (name the layers)")
    return names


def state_of(net) -> tuple[list[np.ndarray], dict]:
    """(weights, manifest entry) for ``bundle.write``'s trainer state."""
    indexed = net.indexed_weights()
    axis = {id(v): name for name in ("users", "items") for v in indexed[name]}
    rows = [axis.get(id(v)) for v in net.weights]
    return net.get_weights(), {"names": weight_names(net), "rows": rows, "params": dict(net.params)}


def read_trainer_state(path: str | Path) -> tuple[C.Manifest, list[np.ndarray]]:
    """(manifest, weights in the saved order) of a bundle's trainer state, checksum verified."""
    path = recover(Path(path))
    manifest = read_manifest(path)
    about = manifest.trainer_state
    if about is None:
        raise BundleError(f"{path}: bundle has no trainer state to warm-start from (exported "
                          "from factors, or by an older edgerec): train from scratch")
    with np.load(io.BytesIO(read_checked(path / about.file, about, "trainer state")), allow_pickle=False) as arrays:
        return manifest, [arrays[f"w{n}"] for n in range(len(arrays.files))]


class WarmStart:
    """A bundle's trainer state, ready to be loaded into a model built for new data."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self.manifest, weights = read_trainer_state(self.path)
        # The trainer's own fields of the entry (params, names, rows) are the trainer's
        # business: the typed manifest knows the file and its checksum only.
        about = self.manifest.json[C.M_TRAINER_STATE]
        self.kind: str = self.manifest.model_kind
        self.params: dict = about["params"]
        self.user_ids: list[str] = self.manifest.user_ids
        self.item_ids: list[str] = self.manifest.item_ids
        if "names" not in about:
            raise InputError(f"{self.path}: the trainer state does not name its weights "
                             "(exported by an older edgerec): train from scratch")
        if not len(about["names"]) == len(about["rows"]) == len(weights):
            raise InputError(f"{self.path}: trainer state names {len(about['names'])} weights, "
                             f"gives rows for {len(about['rows'])} and holds {len(weights)}")
        self.weights: dict[str, np.ndarray] = dict(zip(about["names"], weights))
        self.rows: dict[str, str | None] = dict(zip(about["names"], about["rows"]))

    @property
    def full_epochs(self) -> int:
        """The epochs of the from-scratch training this bundle descends from."""
        params = self.manifest.training_params
        return params.get("full_epochs") or params.get("trained_epochs") or 1

    def default_epochs(self) -> int:
        return max(2, round(WARM_EPOCH_FRACTION * self.full_epochs))

    def load_into(self, net, data: Interactions) -> dict:
        """Copy the saved weights into ``net`` (built and prepared for ``data``), by name.

        Returns how the tables grew: {"new_users", "new_items", "kept_users", "kept_items"}.
        """
        maps = {"users": _row_map(self.user_ids, data.user_ids),
                "items": _row_map(self.item_ids, data.item_ids)}
        # Keras creates some weights on first use: score once so that all of them exist.
        net.score_all(tf.zeros([1], tf.int64), tf.fill([1, net.history_length], np.int64(net.n_items)))
        _, about = state_of(net)
        self._check_names(about["names"])
        merged = [self._merged(name, new, axis, maps)
                  for name, new, axis in zip(about["names"], net.get_weights(), about["rows"])]
        net.set_weights(merged)
        return {"new_users": int(data.n_users - len(maps["users"][0])),
                "new_items": int(data.n_items - len(maps["items"][0])),
                "kept_users": int(len(maps["users"][0])), "kept_items": int(len(maps["items"][0]))}

    def _check_names(self, names: list[str]) -> None:
        """The rebuilt model must have exactly the saved weights, by name."""
        missing, unknown = sorted(set(names) - set(self.weights)), sorted(set(self.weights) - set(names))
        if missing or unknown:
            lists = [f"{what} {', '.join(found)}" for what, found in
                     (("the saved one lacks", missing), ("only the saved one has", unknown)) if found]
            raise InputError(f"{self.path}: the saved {self.kind} does not have the weights of a "
                             f"new one ({'; '.join(lists)}): train from scratch")

    def _merged(self, name: str, new: np.ndarray, axis: str | None, maps: dict) -> np.ndarray:
        """Weight ``name``: the saved one whole, or (indexed by users or items) the rebuilt
        one with each known id's saved row copied in."""
        old = self.weights[name]
        same_shape = new.shape == old.shape if axis is None else new.shape[1:] == old.shape[1:]
        if axis != self.rows[name] or not same_shape:
            raise InputError(f"{self.path}: weight {name} of the saved {self.kind} is "
                             f"{self.rows[name] or 'not indexed'} with shape {old.shape}, the "
                             f"rebuilt model's {axis or 'not indexed'} with shape {new.shape}: "
                             "train from scratch")
        if axis is None:
            return old
        new_pos, old_pos = maps[axis]
        known = len(self.user_ids if axis == "users" else self.item_ids)
        out = new.copy()
        out[new_pos] = old[old_pos]
        extra = old.shape[0] - known  # rows past the ids (e.g. a padding row) stay last
        if extra:
            out[out.shape[0] - extra:] = old[known:]
        return out


def _row_map(old_ids: list[str], new_ids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(new positions, old positions) of the ids present in both."""
    old_index = {i: n for n, i in enumerate(old_ids)}
    pairs = [(n, old_index[i]) for n, i in enumerate(new_ids.tolist()) if i in old_index]
    if not pairs:
        return np.zeros(0, np.int64), np.zeros(0, np.int64)
    new_pos, old_pos = zip(*pairs)
    return np.array(new_pos, np.int64), np.array(old_pos, np.int64)
