"""`edgerec evaluate`: the split protocols, served-model metrics, the baseline and the CLI."""

import json
import math

import numpy as np
import pytest

from conftest import cli, no_learning_rules
from edgerec.demo import write_demo
from edgerec.store import Store

REPORT_KEYS = {"model", "protocol", "k", "metrics", "popularity", "train_seconds",
               "users_evaluated", "data", "params"}


@pytest.fixture(scope="module")
def small_demo(tmp_path_factory):
    path = tmp_path_factory.mktemp("evaluate") / "store.db"
    store = Store.open(path)
    write_demo(store, n_users=200, n_items=150, seed=5)
    store.close()
    return path


# NDCG@10 (HR@10 for the sampled protocol) of mf, 20 epochs, seed 0, on ``small_demo``,
# measured when the floors were set; a test keeps 90% of it.
MEASURED = {"temporal": 0.3687, "leave-one-out-sampled": 0.57, "new-users": 0.3632}


def test_temporal_mf_reaches_its_floor_and_writes_json(small_demo, tmp_path):
    from edgerec.pipelines import evaluate
    from edgerec.pipelines.evaluate import split
    from edgerec.trainer.data import load_interactions

    out = tmp_path / "res" / "mf.json"
    report = evaluate(small_demo, "mf", epochs=20, seed=0, out=out)
    assert set(report) == REPORT_KEYS
    saved = json.loads(out.read_text())
    assert set(saved) == REPORT_KEYS and saved["metrics"] == report["metrics"]
    assert saved["protocol"] == "temporal" and saved["k"] == 10
    # Every demo user has >= 5 events, so every one of them is a test user.
    assert report["users_evaluated"] == report["metrics"]["users"] == 200
    assert report["data"]["train_interactions"] + report["data"]["test_interactions"] == \
        report["data"]["interactions"]
    ndcg, pop = report["metrics"]["ndcg@10"], report["popularity"]["ndcg@10"]
    # What the served model reaches here, and what a rule that learns nothing reaches on
    # the same split (see conftest's quality floors).
    data = load_interactions(Store.open(small_demo, create=False))
    rules = no_learning_rules(small_demo, data, *split(data, "temporal"))
    assert pop == pytest.approx(rules["popularity_ndcg@10"], abs=1e-9)
    assert ndcg >= max(0.9 * MEASURED["temporal"], 0.85 * rules["ndcg@10"]), (ndcg, rules)


def _hand_store(path):
    """Four users whose split can be worked out by hand (dense order: alice, bob, carol, dave;
    items a..l then z)."""
    rows = [("alice", i, "rating", 1.0, float(t)) for i, t in zip("abcde", range(1, 6))]
    rows.append(("alice", "a", "click", 1.0, 7.0))  # same pair again: counts once, at ts 7
    rows += [("bob", i, "rating", 1.0, t) for i, t in zip("abcdef", [1.0, 2.0, 3.0, 10.0, 10.0, 10.0])]
    rows += [("carol", i, "rating", 1.0, float(t)) for i, t in zip("abgh", range(1, 5))]
    rows += [("dave", i, "rating", 1.0, float(t)) for i, t in zip("abcghijklz", range(1, 11))]
    store = Store.open(path)
    store.add_events(rows)
    store.close()


def test_protocols_on_a_hand_made_store(tmp_path):
    from edgerec.pipelines import evaluate
    from edgerec.pipelines.evaluate import split
    from edgerec.trainer.data import load_interactions, temporal_split, tie_break_key

    path = tmp_path / "hand.db"
    _hand_store(path)
    data = load_interactions(Store.open(path))

    def pairs(mask):
        return {(data.user_ids[u], data.item_ids[i]) for u, i in zip(data.users[mask], data.items[mask])}

    # bob's d, e, f share timestamp 10: the tie key (not the id) orders them.
    keys = dict(zip("def", tie_break_key(np.array([1, 1, 1]), np.array([3, 4, 5]))))
    bob_last_two = sorted("def", key=keys.get)[1:]
    assert set(bob_last_two) == {"d", "e"}  # id order would have picked e and f
    # alice: 5 pairs -> 1 test (a, re-seen at ts 7); bob: 6 -> 2; carol: 4 -> none; dave: 10 -> 2.
    expected = {("alice", "a"), ("dave", "l"), ("dave", "z")} | {("bob", i) for i in bob_last_two}
    train_mask, test_mask = split(data, "temporal")
    assert pairs(test_mask) == expected
    assert np.array_equal(test_mask, temporal_split(data, fraction=0.2, min_interactions=5)[1])
    assert np.array_equal(train_mask, ~test_mask)
    # Leave-one-out: the single latest pair of every user with >= 2 (bob's by the tie key).
    assert pairs(split(data, "leave-one-out-sampled")[1]) == {
        ("alice", "a"), ("bob", max("def", key=keys.get)), ("carol", "h"), ("dave", "z")}

    report = evaluate(path, "ease", k=3, reg=1.0)
    assert report["users_evaluated"] == 3
    d = report["data"]
    assert d["test_interactions"] == 5 and d["train_interactions"] == 25 - 5
    # l and z occur only in dave's test part: unknown to the model, still relevant.
    assert d["train_items"] == 11 and d["test_interactions_unknown_item"] == 2
    # Popularity (train users per item: b4 a3 c3 g2 h2 d1 e1 f1 i1 j1 k1; ties to the lower
    # index), seen items excluded: alice [a g h] hits a at 1; bob [g h d] hits d at 3 of
    # {d, e}; dave [d e f] can never hit l or z.
    pop = report["popularity"]
    bob_ndcg = (1 / math.log2(4)) / (1 + 1 / math.log2(3))
    assert pop["ndcg@3"] == pytest.approx((1 + bob_ndcg + 0) / 3)
    assert pop["recall@3"] == pytest.approx((1 + 0.5 + 0) / 3)
    assert pop["hr@3"] == pytest.approx(2 / 3)
    assert pop["map@3"] == pytest.approx((1 + (1 / 3) / 2 + 0) / 3)
    assert pop["coverage@3"] == pytest.approx(6 / 11)
    # The served model: EASE's closed form on the train part, worked out here in numpy.
    train = {"alice": "bcde", "bob": "abcf", "carol": "abgh", "dave": "abcghijk"}
    test = {"alice": "a", "bob": "".join(bob_last_two), "dave": "lz"}
    items = "abcdefghijk"
    x = np.array([[i in train[u] for i in items] for u in train], dtype=np.float64)
    p = np.linalg.inv(x.T @ x + 1.0 * np.eye(len(items)))
    b = -p / np.diag(p)[None, :]
    np.fill_diagonal(b, 0.0)
    ndcg = hr = recall = 0.0
    for row, user in enumerate(train):
        if user not in test:
            continue
        scores = x[row] @ b
        scores[x[row] > 0] = -np.inf
        top = [items[i] for i in np.lexsort((np.arange(len(items)), -scores))[:3]]
        hits = [i in test[user] for i in top]
        ideal = sum(1 / math.log2(r + 2) for r in range(min(3, len(test[user]))))
        ndcg += sum(h / math.log2(r + 2) for r, h in enumerate(hits)) / ideal
        hr += any(hits)
        recall += sum(hits) / min(3, len(test[user]))
    got = report["metrics"]
    assert got["users"] == 3
    assert (got["ndcg@3"], got["hr@3"], got["recall@3"]) == pytest.approx((ndcg / 3, hr / 3, recall / 3))
    assert hr > 0  # the check above compares something


def test_sampled_ranking_counts_ties_against_the_held_out_item():
    from edgerec.pipelines.evaluate import _sampled_metrics

    scores = np.array([[0.5, 0.5, 0.1, 0.9]], dtype=np.float32)
    candidates = [np.array([1, 0, 2, 3])]  # held-out item 1 ties with item 0, below item 3
    got = _sampled_metrics(scores, candidates, np.array([1]), k=2, n_items=4)
    assert got["hr@2"] == 0.0  # ranked third: after 3 and its tie 0
    got = _sampled_metrics(scores, candidates, np.array([1]), k=3, n_items=4)
    assert got["hr@3"] == 1.0 and got["ndcg@3"] == pytest.approx(0.5)
    # A held-out item unknown to the model (index >= n_items) ranks last.
    got = _sampled_metrics(scores, [np.array([7, 0, 2])], np.array([7]), k=2, n_items=4)
    assert got["hr@2"] == 0.0 and got["users"] == 1


def test_leave_one_out_sampled_beats_popularity(small_demo):
    from edgerec.pipelines import evaluate

    report = evaluate(small_demo, "mf", protocol="leave-one-out-sampled", epochs=20, seed=0)
    assert report["protocol"] == "leave-one-out-sampled"
    assert report["users_evaluated"] == report["data"]["test_interactions"] == 200
    hr, pop = report["metrics"]["hr@10"], report["popularity"]["hr@10"]
    assert hr >= 0.9 * MEASURED["leave-one-out-sampled"] and hr > 1.5 * pop, (hr, pop)
    assert 0.0 < report["metrics"]["ndcg@10"] <= hr
    assert report["params"]["split"]["negatives"] == 99


def test_cli_evaluate(small_demo, tmp_path):
    out = tmp_path / "eval.json"
    done = cli("evaluate", small_demo, "--model", "mf", "-k", "5", "--epochs", "3",
                   "--dim", "16", "--out", out)
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert any(line.startswith("mf ") for line in lines)
    assert any(line.startswith("popularity ") for line in lines)
    assert "ndcg@5" in done.stdout and f"results: {out}" in done.stdout
    saved = json.loads(out.read_text())
    assert set(saved) == REPORT_KEYS and saved["k"] == 5 and "ndcg@5" in saved["metrics"]
    assert saved["params"]["dim"] == 16

    bad = cli("evaluate", small_demo, "--protocol", "random-split")
    assert bad.returncode != 0
    assert bad.stderr.strip().startswith("Error: ") and len(bad.stderr.strip().splitlines()) == 1
    assert "unknown protocol 'random-split'" in bad.stderr and "Traceback" not in bad.stderr


def test_new_users_protocol_serves_left_out_users_from_history(small_demo, tmp_path):
    """Users the model never trained on get fold-in lists that beat popularity."""
    from edgerec.pipelines import evaluate
    from edgerec.pipelines.evaluate import split
    from edgerec.trainer import load_interactions

    report = evaluate(small_demo, "mf", protocol="new-users", epochs=15, seed=0)
    assert report["protocol"] == "new-users" and report["users_evaluated"] == 20  # 10% of 200
    assert report["metrics"]["fallback_share"] == 0.0
    assert report["metrics"]["ndcg@10"] >= 0.9 * MEASURED["new-users"]
    data = load_interactions(Store.open(small_demo, create=False))
    train, test = split(data, "new-users", seed=0)
    left_out = np.unique(data.users[test])
    assert not np.isin(data.users[train], left_out).any()  # never trained on
    history = ~train & ~test
    assert set(np.unique(data.users[history])) == set(left_out)
    assert report["data"]["history_interactions"] == int(history.sum())
