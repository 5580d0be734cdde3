"""``edgerec check``: is this store file or bundle directory sound?

A kiosk's operator needs one command that answers after a power cut or a bad copy: for a
store, SQLite's integrity check, the schema version and the counts; for a bundle, the
full verification a running app does before it serves a bundle (schema, every checksum,
an ONNX Runtime session and a test inference), plus the trainer state a warm start reads.
"""

from __future__ import annotations

from pathlib import Path

from . import bundle as bundles
from .serving import load
from .store import SCHEMA_VERSION, Store


def check(path: str | Path) -> dict:
    """``check_bundle`` for a directory (or a bundle link), ``check_store`` for a file."""
    path = Path(path)
    return check_bundle(path) if path.is_dir() else check_store(path)


def check_store(path: str | Path) -> dict:
    """{"ok", "problems", "schema_version", counts...}; a file that is no store at all
    raises ``StoreError``."""
    store = Store.open(path, create=False)
    try:
        problems = [p for p in store.integrity() if p != "ok"]
        summary = store.summary() if not problems else {}
    finally:
        store.close()
    return {"path": str(path), "kind": "store", "ok": not problems, "problems": problems,
            "schema_version": SCHEMA_VERSION, **summary}


def check_bundle(path: str | Path) -> dict:
    """Verify a bundle completely; raises ``BundleError`` naming what is wrong."""
    served = load(path, "cpu", threads=1, verify_vectors=True)
    b = served.bundle
    state = b.manifest.trainer_state
    if state is not None:
        bundles.read_checked(b.directory / state.file, state, "trainer state")
    return {"path": str(path), "kind": "bundle", "ok": True, "problems": [],
            "directory": str(b.directory), "model_kind": b.kind, "n_items": b.n_items,
            "n_users": len(b.user_index), "created_at": b.manifest.created_at}
