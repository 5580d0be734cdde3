"""The manifest's schema: the one place that says what a valid ``manifest.json`` holds.

Why a schema: bundles arrive over USB sticks and networks and are untrusted input. Every
value the runtime later indexes, sizes an array with or joins to a path is checked here,
so a wrong type, a missing key, an absurd size or a file name that leaves the bundle
directory is one ``BundleError`` line at open (or publish, or reload), never a traceback
later. What the ONNX graph itself accepts is checked against these values when a session
is started (``edgerec.serving.load``), by one test inference.
"""

from __future__ import annotations

import re
from pathlib import Path

from . import contract as C
from .errors import BundleError

# Far above any catalogue a device serves, far below what would exhaust memory on open.
MAX_ROWS = 50_000_000
MAX_DIM = 65_536
MAX_HISTORY = 100_000
_SHA256 = re.compile(r"^[0-9a-f]{64}$")


class _Bad(Exception):
    """One schema violation; the message names the key."""


def check_manifest(manifest, file: Path) -> None:
    """Raise ``BundleError`` naming ``file`` and the key unless ``manifest`` fits the schema."""
    try:
        _check(manifest)
    except _Bad as bad:
        raise BundleError(f"{file}: {bad}") from None


def _check(m) -> None:
    if not isinstance(m, dict):
        raise _Bad("manifest is not a JSON object")
    version = m.get(C.M_FORMAT_VERSION)
    if version != C.FORMAT_VERSION or isinstance(version, bool):
        raise _Bad(f"bundle format version {version!r}, this edgerec reads version {C.FORMAT_VERSION}")
    missing = [key for key in C.REQUIRED_KEYS if key not in m]
    if missing:
        raise _Bad(f"manifest lacks {', '.join(missing)}")
    _typed(m, C.M_EDGEREC_VERSION, str)
    _typed(m, C.M_MODEL_KIND, str)
    for key in (C.M_TRAINING, C.M_METRICS):
        _typed(m, key, dict)
    dims = _typed(m, C.M_DIMS, dict)
    n_items = _count(dims, "n_items", MAX_ROWS, low=1, where=C.M_DIMS)
    n_users = _count(dims, "n_users", MAX_ROWS, where=C.M_DIMS)
    _count(dims, "dim", MAX_DIM, where=C.M_DIMS)
    _count(dims, "history_length", MAX_HISTORY, where=C.M_DIMS)
    if not isinstance(dims.get("folds_in", False), bool):
        raise _Bad(f"{C.M_DIMS}.folds_in must be true or false")
    _ids(m, C.M_ITEM_IDS, n_items)
    _ids(m, C.M_USER_IDS, n_users)
    _file_entry(m, C.M_ONNX, sized=False)
    if C.M_VECTORS in m:
        vectors = _file_entry(m, C.M_VECTORS, sized=True)
        shape = vectors.get("shape")
        if (not isinstance(shape, list) or len(shape) != 2 or shape[0] != n_items
                or not _is_count(shape[1], MAX_DIM)):
            raise _Bad(f"{C.M_VECTORS}.shape must be [{n_items}, d], not {_show(shape)}")
    if C.M_TRAINER_STATE in m:
        _file_entry(m, C.M_TRAINER_STATE, sized=True)


def _typed(m: dict, key: str, kind: type):
    value = m[key]
    if not isinstance(value, kind):
        raise _Bad(f"{key} must be a JSON {'object' if kind is dict else 'string'}, not {_show(value)}")
    return value


def _is_count(value, high: int, low: int = 0) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and low <= value <= high


def _count(d: dict, key: str, high: int, low: int = 0, where: str = "") -> int:
    value = d.get(key)
    if not _is_count(value, high, low):
        raise _Bad(f"{where}.{key} must be an integer from {low} to {high}, not {_show(value)}")
    return value


def _ids(m: dict, key: str, expected: int) -> None:
    ids = m[key]
    if not isinstance(ids, list) or len(ids) != expected:
        raise _Bad(f"{key} must be a list of {expected} ids (dims), not {_show(ids)}")
    if not all(isinstance(i, str) and i and "\x00" not in i for i in ids):
        raise _Bad(f"{key} must hold non-empty strings without NUL")
    if len(set(ids)) != len(ids):
        raise _Bad(f"{key} holds the same id twice")


def _file_entry(m: dict, key: str, sized: bool) -> dict:
    """A {"file", "sha256"[, "bytes"]} entry whose file is a plain name in the bundle."""
    entry = m[key]
    if not isinstance(entry, dict):
        raise _Bad(f"{key} must be a JSON object, not {_show(entry)}")
    name = entry.get("file")
    if (not isinstance(name, str) or name in ("", ".", "..") or "/" in name or "\\" in name
            or "\x00" in name or ":" in name):
        raise _Bad(f"{key}.file must name a file inside the bundle directory, not {_show(name)}")
    if not isinstance(entry.get("sha256"), str) or not _SHA256.match(entry["sha256"]):
        raise _Bad(f"{key}.sha256 must be 64 lower-case hex digits, not {_show(entry.get('sha256'))}")
    if sized and not _is_count(entry.get("bytes"), 1 << 40):
        raise _Bad(f"{key}.bytes must be a byte count, not {_show(entry.get('bytes'))}")
    return entry


def _show(value) -> str:
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."
