"""`edgerec evaluate --protocol random`: the item-stratified 75/25 split of Microsoft
Recommenders, every held-out interaction relevant, seen items excluded."""

import json

import numpy as np

from conftest import cli
from edgerec.demo import write_demo
from edgerec.store import Store


def _data(counts: list[int]):
    """Item i has counts[i] interactions, each from a different user."""
    from edgerec.trainer import Interactions

    items = np.repeat(np.arange(len(counts)), counts)
    users = np.concatenate([np.arange(c) for c in counts])
    return Interactions(np.array([f"u{u}" for u in range(max(counts))], dtype=object),
                        np.array([f"i{i}" for i in range(len(counts))], dtype=object),
                        users.astype(np.int64), items.astype(np.int64),
                        np.zeros(len(items)), {"interactions": len(items)})


def test_random_split_holds_out_a_quarter_of_each_item():
    from edgerec.pipelines.evaluate import split

    counts = [1, 2, 3, 4, 5, 8, 10, 40]
    data = _data(counts)
    train, test = split(data, "random", seed=0)
    assert (train ^ test).all()
    held = np.bincount(data.items[test], minlength=len(counts))
    # round(0.75 n) stays, half to even: 1->1, 2->2, 3->2, 4->3, 5->4, 8->6, 10->8, 40->30
    assert held.tolist() == [0, 0, 1, 1, 1, 2, 2, 10]
    again, _ = split(data, "random", seed=0)
    other, _ = split(data, "random", seed=1)
    assert (again == train).all() and not (other == train).all()


def test_validation_split_random_is_item_stratified_and_temporal_is_newest():
    from edgerec.errors import InputError
    from edgerec.trainer.data import validation_split

    data = _data([5, 10, 20])
    data.ts[:] = np.arange(len(data.items))  # user u's events: newest is their last item
    _, random_holdout = validation_split(data, "random", seed=0)
    assert np.bincount(data.items[random_holdout], minlength=3).tolist() == [1, 2, 4]
    _, temporal = validation_split(data, "temporal")
    assert not (temporal == random_holdout).all()
    try:
        validation_split(data, "sideways")
    except InputError as exc:
        assert "sideways" in str(exc) and "temporal, random" in str(exc)
    else:
        raise AssertionError("an unknown validation split was accepted")


def test_cli_random_protocol_beats_popularity(tmp_path):
    path = tmp_path / "store.db"
    store = Store.open(path)
    write_demo(store, n_users=200, n_items=150, seed=5)
    store.close()
    out = tmp_path / "random.json"
    done = cli("evaluate", path, "--model", "itemknn", "--protocol", "random", "--out", out)
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("random: 200 users")
    report = json.loads(out.read_text())
    assert report["params"]["split"] == {"fraction": 0.25, "stratified_by": "item", "seed": 0}
    # the model's own holdout was random too: a temporal one would tune it for another task
    assert report["params"]["validation"] == "random"
    data = report["data"]
    assert abs(data["test_interactions"] / data["interactions"] - 0.25) < 0.02
    assert report["metrics"]["ndcg@10"] > 1.3 * report["popularity"]["ndcg@10"]
