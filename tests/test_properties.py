"""Property-based tests (hypothesis): whatever comes in, the outcome is success, rows
reported malformed, or one ``EdgerecError``; a refused write leaves the store unchanged;
what was stored reads back as it was given."""

from __future__ import annotations

import copy
import csv
import io
import json
import shutil
import tempfile
from contextlib import contextmanager
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

from edgerec import bundle as bundles
from edgerec import validate
from edgerec.errors import BundleError, EdgerecError, InputError
from edgerec.feedback import record_many
from edgerec.ingest import ingest_events, ingest_items
from edgerec.serving import load
from edgerec.store import Store, snapshots

pytestmark = pytest.mark.runtime

SETTINGS = settings(max_examples=30, deadline=None, derandomize=True,
                    suppress_health_check=[HealthCheck.function_scoped_fixture,
                                           HealthCheck.too_slow])


@contextmanager
def fresh_store():
    with tempfile.TemporaryDirectory() as tmp:
        store = Store.open(Path(tmp) / "s.db")
        store.add_events([("seed-user", "seed-item", "click", 1.0, 100.0)])
        try:
            yield store, Path(tmp)
        finally:
            store.close()


def contents(store: Store) -> tuple:
    events = snapshots.events_array(store)
    return (store.summary()["events"], tuple(events["user_id"]), tuple(events["item_id"]))


def stored_ok(store: Store) -> None:
    """Everything stored passes the validation layer and every read still works."""
    events = snapshots.events_array(store)
    for user, item, kind in zip(events["user_id"], events["item_id"], events["event"]):
        validate.identifier(user, "user"), validate.identifier(item, "item")
        validate.identifier(kind, "event")
    assert store.matching_items({"category": "x"}) is not None
    store.popular(5, half_life=86400.0)


def ingest_outcome(store: Store, path: Path, ingest) -> None:
    before = contents(store)
    try:
        report = ingest(store, path)
    except EdgerecError as exc:
        assert "\n" not in str(exc)
        assert contents(store) == before
    else:
        assert report.rows == report.added + report.duplicates + len(report.malformed)
    stored_ok(store)


# -- ingest of arbitrary files ---------------------------------------------------------------------

@SETTINGS
@given(data=st.binary(max_size=3000), name=st.sampled_from(["e.csv", "e.jsonl", "e.tsv", "u.data", "e"]))
def test_ingest_of_random_bytes(data, name):
    with fresh_store() as (store, tmp):
        (tmp / name).write_bytes(data)
        ingest_outcome(store, tmp / name, ingest_events)
        ingest_outcome(store, tmp / name, ingest_items)


HOSTILE = st.one_of(
    st.text(max_size=30),
    st.sampled_from(["nan", "NaN", "inf", "-inf", "1e300", "99999999999999999999", "9999-12-31",
                     "0", "-1", "", " ", "\x00", "a\x00b", "\ufffd", "1e-300", "x" * 400,
                     "2024-01-01T00:00:00Z", "1700000000000", "true", "None"]),
    st.integers().map(str), st.floats().map(repr))


@settings(SETTINGS, max_examples=15)
@given(rows=st.lists(st.lists(HOSTILE, min_size=2, max_size=5), max_size=20))
def test_ingest_of_hostile_csv_cells_round_trips_the_good_rows(rows):
    with fresh_store() as (store, tmp):
        text = io.StringIO()
        writer = csv.writer(text)
        writer.writerow(["user_id", "item_id", "timestamp", "weight", "event"])
        writer.writerows(rows)
        (tmp / "e.csv").write_text(text.getvalue(), encoding="utf-8", errors="surrogatepass")
        before = contents(store)
        try:
            report = ingest_events(store, tmp / "e.csv")
        except EdgerecError:
            assert contents(store) == before
            return
        stored_ok(store)
        good = {(r[0].strip(), r[1].strip()) for r in rows if len(r) == 5} if rows else set()
        users = set(snapshots.events_array(store)["user_id"]) - {"seed-user"}
        assert report.added == store.summary()["events"] - before[0]
        assert all(any(u == g[0] for g in good) for u in users)  # nothing stored was invented


JSON_VALUE = st.recursive(
    st.one_of(st.none(), st.booleans(), st.integers(), st.floats(), st.text(max_size=20)),
    lambda inner: st.one_of(st.lists(inner, max_size=3), st.dictionaries(st.text(max_size=5), inner, max_size=3)),
    max_leaves=6)


@SETTINGS
@given(records=st.lists(st.dictionaries(
    st.sampled_from(["user_id", "item_id", "ts", "weight", "event", "title", "price", "categories"]),
    JSON_VALUE, max_size=8), min_size=1, max_size=12))
def test_ingest_of_hostile_json_lines(records):
    with fresh_store() as (store, tmp):
        lines = "".join(json.dumps(r) + "\n" for r in records)  # NaN and Infinity as Python writes them
        (tmp / "e.jsonl").write_text(lines, encoding="utf-8", errors="surrogatepass")
        ingest_outcome(store, tmp / "e.jsonl", ingest_events)
        ingest_outcome(store, tmp / "e.jsonl", ingest_items)


# -- the Python API ----------------------------------------------------------------------------------

API_VALUE = st.one_of(
    st.none(), st.booleans(), st.integers(), st.floats(), st.text(max_size=12), st.binary(max_size=4),
    st.lists(st.integers(), max_size=2), st.just("x" * 300), st.just("a\x00"), st.just("\ud800"))


@SETTINGS
@given(events=st.lists(st.one_of(
    st.tuples(API_VALUE, API_VALUE),
    st.tuples(st.text(min_size=1, max_size=8), st.text(min_size=1, max_size=8),
              st.sampled_from(["view", "click", "purchase", "typo"]), API_VALUE, API_VALUE),
    st.dictionaries(st.sampled_from(["user_id", "item_id", "event", "weight", "ts", "bogus"]),
                    API_VALUE, max_size=5)), max_size=8))
def test_record_many_succeeds_whole_or_raises_input_error_and_writes_nothing(events):
    with fresh_store() as (store, _):
        before = contents(store)
        try:
            new = record_many(store, events)
        except InputError as exc:
            assert str(exc).startswith("event ") or "list of events" in str(exc)
            assert contents(store) == before
            return
        assert store.summary()["events"] == before[0] + new
        stored_ok(store)


@SETTINGS
@given(rows=st.lists(st.tuples(API_VALUE, API_VALUE, API_VALUE, API_VALUE, API_VALUE), max_size=6))
def test_add_events_round_trips_or_raises_input_error(rows):
    with fresh_store() as (store, _):
        before = contents(store)
        try:
            store.add_events(rows)
        except InputError:
            assert contents(store) == before
            return
        stored_ok(store)
        for user, item, *_ in rows:
            assert str(item) in store.history(str(user))


# -- manifests ---------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def bundle_copy(svd, tmp_path_factory):
    path = tmp_path_factory.mktemp("manifest-props") / "b"
    shutil.copytree(bundles.recover(svd.bundle), path)
    return path


def mutate(manifest: dict, draw) -> dict:
    out = copy.deepcopy(manifest)
    target = out
    keys = list(out)
    key = draw(st.sampled_from(keys))
    if isinstance(target[key], dict) and target[key] and draw(st.booleans()):
        target, key = target[key], draw(st.sampled_from(sorted(target[key])))
    if draw(st.booleans()):
        del target[key]
    else:
        target[key] = draw(JSON_VALUE)
    return out


@SETTINGS
@given(data=st.data())
def test_mutated_manifests_load_or_raise_one_bundle_error(bundle_copy, data):
    original = json.loads((bundle_copy / "manifest.json").read_text())
    try:
        (bundle_copy / "manifest.json").write_text(json.dumps(mutate(original, data.draw)))
        try:
            served = load(bundle_copy, "cpu", threads=1, verify_vectors=True)
        except BundleError as exc:
            assert "\n" not in str(exc)
        else:
            assert served.bundle.n_items == len(served.bundle.item_index)
    finally:
        (bundle_copy / "manifest.json").write_text(json.dumps(original))
