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

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

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
KNOWN_MODEL_FILE = "model_known.onnx"
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
# Optional: a second scoring core with the same signature, for requests whose users all
# have a table row (index >= 0): the same answers as ``onnx`` gives them, without the
# fold-in nodes (``folds_in`` kinds whose trained users' scores do not read the history).
# {"file", "sha256"}; a runtime may ignore it and serve everyone from ``onnx``.
M_ONNX_KNOWN = "onnx_known"
M_VECTORS = "item_vectors"  # optional: {"file", "sha256", "bytes", "shape"}
# Optional: the Keras weights a warm start continues from (the runtime never reads them):
# {"file", "sha256", "bytes", "rows": per weight "users" | "items" | null, "params"}
M_TRAINER_STATE = "trainer_state"
REQUIRED_KEYS = (
    M_FORMAT_VERSION, M_EDGEREC_VERSION, M_MODEL_KIND, M_USER_IDS, M_ITEM_IDS,
    M_DIMS, M_TRAINING, M_METRICS, M_ONNX,
)

# -- the manifest's schema (JSON Schema, draft 2020-12) ------------------------------------
# The one statement of what a valid manifest.json holds: ``edgerec.manifest.check_manifest``
# walks it for every bundle opened, tests validate exported manifests against it with the
# ``jsonschema`` package, and docs/manifest.schema.json is this dict written out. Each
# ``description`` that starts with "must" is also the error message for its key. What JSON
# Schema cannot say (id lists as long as ``dims`` says, vectors with one row per item) is
# checked in ``edgerec.manifest`` after the walk.

# Far above any catalogue a device serves, far below what would exhaust memory on open.
MAX_ROWS = 50_000_000
MAX_DIM = 65_536
MAX_HISTORY = 100_000
MAX_BYTES = 1 << 40
CHECKSUM_PATTERN = "^[0-9a-f]{64}$"
# A plain file name: no directories, no drive letters, not "." or "..", no NUL.
FILE_PATTERN = "^(?![.][.]?$)[^/\\\\:\x00]+$"
ID_PATTERN = "^[^\x00]+$"


def _count(high: int, low: int = 0) -> dict:
    return {"type": "integer", "minimum": low, "maximum": high}


def _ids() -> dict:
    return {"type": "array", "uniqueItems": True,
            "items": {"type": "string", "pattern": ID_PATTERN,
                      "description": "must hold non-empty strings without NUL"}}


def _file_entry(sized: bool, **more) -> dict:
    """A {"file", "sha256"[, "bytes"]} entry; ``more``: further properties, all required."""
    entry = {"type": "object",
             "required": ["file", "sha256"] + (["bytes"] if sized else []) + list(more),
             "properties": {
                 "file": {"type": "string", "pattern": FILE_PATTERN,
                          "description": "must name a file inside the bundle directory"},
                 "sha256": {"type": "string", "pattern": CHECKSUM_PATTERN,
                            "description": "must be 64 lower-case hex digits"},
                 **({"bytes": {**_count(MAX_BYTES), "description": "must be a byte count"}}
                    if sized else {}),
                 **more}}
    return entry


MANIFEST_SCHEMA: dict = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "$id": "https://edgerec.invalid/manifest.schema.json",
    "title": "edgerec bundle manifest",
    "type": "object",
    "required": list(REQUIRED_KEYS),
    "properties": {
        M_FORMAT_VERSION: {"const": FORMAT_VERSION},
        M_EDGEREC_VERSION: {"type": "string"},
        M_MODEL_KIND: {"type": "string"},
        M_CREATED_AT: {"type": "string"},
        M_USER_IDS: _ids(),
        M_ITEM_IDS: _ids(),
        M_DIMS: {"type": "object", "required": ["n_items", "n_users", "dim", "history_length"],
                 "properties": {"n_items": _count(MAX_ROWS, low=1), "n_users": _count(MAX_ROWS),
                                "dim": _count(MAX_DIM), "history_length": _count(MAX_HISTORY),
                                "folds_in": {"type": "boolean"}}},
        M_TRAINING: {"type": "object", "properties": {
            "data": {"type": "object", "properties": {
                "last_ts": {"type": ["number", "null"]},
                "interactions": {"type": "integer", "minimum": 0}}},
            "params": {"type": "object"},
            "seconds": {"type": "number"}}},
        M_METRICS: {"type": "object"},
        M_ONNX: _file_entry(False),
        M_ONNX_KNOWN: _file_entry(False),
        M_VECTORS: _file_entry(True, shape={
            "type": "array", "minItems": 2, "maxItems": 2, "items": _count(MAX_DIM),
            "description": "must be [n_items, d]"}),
        M_TRAINER_STATE: _file_entry(True),
    },
}


@dataclass(frozen=True)
class Dims:
    """The model's sizes (``dims`` in the manifest)."""

    n_users: int
    n_items: int
    dim: int
    history_length: int
    folds_in: bool = False


@dataclass(frozen=True)
class FileEntry:
    """A file of the bundle with its checksum (``onnx``, ``item_vectors``, ``trainer_state``)."""

    file: str
    sha256: str
    bytes: int | None = None
    shape: tuple[int, ...] | None = None

    @classmethod
    def of(cls, entry: Mapping | None) -> "FileEntry | None":
        """The typed entry of a checked manifest entry (None stays None)."""
        if entry is None:
            return None
        shape = entry.get("shape")
        return cls(entry["file"], entry["sha256"], entry.get("bytes"),
                   None if shape is None else tuple(shape))


@dataclass(frozen=True, eq=False)
class Manifest(Mapping):
    """A checked ``manifest.json`` as a typed object (``Manifest.of`` after ``check_manifest``).

    Readers use the fields and accessors (``dims.n_items``, ``trained_until``, ...), so a
    renamed key breaks here, at one place, not silently in ``update`` or warm start. It is
    also a read-only ``Mapping`` over the JSON as written, for tools that copy or show it
    whole (``edgerec describe``, the web export) and for the JavaScript runtime, which reads
    the same file. ``version`` is the bundle format version (``FORMAT_VERSION``).
    """

    version: int
    edgerec_version: str
    model_kind: str
    created_at: str | None
    user_ids: list[str]
    item_ids: list[str]
    dims: Dims
    onnx: FileEntry
    item_vectors: FileEntry | None
    trainer_state: FileEntry | None
    training: dict
    metrics: dict
    json: dict = field(repr=False)
    onnx_known: FileEntry | None = None  # the known-user core, when the bundle has one

    @classmethod
    def of(cls, data: dict) -> "Manifest":
        """The typed view of a manifest already checked against ``MANIFEST_SCHEMA``."""
        dims = data[M_DIMS]
        return cls(data[M_FORMAT_VERSION], data[M_EDGEREC_VERSION], data[M_MODEL_KIND],
                   data.get(M_CREATED_AT), data[M_USER_IDS], data[M_ITEM_IDS],
                   Dims(dims["n_users"], dims["n_items"], dims["dim"], dims["history_length"],
                        bool(dims.get("folds_in", False))),
                   FileEntry.of(data[M_ONNX]), FileEntry.of(data.get(M_VECTORS)),
                   FileEntry.of(data.get(M_TRAINER_STATE)), data[M_TRAINING], data[M_METRICS],
                   data, FileEntry.of(data.get(M_ONNX_KNOWN)))

    @property
    def trained_until(self) -> float | None:
        """The newest event's timestamp in the training data (None when not recorded)."""
        return self.training.get("data", {}).get("last_ts")

    @property
    def training_data(self) -> dict:
        """The summary of the data trained on (events, interactions, users, items, times)."""
        return self.training.get("data", {})

    @property
    def training_params(self) -> dict:
        """The parameters the model was trained with (``model``, ``trained_epochs``, ...)."""
        return self.training.get("params", {})

    @property
    def has_vectors(self) -> bool:
        """Whether the bundle holds item vectors."""
        return self.item_vectors is not None

    def __getitem__(self, key: str):
        return self.json[key]

    def __iter__(self):
        return iter(self.json)

    def __len__(self) -> int:
        return len(self.json)


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
