"""What keeps ``auto`` inside its budget on large catalogues: neighbour tables built until a
deadline, and a plan that prices a cached search as one build plus validations."""

import numpy as np

from test_defaults import shop_like


def test_a_time_limited_neighbour_build_stops_between_blocks_most_popular_first(monkeypatch):
    """A spent time limit: the tables hold one block of rows, those of the most popular
    items, the fit says it was cut (and skips the refit a whole build would need); without
    a limit every item that co-occurs with another gets its row."""
    from edgerec.trainer import fit, neighbourhood
    from edgerec.trainer.data import validation_split

    data = shop_like(300, 400, 10)
    monkeypatch.setattr(neighbourhood, "_BLOCK_CELLS", 20 * data.n_items)  # blocks <= 20 items
    lines = []
    cut = fit(data, "itemknn", forward=0.0, recency=1.0, time_limit=0.0, progress=lines.append)
    index, _, _ = cut.model.neighbour_tables()
    built = np.flatnonzero((index[:-1] < data.n_items).any(1))
    train_mask, _ = validation_split(data, "temporal", 0)
    counts = np.bincount(data.items[train_mask], minlength=data.n_items)
    assert 0 < len(built) <= 20
    assert counts[built].min() >= np.sort(counts)[-20]  # among the 20 most bought
    assert f"rows of the {len(built)} most popular of 400 items" in cut.params["cut_short"]
    assert cut.params["refit"] is False
    assert any("cut at the time limit" in line for line in lines)
    whole = fit(data, "itemknn", forward=0.0, recency=1.0, refit=False)
    assert "cut_short" not in whole.params
    assert (whole.model.neighbour_tables()[0][:-1] < data.n_items).any(1).sum() > 300


def test_sparse_ease_solves_stop_at_the_deadline_too():
    """sparse_ease's per-item solves (its slow part) stop between blocks as the tables do."""
    from edgerec.trainer.neighbourhood import binary_matrix
    from edgerec.trainer.sparse_ease import local_ease_columns

    x = binary_matrix(shop_like(300, 400, 10))
    columns, solved = local_ease_columns(x, 50, 50.0, deadline=0.0)  # long past
    assert solved == (1 << 12) // 50 < 400  # one block of targets
    assert set(np.unique(columns.tocoo().row)) <= set(range(solved))
    assert local_ease_columns(x, 50, 50.0)[1] == 400


def test_the_plan_prices_a_cached_search_as_its_builds_plus_one_validation_per_setting():
    """rp3beta's three recency values share one table: the plan counts one build and three
    validations, not three builds; itemknn builds one table per ``forward`` value, and
    validates each with every ``recency`` and ``taste``."""
    from edgerec.trainer import MODEL_KINDS
    from edgerec.trainer.train import plan_auto

    data = shop_like(3_000, 2_000, 20)
    plan = {entry["model"]: entry for entry in plan_auto(data)}
    shape = (data.n_users, data.n_items, len(data.users))
    for name in ("rp3beta", "itemknn"):
        kind = MODEL_KINDS[name]
        forwards = kind.search.get("forward", (kind.defaults.get("forward"),))
        builds = sum(kind.epoch_seconds(*shape, {**kind.defaults, "forward": f}) for f in forwards)
        checks = len(forwards) * sum(kind.validation_seconds(2_000, data.n_items,
                                                             {**kind.defaults, "recency": r,
                                                              "taste": t})
                                     for r in kind.search["recency"]
                                     for t in kind.search.get("taste", (0.0,)))
        assert np.isclose(plan[name]["estimate_s"], builds + checks), name
    # reading 200 history slots costs more than 8 (recency 0.3): validation is priced per setting
    knn = MODEL_KINDS["itemknn"]
    assert knn.validation_seconds(2_000, 2_000, {**knn.defaults, "recency": 1.0}) > \
        2 * knn.validation_seconds(2_000, 2_000, {**knn.defaults, "recency": 0.3})


def test_a_time_limited_fit_keeps_a_search_that_would_not_fit_whole(monkeypatch):
    """Unbounded, a search expected to take too long is dropped for the defaults; under a
    time limit (auto) it stays, since the limit stops it between settings. Values that
    share one trained model (``search_shared``: recency) are validations, not fits: with
    no time for a second fit, rp3beta (recency alone) still searches, itemknn (a table
    per ``forward``) does not."""
    from edgerec.trainer import defaults, fit, itemknn, neighbourhood

    monkeypatch.setattr(defaults, "SEARCH_SECONDS", 0.0)
    data = shop_like(300, 400, 10)
    assert "searched" not in fit(data, "itemknn", refit=False).params
    bounded = fit(data, "itemknn", refit=False, time_limit=60.0)
    assert bounded.params["searched"] == {name: list(values)
                                          for name, values in itemknn.ItemKNN.search.items()}
    recency = {"recency": list(neighbourhood.NeighbourModel.search["recency"])}
    assert fit(data, "rp3beta", refit=False).params["searched"] == recency


class _Clock:
    """A fake perf_counter that only training and validation advance."""

    def __init__(self):
        self.now = 0.0

    def __call__(self):
        return self.now


class _TimedNet:
    """A model whose epoch trains for ``train_s`` and validates for ``check_s`` seconds of
    ``clock``, and improves every epoch (so only a time limit stops it)."""

    def __init__(self, clock, train_s, check_s):
        self.clock, self.train_s, self.check_s, self.epochs = clock, train_s, check_s, 0

    def train_epoch(self, train, seed):
        self.clock.now += self.train_s
        self.epochs += 1
        return 0.0

    def validate(self, net):
        self.clock.now += self.check_s
        return {"ndcg@10": float(self.epochs)}

    def get_weights(self):
        return self.epochs

    def set_weights(self, weights):
        self.epochs = weights


def test_epochs_stop_early_enough_for_their_own_refit(monkeypatch):
    """With ``refit_by`` the loop stops before an epoch after which a refit of every epoch
    (a quarter more data, no validation) would end past it; the ML-100K case: seq won
    ``auto`` at 62 s of its 79 s limit with no time left for its refit."""
    from edgerec.trainer import train

    clock = _Clock()
    monkeypatch.setattr(train.time, "perf_counter", clock)
    net = _TimedNet(clock, train_s=1.0, check_s=0.5)
    best, log = train.run_epochs(net, None, 100, 0, train.quiet, validate=net.validate,
                                 metric="ndcg@10", patience=3, refit_by=20.0)
    # epoch e ends at 1.5 e; its refit takes 1.25 e: 7 epochs and their refit end at 19.25
    assert len(log) == best["epoch"] == 7
    assert clock.now + train.refit_seconds(log) <= 20.0 < \
        clock.now + 1.5 + train.refit_seconds(log + log[-1:])
    net, clock.now = _TimedNet(clock, 1.0, 0.5), 0.0
    assert len(train.run_epochs(net, None, 12, 0, train.quiet, validate=net.validate,
                                metric="ndcg@10", patience=3)[1]) == 12  # no limit: every epoch


def test_a_fit_with_no_time_for_its_refit_keeps_its_first_epoch():
    """``fit``'s ``refit_limit``: spent, training stops after one epoch (there is always one;
    patience 3 alone would run all three)."""
    from edgerec.trainer import fit

    result = fit(shop_like(200, 150, 8), "mf", epochs=3, refit=False, refit_limit=0.0)
    assert len(result.epochs) == result.params["trained_epochs"] == 1
