"""Model bundles: a directory holding ``model.onnx``, ``manifest.json`` and (for kinds that
provide them) ``item_vectors.npy``: the item embeddings for similar items, explanations
and diversity. Trained bundles also hold ``trainer_state.npz``, the weights a warm start
continues from; the runtime never reads it.

Crash-safe publishing. The bundle path (``models/m``) is a symbolic link to a sibling
version directory (``models/.m.v-<time>-<pid>``). ``install_staged`` writes and fsyncs the new
version completely (``install_staged``), then points the link at it with one atomic ``rename`` of a new link
over the old one, and fsyncs the directory: whenever the process dies (kill -9, power
cut), the path names a complete bundle, the old or the new. The previous version is kept
as a sibling (an app that opened it keeps reading it); older ones are removed. A bundle
path that is still a plain directory (published by an older edgerec, or copied by hand)
becomes a version on its next publish: it is renamed aside and the link created, and a
death in that instant is repaired by ``recover`` (the next open or publish points the path
at the newest complete version). Leftovers of dead processes (staging directories, links,
half-removed versions) are removed by the next publish.

Where symbolic links cannot be created (Windows without developer mode or the privilege),
the path stays a plain directory that is renamed aside and replaced by two renames; a
death between them leaves no directory at the path for that instant, which the next open
or publish repairs from the sibling versions in the same way.

On open, the manifest is checked against its schema (``edgerec.manifest``), and the ONNX
file's sha256 and the vector file's size are checked, so a truncated copy is rejected with
a clear error instead of failing deep inside ONNX Runtime; the vectors' sha256 is checked
when they are first read (they are only needed by some features, and a large catalogue's
vectors would otherwise slow every start).
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import shutil
import signal
import stat
import time
from dataclasses import dataclass
from pathlib import Path
import numpy as np

from . import contract as C
from .errors import BundleError
from .manifest import check_manifest
from .version import __version__

# Versions kept beside the bundle path: the one it names and the one before it.
KEEP_VERSIONS = 2
# Crash tests set this to a point name (see ``_crash_point``) to die there with SIGKILL.
CRASH_ENV = "EDGEREC_CRASH_AT"
_VERSION, _STAGING, _LINK, _TRASH, _LEGACY_OLD = ".v-", ".tmp-", ".link-", ".trash-", ".old-"
# Staging directories of older edgerecs carry no pid; older than this they are abandoned.
_STALE_SECONDS = 3600.0


def sha256_file(path: Path) -> str:
    """The file's sha256, read in 1 MiB blocks (model files can be large)."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


@dataclass
class Bundle:
    """An opened, verified bundle with the id maps the runtime needs."""

    path: Path  # as given: the stable path a reload re-reads
    manifest: C.Manifest
    user_index: dict[str, int]
    item_ids: np.ndarray  # dense index -> item id; one extra "" for the padding index
    item_index: dict[str, int]

    directory: Path  # the version directory opened: later publishes do not change it

    def __post_init__(self):
        self._vectors: np.ndarray | None = None

    @property
    def has_vectors(self) -> bool:
        """Whether the bundle holds item vectors (similar items, explanations, diversity)."""
        return self.manifest.has_vectors

    def item_vectors(self) -> np.ndarray:
        """[n_items, d] float32 item embeddings (read and checksummed on first use)."""
        if self._vectors is None:
            about = self.manifest.item_vectors
            if about is None:
                raise BundleError(f"{self.path}: bundle has no item vectors (model kind "
                                  f"{self.kind!r} does not provide them, or the bundle was "
                                  "exported before they existed: re-export it)")
            file = self.directory / about.file
            data = read_checked(file, about, "item vectors", "(corrupted, partly copied, or "
                                "replaced since the bundle was opened)")
            vectors = np.load(io.BytesIO(data), allow_pickle=False)
            if vectors.shape != (self.n_items, about.shape[1]):
                raise BundleError(f"{file}: shape {vectors.shape} does not fit {self.n_items} items")
            self._vectors = vectors
        return self._vectors

    @property
    def onnx_path(self) -> Path:
        """The scoring core's file in the version directory opened."""
        return self.directory / self.manifest.onnx.file

    @property
    def known_onnx_path(self) -> Path | None:
        """The known-user scoring core's file (``contract.M_ONNX_KNOWN``), or None."""
        about = self.manifest.onnx_known
        return None if about is None else self.directory / about.file

    @property
    def n_items(self) -> int:
        """Items the model scores (dense indices 0..n_items-1; n_items pads)."""
        return self.manifest.dims.n_items

    @property
    def history_length(self) -> int:
        """How many recent history items the scoring core reads (0: none)."""
        return self.manifest.dims.history_length

    @property
    def folds_in(self) -> bool:
        """Whether the model scores users it was not trained on from their history."""
        return self.manifest.dims.folds_in

    @property
    def kind(self) -> str:
        """The model kind (``mf``, ``als``, ``seq``, ...)."""
        return self.manifest.model_kind

    @classmethod
    def open(cls, path: str | Path, verify: bool = True) -> "Bundle":
        """Open the bundle at ``path`` (repairing a crashed publish first, see ``recover``)."""
        path = Path(path)
        directory = recover(path)
        manifest = read_manifest(directory)
        if verify:
            verify_files(directory, manifest)
        item_ids = np.array(list(manifest.item_ids) + [""], dtype=object)
        return cls(path, manifest,
                   {u: i for i, u in enumerate(manifest.user_ids)},
                   item_ids,
                   {it: i for i, it in enumerate(manifest.item_ids)}, directory)


def verify_files(directory: Path, manifest: C.Manifest) -> None:
    """The ONNX files' checksums and the vector file's size, against the manifest."""
    for core in filter(None, (manifest.onnx, manifest.onnx_known)):
        onnx_file = directory / core.file
        if not onnx_file.is_file():
            raise BundleError(f"{directory}: bundle has no {onnx_file.name}")
        if sha256_file(onnx_file) != core.sha256:
            raise BundleError(f"{onnx_file}: sha256 does not match the manifest (corrupted or "
                              "partly copied bundle)")
    vectors = manifest.item_vectors
    if vectors is not None:
        file = directory / vectors.file
        size = file.stat().st_size if file.is_file() else None
        if size != vectors.bytes:
            raise BundleError(f"{file}: {'missing' if size is None else f'{size} bytes'}, the "
                              f"manifest says {vectors.bytes} (partly copied bundle)")


def read_checked(file: Path, about: C.FileEntry, what: str, why: str = "(corrupted or partly copied)") -> bytes:
    """The bytes of a bundle file whose sha256 must match its manifest entry ``about``.

    Read whole, then hashed, so what is checked is exactly what is used (a file replaced
    in between cannot slip through).
    """
    try:
        data = file.read_bytes()
    except OSError as exc:
        raise BundleError(f"{file}: cannot read {what} ({exc.strerror})") from None
    if hashlib.sha256(data).hexdigest() != about.sha256:
        raise BundleError(f"{file}: sha256 does not match the manifest {why}")
    return data


def read_manifest(path: Path) -> C.Manifest:
    """The manifest, after checking it against the schema (``edgerec.manifest``)."""
    file = path / C.MANIFEST_FILE
    if not path.is_dir():
        raise BundleError(f"{path}: bundle directory not found")
    try:
        manifest = json.loads(file.read_bytes().decode("utf-8"))
    except FileNotFoundError:
        raise BundleError(f"{path}: not a bundle (no {C.MANIFEST_FILE})") from None
    except OSError as exc:
        raise BundleError(f"{file}: cannot read the manifest ({exc.strerror or exc})") from None
    except (ValueError, RecursionError) as exc:  # JSON and UTF-8 errors are ValueErrors
        raise BundleError(f"{file}: unreadable manifest ({str(exc)[:200]})") from None
    return check_manifest(manifest, file)


def describe(path: str | Path) -> dict:
    """What a bundle is, for ``edgerec info``: everything but the id lists, plus sizes."""
    bundle = Bundle.open(path)
    info = {k: v for k, v in bundle.manifest.items() if k not in (C.M_USER_IDS, C.M_ITEM_IDS)}
    info["path"] = str(bundle.path)
    info["onnx_bytes"] = bundle.onnx_path.stat().st_size
    return info


def write(dest: str | Path, onnx_bytes: bytes, manifest: dict,
          item_vectors: np.ndarray | None = None,
          trainer_state: list[np.ndarray] | None = None,
          known_onnx: bytes | None = None) -> Path:
    """Write a bundle to ``dest`` atomically.

    The manifest gets the format and edgerec versions and the checksums filled in.
    ``item_vectors`` ([n_items, d]) are stored as float32 ``item_vectors.npy``;
    ``trainer_state`` (the model's weights, in order) as ``trainer_state.npz``, described
    by the manifest's ``trainer_state`` entry that the caller fills with rows and params.
    ``known_onnx``, the known-user core (``contract.M_ONNX_KNOWN``), as ``model_known.onnx``.
    """
    dest = Path(dest)
    tmp = staging(dest)
    try:
        (tmp / C.MODEL_FILE).write_bytes(onnx_bytes)
        state = manifest.get(C.M_TRAINER_STATE, {})
        # Only what is written gets an entry.
        manifest = {k: v for k, v in manifest.items()
                    if k not in (C.M_VECTORS, C.M_TRAINER_STATE, C.M_ONNX_KNOWN)}
        if known_onnx is not None:
            (tmp / C.KNOWN_MODEL_FILE).write_bytes(known_onnx)
            manifest[C.M_ONNX_KNOWN] = {"file": C.KNOWN_MODEL_FILE,
                                        "sha256": hashlib.sha256(known_onnx).hexdigest()}
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
        install_staged(tmp, dest)
    except BaseException:
        discard(tmp, dest)
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




# -- publishing (see the module docstring) -------------------------------------------------


def staging(dest: str | Path) -> Path:
    """A new, empty directory beside ``dest`` to build a bundle in, then ``install_staged``.

    Beside it, so the publishing rename never crosses file systems; named with this
    process's id, so a later publish knows it is abandoned once the process is gone; made
    with ``mkdir`` (not ``mkdtemp``'s 0700), so the bundle gets the umask's permissions
    and an app running as another user can read it.
    """
    dest = Path(dest)
    try:
        dest.parent.mkdir(parents=True, exist_ok=True)
        path = _sibling(dest, _STAGING)
        path.mkdir()
    except OSError as exc:
        raise BundleError(f"{dest.parent}: cannot create a bundle there "
                          f"({exc.strerror or exc})") from None
    return path


def install_staged(src: str | Path, dest: str | Path) -> None:
    """Make the complete bundle ``src`` (a directory beside ``dest``) the bundle at ``dest``.

    The bare crash-safe switch: it checks only the manifest; ``edgerec.serving.publish``
    copies a bundle from anywhere and verifies it completely before calling this.

    ``src`` is consumed: it (or the directory it links to) becomes the new version. On
    return the new bundle is on disk for good (files and directories fsynced); at any
    instant before, ``dest`` names the old bundle (none on a first publish; for an instant
    none while a plain directory is set aside, which ``recover`` repairs).
    """
    src, dest = _resolved(Path(src)), Path(dest)
    read_manifest(src)
    recover(dest)
    try:
        _fsync_tree(src)
        _crash_point("synced")
        if dest.is_dir() and not dest.is_symlink():  # a plain directory: keep it as a version
            os.rename(dest, _sibling(dest, _VERSION))
            _crash_point("set-aside")
        version = _sibling(dest, _VERSION)
        os.rename(src, version)
        _fsync_dir(dest.parent)
        _crash_point("renamed")
        _point(dest, version)
        _crash_point("switched")
        _prune(dest)
    except OSError as exc:
        raise BundleError(f"{dest}: cannot publish the bundle ({exc.strerror or exc})") from None


def recover(dest: Path) -> Path:
    """The directory that holds the bundle at ``dest``, repairing a crashed publish.

    When ``dest`` names no directory (a death while a plain directory was set aside, or on
    a platform without symlinks), it is pointed at the newest complete sibling version, or
    the bundle set aside by an older edgerec's publish; if the directory is read-only, that
    version is served without the repair. Returns ``dest`` itself when it is whole.
    """
    dest = Path(dest)
    if dest.is_dir() or not dest.parent.is_dir():
        return _resolved(dest)
    for candidate in _candidates(dest):
        try:
            verify_files(candidate, read_manifest(candidate))
        except BundleError:
            continue
        try:
            _point(dest, candidate)
        except OSError:
            return candidate
        return _resolved(dest)
    return dest


def discard(staged: Path, dest: Path) -> None:
    """Remove a staging directory of ``dest`` that will not be published."""
    if staged.exists():
        _remove(staged, dest)


def _resolved(dest: Path) -> Path:
    """The version directory a link names (so a later switch cannot change what is read)."""
    return dest.resolve() if dest.is_symlink() else dest


def _sibling(dest: Path, kind: str) -> Path:
    """A new sibling name: ``.NAME<kind><time_ns>-<pid>``; versions sort by time."""
    return dest.with_name(f".{dest.name}{kind}{time.time_ns():020d}-{os.getpid()}")


def _siblings(dest: Path, kind: str) -> list[Path]:
    prefix = f".{dest.name}{kind}"
    try:
        names = sorted(n for n in os.listdir(dest.parent) if n.startswith(prefix))
    except OSError:
        return []
    return [dest.parent / n for n in names]


def _candidates(dest: Path) -> list[Path]:
    """Sibling versions, newest first, then an older edgerec's set-aside bundles."""
    return _siblings(dest, _VERSION)[::-1] + _siblings(dest, _LEGACY_OLD)[::-1]


def _point(dest: Path, version: Path) -> None:
    """Make ``dest`` name ``version``: a new relative link renamed over the old one."""
    link = _sibling(dest, _LINK)
    try:
        os.symlink(version.name, link, target_is_directory=True)
    except (OSError, NotImplementedError):  # no symlinks here (Windows without privilege)
        _point_by_rename(dest, version)
        return
    _crash_point("linked")
    os.replace(link, dest)
    _fsync_dir(dest.parent)


def _point_by_rename(dest: Path, version: Path) -> None:
    """Where links are unavailable: the version itself becomes ``dest``, the old set aside."""
    if dest.exists():
        os.rename(dest, _sibling(dest, _VERSION))
    os.rename(version, dest)
    _fsync_dir(dest.parent)


def _prune(dest: Path) -> None:
    """Remove versions older than the ``KEEP_VERSIONS`` newest (never the current one),
    set-aside bundles of older edgerecs, and the leftovers of dead processes."""
    current = _resolved(dest)
    versions = [v for v in _siblings(dest, _VERSION) if v != current]
    for old in versions[:max(0, len(versions) - (KEEP_VERSIONS - 1))] + _siblings(dest, _LEGACY_OLD):
        _remove(old, dest)
    for kind in (_STAGING, _LINK, _TRASH):
        for leftover in _siblings(dest, kind):
            if _abandoned(leftover):
                _remove(leftover, dest)


def _abandoned(path: Path) -> bool:
    """Whether the process that made ``path`` (its name ends in -<pid>) is gone."""
    pid = path.name.rsplit("-", 1)[-1]
    if not pid.isdigit():  # an older edgerec's staging directory: judged by age
        try:
            return time.time() - path.lstat().st_mtime > _STALE_SECONDS
        except OSError:
            return False
    if int(pid) == os.getpid():  # another thread's work in progress
        return False
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return True
    except (PermissionError, OSError):
        return False
    return False


def _remove(path: Path, dest: Path) -> None:
    """Delete a sibling of ``dest`` (a tree or a link). A tree is renamed to a trash name
    first, so a half-removed version is never taken for a complete one; read-only trees
    (copied with their permissions) are made writable as needed."""
    if path.is_symlink() or path.is_file():
        path.unlink(missing_ok=True)
        return
    trash = path
    if not path.name.startswith(f".{dest.name}{_TRASH}"):
        trash = _sibling(dest, _TRASH)
        try:
            os.rename(path, trash)
        except OSError:
            return
    _crash_point("removing")

    def writable(func, name, _exc):
        os.chmod(os.path.dirname(name), stat.S_IRWXU)
        func(name)

    shutil.rmtree(trash, onerror=writable)


def _fsync_tree(root: Path) -> None:
    """fsync every file under ``root``, then the directories: a power cut after the switch
    must not leave the new version's files empty or missing."""
    flags = os.O_RDONLY if os.name == "posix" else os.O_RDWR  # Windows flushes writable handles
    for folder, _dirs, files in os.walk(root):
        for name in files:
            fd = os.open(os.path.join(folder, name), flags)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)
        _fsync_dir(Path(folder))


def _fsync_dir(path: Path) -> None:
    """Make a directory's entries (renames, new files) durable; a no-op where directories
    cannot be opened (Windows, where NTFS journals metadata itself)."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def _crash_point(name: str) -> None:
    """Die here with SIGKILL when ``$EDGEREC_CRASH_AT`` names this point (crash tests)."""
    if os.environ.get(CRASH_ENV) == name:
        os.kill(os.getpid(), signal.SIGKILL)
