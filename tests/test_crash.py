"""Crash tests: real SIGKILLs during publish, ``train --out`` and ingest.

Each child process is killed either at a named point of ``edgerec.bundle.install_staged`` (the
``EDGEREC_CRASH_AT`` hook makes it SIGKILL itself there) or at a seeded random moment.
Afterwards the bundle path must serve a complete bundle, the old or the new, and a store
must pass SQLite's integrity check holding all of an ingest or none of it.
"""

from __future__ import annotations

import os
import random
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from edgerec import bundle as bundles
from edgerec.recommender import Recommender
from edgerec.serving import load, publish
from edgerec.store import Store

from conftest import cli, variant

EDGEREC = str(Path(sys.executable).with_name("edgerec"))
KILLED = -signal.SIGKILL


def serves(dest: Path, store: Path) -> str:
    """The tag of the complete bundle at ``dest``, after serving one request from it."""
    served = load(dest, "cpu", threads=1, verify_vectors=True)
    with Recommender.open(dest, store) as rec:
        assert len(rec.recommend("u1", n=3)) == 3
    return served.bundle.manifest["created_at"]


@pytest.mark.parametrize("plain", [False, True], ids=["link", "plain-dir-upgrade"])
@pytest.mark.parametrize("point", ["synced", "set-aside", "renamed", "linked", "switched", "removing"])
@pytest.mark.runtime
def test_publish_killed_at_every_step_leaves_the_old_or_the_new_bundle(svd, tmp_path, point, plain):
    dest = tmp_path / "models" / "m"
    if plain:
        variant(svd, dest, "old")
    else:
        publish(variant(svd, tmp_path / "old", "old"), dest)
        publish(variant(svd, tmp_path / "older", "old"), dest)  # a version for "removing" to prune
    new = variant(svd, tmp_path / "new", "new")
    done = subprocess.run([EDGEREC, "publish", new, dest], capture_output=True, text=True,
                          env={**os.environ, bundles.CRASH_ENV: point}, timeout=300)
    reached = done.returncode == KILLED
    assert reached or done.returncode == 0, done.stderr
    tag = serves(dest, svd.store)
    assert tag in ("old", "new")
    # Once the new version is renamed in, a path left missing (plain-directory upgrade) is
    # repaired to it; a link still names the old one until it is switched.
    repaired_to_new = plain and point in ("renamed", "linked")
    expected = "new" if not reached or point in ("switched", "removing") or repaired_to_new else "old"
    assert tag == expected
    publish(variant(svd, tmp_path / "next", "next"), dest)  # the next publish cleans up
    assert serves(dest, svd.store) == "next"
    left = [p.name for p in dest.parent.iterdir() if p.name != "m"]
    assert len(left) <= bundles.KEEP_VERSIONS and all(".m.v-" in n for n in left), left


PUBLISH_LOOP = """
import sys
from pathlib import Path
from edgerec.serving import publish
print("ready", flush=True)
while True:
    for tag in sys.argv[2:]:
        publish(Path(tag), Path(sys.argv[1]))
"""


@pytest.mark.runtime
def test_publish_killed_at_random_moments(svd, tmp_path):
    dest = tmp_path / "m"
    sources = [variant(svd, tmp_path / tag, tag) for tag in ("a", "b", "c")]
    publish(sources[0], dest)
    rng = random.Random(11)
    for _ in range(4):
        child = subprocess.Popen([sys.executable, "-c", PUBLISH_LOOP, dest, *sources],
                                 stdout=subprocess.PIPE, text=True)
        assert child.stdout.readline().strip() == "ready"
        time.sleep(rng.uniform(0.05, 1.5))
        child.kill()
        child.wait(30)
        assert serves(dest, svd.store) in ("a", "b", "c")


def test_train_out_killed_while_publishing_keeps_the_old_bundle(mf, tmp_path):
    dest = tmp_path / "m"
    publish(variant(mf, tmp_path / "old", "old"), dest)
    store = tmp_path / "s.db"
    assert cli("demo-data", store, "--users", "60", "--items", "40").returncode == 0
    done = subprocess.run([EDGEREC, "train", store, "--out", dest, "--epochs", "1"],
                          capture_output=True, text=True, timeout=600,
                          env={**os.environ, bundles.CRASH_ENV: "linked"})
    assert done.returncode == KILLED, done.stderr
    assert serves(dest, mf.store) == "old"


def later_events(mf, path: Path) -> Path:
    """A copy of the trained store plus events after its training data (something to update)."""
    shutil.copy(mf.store, path)
    store = Store.open(path)
    t = store.summary()["last_ts"]
    users = store.user_ids()[:30]
    rows = [(user, item, "view", 1.0, t + 1 + 3 * n + k)
            for n, user in enumerate(users) for k, item in enumerate(store.history(users[-1 - n])[:3])]
    store.add_events(rows)
    store.close()
    return path


# ``edgerec update`` publishes twice (its gate candidate into a temporary directory, then
# the winner over the bundle path): the hook is armed only for the bundle path's publish.
UPDATE_KILLED = """
import os, sys
from pathlib import Path
from edgerec import bundle as bundles
from edgerec.cli import main
publish, target, point = bundles.install_staged, Path(sys.argv[1]), sys.argv[2]
def publish_then_die(src, dest):
    if Path(dest) == target:
        os.environ[bundles.CRASH_ENV] = point
    publish(src, dest)
bundles.install_staged = publish_then_die
sys.argv = ["edgerec", "update", *sys.argv[3:]]
main()
"""


def test_update_killed_while_training_and_while_switching_keeps_the_old_bundle(mf, tmp_path):
    """The nightly ``edgerec update`` killed at a random moment of its training, then with
    the new version complete beside the path but not yet linked: the old bundle serves
    both times and the store it read passes the integrity check."""
    store = later_events(mf, tmp_path / "s.db")
    dest = tmp_path / "models" / "m"
    publish(variant(mf, tmp_path / "old", "old"), dest)
    args = [store, dest, "--epochs", "1", "--tolerance", "1"]  # tolerance 1: always publish
    child = subprocess.Popen([EDGEREC, "update", *args], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    time.sleep(random.Random(2).uniform(1.0, 4.0))  # importing or training
    child.kill()
    assert child.wait(30) == KILLED and serves(dest, store) == "old"
    done = subprocess.run([sys.executable, "-c", UPDATE_KILLED, dest, "linked", *args],
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == KILLED, done.stderr
    assert serves(dest, store) == "old"
    assert len([p for p in dest.parent.iterdir() if ".m.v-" in p.name]) == 2  # the new one beside
    opened = Store.open(store, create=False)
    assert opened.integrity() == ["ok"]
    opened.close()


INGEST = """
import sys
from edgerec.ingest import ingest_events
from edgerec.store import Store
print("ready", flush=True)
ingest_events(Store.open(sys.argv[1]), sys.argv[2])
print("done", flush=True)
"""


@pytest.mark.runtime
def test_ingest_killed_at_random_moments_lands_all_or_nothing(tmp_path):
    rows = 200_000
    data = tmp_path / "events.csv"
    with open(data, "w") as fh:
        fh.write("user_id,item_id,timestamp\n")
        fh.writelines(f"u{n % 997},i{n % 1009},{1_600_000_000 + n}\n" for n in range(rows))
    store = tmp_path / "s.db"
    Store.open(store).add_events([("before", "x", "click", 1.0, 5.0)])
    rng = random.Random(5)
    outcomes = set()
    for _ in range(4):
        child = subprocess.Popen([sys.executable, "-c", INGEST, store, data],
                                 stdout=subprocess.PIPE, text=True)
        assert child.stdout.readline().strip() == "ready"
        time.sleep(rng.uniform(0.0, 1.0))
        child.kill()
        child.wait(30)
        opened = Store.open(store, create=False)
        assert opened.integrity() == ["ok"]
        events = opened.summary()["events"]
        opened.close()
        assert events in (1, 1 + rows), events
        outcomes.add(events)
        if events > 1:  # landed before the kill: start again from nothing
            store.unlink()
            for extra in ("-wal", "-shm"):
                Path(f"{store}{extra}").unlink(missing_ok=True)
            Store.open(store).add_events([("before", "x", "click", 1.0, 5.0)])
    assert 1 in outcomes  # at least one kill landed mid-ingest
