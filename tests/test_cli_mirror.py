"""The CLI and the Python API take the same filters and names (issue 10): batch and
``Recommender.batch`` filter as ``recommend_many`` does, ``ab recommend`` takes
``Experiment.recommend``'s options, ``restore`` mirrors ``Recommender.restore``."""

import csv
import json
import sqlite3
from pathlib import Path

import pytest
from conftest import cli

from edgerec import Experiment, Recommender
from edgerec.errors import StoreError
from edgerec.store import Store


@pytest.fixture
def store_copy(mf, tmp_path) -> Path:
    path = tmp_path / "store.db"
    source, dest = sqlite3.connect(mf.store), sqlite3.connect(path)
    source.backup(dest)
    source.close()
    dest.close()
    return path


def _comedies(path) -> set[str]:
    with Store.open(path, create=False) as store:
        return store.matching_items({"category": "Comedy"})


def _csv_items(path) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    with open(path, newline="") as fh:
        for row in csv.DictReader(fh):
            out.setdefault(row["user_id"], []).append(row["item_id"])
    return out


def test_recommender_batch_filters_as_recommend_many(mf, store_copy, tmp_path):
    comedies = _comedies(store_copy)
    assert 10 < len(comedies) < 80  # a filter that removes most of the catalogue
    with Recommender.open(mf.bundle, store_copy, provider="cpu") as rec:
        users = rec.store.user_ids()[:30] + ["stranger"]
        rec.batch(tmp_path / "where.csv", n=5, users=users, where={"category": "Comedy"})
        expected = rec.recommend_many(users, n=5, where={"category": "Comedy"})
        got = _csv_items(tmp_path / "where.csv")
        assert got == {r.user_id: [i for i, _ in r] for r in expected}
        assert set().union(*got.values()) <= comedies
        never = [i for i, _ in expected[0]][:2]
        rec.batch(tmp_path / "exclude.csv", n=5, users=users, exclude=never,
                  include=sorted(comedies))
        got = _csv_items(tmp_path / "exclude.csv")
        assert got == {r.user_id: [i for i, _ in r] for r in rec.recommend_many(
            users, n=5, exclude=never, include=sorted(comedies))}
        assert not set(never) & set().union(*got.values())


def test_cli_batch_where_on_a_store_and_refused_on_parquet(mf, store_copy, tmp_path):
    out = tmp_path / "top.csv"
    done = cli("batch", store_copy, mf.bundle, "--out", out, "-n", "3", "--where",
                   "category=Comedy")
    assert done.returncode == 0, done.stderr
    got = _csv_items(out)
    assert len(got) > 100 and set().union(*got.values()) <= _comedies(store_copy)
    pytest.importorskip("pyarrow")
    histories = tmp_path / "h.parquet"
    assert cli("export-histories", store_copy, histories).returncode == 0
    refused = cli("batch", histories, mf.bundle, "--out", tmp_path / "p.csv", "--where",
                      "category=Comedy")
    assert refused.returncode == 1 and refused.stderr.count("\n") == 1
    assert "--where matches the catalogue of a store source" in refused.stderr


def test_ab_recommend_takes_the_experiments_filters(mf, train_once, store_copy, tmp_path):
    config = tmp_path / "exp.json"
    config.write_text(json.dumps({
        "name": "f", "variants": [
            {"name": "A", "bundle": str(mf.bundle), "share": 0.5},
            {"name": "B", "bundle": str(train_once("als").bundle), "share": 0.5,
             "options": {"diversity": 0.5}}]}))
    comedies = _comedies(store_copy)
    with Experiment.open(config, store_copy) as experiment:
        users = {experiment.variant_for(f"u{i}"): f"u{i}" for i in range(20)}
    out = cli("ab", "recommend", store_copy, config, users["A"], "-n", "4", "--where",
                  "category=Comedy", "--ts", "1234.5", "--json")
    assert out.returncode == 0, out.stderr
    served = json.loads(out.stdout)
    assert served["variant"] == "A" and len(served["items"]) == 4
    assert {r["item_id"] for r in served["items"]} <= comedies
    with Store.open(store_copy, create=False) as store:
        logged = store.read("SELECT ts FROM impressions WHERE request_id = ?", (served["request_id"],))
    assert [ts for (ts,) in logged] == [1234.5] * 4
    clash = cli("ab", "recommend", store_copy, config, users["B"], "--diversity", "0.1")
    assert clash.returncode == 1 and "sets diversity" in clash.stderr
    text = cli("ab", "recommend", store_copy, config, users["B"], "-n", "3", "--exclude",
                   served["items"][0]["item_id"])
    assert text.returncode == 0 and "variant B" in text.stdout and len(text.stdout.splitlines()) == 4


def test_restore_mirrors_recommender_restore(mf, store_copy):
    with Recommender.open(mf.bundle, store_copy, provider="cpu") as rec:
        item = rec.recommend(rec.store.user_ids()[0], n=1)[0].item_id
    assert cli("retire", store_copy, item).returncode == 0
    with Store.open(store_copy, create=False) as store:
        assert item in store.inactive_items()
    out = cli("restore", store_copy, item)
    assert out.returncode == 0 and out.stdout.strip() == f"{store_copy}: 1 item(s) restored"
    with Store.open(store_copy, create=False) as store:
        assert item not in store.inactive_items()
    assert cli("retire", store_copy, item, "--restore").stdout.strip().endswith("restored")


def test_a_closed_store_refuses_further_use(tmp_path):
    with Store.open(tmp_path / "s.db") as store:
        assert store.add_events([("u", "i", "click", 1.0, 1.0)]) == 1
    with pytest.raises(StoreError, match="closed database"):
        store.add_events([("u", "j", "click", 1.0, 1.0)])  # the with block closed it
