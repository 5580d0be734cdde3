"""The ONNX scoring core: model scores, seen-item exclusion and top-k in one graph.

Putting exclusion and top-k inside the graph means a request returns k indices instead of
a catalogue-wide score row, and a GPU never copies that row back. The graph follows the
signature in ``edgerec.contract``; every model kind only supplies ``score_all``.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from .. import bundle
from .. import contract as C
from ..errors import EdgerecError
from ..session import Scorer
from ..trainer.backend import tf
from ..trainer.data import Interactions
from ..trainer.mf import MatrixFactorization
from ..trainer.neighbourhood import MIN_ROW_MAX, slots_read
from ..trainer.train import FitResult, Progress, quiet
from ..trainer.validation import score_users
from ..trainer.warm import state_of

NETWORK_SIGNATURE = [
    tf.TensorSpec([None], tf.int64, name=C.INPUT_USERS),
    tf.TensorSpec([None, None], tf.int64, name=C.INPUT_HISTORY),
]
_SCORES = "edgerec_scores"
# Parity tolerance (relative to the top score's scale) per stored weight type: weights
# rounded to float16 move a score by up to about 1e-3 of that scale.
PARITY_TOL = {"float32": 1e-5, "float16": 1e-2}


class ExportError(EdgerecError):
    """The exported graph does not reproduce the Keras model."""


def network_function(net, known: bool = False) -> tf.types.experimental.GenericFunction:
    """The model's all-item scores as a TensorFlow function: the part tf2onnx converts.

    ``known``: the scores of users with a table row only (``score_known``, no fold-in).
    """

    @tf.function(input_signature=NETWORK_SIGNATURE)
    def network(users, history):
        return {_SCORES: net.score_known(users) if known else net.score_all(users, history)}

    return network


def has_known_core(net) -> bool:
    """Whether a known-user core pays: the kind folds in users whose trained scores come
    from a table row alone (mf, als, neumf), so the full core carries fold-in nodes that
    such users never need."""
    return net.folds_in and not net.reads_history


def add_top_k_head(graph) -> None:
    """Append filtering, exclusion and top-k to a graph whose output is the [B, n_items] score row.

    Written directly in ONNX rather than converted from TensorFlow: seven nodes (add the
    optional item mask, pad one -inf column, scatter -inf into the excluded indices along
    axis 1, TopK) where the converted ``tensor_scatter_nd_update`` needs twenty-odd
    index-building nodes, each of which costs ONNX Runtime dispatch time on every request.

    ``item_mask`` is a graph input that is also an initializer (zeros [1, 1]): callers
    that do not filter do not feed it, and the Add then broadcasts a zero, about 1 us on a
    MovieLens-size catalogue. A filter fed as a mask costs one add, where the same filter
    as exclusions costs a scatter of every excluded index (measured: see the README).
    """
    from onnx import TensorProto, helper, numpy_helper

    def node(op, inputs, outputs, **attrs):
        graph.node.append(helper.make_node(op, inputs, outputs, name=f"edgerec/{outputs[0]}", **attrs))

    graph.initializer.extend([
        numpy_helper.from_array(np.array([0, 0, 0, 1], np.int64), "edgerec/pads"),
        numpy_helper.from_array(np.array(-np.inf, np.float32), "edgerec/neg_inf"),
        numpy_helper.from_array(np.array([0], np.int64), "edgerec/axis0"),
        numpy_helper.from_array(np.zeros((1, 1), np.float32), C.INPUT_ITEM_MASK),
    ])
    node("Add", [_SCORES, C.INPUT_ITEM_MASK], ["filtered"])
    node("Pad", ["filtered", "edgerec/pads", "edgerec/neg_inf"], ["padded"], mode="constant")
    node("Shape", [C.INPUT_EXCLUDE], ["exclude_shape"])
    node("Expand", ["edgerec/neg_inf", "exclude_shape"], ["exclude_values"])
    node("ScatterElements", ["padded", C.INPUT_EXCLUDE, "exclude_values"], ["masked"], axis=1)
    node("Unsqueeze", [C.INPUT_K, "edgerec/axis0"], ["k_1d"])
    node("TopK", ["masked", "k_1d"], [C.OUTPUT_SCORES, C.OUTPUT_ITEMS], axis=1, largest=1, sorted=1)
    graph.input.extend([
        helper.make_tensor_value_info(C.INPUT_EXCLUDE, TensorProto.INT64, ["batch", "excluded"]),
        helper.make_tensor_value_info(C.INPUT_K, TensorProto.INT64, []),
        helper.make_tensor_value_info(C.INPUT_ITEM_MASK, TensorProto.FLOAT, ["mask_rows", "items"]),
    ])
    del graph.output[:]
    graph.output.extend([
        helper.make_tensor_value_info(C.OUTPUT_ITEMS, TensorProto.INT64, ["batch", "k"]),
        helper.make_tensor_value_info(C.OUTPUT_SCORES, TensorProto.FLOAT, ["batch", "k"]),
    ])


def neighbour_graph(index: np.ndarray, weight: np.ndarray, recency: float = 1.0,
                    taste_index: np.ndarray | None = None, taste_weight: np.ndarray | None = None,
                    taste: float = 0.0):
    """The network part of an item-neighbourhood kind, written directly in ONNX.

    ``index``/``weight`` are [n_items + 1, K] tables (row n_items: the padding, pointing at
    itself with weight 0). Per request: weigh each history slot by 1 / its item's count (a
    repeated item counts once) times ``recency`` ^ (its position, 0 the newest), as the
    model's ``once_each`` and ``_decayed`` do (``_slot_shares``), then sum the history
    items' weighted neighbour rows: dense rows gathered and multiplied where the catalogue is small
    (``dense_neighbours``), else the [history, K] slots scatter-added into the score row,
    O(history x K) work besides the row itself. With a taste table (``taste`` > 0) the
    same sum over its rows with every slot weighing 1 / its count, and the two rows
    combined as the model's ``combined`` does: each over its largest value, the taste row
    times ``taste``. ``users`` is an input of the signature that these kinds do not read.
    """
    from onnx import helper, numpy_helper

    n_items = index.shape[0] - 1
    nodes = []

    def node(op, inputs, outputs, **attrs):
        nodes.append(helper.make_node(op, inputs, outputs, name=f"neighbours/{outputs[0]}",
                                      **attrs))

    # "neighbours/zero", "/axis1" (from ``_slot_shares``) and "/n_items" serve both tables.
    initializers = [numpy_helper.from_array(np.array([n_items], np.int64), "neighbours/n_items")]
    _slot_shares(node, initializers, n_items, "neighbours", recency)
    if not taste:
        _neighbour_sum(node, initializers, index, weight, "neighbours", "slot_share", _SCORES)
        return _history_network(nodes, initializers, n_items, "edgerec_neighbours")
    node("Reciprocal", ["slot_counts"], ["taste_share"])
    recent, share = _recent_slots(node, initializers, recency)
    _neighbour_sum(node, initializers, index, weight, "neighbours", share, "recent_row", recent)
    _neighbour_sum(node, initializers, taste_index, taste_weight, "taste", "taste_share", "taste_row")
    _combined_rows(node, initializers, taste)
    return _history_network(nodes, initializers, n_items, "edgerec_neighbours")


def _recent_slots(node, initializers: list, recency: float) -> tuple[str, str]:
    """(history, shares) of a taste model's recent pass: below recency 1 its ``slots_read``
    slots of the whole history the request sends, as the model's ``score_all`` reads them."""
    from onnx import numpy_helper

    if recency == 1.0:
        return C.INPUT_HISTORY, "slot_share"
    initializers.append(numpy_helper.from_array(np.array([slots_read(recency)], np.int64),
                                                "neighbours/recent_slots"))
    ends = ["neighbours/zero", "neighbours/recent_slots", "neighbours/axis1"]
    node("Slice", [C.INPUT_HISTORY, *ends], ["recent_history"])
    node("Slice", ["slot_share", *ends], ["recent_share"])
    return "recent_history", "recent_share"


def _combined_rows(node, initializers: list, taste: float) -> None:
    """The scores: "recent_row" over its largest value + ``taste`` x "taste_row" over its
    (at least ``MIN_ROW_MAX``), as the model's ``neighbourhood.combined``."""
    from onnx import numpy_helper

    initializers += [numpy_helper.from_array(np.array(MIN_ROW_MAX, np.float32), "taste/tiny"),
                     numpy_helper.from_array(np.array(taste, np.float32), "taste/share")]
    for row in ("recent_row", "taste_row"):
        node("ReduceMax", [row], [f"{row}_max"], axes=[1], keepdims=1)
        node("Max", [f"{row}_max", "taste/tiny"], [f"{row}_scale"])
        node("Div", [row, f"{row}_scale"], [f"{row}_scaled"])
    node("Mul", ["taste_row_scaled", "taste/share"], ["taste_part"])
    node("Add", ["recent_row_scaled", "taste_part"], [_SCORES])


def _neighbour_sum(node, initializers: list, index: np.ndarray, weight: np.ndarray, prefix: str,
                   share: str, out: str, history: str = C.INPUT_HISTORY) -> None:
    """``out`` [B, n_items]: the ``history`` items' rows of one table, weighed by ``share``
    [B, L] and summed, by dense rows or scattered slots (``dense_neighbours``)."""
    from onnx import numpy_helper

    n_items = index.shape[0] - 1
    initializers += [
        numpy_helper.from_array(np.ascontiguousarray(index, np.int32), f"{prefix}/index"),
        numpy_helper.from_array(np.ascontiguousarray(weight, np.float32), f"{prefix}/weight")]
    if dense_neighbours(n_items, index.shape[1]):
        _dense_neighbour_rows(node, initializers, n_items, prefix, share, out, history)
    else:
        _scattered_neighbour_slots(node, initializers, prefix, share, out, history)


def _constant(initializers: list, name: str, values: list) -> str:
    """``name``, an int64 constant of ``values`` added to ``initializers`` unless a table's
    pass before this one added it: both tables of a taste model read one copy."""
    from onnx import numpy_helper

    if name not in {tensor.name for tensor in initializers}:
        initializers.append(numpy_helper.from_array(np.array(values, np.int64), name))
    return name


def _scattered_neighbour_slots(node, initializers: list, prefix: str, share: str,
                               out: str, history: str) -> None:
    """The score row as the history's [L, K] neighbour slots, weighed by their slot's
    ``share``, scatter-added into the "zeros" row of ``_slot_shares``, padding column dropped."""
    flat = _constant(initializers, "neighbours/flat", [0, -1])
    node("Unsqueeze", [share, _constant(initializers, "neighbours/axis2", [2])],
         [f"{prefix}/share_3d"])                                                     # [B, L, 1]
    node("Gather", [f"{prefix}/index", history], [f"{prefix}/rows_index"], axis=0)
    node("Gather", [f"{prefix}/weight", history], [f"{prefix}/rows_weight"], axis=0)
    node("Mul", [f"{prefix}/rows_weight", f"{prefix}/share_3d"], [f"{prefix}/shared_weight"])
    node("Reshape", [f"{prefix}/rows_index", flat], [f"{prefix}/flat_index"])
    node("Reshape", [f"{prefix}/shared_weight", flat], [f"{prefix}/flat_weight"])
    node("ScatterElements", ["zeros", f"{prefix}/flat_index", f"{prefix}/flat_weight"],
         [f"{prefix}/row"], axis=1, reduction="add")
    node("Slice", [f"{prefix}/row", "neighbours/zero", "neighbours/n_items", "neighbours/axis1"],
         [out])


# Catalogues up to this size may score neighbour kinds from dense rows (64 MiB of float32
# in the session's memory at the limit; the bundle keeps the [n_items + 1, K] tables).
DENSE_NEIGHBOUR_ITEMS = 4096
# ...when a dense row costs at most this many neighbour slots. Both ways cost per history
# slot, dense rows n_items gathered values, slots K scatter-added ones (ONNX Runtime 1.31's
# ScatterElements: ~5 ns each): on ML-100K (1,682 items, 19 slots, the whole core timed in
# turns at load 7) the slots won at K 100 and 130 (55.9 / 60.1 us against 62.8 / 63.1),
# the rows at K 160 and 200 (62.5 / 61.9 against 63.8 / 69.3): the turn is near 11 items
# per slot, where 20 (a guess from the two ops timed alone) gave sparse_ease's K 100 rows.
DENSE_ROW_SLOTS = 11


def dense_neighbours(n_items: int, k: int) -> bool:
    """Whether the neighbour graph gathers dense rows rather than scatter-adding slots."""
    return n_items <= DENSE_NEIGHBOUR_ITEMS and n_items <= DENSE_ROW_SLOTS * k


def _dense_neighbour_rows(node, initializers: list, n_items: int, prefix: str, share: str,
                          out: str, history: str) -> None:
    """The score row as the ``share``-weighted sum of the history items' dense neighbour rows.

    The dense [n_items + 1, n_items] matrix is scattered from the tables by nodes whose
    inputs are all initializers, so ONNX Runtime computes it once, when it opens the
    session (constant folding), and the bundle stays O(n_items x K). A request then costs
    one gather of history x n_items values and a [1, L] x [L, n_items] product per user,
    instead of scatter-adding history x K values one by one; the same sums, in another
    order (float rounding differs by ~1e-7 of the scores).
    """
    from onnx import TensorProto, helper

    square = _constant(initializers, "neighbours/square", [n_items + 1, n_items + 1])
    node("ConstantOfShape", [square], [f"{prefix}/dense_zeros"],
         value=helper.make_tensor("zero", TensorProto.FLOAT, [1], [0.0]))
    node("Cast", [f"{prefix}/index"], [f"{prefix}/index_64"], to=TensorProto.INT64)
    node("ScatterElements", [f"{prefix}/dense_zeros", f"{prefix}/index_64", f"{prefix}/weight"],
         [f"{prefix}/dense_padded"], axis=1, reduction="add")
    node("Slice", [f"{prefix}/dense_padded", "neighbours/zero", "neighbours/n_items",
                   "neighbours/axis1"], [f"{prefix}/dense"])          # [n_items + 1, n_items]
    node("Unsqueeze", [share, "neighbours/axis1"], [f"{prefix}/share_row"])  # [B, 1, L]
    _weighted_rows(node, initializers, f"{prefix}/dense", f"{prefix}/share_row", n_items, prefix, out,
                   history)


def _weighted_rows(node, initializers: list, table: str, share_row: str, width: int,
                   prefix: str, out: str = _SCORES, history: str = C.INPUT_HISTORY) -> None:
    """``out`` [B, width] = share_row [B, 1, L] x the ``history``'s rows of ``table``
    ([n_items + 1, width], padding row zero): one gather and one batched product."""
    from onnx import numpy_helper

    initializers.append(numpy_helper.from_array(np.array([-1, width], np.int64),
                                                f"{prefix}/row_of_width"))
    node("Gather", [table, history], [f"{prefix}/history_rows"], axis=0)  # [B, L, width]
    node("MatMul", [share_row, f"{prefix}/history_rows"], [f"{prefix}/summed"])    # [B, 1, width]
    node("Reshape", [f"{prefix}/summed", f"{prefix}/row_of_width"], [out])


def item_rows_graph(rows: np.ndarray):
    """The network part of a dense item-item kind (``ease``), written directly in ONNX.

    ``rows`` is [n_items + 1, n_items] (row n_items: the padding, zeros); a user's scores
    are the sum of their distinct history items' rows. Gathering those rows and summing
    them, each slot weighed by 1 / its item's count (a repeated item counts once, as in the
    multi-hot ``score_all``), costs O(history x items); the converted multi-hot times the
    whole matrix cost O(items x items) per user, 17x implicit's request on MovieLens 100K.
    """
    from onnx import helper, numpy_helper

    n_items = rows.shape[1]
    nodes = []

    def node(op, inputs, outputs, **attrs):
        nodes.append(helper.make_node(op, inputs, outputs, name=f"rows/{outputs[0]}", **attrs))

    initializers = [numpy_helper.from_array(np.ascontiguousarray(rows, np.float32), "rows/weight")]
    _slot_shares(node, initializers, n_items, "rows")
    node("Unsqueeze", ["slot_share", "rows/axis1"], ["slot_share_row"])   # [B, 1, L]
    _weighted_rows(node, initializers, "rows/weight", "slot_share_row", n_items, "rows")
    return _history_network(nodes, initializers, n_items, "edgerec_item_rows")


def generator_graph(in_table: np.ndarray, in_bias: np.ndarray, out_table: np.ndarray,
                    out_bias: np.ndarray):
    """The network part of a history-bag generator (``gan``), written directly in ONNX.

    sigmoid(the distinct history items' rows of ``in_table`` summed, + ``in_bias``) times
    ``out_table`` transposed, + ``out_bias``: the slot shares and one gather-and-product
    that ``item_rows_graph`` also uses, then two products against constant tables. The
    converted ``score_all`` took 50 nodes (its ``tensor_scatter_nd_add`` builds index
    tensors node by node) and multiplied by the output table through a Gemm with a
    transposed operand; here the table is stored transposed, [hidden, n_items], the layout
    ONNX Runtime pre-packs once at load: 12 nodes, ~3x faster on MovieLens 100K.
    """
    from onnx import helper, numpy_helper

    n_items, hidden = out_table.shape
    table = np.array(in_table, np.float32)
    table[n_items] = 0.0  # the padding row reads nothing (the model weighs padding slots 0)
    nodes = []

    def node(op, inputs, outputs, **attrs):
        nodes.append(helper.make_node(op, inputs, outputs, name=f"generator/{outputs[0]}", **attrs))

    initializers = [numpy_helper.from_array(arr, f"generator/{name}") for name, arr in (
        ("in", table), ("in_bias", np.asarray(in_bias, np.float32)),
        ("out_t", np.ascontiguousarray(np.asarray(out_table, np.float32).T)),
        ("out_bias", np.asarray(out_bias, np.float32)))]
    _slot_shares(node, initializers, n_items, "generator")
    node("Unsqueeze", ["slot_share", "generator/axis1"], ["slot_share_row"])   # [B, 1, L]
    _weighted_rows(node, initializers, "generator/in", "slot_share_row", hidden, "generator",
                   out="bag")                                                # [B, hidden]
    node("Add", ["bag", "generator/in_bias"], ["hidden_in"])
    node("Sigmoid", ["hidden_in"], ["hidden"])
    node("MatMul", ["hidden", "generator/out_t"], ["logits"])                # [B, n_items]
    node("Add", ["logits", "generator/out_bias"], [_SCORES])
    return _history_network(nodes, initializers, n_items, "edgerec_generator")


# Slots of the constant recency table (``_slot_shares``): wider than any history the
# runtime sends a neighbour kind with recency < 1 (``slots_read``: 19 at 0.6, 8 at 0.3),
# for 16 KiB in the bundle; a wider history is refused by ONNX Runtime's shape check.
DECAY_SLOTS = 4096


def _slot_shares(node, initializers: list, n_items: int, prefix: str,
                 recency: float = 1.0) -> None:
    """The nodes that the history-read graphs start with: "slot_share" [B, L], 1 / how
    often each history slot's item occurs in that history (so a repeated item counts once,
    as ``score_all``'s distinct items do), counted by a ScatterElements add into "zeros"
    [B, n_items + 1], which the caller may reuse as its score row; times ``recency`` ^
    (the slot's position, 0 the newest) where ``recency`` < 1. The decay is a constant
    table sliced to the history's width: one Slice where Range, Cast and Pow cost three
    nodes' dispatch on every request. Adds the ``{prefix}/zero`` and ``{prefix}/axis1``
    constants the callers slice with."""
    from onnx import TensorProto, helper, numpy_helper

    initializers += [numpy_helper.from_array(np.array([n_items + 1], np.int64), f"{prefix}/width"),
                     numpy_helper.from_array(np.array([0], np.int64), f"{prefix}/zero"),
                     numpy_helper.from_array(np.array([1], np.int64), f"{prefix}/axis1")]
    node("Shape", [C.INPUT_HISTORY], ["history_shape"])
    node("Slice", ["history_shape", f"{prefix}/zero", f"{prefix}/axis1"], ["batch"])
    node("Concat", ["batch", f"{prefix}/width"], ["row_shape"], axis=0)
    node("ConstantOfShape", ["row_shape"], ["zeros"],
         value=helper.make_tensor("zero", TensorProto.FLOAT, [1], [0.0]))
    node("ConstantOfShape", ["history_shape"], ["ones"],
         value=helper.make_tensor("one", TensorProto.FLOAT, [1], [1.0]))
    node("ScatterElements", ["zeros", C.INPUT_HISTORY, "ones"], ["counts"], axis=1,
         reduction="add")
    node("GatherElements", ["counts", C.INPUT_HISTORY], ["slot_counts"], axis=1)
    if recency == 1.0:
        node("Reciprocal", ["slot_counts"], ["slot_share"])
        return
    decay = np.power(np.float32(recency), np.arange(DECAY_SLOTS, dtype=np.float32))
    initializers += [numpy_helper.from_array(decay.astype(np.float32)[None, :], f"{prefix}/decay"),
                     numpy_helper.from_array(np.array([0, 0], np.int64), f"{prefix}/origin")]
    # ends = the history's [B, L]: the table's one row clamps B to 1, so [1, L] comes out
    node("Slice", [f"{prefix}/decay", f"{prefix}/origin", "history_shape"], ["slot_decay"])
    node("Div", ["slot_decay", "slot_counts"], ["slot_share"])


def _history_network(nodes: list, initializers: list, n_items: int, name: str):
    """A hand-written network graph: the signature's inputs, the [B, n_items] score row out."""
    from onnx import TensorProto, helper

    graph = helper.make_graph(
        nodes, name,
        [helper.make_tensor_value_info(C.INPUT_USERS, TensorProto.INT64, ["batch"]),
         helper.make_tensor_value_info(C.INPUT_HISTORY, TensorProto.INT64, ["batch", "history"])],
        [helper.make_tensor_value_info(_SCORES, TensorProto.FLOAT, ["batch", n_items])],
        initializers)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", C.OPSET)],
                             ir_version=8, producer_name="edgerec")


def float16_weights(graph, min_elements: int = 1 << 12) -> int:
    """Store the graph's weight tables (``min_elements`` values or more) as float16, each
    behind a Cast to float32; small layers keep their precision.

    For large catalogues: the item table dominates ``model.onnx``, which this halves. The
    network still computes in float32, from weights rounded to float16 (11 significant
    bits). ONNX Runtime folds the Casts when it opens the session, so on the CPU speed and
    memory are those of float32 (measured in ``benchmarks/latency.py``: x86 has no fast
    float16 matrix product, and ONNX Runtime converts float16 MatMuls back anyway).
    Overridable initializers (graph inputs such as ``item_mask``) stay as they are.
    Returns how many weights were converted.
    """
    from onnx import TensorProto, helper, numpy_helper

    inputs = {i.name for i in graph.input}
    big = [w for w in graph.initializer if w.data_type == TensorProto.FLOAT and w.name not in inputs
           and int(np.prod(w.dims)) >= min_elements]
    casts = []
    for weight in big:
        half = numpy_helper.from_array(numpy_helper.to_array(weight).astype(np.float16),
                                       f"{weight.name}/float16")
        casts.append(helper.make_node("Cast", [half.name], [weight.name], to=TensorProto.FLOAT,
                                      name=f"edgerec/{half.name}"))
        graph.initializer.remove(weight)
        graph.initializer.append(half)
    nodes = casts + list(graph.node)  # the Casts first: nodes must stay in topological order
    del graph.node[:]
    graph.node.extend(nodes)
    return len(big)


def check_weights_dtype(weights_dtype: str) -> None:
    """A one-line error for an unknown ``weights_dtype``, before any work is done."""
    if weights_dtype not in PARITY_TOL:
        raise ValueError(f"weights_dtype must be one of {', '.join(PARITY_TOL)}, not {weights_dtype!r}")


def to_onnx(net, weights_dtype: str = "float32", known: bool = False) -> bytes:
    """The scoring core: the network (converted by tf2onnx, or written directly for the
    neighbourhood kinds, ``neighbour_graph``, ``ease``, ``item_rows_graph``, and ``gan``,
    ``generator_graph``) plus the exclusion/top-k head.

    ``weights_dtype`` "float16" stores the large weights as float16 (``float16_weights``).
    ``known``: the known-user core (``has_known_core``), same signature, users >= 0 only.
    """
    import onnx
    import tf2onnx

    check_weights_dtype(weights_dtype)
    proto = None if known else _written_network(net)
    if proto is None:
        proto, _ = tf2onnx.convert.from_function(network_function(net, known),
                                                 input_signature=NETWORK_SIGNATURE, opset=C.OPSET)
        _keep_history_input(proto.graph)
    add_top_k_head(proto.graph)
    if weights_dtype == "float16":
        float16_weights(proto.graph)
    onnx.checker.check_model(proto)
    return proto.SerializeToString()


def _written_network(net):
    """The network written directly in ONNX for the kinds that describe it by tables
    (``neighbour_tables``, ``history_item_rows``, ``generator_layers``), else None."""
    for describe, write in ((net.neighbour_tables, neighbour_graph),
                            (net.history_item_rows, item_rows_graph),
                            (net.generator_layers, generator_graph)):
        tables = describe()
        if tables is not None:
            return write(*tables) if isinstance(tables, tuple) else write(tables)
    return None


def _keep_history_input(graph) -> None:
    """Declare ``history`` even where the network does not read it (tf2onnx drops unused
    inputs): every core takes the contract's inputs, so a runtime feeds any core alike."""
    from onnx import TensorProto, helper

    if C.INPUT_HISTORY not in {i.name for i in graph.input}:
        graph.input.append(helper.make_tensor_value_info(C.INPUT_HISTORY, TensorProto.INT64,
                                                         ["batch", "history"]))


def check_parity(net, onnx_model: bytes, data, n_users: int = 64, k: int = 20,
                 seed: int = 0, tol: float = 1e-5, known: bool = False) -> dict:
    """Compare the ONNX core with the Keras model on random users; raise on a mismatch.

    Users get their real recent histories and seen-item exclusions; for kinds that fold
    in unknown users, some rows are sent as unknown (-1), except for the known-user core
    (``known``), which must give every user what the full core gives them. Scores must agree within
    ``tol`` (relative to their magnitude) and top-k order must match except where the
    Keras scores tie.
    """
    rng = np.random.default_rng(seed)
    n_users = min(n_users, data.n_users, max(4, 20_000_000 // max(data.n_items, 1)))
    chosen = rng.choice(data.n_users, size=n_users, replace=False).astype(np.int64)
    history = data.recent_items(chosen, net.history_length)
    users = chosen.copy()
    if net.folds_in and not known:
        users[: max(1, n_users // 8)] = C.UNKNOWN_USER
    seen = data.items_by_user()
    exclude = C.padded([seen[u].tolist() for u in chosen], data.n_items)
    k = min(k, data.n_items)
    got_items, got_scores = Scorer(onnx_model, provider="cpu").top_k(users, history, exclude, k)
    ref = score_users(net, users, history)
    worst = 0.0
    for r, u in enumerate(users):
        ref[r, seen[chosen[r]]] = -np.inf
        valid = np.isfinite(got_scores[r])
        diff = np.abs(got_scores[r][valid] - ref[r, got_items[r][valid]])
        expected = np.sort(ref[r])[::-1][:k]
        scale = max(1.0, float(np.abs(expected[np.isfinite(expected)]).max(initial=1.0)))
        worst = max(worst, float(diff.max(initial=0.0)))
        if diff.max(initial=0.0) > tol * scale:
            raise ExportError(f"parity check failed{' (known-user core)' if known else ''}: ONNX scores differ from Keras by "
                              f"{diff.max():.3g} for user index {u}")
        if not np.allclose(ref[r, got_items[r]][valid], expected[valid], rtol=tol, atol=tol * scale):
            raise ExportError(f"parity check failed{' (known-user core)' if known else ''}: ONNX top-{k} order differs from Keras for "
                              f"user index {u}")
    return {"users": len(users), "k": k, "max_abs_diff": worst}


def export_bundle(result: FitResult, out: str | Path, progress: Progress = quiet,
                  with_state: bool = True, weights_dtype: str = "float32") -> Path:
    """Convert, check parity, and publish the bundle atomically at ``out``.

    ``with_state`` also stores the weights a warm start continues from (``edgerec.trainer.warm``).
    ``weights_dtype`` "float16" halves ``model.onnx`` (see ``float16_weights``).
    """
    net, data = result.model, result.data
    cores = {False: to_onnx(net, weights_dtype)}
    if has_known_core(net) and data.n_users:
        cores[True] = to_onnx(net, weights_dtype, known=True)
    parity = {known: check_parity(net, core, data, seed=result.params["seed"],
                                  tol=PARITY_TOL[weights_dtype], known=known)
              for known, core in cores.items()}
    for known, checked in parity.items():
        progress(f"parity ok{' (known-user core)' if known else ''}: {checked['users']} users, "
                 f"max |diff| {checked['max_abs_diff']:.2g}")

    manifest = {
        C.M_MODEL_KIND: net.kind,
        C.M_USER_IDS: data.user_ids.tolist(),
        C.M_ITEM_IDS: data.item_ids.tolist(),
        C.M_DIMS: {"n_users": data.n_users, "n_items": data.n_items, "dim": net.dim,
                   "history_length": net.history_length, "folds_in": net.folds_in},
        C.M_TRAINING: {"data": data.summary, "params": result.params,
                       "seconds": round(result.seconds, 2), "epochs": result.epochs},
        C.M_METRICS: result.metrics,
        C.M_ONNX: {"opset": C.OPSET, "inputs": list(C.INPUTS),
                   "optional_inputs": list(C.OPTIONAL_INPUTS), "outputs": list(C.OUTPUTS),
                   "parity": parity[False], "weights_dtype": weights_dtype,
                   **({"known_parity": parity[True]} if True in parity else {})},
    }
    weights = None
    if with_state and net.warm_starts:
        weights, manifest[C.M_TRAINER_STATE] = state_of(net)
    return bundle.write(out, cores[False], manifest, item_vectors=_item_vectors(net),
                        trainer_state=weights, known_onnx=cores.get(True))


def _item_vectors(net) -> np.ndarray | None:
    """The kind's item embeddings for the runtime's numpy features, checked for shape."""
    if not net.has_item_vectors:
        return None
    vectors = net.item_vectors()
    vectors = np.asarray(vectors, dtype=np.float32)
    if vectors.ndim != 2 or vectors.shape[0] != net.n_items or not np.isfinite(vectors).all():
        raise ExportError(f"{net.kind}.item_vectors() must be finite [n_items={net.n_items}, d], "
                          f"got shape {vectors.shape}")
    return vectors


def export_factors(out: str | Path, user_factors: np.ndarray, item_factors: np.ndarray,
                   user_ids=None, item_ids=None, user_bias=None, item_bias=None,
                   metrics: dict | None = None, progress: Progress = quiet,
                   weights_dtype: str = "float32") -> Path:
    """Export matrix-factorisation factors computed elsewhere (numpy ALS, synthetic
    benchmarks) through the same scoring core, parity check and bundle as a trained MF.

    No fold-in map can be fitted without interactions, so these bundles do not fold in:
    users outside ``user_factors`` get the popularity fallback.
    """
    n_users, dim = user_factors.shape
    n_items = item_factors.shape[0]
    net = MatrixFactorization(n_users, n_items, dim=dim, fold_in_history=0)
    biases = [np.zeros(size) if bias is None else bias
              for bias, size in ((user_bias, n_users), (item_bias, n_items))]
    net.set_weights([np.asarray(user_factors, np.float32), np.asarray(item_factors, np.float32),
                     *(np.asarray(bias, np.float32)[:, None] for bias in biases)])
    empty = np.zeros(0, np.int64)
    data = Interactions(
        np.array(user_ids if user_ids is not None else [str(u) for u in range(n_users)], dtype=object),
        np.array(item_ids if item_ids is not None else [str(i) for i in range(n_items)], dtype=object),
        empty, empty, np.zeros(0), {"interactions": 0, "source": "factors"})
    result = FitResult(net, data, metrics or {}, {"model": "mf", "seed": 0, "dim": dim})
    return export_bundle(result, out, progress, with_state=False, weights_dtype=weights_dtype)
