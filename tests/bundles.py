"""Hand-built bundles for the runtime's tests: numpy and the ``onnx`` helper API, no TensorFlow.

Why: the runtime serves any ONNX graph that keeps the scoring-core signature of
``edgerec.contract``, and its own tests should prove that in an install without the
``train`` extra (``make test`` runs them in ``.venv-base``). A trained model is the
business of the trainer's and exporter's tests; the runtime's tests need a bundle whose
scores are known, that folds in unknown users, and that is built in well under a second.

The model is PureSVD, the classic numpy-only recommender: the item vectors are the top
``dim`` right singular vectors of the store's user x item matrix; a known user's place in
that space is the mean of their items' vectors (fixed when the bundle is built, like a
trained user embedding), an unknown user's is the same mean over their recent history,
computed inside the graph (fold-in, as ``mf`` does); scores are place @ item vectors. It
ranks the demo store's users by their genres much as a trained model does, so filters,
explanations and diversity act on a realistic ranking. ``folds_in=False`` writes the same
graph with no history (as ``export_factors`` does): unknown users get the popularity
fallback, and no user's scores move with new events.

The graph's exclusion and top-k head is written out here, not imported from the exporter
(which needs TensorFlow): a second implementation of the contract, so the runtime suite
also shows that the runtime relies on the contract alone. The bundle is written by the
runtime's own ``edgerec.bundle.write``, so the manifest gets whatever that adds.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
from onnx import TensorProto, checker, helper, numpy_helper

from edgerec import bundle as bundles
from edgerec import contract as C
from edgerec.store import Store

KIND = "fixture-svd"
_SCORES = "fixture/scores"


@dataclass
class Built:
    """A hand-built bundle over ``store``, with the arrays its graph was made from."""

    kind: str
    store: Path
    bundle: Path
    user_ids: list[str]
    item_ids: list[str]
    item_vectors: np.ndarray  # [n_items, dim]
    user_vectors: np.ndarray  # [n_users, dim]: each known user's whole history, folded in
    history_length: int  # 0: the bundle cannot fold in

    def scores(self, user_id: str, history: list[str]) -> np.ndarray:
        """What the graph scores for a user with ``history`` (item ids, newest first): the
        test's reference. Only the most recent ``history_length`` items count."""
        if user_id in self.user_ids:
            return self.user_vectors[self.user_ids.index(user_id)] @ self.item_vectors.T
        index = {item: n for n, item in enumerate(self.item_ids)}
        recent = [index[i] for i in history if i in index][:self.history_length]
        return _fold(self.item_vectors, recent) @ self.item_vectors.T


@dataclass
class Interactions:
    user_ids: list[str]
    item_ids: list[str]
    matrix: np.ndarray  # [n_users, n_items] 0/1: who interacted with what
    summary: dict


def read_store(store_path: str | Path) -> Interactions:
    """The store's events as a 0/1 matrix over the ids that have events (sorted, as the
    trainer orders them), with the data summary a trained bundle's manifest carries; read
    through the store's core API (users, histories, summary), as an app would."""
    store = Store.open(store_path, create=False)
    try:
        user_ids = sorted(store.user_ids())
        histories = store.histories(user_ids)
        summary = store.summary()
    finally:
        store.close()
    item_ids = sorted({item for items in histories.values() for item in items})
    index = {item: n for n, item in enumerate(item_ids)}
    matrix = np.zeros((len(user_ids), len(item_ids)), np.float32)
    for row, user in enumerate(user_ids):
        matrix[row, [index[i] for i in histories[user]]] = 1.0
    summary = {key: summary[key] for key in ("events", "users", "items", "first_ts", "last_ts")}
    return Interactions(user_ids, item_ids, matrix, {**summary, "interactions": int(matrix.sum())})


def svd_item_vectors(matrix: np.ndarray, dim: int) -> np.ndarray:
    """[n_items, dim]: the top right singular vectors (PureSVD), signs made deterministic."""
    _, _, vt = np.linalg.svd(matrix, full_matrices=False)
    vectors = vt[:dim].T
    signs = np.sign(vectors[np.abs(vectors).argmax(axis=0), np.arange(vectors.shape[1])])
    return np.ascontiguousarray(vectors * signs, np.float32)


def _fold(vectors: np.ndarray, items: list[int]) -> np.ndarray:
    """A history's place in the item space: the mean of its items' vectors (zero if empty)."""
    return vectors[items].sum(axis=0) / max(1, len(items))


def build_bundle(store: str | Path, out: str | Path, folds_in: bool = True, dim: int = 16,
                 history_length: int = 20, known_core: bool = False) -> Built:
    """Write a ``fixture-svd`` bundle of ``store``'s events to ``out``; see the module doc.

    ``known_core`` adds the known-user core (``contract.M_ONNX_KNOWN``): known users' rows
    times the item vectors, with no fold-in nodes."""
    data = read_store(store)
    n_users, n_items = data.matrix.shape
    items = svd_item_vectors(data.matrix, min(dim, n_users, n_items))
    users = np.stack([_fold(items, np.flatnonzero(row).tolist()) for row in data.matrix])
    history_length = history_length if folds_in else 0
    manifest = manifest_of(data, items.shape[1], history_length, folds_in)
    core = scoring_core(network(users, items, history_length))
    known = scoring_core(known_network(users, items, history_length)) if known_core else None
    path = bundles.write(out, core, manifest, item_vectors=items, known_onnx=known)
    return Built(KIND, Path(store), path, data.user_ids, data.item_ids, items, users,
                 history_length)


def manifest_of(data: Interactions, dim: int, history_length: int, folds_in: bool) -> dict:
    """What the exporter's manifest says, less the parts ``bundles.write`` fills in."""
    return {
        C.M_MODEL_KIND: KIND, C.M_USER_IDS: data.user_ids, C.M_ITEM_IDS: data.item_ids,
        C.M_DIMS: {"n_users": len(data.user_ids), "n_items": len(data.item_ids), "dim": dim,
                   "history_length": history_length, "folds_in": folds_in},
        C.M_TRAINING: {"data": data.summary, "params": {"model": KIND, "dim": dim},
                       "seconds": 0.0, "epochs": 0},
        C.M_METRICS: {},
        C.M_ONNX: {"opset": C.OPSET, "inputs": list(C.INPUTS),
                   "optional_inputs": list(C.OPTIONAL_INPUTS), "outputs": list(C.OUTPUTS)},
    }


def network(users: np.ndarray, items: np.ndarray, history_length: int) -> tuple[list, list, list]:
    """The [B, n_items] score row: a known user's row of ``users`` (index >= 0), an unknown
    one's history folded in (its mean item vector; the padding index ``n_items`` reads a
    zero row and is not counted), times the item vectors."""
    n_items = items.shape[0]
    padded = np.vstack([items, np.zeros((1, items.shape[1]), np.float32)])
    initializers = [_array("fixture/users", users), _array("fixture/items", padded),
                    _array("fixture/items_t", items.T),
                    _array("fixture/n_items", np.array(n_items, np.int64)),
                    _array("fixture/zero", np.array(0, np.int64)),
                    _array("fixture/one", np.array(1.0, np.float32)),
                    _array("fixture/axis1", np.array([1], np.int64))]
    nodes = [
        _node("Max", [C.INPUT_USERS, "fixture/zero"], "row"),
        _node("Gather", ["fixture/users", "row"], "user"),
        _node("GreaterOrEqual", [C.INPUT_USERS, "fixture/zero"], "known"),
        _node("Unsqueeze", ["known", "fixture/axis1"], "known_2d"),
        _node("Gather", ["fixture/items", C.INPUT_HISTORY], "rows"),
        _node("ReduceSum", ["rows", "fixture/axis1"], "sum", keepdims=0),
        _node("Less", [C.INPUT_HISTORY, "fixture/n_items"], "real"),
        _node("Cast", ["real"], "real_float", to=TensorProto.FLOAT),
        _node("ReduceSum", ["real_float", "fixture/axis1"], "count", keepdims=1),
        _node("Max", ["count", "fixture/one"], "count_1"),
        _node("Div", ["sum", "count_1"], "folded"),
        _node("Where", ["known_2d", "user", "folded"], "place"),
        _node("MatMul", ["place", "fixture/items_t"], _SCORES),
    ]
    inputs = [_input(C.INPUT_USERS, TensorProto.INT64, ["batch"]),
              _input(C.INPUT_HISTORY, TensorProto.INT64, ["batch", history_length])]
    return nodes, initializers, inputs


def known_network(users: np.ndarray, items: np.ndarray, history_length: int) -> tuple[list, list, list]:
    """``network`` for users with a row only: the row times the item vectors (``history``
    is declared, as the contract's signature has it, and not read)."""
    nodes = [_node("Gather", ["fixture/users", C.INPUT_USERS], "user"),
             _node("MatMul", ["user", "fixture/items_t"], _SCORES)]
    inputs = [_input(C.INPUT_USERS, TensorProto.INT64, ["batch"]),
              _input(C.INPUT_HISTORY, TensorProto.INT64, ["batch", history_length])]
    return nodes, [_array("fixture/users", users), _array("fixture/items_t", items.T)], inputs


def scoring_core(graph: tuple[list, list, list]) -> bytes:
    """A network's [B, n_items] score row plus the contract's head: the optional item mask
    added, one -inf padding column, -inf scattered into the excluded indices, TopK."""
    nodes, initializers, inputs = graph
    initializers = [*initializers, _array(C.INPUT_ITEM_MASK, np.zeros((1, 1), np.float32)),
                    _array("fixture/pads", np.array([0, 0, 0, 1], np.int64)),
                    _array("fixture/neg_inf", np.array(-np.inf, np.float32)),
                    _array("fixture/axis0", np.array([0], np.int64))]
    nodes = [*nodes,
             _node("Add", [_SCORES, C.INPUT_ITEM_MASK], "filtered"),
             _node("Pad", ["filtered", "fixture/pads", "fixture/neg_inf"], "padded"),
             _node("Shape", [C.INPUT_EXCLUDE], "exclude_shape"),
             _node("Expand", ["fixture/neg_inf", "exclude_shape"], "exclude_values"),
             _node("ScatterElements", ["padded", C.INPUT_EXCLUDE, "exclude_values"], "masked",
                   axis=1),
             _node("Unsqueeze", [C.INPUT_K, "fixture/axis0"], "k_1d"),
             helper.make_node("TopK", ["masked", "k_1d"], [C.OUTPUT_SCORES, C.OUTPUT_ITEMS],
                              axis=1, largest=1, sorted=1)]
    inputs = [*inputs, _input(C.INPUT_EXCLUDE, TensorProto.INT64, ["batch", "excluded"]),
              _input(C.INPUT_K, TensorProto.INT64, []),
              _input(C.INPUT_ITEM_MASK, TensorProto.FLOAT, ["mask_rows", "items"])]
    outputs = [_input(C.OUTPUT_ITEMS, TensorProto.INT64, ["batch", "k"]),
               _input(C.OUTPUT_SCORES, TensorProto.FLOAT, ["batch", "k"])]
    model = helper.make_model(helper.make_graph(nodes, KIND, inputs, outputs, initializers),
                              opset_imports=[helper.make_opsetid("", C.OPSET)], ir_version=8,
                              producer_name="edgerec-tests")
    checker.check_model(model)
    return model.SerializeToString()


def _node(op: str, inputs: list[str], output: str, **attrs):
    return helper.make_node(op, inputs, [output], name=f"fixture/{output}", **attrs)


def _array(name: str, value: np.ndarray):
    return numpy_helper.from_array(np.ascontiguousarray(value), name)


def _input(name: str, dtype: int, shape: list):
    return helper.make_tensor_value_info(name, dtype, shape)
