"""Shared fixtures: small demo stores and one trained bundle per model kind.

Training is the slow part of the suite, so each model kind is trained once per session on
a small demo store and every behaviour test reuses it.
"""

from __future__ import annotations

import importlib.util
import json
import os
import re
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

from edgerec.demo import write_demo
from edgerec.store import Store


DEMO = {"n_users": 300, "n_items": 200, "mean_events": 30, "seed": 7}


@dataclass
class Trained:
    kind: str
    store: Path
    bundle: Path
    result: object  # edgerec.trainer.FitResult


@pytest.fixture(scope="session")
def demo_store(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("demo") / "store.db"
    store = Store.open(path)
    write_demo(store, **DEMO)
    store.close()
    return path


# The base-only venv (`make test-base`) has no TensorFlow: only the runtime suite runs there.
HAS_TENSORFLOW = importlib.util.find_spec("tensorflow") is not None
_IMPORTS_TRAINER = re.compile(r"^(import tensorflow|import tf2onnx|from edgerec\.(trainer|exporters)\b)", re.M)


def pytest_ignore_collect(collection_path, config):
    """Without TensorFlow, leave out the test modules that import it (or the trainer) at
    the top: they cannot be imported there, and none of their tests is a runtime test."""
    if HAS_TENSORFLOW or not collection_path.name.startswith("test_") or collection_path.suffix != ".py":
        return None
    return True if _IMPORTS_TRAINER.search(collection_path.read_text(encoding="utf-8")) else None


def _model_kinds() -> list[str]:
    """Every trained kind; none without TensorFlow, where ``trained`` is never asked for."""
    if not HAS_TENSORFLOW:
        return []
    from edgerec.trainer import MODEL_KINDS

    return list(MODEL_KINDS)


@pytest.fixture(scope="session")
def train_once(demo_store, tmp_path_factory):
    """Train each model kind at most once per session, on the demo store."""
    from edgerec.pipelines import train_bundle

    cache: dict[str, Trained] = {}

    def get(kind: str) -> Trained:
        if kind not in cache:
            out = tmp_path_factory.mktemp(f"bundle-{kind}") / kind
            path, result = train_bundle(demo_store, out, model=kind, epochs=20, seed=3)
            cache[kind] = Trained(kind, demo_store, path, result)
        return cache[kind]

    return get


@pytest.fixture(scope="session", params=_model_kinds())
def trained(request, train_once) -> Trained:
    """A bundle of each model kind: the shared behaviour suite runs once per kind."""
    return train_once(request.param)


@pytest.fixture(scope="session")
def mf(train_once) -> Trained:
    """The MF bundle, for runtime tests that need one bundle of any kind."""
    return train_once("mf")


def run_cli(*args: str, env: dict | None = None, cwd: Path | None = None) -> subprocess.CompletedProcess:
    """The installed ``edgerec`` command, as a user runs it."""
    exe = Path(sys.executable).with_name("edgerec")
    return subprocess.run([str(exe), *map(str, args)], capture_output=True, text=True,
                          env={**os.environ, **(env or {})}, cwd=cwd, timeout=600)


# -- quality floors: what each kind achieves on the fixture (issue 17) ----------------------
#
# Holdout NDCG@10 of ``train_once``'s bundles (the trainer's temporal holdout of the demo
# store above, epochs=20, seed=3), measured when the floors were set. A kind must keep 90%
# of it, and 85% of the genre rule below: a third-trained model (mf after 2 epochs: 0.134)
# or a kind that stopped learning fails. A new kind must be measured and added here.
MEASURED_NDCG = {"als": 0.3168, "ease": 0.2951, "mf": 0.3209, "neumf": 0.3244, "seq": 0.3003,
                 "itemknn": 0.3025, "rp3beta": 0.2983, "sparse_ease": 0.2884, "gan": 0.3008}
OWN_SHARE, GENRE_RULE_SHARE = 0.9, 0.85


def quality_floor(kind: str, genre_rule_ndcg: float) -> float:
    assert kind in MEASURED_NDCG, f"measure {kind!r} on the fixture and add it to MEASURED_NDCG"
    return max(OWN_SHARE * MEASURED_NDCG[kind], GENRE_RULE_SHARE * genre_rule_ndcg)


def ndcg_at(top: list[list[int]], relevant: list[set[int]], k: int = 10) -> float:
    """Mean NDCG@k with binary gains, ideal DCG over min(k, |relevant|), written out here so
    that it checks the product's metric code rather than reusing it."""
    total = 0.0
    for items, rel in zip(top, relevant):
        dcg = sum(1.0 / np.log2(rank + 2) for rank, i in enumerate(items[:k]) if i in rel)
        ideal = sum(1.0 / np.log2(rank + 2) for rank in range(min(k, len(rel))))
        total += dcg / ideal
    return total / len(top)


@pytest.fixture(scope="session")
def genre_rule(demo_store) -> dict:
    """The no-learning rules on the trainer's holdout of the demo store."""
    from edgerec.trainer.data import load_interactions, temporal_split

    store = Store.open(demo_store, create=False)
    data = load_interactions(store)
    store.close()
    return no_learning_rules(demo_store, data, *temporal_split(data))


def no_learning_rules(store_path, data, train_mask, test_mask) -> dict:
    """No learning at all: each user's two most frequent genres (in their train part), most
    popular first; and plain popularity. NDCG@10 on ``test_mask``, ranked and scored in
    numpy here (ties to the lower item index, as the runtime's top-k)."""
    import json

    store = Store.open(store_path, create=False)
    genre = {i: json.loads(m)["categories"][0]
             for i, m in store.db.conn.execute("SELECT item_id, metadata FROM items")}
    store.close()
    item_genre = np.array([genre[i] for i in data.item_ids])
    counts = np.bincount(data.items[train_mask], minlength=data.n_items)
    in_train = counts > 0
    popular = [i for i in sorted(range(data.n_items), key=lambda i: (-counts[i], i)) if in_train[i]]
    tops, pops, relevant = [], [], []
    for u in np.unique(data.users[test_mask]):
        seen = set(data.items[train_mask & (data.users == u)].tolist())
        genres, n = np.unique(item_genre[list(seen)], return_counts=True)
        liked = set(genres[np.argsort(-n, kind="stable")[:2]])
        unseen = [i for i in popular if i not in seen]
        tops.append([i for i in unseen if item_genre[i] in liked][:10])
        pops.append(unseen[:10])
        relevant.append(set(data.items[test_mask & (data.users == u)].tolist()))
    return {"ndcg@10": ndcg_at(tops, relevant), "popularity_ndcg@10": ndcg_at(pops, relevant)}


def genre_precision(bundle, store, only: list[str] | None = None) -> float:
    """Share of served top-10 items in the user's two most frequent genres, over all users
    (or ``only`` these): the demo users pick 85% of their items there. Items without a
    catalogue genre count as misses."""
    import json

    from edgerec import Recommender

    with Recommender.open(bundle, store, provider="cpu") as rec:
        users = rec.store.user_ids() if only is None else list(only)
        lists = rec.recommend_many(users, n=10)
        histories = rec.store.histories(users)
        genre = {i: json.loads(m)["categories"][0] for i, m in
                 rec.store.db.conn.execute("SELECT item_id, metadata FROM items")}
    hits = 0
    for recs in lists:
        genres, n = np.unique([genre[i] for i in histories[recs.user_id] if i in genre],
                              return_counts=True)
        liked = set(genres[np.argsort(-n, kind="stable")[:2]])
        hits += sum(genre.get(r.item_id) in liked for r in recs)
    return hits / (10 * len(lists))


def variant(mf, dest: Path, tag: str) -> Path:
    """A copy of the MF bundle at ``dest`` that differs only in its creation time (identity)."""
    from edgerec import bundle as bundles

    shutil.copytree(bundles.recover(mf.bundle), dest)
    manifest = json.loads((dest / "manifest.json").read_text())
    manifest["created_at"] = tag
    (dest / "manifest.json").write_text(json.dumps(manifest))
    return dest


# -- hand-built bundles: the runtime suite without TensorFlow (issue 10) -------------------
#
# Runtime tests that need "a bundle" and not a trained model's quality take these
# (tests/bundles.py: PureSVD in numpy, ONNX written with the onnx helper API), and carry the
# ``runtime`` mark: ``make test`` also runs them in the base-only venv.


@pytest.fixture(scope="session")
def svd(demo_store, tmp_path_factory):
    """A bundle of the demo store that folds in every user from their recent history."""
    from bundles import build_bundle

    return build_bundle(demo_store, tmp_path_factory.mktemp("svd") / "svd")


@pytest.fixture(scope="session")
def svd_plain(demo_store, tmp_path_factory):
    """The same item vectors in a bundle that reads only the user index (cannot fold in):
    a known user's scores do not change with new events, unknown users get popularity."""
    from bundles import build_bundle

    return build_bundle(demo_store, tmp_path_factory.mktemp("svd-plain") / "svd", folds_in=False)


# -- the CLI in this process (suite time) ---------------------------------------------------
#
# ``run_cli`` starts a new Python for every command: about a second of imports for the
# runtime's commands and eight more for those that load TensorFlow (train, evaluate,
# update). ``cli`` runs the same ``edgerec`` command in this process through click's
# runner, with the same exit code, stdout and stderr. ``run_cli`` stays where the separate
# process is the point: the installed script itself, signals and kills, locks held by
# another process, a second process joining a cluster.


def cli(*args: str, env: dict | None = None, cwd: Path | None = None) -> subprocess.CompletedProcess:
    """``edgerec *args`` in this process; an exception the CLI did not turn into an exit
    code (a crash: a subprocess would print its traceback) is raised here, failing the test."""
    from click.testing import CliRunner

    from edgerec.cli import main

    here = os.getcwd()
    try:
        if cwd is not None:
            os.chdir(cwd)
        result = CliRunner().invoke(main, [str(a) for a in args], env=env)
    finally:
        os.chdir(here)
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        raise result.exception
    return subprocess.CompletedProcess(list(args), result.exit_code, result.stdout, result.stderr)
