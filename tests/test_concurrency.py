"""Thread and process safety: one Recommender shared by 8 reader threads while 2 threads
and another process write events to the same store."""

from __future__ import annotations

import random
import shutil
import subprocess
import sys
import textwrap
import threading

import pytest

from edgerec import Recommender
from edgerec.store import Store

pytestmark = pytest.mark.runtime

WRITER_PROCESS = textwrap.dedent("""
    import sys, time
    from edgerec.feedback import record
    from edgerec.store import Store
    store = Store.open(sys.argv[1], create=False)
    users, items = sys.argv[2].split(","), sys.argv[3].split(",")
    end, n = time.monotonic() + float(sys.argv[4]), 0
    while time.monotonic() < end:
        assert record(store, users[n % len(users)], items[(7 * n) % len(items)], "view", ts=3e9 + n)
        n += 1
    print(n)
""")


def test_readers_writers_and_another_process(svd, tmp_path):
    path = tmp_path / "store.db"
    shutil.copy(svd.store, path)
    rec = Recommender.open(svd.bundle, path)
    users = rec.store.user_ids()[:12] + ["ghost-1", "ghost-2"]
    # Writes touch 40 items only, so every user keeps at least 10 unseen items.
    items = [i for i in rec.bundle.item_ids[:-1] if i != "i0"][:40]
    rec.retire(["i0"])
    initial = rec.store.summary()["events"]
    stop = threading.Event()
    errors: list = []
    recorded = [0, 0]
    answered = [0] * 8

    def writer(w: int) -> None:
        rng, n = random.Random(w), 0
        while not stop.is_set():
            if not rec.record(rng.choice(users), rng.choice(items), "click", ts=4e9 + w * 1e6 + n):
                errors.append(("event not stored", w, n))
            n += 1
        recorded[w] = n

    def reader(r: int) -> None:
        oracle = Store.open(path)  # its own connection: what was committed before asking
        rng = random.Random(100 + r)
        try:
            while not stop.is_set():
                user = rng.choice(users)
                seen = set(oracle.history(user))
                options = rng.choice([{}, {}, {"where": {"category": "Comedy"}}, {"diversity": 0.3}])
                got = [x.item_id for x in rec.recommend(user, n=10, **options)]
                if len(set(got)) != len(got):
                    errors.append(("duplicate", user, got))
                if seen & set(got) or "i0" in got:
                    errors.append(("seen or retired", user, sorted(seen & set(got)), got))
                if not options.get("where") and len(got) != 10:
                    errors.append(("short", user, got))
                answered[r] += 1
        except Exception as exc:  # noqa: BLE001 - reported below
            errors.append(("exception", repr(exc)))
        finally:
            oracle.close()

    process = subprocess.Popen(
        [sys.executable, "-c", WRITER_PROCESS, str(path), ",".join(users), ",".join(items), "2.0"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    threads = [threading.Thread(target=writer, args=(w,)) for w in range(2)]
    threads += [threading.Thread(target=reader, args=(r,)) for r in range(8)]
    try:
        for t in threads:
            t.start()
        out, err = process.communicate(timeout=120)  # the threads run while the process writes
    finally:
        stop.set()
        for t in threads:
            t.join(60)
    assert process.returncode == 0, err
    assert not errors, errors[:5]
    assert all(answered) and all(recorded)
    written = int(out)
    assert written > 0
    rec.close()
    final = Store.open(path, create=False)
    assert final.summary()["events"] == initial + sum(recorded) + written  # no event lost
