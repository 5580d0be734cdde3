"""Model bundles: a directory holding ``model.onnx``, ``manifest.json`` and (for kinds that
provide them) ``item_vectors.npy``: the item embeddings for similar items, explanations
and diversity. Trained bundles also hold ``trainer_state.npz``, the weights a warm start
continues from; the runtime never reads it.

Bundles are written into a temporary sibling directory and renamed into place, so a reader
sees either the old bundle or the new one, never half of one. On open, the format version,
the ONNX file's sha256 and the vector file's size are checked, so a truncated copy is
rejected with a clear error instead of failing deep inside ONNX Runtime; the vectors'
sha256 is checked when they are first read (they are only needed by some features, and a
large catalogue's vectors would otherwise slow every start).
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import shutil
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
import numpy as np

from . import __version__
from . import contract as C
from .errors import BundleError


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


@dataclass
class Bundle:
    """An opened, verified bundle with the id maps the runtime needs."""

    path: Path
    manifest: dict
    user_index: dict[str, int]
    item_ids: np.ndarray  # dense index -> item id; one extra "" for the padding index
    item_index: dict[str, int]

    def __post_init__(self):
        self._vectors: np.ndarray | None = None

    @property
    def has_vectors(self) -> bool:
        return C.M_VECTORS in self.manifest

    def item_vectors(self) -> np.ndarray:
        """[n_items, d] float32 item embeddings (read and checksummed on first use)."""
        if self._vectors is None:
            about = self.manifest.get(C.M_VECTORS)
            if about is None:
                raise BundleError(f"{self.path}: bundle has no item vectors (model kind "
                                  f"{self.kind!r} does not provide them, or the bundle was "
                                  "exported before they existed: re-export it)")
            file = self.path / about["file"]
            try:
                data = file.read_bytes()
            except OSError as exc:
                raise BundleError(f"{file}: cannot read item vectors ({exc.strerror})") from None
            if hashlib.sha256(data).hexdigest() != about["sha256"]:
                raise BundleError(f"{file}: sha256 does not match the manifest (corrupted, partly "
                                  "copied, or replaced since the bundle was opened)")
            vectors = np.load(io.BytesIO(data), allow_pickle=False)
            if vectors.shape != (self.n_items, about["shape"][1]):
                raise BundleError(f"{file}: shape {vectors.shape} does not fit {self.n_items} items")
            self._vectors = vectors
        return self._vectors

    @property
    def onnx_path(self) -> Path:
        return self.path / self.manifest[C.M_ONNX]["file"]

    @property
    def n_items(self) -> int:
        return self.manifest[C.M_DIMS]["n_items"]

    @property
    def history_length(self) -> int:
        return self.manifest[C.M_DIMS]["history_length"]

    @property
    def folds_in(self) -> bool:
        """Whether the model scores users it was not trained on from their history."""
        return bool(self.manifest[C.M_DIMS].get("folds_in", False))

    @property
    def kind(self) -> str:
        return self.manifest[C.M_MODEL_KIND]

    @classmethod
    def open(cls, path: str | Path, verify: bool = True) -> "Bundle":
        path = Path(path)
        manifest = read_manifest(path)
        onnx_file = path / manifest[C.M_ONNX]["file"]
        if not onnx_file.is_file():
            raise BundleError(f"{path}: bundle has no {onnx_file.name}")
        if verify and sha256_file(onnx_file) != manifest[C.M_ONNX]["sha256"]:
            raise BundleError(f"{onnx_file}: sha256 does not match the manifest (corrupted or "
                              "partly copied bundle)")
        vectors = manifest.get(C.M_VECTORS)
        if verify and vectors is not None:
            file = path / vectors["file"]
            size = file.stat().st_size if file.is_file() else None
            if size != vectors["bytes"]:
                raise BundleError(f"{file}: {'missing' if size is None else f'{size} bytes'}, the "
                                  f"manifest says {vectors['bytes']} (partly copied bundle)")
        item_ids = np.array(list(manifest[C.M_ITEM_IDS]) + [""], dtype=object)
        return cls(path, manifest,
                   {u: i for i, u in enumerate(manifest[C.M_USER_IDS])},
                   item_ids,
                   {it: i for i, it in enumerate(manifest[C.M_ITEM_IDS])})


def read_manifest(path: Path) -> dict:
    """The manifest, after checking it is complete and of a format this runtime reads."""
    file = path / C.MANIFEST_FILE
    if not path.is_dir():
        raise BundleError(f"{path}: bundle directory not found")
    try:
        manifest = json.loads(file.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise BundleError(f"{path}: not a bundle (no {C.MANIFEST_FILE})") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise BundleError(f"{file}: unreadable manifest ({exc})") from None
    version = manifest.get(C.M_FORMAT_VERSION)
    if version != C.FORMAT_VERSION:
        raise BundleError(f"{file}: bundle format version {version}, this edgerec reads "
                          f"version {C.FORMAT_VERSION}")
    missing = [key for key in C.REQUIRED_KEYS if key not in manifest]
    if missing:
        raise BundleError(f"{file}: manifest lacks {', '.join(missing)}")
    return manifest


def describe(path: str | Path) -> dict:
    """What a bundle is, for ``edgerec info``: everything but the id lists, plus sizes."""
    bundle = Bundle.open(path)
    info = {k: v for k, v in bundle.manifest.items() if k not in (C.M_USER_IDS, C.M_ITEM_IDS)}
    info["path"] = str(bundle.path)
    info["onnx_bytes"] = bundle.onnx_path.stat().st_size
    return info


def write(dest: str | Path, onnx_bytes: bytes, manifest: dict,
          item_vectors: np.ndarray | None = None,
          trainer_state: list[np.ndarray] | None = None) -> Path:
    """Write a bundle to ``dest`` atomically.

    The manifest gets the format and edgerec versions and the checksums filled in.
    ``item_vectors`` ([n_items, d]) are stored as float32 ``item_vectors.npy``;
    ``trainer_state`` (the model's weights, in order) as ``trainer_state.npz``, described
    by the manifest's ``trainer_state`` entry that the caller fills with rows and params.
    """
    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{dest.name}.tmp-", dir=dest.parent))
    try:
        (tmp / C.MODEL_FILE).write_bytes(onnx_bytes)
        state = manifest.get(C.M_TRAINER_STATE, {})
        # Only what is written gets an entry.
        manifest = {k: v for k, v in manifest.items() if k not in (C.M_VECTORS, C.M_TRAINER_STATE)}
        if item_vectors is not None:
            manifest = {**manifest, C.M_VECTORS: _write_vectors(tmp / C.VECTORS_FILE, item_vectors)}
        if trainer_state is not None:
            arrays = {f"w{n}": np.asarray(w) for n, w in enumerate(trainer_state)}
            manifest = {**manifest, C.M_TRAINER_STATE: {
                **state, **_write_array_file(tmp / C.TRAINER_STATE_FILE, np.savez, **arrays)}}
        manifest = {**manifest, C.M_FORMAT_VERSION: C.FORMAT_VERSION,
                    C.M_EDGEREC_VERSION: __version__,
                    C.M_CREATED_AT: time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                    C.M_ONNX: {**manifest.get(C.M_ONNX, {}), "file": C.MODEL_FILE,
                               "sha256": hashlib.sha256(onnx_bytes).hexdigest()}}
        (tmp / C.MANIFEST_FILE).write_text(json.dumps(manifest, indent=1), encoding="utf-8")
        publish(tmp, dest)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return dest


def _write_vectors(file: Path, vectors: np.ndarray) -> dict:
    vectors = np.ascontiguousarray(vectors, dtype=np.float32)
    if vectors.ndim != 2:
        raise BundleError(f"item vectors must be [n_items, d], not shape {vectors.shape}")
    return {**_write_array_file(file, np.save, vectors, allow_pickle=False),
            "shape": list(vectors.shape)}


def _write_array_file(file: Path, save, *args, **kwargs) -> dict:
    """Write what ``save`` (np.save, np.savez) makes; returns its manifest entry."""
    buffer = io.BytesIO()
    save(buffer, *args, **kwargs)
    data = buffer.getvalue()
    file.write_bytes(data)
    return {"file": file.name, "sha256": hashlib.sha256(data).hexdigest(), "bytes": len(data)}


def read_trainer_state(path: str | Path) -> tuple[dict, list[np.ndarray]]:
    """(manifest, weights) of a bundle's trainer state, checksum verified, for warm starts."""
    path = Path(path)
    manifest = read_manifest(path)
    about = manifest.get(C.M_TRAINER_STATE)
    if about is None:
        raise BundleError(f"{path}: bundle has no trainer state to warm-start from (exported "
                          "from factors, or by an older edgerec): train from scratch")
    file = path / about["file"]
    try:
        data = file.read_bytes()
    except OSError as exc:
        raise BundleError(f"{file}: cannot read trainer state ({exc.strerror})") from None
    if hashlib.sha256(data).hexdigest() != about["sha256"]:
        raise BundleError(f"{file}: sha256 does not match the manifest (corrupted or partly copied)")
    with np.load(io.BytesIO(data), allow_pickle=False) as arrays:
        return manifest, [arrays[f"w{n}"] for n in range(len(arrays.files))]


def publish(src: str | Path, dest: str | Path) -> None:
    """Move the complete bundle ``src`` to ``dest``, replacing what was there.

    A directory cannot be renamed over a non-empty one, so the old bundle is first renamed
    aside; a reader in that instant finds no bundle (and may retry) but never a mixed one.
    """
    src, dest = Path(src), Path(dest)
    read_manifest(src)
    old = None
    if dest.exists():
        old = dest.with_name(f".{dest.name}.old-{os.getpid()}-{time.time_ns()}")
        os.rename(dest, old)
    try:
        os.rename(src, dest)
    except OSError:
        if old is not None:
            os.rename(old, dest)
        raise
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)
