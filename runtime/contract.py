"""The contract between exporter and runtime: the one place both read.

The ONNX *scoring core* has one signature for every model kind:

inputs
  users    int64 [B]     dense user index, or -1 when the model does not know the user
  history  int64 [B, L]  the user's most recent item indices, newest first, padded with
                         ``n_items`` (L may be 0 for models that do not read history)
  exclude  int64 [B, E]  item indices that must not be returned (seen, filtered), padded
                         with ``n_items``
  k        int64 []      how many items to return; 1 <= k <= n_items + 1
  item_mask float32 [1 or B, n_items]  optional: added to the scores before exclusion;
                         0 keeps an item, -inf removes it (filters). Not fed, it defaults
                         to zeros: a graph input that also has an initializer (ONNX IR >= 4)
outputs
  top_items   int64   [B, k]  item indices, best first (ties: lower index first)
  top_scores  float32 [B, k]  their scores; excluded or padding slots score -inf

Padding with ``n_items`` (one past the last item) lets exclusion be a scatter into a
score row that has one extra, always -inf, column: no masks of catalogue width cross
the ONNX boundary, so a request costs O(history) to build, not O(catalogue).
Only filtered requests feed ``item_mask``; one mask per filter is built once and reused.

A bundle may also hold ``item_vectors.npy`` ([n_items, d] float32, the model's item
embeddings): similar items, explanations and diversity read it with numpy, not ONNX.
"""

import numpy as np

FORMAT_VERSION = 1

INPUT_USERS = "users"
INPUT_HISTORY = "history"
INPUT_EXCLUDE = "exclude"
INPUT_K = "k"
INPUT_ITEM_MASK = "item_mask"  # optional (has a default); older cores lack it
INPUTS = (INPUT_USERS, INPUT_HISTORY, INPUT_EXCLUDE, INPUT_K)
OPTIONAL_INPUTS = (INPUT_ITEM_MASK,)

OUTPUT_ITEMS = "top_items"
OUTPUT_SCORES = "top_scores"
OUTPUTS = (OUTPUT_ITEMS, OUTPUT_SCORES)

UNKNOWN_USER = -1

MODEL_FILE = "model.onnx"
MANIFEST_FILE = "manifest.json"
VECTORS_FILE = "item_vectors.npy"
TRAINER_STATE_FILE = "trainer_state.npz"
OPSET = 17

# Manifest keys (manifest.json at the bundle root).
M_FORMAT_VERSION = "format_version"
M_EDGEREC_VERSION = "edgerec_version"
M_MODEL_KIND = "model_kind"
M_CREATED_AT = "created_at"
M_USER_IDS = "user_ids"
M_ITEM_IDS = "item_ids"
M_DIMS = "dims"  # {"n_users", "n_items", "dim", "history_length", "folds_in"}
M_TRAINING = "training"  # data summary and parameters
M_METRICS = "metrics"
M_ONNX = "onnx"  # {"file", "sha256", "opset", "inputs", "optional_inputs", "outputs"}
M_VECTORS = "item_vectors"  # optional: {"file", "sha256", "bytes", "shape"}
# Optional: the Keras weights a warm start continues from (the runtime never reads them):
# {"file", "sha256", "bytes", "rows": per weight "users" | "items" | null, "params"}
M_TRAINER_STATE = "trainer_state"
REQUIRED_KEYS = (
    M_FORMAT_VERSION, M_EDGEREC_VERSION, M_MODEL_KIND, M_USER_IDS, M_ITEM_IDS,
    M_DIMS, M_TRAINING, M_METRICS, M_ONNX,
)


def known_indices(item_index: dict[str, int], ids) -> list[int]:
    """Dense indices of the ``ids`` the model knows, in order (others cannot be scored).

    The one way item ids become the rows ``padded`` takes: histories, exclusions and
    filters all drop unknown ids the same way.
    """
    return [j for j in map(item_index.get, ids) if j is not None]


def padded(rows: list[list[int]], pad: int, width: int | None = None) -> np.ndarray:
    """Rows of indices as one int64 matrix, right-padded with ``pad`` (= n_items)."""
    if width is None:
        width = max(map(len, rows), default=0)
    if len(rows) == 1 and len(rows[0]) == width:  # the single-request case: no padding
        return np.array(rows, dtype=np.int64).reshape(1, width)
    out = np.full((len(rows), width), pad, dtype=np.int64)
    for row, items in zip(out, rows):
        row[:len(items)] = items
    return out
