"""What a ``Recommender`` serves, and switching it while requests are running.

``Served`` is an immutable (bundle, scorer) pair. A request reads the recommender's one
``Served`` attribute once and uses that object to the end, so a swap (one attribute
assignment, atomic in Python) never mixes two models inside a request: requests in flight
finish on the old pair, which lives as long as they hold it.

``load`` verifies a bundle completely (manifest, ONNX checksum, vector checksum, an ONNX
Runtime session) before anything is swapped, so a bad or half-copied bundle is rejected
while the old one keeps serving. ``Watcher`` polls the bundle's manifest and calls back
when it changes (``bundle.install_staged`` switches a link to a complete bundle, so a changed
manifest means a new bundle).
"""

from __future__ import annotations

import os
import shutil
import threading
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Callable

import numpy as np

from . import bundle as bundles
from . import contract as C
from .bundle import Bundle, read_manifest
from .errors import BundleError, EdgerecError, ProviderError
from .session import Scorer
from .similarity import unit_rows

# Item weights (n_items * dim floats) up to which one thread scores fastest.
SMALL_MODEL_WEIGHTS = 1 << 22


@dataclass(frozen=True, eq=False)
class Served:
    """One model as served: the opened bundle and its ONNX Runtime session."""

    bundle: Bundle
    scorer: Scorer
    identity: tuple = field(default=())

    @cached_property
    def unit_vectors(self) -> np.ndarray:
        """Unit-length item vectors (+ a zero padding row), computed on first use."""
        return unit_rows(self.bundle.item_vectors())


def identity(manifest: C.Manifest) -> tuple:
    """What makes two bundles the same model: their checksums and creation time."""
    vectors = manifest.item_vectors
    return manifest.onnx.sha256, vectors and vectors.sha256, manifest.created_at


def load(path: str | Path, provider: str | None = None, threads: int | None = None,
         verify_vectors: bool = False) -> Served:
    """Open and verify a bundle and start its session; raises ``BundleError`` if unusable.

    ``threads`` defaults to one for models whose item weights fit in cache (a thread pool
    only adds hand-off time there) and to ONNX Runtime's choice for larger ones.
    ``verify_vectors`` also reads and checksums the item vectors now rather than on first
    use (a reload does, so a corrupt file never replaces a working model).
    """
    bundle = Bundle.open(path)
    if verify_vectors and bundle.has_vectors:
        bundle.item_vectors()
    if threads is None:
        dims = bundle.manifest.dims
        threads = 1 if dims.n_items * dims.dim <= SMALL_MODEL_WEIGHTS else 0
    try:
        scorer = Scorer(bundle.onnx_path, provider, threads, known=bundle.known_onnx_path)
    except ProviderError:
        raise
    except Exception as exc:  # noqa: BLE001 - ONNX Runtime's own exception types
        raise BundleError(f"{bundle.onnx_path}: ONNX Runtime cannot load it "
                          f"({_first_line(exc)})") from None
    probe(bundle, scorer)
    return Served(bundle, scorer, identity(bundle.manifest))


def probe(bundle: Bundle, scorer: Scorer) -> None:
    """One test inference: the graph must take the contract's inputs at the manifest's sizes
    and return k valid item indices, or the bundle is refused before it serves anyone."""
    n, length = bundle.n_items, bundle.history_length
    graph = {i.name: i.shape for i in [*scorer.session.get_inputs(),
                                       *scorer.session.get_overridable_initializers()]}
    missing = [name for name in C.INPUTS if name not in graph]
    if missing:
        raise BundleError(f"{bundle.onnx_path}: not a scoring core (no input {', '.join(missing)})")
    for name, axis, size in ((C.INPUT_HISTORY, 1, length), (C.INPUT_ITEM_MASK, -1, n)):
        shape = graph.get(name)
        if shape and isinstance(shape[axis], int) and shape[axis] != size:
            raise BundleError(f"{bundle.onnx_path}: input {name} has {shape[axis]} columns, the "
                              f"manifest's dims say {size}")
    k = n  # every item: a graph over another catalogue size cannot return exactly 0..n-1
    # A known user runs the known-user core where there is one; -1 then runs the full one.
    probes = [0 if bundle.user_index else C.UNKNOWN_USER]
    if scorer.known_session is not None and bundle.user_index:
        probes.append(C.UNKNOWN_USER)
    for user in probes:
        try:
            items, scores = scorer.top_k(np.array([user], dtype=np.int64),
                                         np.full((1, length), n, dtype=np.int64),
                                         np.full((1, 1), n, dtype=np.int64), k)
        except Exception as exc:  # noqa: BLE001 - whatever ONNX Runtime raises
            raise BundleError(f"{bundle.onnx_path}: test inference failed ({_first_line(exc)})") from None
        if (np.shape(items) != (1, k) or np.shape(scores) != (1, k)
                or not np.array_equal(np.sort(items[0]), np.arange(n))):
            raise BundleError(f"{bundle.onnx_path}: test inference did not rank the manifest's {n} "
                              f"items (outputs {np.shape(items)}, {np.shape(scores)}): the graph "
                              "and the manifest do not belong together")


def _first_line(exc: BaseException) -> str:
    return (str(exc).splitlines() or [type(exc).__name__])[0][:300]


def current_identity(path: str | Path) -> tuple | None:
    """The identity of the bundle now at ``path``, or None when none is readable there."""
    try:
        return identity(read_manifest(Path(path)))
    except (EdgerecError, KeyError, OSError):
        return None


def stamp(path: str | Path) -> tuple | None:
    """A cheap change detector: the manifest file's inode, size and mtime (None: missing)."""
    try:
        st = os.stat(Path(path) / C.MANIFEST_FILE)
    except OSError:
        return None
    return st.st_ino, st.st_size, st.st_mtime_ns


class Watcher(threading.Thread):
    """A daemon thread that calls ``on_change()`` whenever the bundle's manifest changes.

    A failed ``on_change`` (a bad bundle, a copy still in progress, the instant between
    ``publish``'s renames) is retried at every poll until one succeeds; it runs off the
    request path, and the old model keeps serving meanwhile.
    """

    def __init__(self, path: str | Path, on_change: Callable[[], object], interval: float = 2.0):
        super().__init__(name=f"edgerec-watch-{Path(path).name}", daemon=True)
        self.path, self.on_change, self.interval = Path(path), on_change, interval
        self._stop_event = threading.Event()
        self._seen = stamp(self.path)

    def stop(self) -> None:
        """Ask the thread to stop after its current poll."""
        self._stop_event.set()

    def run(self) -> None:
        """Poll the bundle path; call ``on_change`` when it names a new bundle."""
        while not self._stop_event.wait(self.interval):
            now = stamp(self.path)
            if now == self._seen:
                continue
            try:
                self.on_change()
            except Exception:  # noqa: BLE001 - the recommender recorded why; retry next poll
                continue
            self._seen = now


def publish(src: str | Path, dest: str | Path, provider: str | None = "cpu") -> Path:
    """Install the bundle at ``src`` as ``dest``, atomically, after verifying it completely.

    ``src`` is copied next to ``dest`` (so the final rename never crosses file systems),
    the copy is loaded as a reload would load it (checksums, a session, a test inference),
    and only then published (``edgerec.bundle.install_staged``: crash-safe, old version kept); a
    running app's ``reload``/watcher picks it up. ``src`` is left as it was.
    """
    src, dest = Path(src), Path(dest)
    bundles.read_manifest(bundles.recover(src))
    staged = bundles.staging(dest)
    try:
        try:
            shutil.copytree(bundles.recover(src), staged, dirs_exist_ok=True)
        except (OSError, shutil.Error) as exc:
            raise BundleError(f"{src}: cannot copy the bundle ({_first_line(exc)})") from None
        load(staged, provider, threads=1, verify_vectors=True)
        bundles.install_staged(staged, dest)
    except BaseException:
        bundles.discard(staged, dest)
        raise
    return dest
