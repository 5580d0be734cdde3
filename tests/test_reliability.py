"""Reliability: crash-safe publish, no frozen reads under another process's write, one
validation layer (NaN metadata, absurd timestamps, hostile ids), manifests as untrusted
input, store faults as one-line ``StoreError``s, and ``edgerec check``."""

from __future__ import annotations

import json
import math
import os
import shutil
import sqlite3
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from edgerec import bundle as bundles
from edgerec.errors import BundleError, InputError, StoreError, UnknownItemError
from edgerec.feedback import record_many
from edgerec.ingest import ingest_events, ingest_items
from edgerec.recommender import Recommender
from edgerec.serving import publish
from edgerec.store import Store, fault

from conftest import cli, variant

pytestmark = pytest.mark.runtime


def created(path: Path) -> str:
    return bundles.Bundle.open(path).manifest["created_at"]


def versions(dest: Path) -> list[str]:
    """What publishing keeps beside ``dest``."""
    return sorted(p.name for p in dest.parent.iterdir() if p.name.startswith(f".{dest.name}."))


# -- 1. crash-safe publish ----------------------------------------------------------------------

def test_publish_makes_the_path_a_link_keeps_one_previous_version_and_upgrades_a_plain_dir(svd, tmp_path):
    dest = tmp_path / "models" / "m"
    variant(svd, dest, "plain")  # a plain directory, as an older edgerec or a copy leaves it
    for tag in ("one", "two", "three"):
        publish(variant(svd, tmp_path / tag, tag), dest)
        assert dest.is_symlink() and created(dest) == tag
    names = versions(dest)
    assert len(names) == bundles.KEEP_VERSIONS and all(".m.v-" in n for n in names)
    previous = bundles.Bundle.open(dest.parent / names[0])
    assert previous.manifest["created_at"] == "two"
    assert (dest.stat().st_mode & 0o044) == (0o777 & ~_umask() & 0o044)  # readable as the umask says


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def test_open_repairs_a_path_left_missing_by_a_crash(svd, tmp_path):
    """The old publish's window (old renamed aside, new not yet in) and the upgrade's."""
    dest = tmp_path / "m"
    publish(variant(svd, tmp_path / "a", "a"), dest)
    target = dest.resolve()
    dest.unlink()  # died after setting the plain directory aside
    assert created(dest) == "a" and dest.is_symlink() and dest.resolve() == target
    shutil.rmtree(target)
    dest.unlink()
    legacy = variant(svd, tmp_path / ".m.old-123-456", "legacy")  # an older edgerec's leftover
    assert legacy.exists() and created(dest) == "legacy"


def test_leftovers_of_dead_publishers_are_removed(svd, tmp_path):
    dest = tmp_path / "m"
    publish(variant(svd, tmp_path / "a", "a"), dest)
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True).stdout.strip()
    for name in (f".m.tmp-1-{dead}", f".m.trash-2-{dead}"):
        (tmp_path / name).mkdir()
        (tmp_path / name / "x").write_text("half")
    os.symlink("nowhere", tmp_path / f".m.link-3-{dead}")
    publish(variant(svd, tmp_path / "b", "b"), dest)
    assert all(".v-" in n for n in versions(dest)), versions(dest)


def test_publish_without_symlinks_falls_back_to_renames(svd, tmp_path, monkeypatch):
    """What Windows without the symlink privilege gets: a plain directory, old kept aside."""
    def no_symlinks(*args, **kwargs):
        raise OSError("symbolic link privilege not held")

    monkeypatch.setattr(os, "symlink", no_symlinks)
    dest = tmp_path / "m"
    for tag in ("a", "b", "c"):
        publish(variant(svd, tmp_path / tag, tag), dest)
        assert dest.is_dir() and not dest.is_symlink() and created(dest) == tag
    kept = versions(dest)
    assert len(kept) == bundles.KEEP_VERSIONS - 1 and created(tmp_path / kept[0]) == "b"


# -- 2. the app never waits on another process's writer -------------------------------------------

HOLD_WRITE = """
import sqlite3, sys, time
conn = sqlite3.connect(sys.argv[1], isolation_level=None)
conn.execute("BEGIN IMMEDIATE")
conn.execute("INSERT INTO events (user_id, item_id, event, weight, ts) VALUES ('w', 'i0', 'x', 1, 5)")
print("locked", flush=True)
time.sleep(float(sys.argv[2]))
conn.execute("COMMIT")
"""


def hold_write_lock(store: Path, seconds: float) -> subprocess.Popen:
    proc = subprocess.Popen([sys.executable, "-c", HOLD_WRITE, str(store), str(seconds)],
                            stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "locked"
    return proc


def test_reads_go_on_while_another_process_holds_the_write_lock(svd, tmp_path):
    store = tmp_path / "s.db"
    shutil.copy(svd.store, store)
    with Recommender.open(svd.bundle, store) as rec:
        users = rec.store.user_ids()[:20]
        rec.recommend(users[0])
        writer = hold_write_lock(store, 3.0)
        started = time.monotonic()
        outcome = {}

        def record():
            try:
                outcome["new"] = rec.record(users[0], "i1", "purchase", ts=1.7e9)
            except StoreError as exc:
                outcome["error"] = exc
            outcome["seconds"] = time.monotonic() - started

        recorder = threading.Thread(target=record)
        recorder.start()
        time.sleep(0.2)  # the recorder is now waiting for the write lock
        latencies = []

        def serve(offset):
            for i in range(40):
                t0 = time.monotonic()
                assert len(rec.recommend(users[(offset + i) % len(users)], n=5)) == 5
                latencies.append(time.monotonic() - t0)
                time.sleep(0.02)

        readers = [threading.Thread(target=serve, args=(k,)) for k in range(3)]
        for t in readers:
            t.start()
        for t in readers:
            t.join()
        served_while_locked = time.monotonic() - started < 3.0
        recorder.join(30)
        writer.wait(30)
    assert served_while_locked and max(latencies) < 1.0, max(latencies)
    assert outcome.get("new") is True and outcome["seconds"] >= 2.5  # waited, then wrote


def test_own_write_fails_clearly_after_the_busy_timeout(tmp_path):
    path = tmp_path / "s.db"
    Store.open(path).add_events([("u", "i", "click", 1.0, 1.0)])
    writer = hold_write_lock(path, 3.0)
    store = Store.open(path, busy_timeout=0.5)
    t0 = time.monotonic()
    with pytest.raises(StoreError, match="write lock for over 0.5 s.*retry later"):
        store.add_events([("u", "j", "click", 1.0, 2.0)])
    assert time.monotonic() - t0 < 2.5
    assert store.history("u") == ["i"]  # reads still answer
    writer.wait(30)
    assert store.add_events([("u", "j", "click", 1.0, 2.0)]) == 1


# -- 3./4. NaN metadata and absurd timestamps ------------------------------------------------------

def test_nan_in_a_catalogue_file_is_a_malformed_row_and_filters_keep_working(svd, tmp_path):
    store = tmp_path / "s.db"
    shutil.copy(svd.store, store)
    items = tmp_path / "items.jsonl"
    items.write_text('{"item_id": "i1", "price": NaN, "category": "x"}\n'
                     '{"item_id": "i2", "price": Infinity}\n'
                     '{"item_id": "i3", "price": 3, "category": "x"}\n')
    report = ingest_items(Store.open(store), items)
    assert report.added == 1 and [n for n, _ in report.malformed] == [1, 2]
    assert "'price' holds NaN or infinity" in report.malformed[0][1]
    out = cli("recommend", store, svd.bundle, "u1", "--where", "category=x", "-n", "3")
    assert out.returncode == 0, out.stderr
    with pytest.raises(InputError, match=r"item 1: metadata field 'w' holds NaN"):
        Store.open(store).add_items([("a", None, {}), ("b", None, {"w": math.nan})])
    assert "a" not in Store.open(store).item_titles(["a"]) and not Store.open(store).matching_items({"w": 1})


@pytest.mark.parametrize("ts", ["1e300", "99999999999999999999", "9999-12-31", "-5", "nan"])
def test_absurd_timestamps_in_files_are_malformed_rows(tmp_path, ts):
    path = tmp_path / "events.csv"
    path.write_text(f"user_id,item_id,timestamp\nu1,i1,{ts}\nu1,i2,1700000000\n")
    store = Store.open(tmp_path / "s.db")
    report = ingest_events(store, path)
    assert report.added == 1 and report.malformed[0][0] == 2, report.summary()
    assert "timestamp" in report.malformed[0][1]
    assert store.summary()["last_ts"] == 1700000000


def test_absurd_timestamps_from_the_api_and_cli_are_refused(tmp_path):
    path = tmp_path / "s.db"
    store = Store.open(path)
    for ts in (1e300, 1.7e12, -1.0, math.inf):
        with pytest.raises(InputError, match=r"bad ts .*outside 1970-01-01..2100-01-01"):
            store.add_events([("u", "i", "click", 1.0, ts)])
    out = cli("record", path, "u", "i", "--ts", "1e300")
    assert out.returncode == 1 and out.stderr.count("\n") == 1 and "outside 1970" in out.stderr
    assert store.summary()["events"] == 0


# -- one validation layer -------------------------------------------------------------------------

@pytest.mark.parametrize("bad, field", [
    ((None, "i", "click"), "user_id .*not a string or an integer"),
    ((b"u", "i", "click"), "user_id .*not a string or an integer"),
    ((["u"], "i", "click"), "user_id .*not a string or an integer"),
    (("u", "", "click"), "item_id is empty"),
    (("u", "i\x00", "click"), "NUL"),
    (("u" * 300, "i", "click"), "at most 256"),
    (("u", "i", "click", "heavy"), "bad weight 'heavy'"),
    (("u", "i", "click", math.inf), "not finite"),
    (("u", "i", "click", 1e12), "not finite"),
    (("u", "i", "click", 1.0, "yesterday"), "ts must be seconds"),
    ({"user_id": "u", "item": "i"}, "not an event"),
    ("u,i", "must be a list of events"),
])
def test_record_many_names_the_row_and_field_and_writes_nothing(tmp_path, bad, field):
    store = Store.open(tmp_path / "s.db")
    events = bad if isinstance(bad, str) else [("ok", "i", "click", 1.0, 5.0), bad]
    with pytest.raises(InputError, match=field) as err:
        record_many(store, events)
    assert isinstance(bad, str) or str(err.value).startswith("event 1: ")
    assert store.summary()["events"] == 0


def test_ids_may_be_ints_and_come_back_as_strings(tmp_path):
    store = Store.open(tmp_path / "s.db")
    assert record_many(store, [(7, 42, "view", None, 5.0)]) == 1
    assert store.history("7") == ["42"]
    with pytest.raises(InputError, match="bad user_id True"):
        store.add_events([(True, "i", "click", 1.0, 5.0)])


def test_retiring_an_unknown_item_creates_no_phantom_row(tmp_path):
    store = Store.open(tmp_path / "s.db")
    store.add_events([("u", "i1", "click", 1.0, 5.0)])
    with pytest.raises(UnknownItemError, match="'typo'"):
        store.set_active(["i1", "typo"], False)
    assert store.summary()["catalogue_items"] == 0 and store.inactive_items() == set()
    assert store.set_active(["i1"], False) == 1 and store.inactive_items() == {"i1"}


def test_mixed_encodings_in_one_file_are_reported_not_garbled(tmp_path):
    path = tmp_path / "e.csv"
    path.write_bytes("user_id,item_id\nu1,caf\u00e9\n".encode() + "u2,na\u00efve\n".encode("latin-1"))
    store = Store.open(tmp_path / "s.db")
    report = ingest_events(store, path)
    assert report.added == 1 and "undecodable" in report.malformed[0][1]
    assert store.history("u1") == ["caf\u00e9"] and store.history("u2") == []


# -- bundles as untrusted input -------------------------------------------------------------------

def tampered(svd, tmp_path, change) -> Path:
    copy = tmp_path / "t"
    shutil.copytree(bundles.recover(svd.bundle), copy)
    manifest = json.loads((copy / "manifest.json").read_text())
    change(manifest)
    (copy / "manifest.json").write_text(json.dumps(manifest))
    return copy


def halve_items(m):
    m["dims"]["n_items"] //= 2
    m["item_ids"] = m["item_ids"][:m["dims"]["n_items"]]
    m.pop("item_vectors")


@pytest.mark.parametrize("change, message", [
    (lambda m: m.pop("dims"), "manifest lacks dims"),
    (lambda m: m.update(dims="big"), "dims must be a JSON object"),
    (lambda m: m["dims"].update(n_items=10**12), "n_items must be an integer"),
    (lambda m: m["dims"].update(n_items=m["dims"]["n_items"] - 1), "item_ids must be a list of"),
    (halve_items, "graph and the manifest do not belong together"),
    (lambda m: m["onnx"].update(file="../../etc/passwd"), "must name a file inside the bundle"),
    (lambda m: m["onnx"].update(sha256=5), "sha256 must be 64"),
    (lambda m: m["item_vectors"].update(shape=[3, 3]), "item_vectors.shape"),
    (lambda m: m["item_ids"].__setitem__(1, m["item_ids"][0]), "same id twice"),
    (lambda m: m.update(user_ids={"a": 1}), "user_ids must be a list"),
    (lambda m: m.clear(), "format version None"),
])
def test_tampered_manifests_are_one_bundle_error(svd, tmp_path, change, message):
    bad = tampered(svd, tmp_path, change)
    with pytest.raises(BundleError, match=message):
        Recommender.open(bad, svd.store)
    out = cli("check", bad)
    assert out.returncode == 1 and out.stderr.startswith("Error: ") and out.stderr.count("\n") == 1


def test_reload_refuses_a_bundle_that_cannot_serve_and_keeps_the_old_one(svd, tmp_path):
    live = tmp_path / "live"
    publish(svd.bundle, live)
    with Recommender.open(live, svd.store) as rec:
        before = rec.recommend("u1", n=5)
        wrong = tampered(svd, tmp_path, halve_items)
        with pytest.raises(BundleError, match="do not belong together"):
            publish(wrong, live)  # publish verifies too: nothing replaced
        assert created(live) == rec.bundle.manifest["created_at"]
        bundles.install_staged(wrong, live)  # forced in below the verification
        with pytest.raises(BundleError, match="do not belong together"):
            rec.reload()
        assert rec.recommend("u1", n=5) == before


def test_check_reports_sound_and_damaged_files(svd, tmp_path):
    out = cli("check", svd.bundle)
    assert out.returncode == 0 and "bundle ok" in out.stdout
    store = tmp_path / "s.db"
    shutil.copy(svd.store, store)
    out = cli("check", store, "--json")
    assert out.returncode == 0 and json.loads(out.stdout)["events"] > 0
    data = bytearray(store.read_bytes())
    data[4096 * 3:4096 * 6] = b"\xff" * (4096 * 3)  # a few pages overwritten
    store.write_bytes(bytes(data))
    out = cli("check", store)
    assert out.returncode == 1 and ("damaged" in out.stdout or "damaged" in out.stderr)


# -- store faults -----------------------------------------------------------------------------------

def test_store_faults_are_one_line_with_what_to_do(svd, tmp_path):
    path = tmp_path / "s.db"
    shutil.copy(svd.store, path)
    data = bytearray(path.read_bytes())
    data[4096 * 3:4096 * 6] = b"\xff" * (4096 * 3)  # a few pages overwritten
    path.write_bytes(bytes(data))
    out = cli("recommend", path, svd.bundle, "u1")
    assert out.returncode == 1 and out.stderr.count("\n") == 1 and "edgerec check" in out.stderr
    with pytest.raises(StoreError, match="damaged one: run `edgerec check"):
        Store.open(path, create=False).summary()
    (tmp_path / "ro").mkdir()
    ro = tmp_path / "ro" / "s.db"
    Store.open(ro).add_events([("u", "i", "click", 1.0, 1.0)])
    os.chmod(ro.parent, 0o555)
    os.chmod(ro, 0o444)
    try:
        if os.access(ro, os.W_OK):  # root ignores permissions: SQLite's own read-only mode
            conn = sqlite3.connect(f"file:{ro}?mode=ro", uri=True)
            with pytest.raises(sqlite3.OperationalError) as raw:
                conn.execute("DELETE FROM events")
            assert "read-only" in str(fault(raw.value, ro))
        else:
            with pytest.raises(StoreError, match="read-only"):
                Store.open(ro).add_events([("u", "j", "click", 1.0, 2.0)])
    finally:
        os.chmod(ro.parent, 0o755)


def test_a_full_disk_is_one_line_and_writes_nothing(tmp_path):
    store = Store.open(tmp_path / "s.db")
    store.add_events([("u", "i", "click", 1.0, 1.0)])
    pages = store._writer.execute("PRAGMA page_count").fetchone()[0]
    store._writer.execute(f"PRAGMA max_page_count = {pages + 2}")  # the disk as good as full
    with pytest.raises(StoreError, match="disk is full: free some space"):
        store.add_events([(f"u{k}", "i", "click", 1.0, 1.0) for k in range(5000)])
    assert store.summary()["events"] == 1


def test_many_processes_create_the_same_new_store_at_once(tmp_path):
    code = ("import sys; from edgerec.store import Store; "
            "s = Store.open(sys.argv[1]); s.add_events([(sys.argv[2], 'i', 'click', 1.0, 5.0)])")
    path = tmp_path / "new.db"
    procs = [subprocess.Popen([sys.executable, "-c", code, str(path), f"u{k}"],
                              stderr=subprocess.PIPE, text=True) for k in range(4)]
    errors = [p.communicate(timeout=120)[1] for p in procs]
    assert all(p.returncode == 0 for p in procs), errors
    assert Store.open(path).summary()["users"] == 4


def test_counting_options_are_bounded_in_every_entry_point(svd, tmp_path):
    with Recommender.open(svd.bundle, svd.store) as rec:
        item = rec.bundle.manifest["item_ids"][0]
        for call in (lambda: rec.recommend("u1", n=0), lambda: rec.recommend_many(["u1"], n=-1),
                     lambda: rec.recommend_many(["u1", "u2"], chunk_size=0),
                     lambda: rec.similar_items(item, n=0), lambda: rec.explain("u1", item, top=0),
                     lambda: rec.recommend("u1", n=True)):
            with pytest.raises(InputError, match="must be an integer from 1"):
                call()
        (tmp_path / "a-file").write_text("")
        with pytest.raises(InputError, match="cannot write there"):
            rec.batch(tmp_path / "a-file" / "dir.csv")


@pytest.mark.parametrize("user, message", [
    (None, "bad user_id None"), (b"u1", "bad user_id b'u1'"), (["u1"], "bad user_id"),
    ("", "user_id is empty"), ("a\x00b", "NUL"), ("\ud800", "user_id"), ("x" * 300, "at most 256")])
def test_requests_for_impossible_user_ids_are_one_input_error(svd, user, message):
    """None, bytes or a list used to become "None" (a popularity list for a user who cannot
    exist) and a lone surrogate a raw UnicodeEncodeError; ids follow the store's rule."""
    with Recommender.open(svd.bundle, svd.store) as rec:
        with pytest.raises(InputError, match=message):
            rec.recommend(user, n=3)
        with pytest.raises(InputError, match=r"user 1: .*" + message):
            rec.recommend_many(["u1", user], n=3)
        with pytest.raises(InputError, match=message):
            rec.explain(user, rec.bundle.item_ids[0])
        assert len(rec.recommend(1, n=3)) == 3  # integers stay ids, as in the store


def test_a_filter_key_with_nul_is_an_input_error(tmp_path):
    """It reached SQLite as a JSON path and came back as "SQLite failed (JSON path error)"."""
    store = Store.open(tmp_path / "s.db")
    store.add_items([("a", "A", {"x": 1})])
    with pytest.raises(InputError, match="bad metadata key"):
        store.matching_items({"x\x00": 1})
    assert store.matching_items({"x": 1}) == {"a"}
