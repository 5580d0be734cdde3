"""The faster scoring cores of issue 15: the known-user core beside the full one, chosen per
call, and ease's gathered rows. Each must give the answers the full computation gives."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest

from edgerec import Recommender
from edgerec import bundle as bundles
from edgerec import contract as C
from edgerec.errors import BundleError


class Counting:
    """An ONNX Runtime session that counts its runs (which core answered a request)."""

    def __init__(self, session):
        self.session, self.calls = session, 0

    def run(self, *args):
        self.calls += 1
        return self.session.run(*args)

    def __getattr__(self, name):
        return getattr(self.session, name)


def _same(got, expected) -> None:
    assert [r.item_id for r in got] == [r.item_id for r in expected]
    np.testing.assert_allclose([r.score for r in got], [r.score for r in expected], rtol=1e-5)


@pytest.fixture
def two_bundles(demo_store, tmp_path):
    """The same hand-built model with and without the known-user core, over a store copy."""
    from bundles import build_bundle

    store = tmp_path / "store.db"
    shutil.copy(demo_store, store)
    return store, build_bundle(store, tmp_path / "fast", known_core=True), build_bundle(store, tmp_path / "full")


@pytest.mark.runtime
def test_known_users_get_the_known_core_and_the_rest_the_full_core(two_bundles):
    store, fast, full = two_bundles
    with Recommender.open(fast.bundle, store) as a, Recommender.open(full.bundle, store) as b:
        assert a.bundle.known_onnx_path.name == C.KNOWN_MODEL_FILE
        assert b.bundle.manifest.onnx_known is None and b.scorer.known_session is None
        a.scorer.session, a.scorer.known_session = Counting(a.scorer.session), Counting(a.scorer.known_session)
        known = fast.user_ids[:4]
        a.record("visitor-x", fast.item_ids[0])
        a.record("visitor-x", fast.item_ids[5])
        a.record(known[0], fast.item_ids[7])  # a known user's history changed since training
        for user in [*known, "visitor-x"]:
            _same(a.recommend(user, 10), b.recommend(user, 10))
        assert (a.scorer.known_session.calls, a.scorer.session.calls) == (4, 1)
        # the known core answers what the model says: the user's row, not the new events
        history = a.store.history(known[0])
        ranked = np.argsort(-fast.scores(known[0], history), kind="stable")
        seen = set(history)
        expected = [fast.item_ids[i] for i in ranked if fast.item_ids[i] not in seen][:10]
        assert [r.item_id for r in a.recommend(known[0], 10)] == expected
        # a batch with an unknown user goes to the full core, one with none to the known one
        before = a.scorer.session.calls
        for got, expected in zip(a.recommend_many([*known, "visitor-x"]), b.recommend_many([*known, "visitor-x"])):
            _same(got, expected)
        assert a.scorer.session.calls == before + 1
        for got, expected in zip(a.recommend_many(known), b.recommend_many(known)):
            _same(got, expected)
        assert a.scorer.session.calls == before + 1


@pytest.mark.runtime
def test_a_damaged_known_core_is_refused_on_open(two_bundles):
    store, fast, _ = two_bundles
    directory = bundles.recover(fast.bundle)
    manifest = json.loads((directory / C.MANIFEST_FILE).read_text())
    assert manifest[C.M_ONNX_KNOWN]["file"] == C.KNOWN_MODEL_FILE
    with open(directory / C.KNOWN_MODEL_FILE, "ab") as fh:
        fh.write(b"\0")
    with pytest.raises(BundleError, match=f"{C.KNOWN_MODEL_FILE}: sha256 does not match"):
        Recommender.open(fast.bundle, store)


def test_user_table_kinds_export_a_known_core_that_a_skew_fails(mf, tmp_path, monkeypatch):
    """mf's bundle carries the known-user core, parity-checked; a known core that computes
    something else is refused, and no bundle is published."""
    import onnx
    import tensorflow as tf

    from edgerec.exporters import ExportError, export_bundle
    from edgerec.exporters import onnx as exporter

    opened = bundles.Bundle.open(mf.bundle)
    assert opened.manifest[C.M_ONNX]["known_parity"]["users"] > 0
    full, known = (len(onnx.load(str(path)).graph.node) for path in (opened.onnx_path, opened.known_onnx_path))
    assert known < full
    honest = exporter.network_function

    def skewed(net, known=False):
        inner = honest(net, known)

        @tf.function(input_signature=exporter.NETWORK_SIGNATURE)
        def network(users, history):
            return {name: value * (1.01 if known else 1.0) for name, value in inner(users, history).items()}

        return network

    monkeypatch.setattr(exporter, "network_function", skewed)
    with pytest.raises(ExportError, match=r"parity check failed \(known-user core\)"):
        export_bundle(mf.result, tmp_path / "bad")
    assert list(tmp_path.iterdir()) == []


def test_ease_core_sums_rows_as_the_multi_hot_product_does(train_once):
    """ease's gathered-rows graph against the Keras multi-hot x B, with repeated items,
    padding and histories of several widths (the runtime trims the padding)."""
    from edgerec.exporters.onnx import to_onnx
    from edgerec.session import Scorer
    from edgerec.trainer.validation import score_users

    net = train_once("ease").result.model
    n = net.n_items
    rng = np.random.default_rng(0)
    history = rng.integers(0, n, (6, 12))
    history[:, 3] = history[:, 0]  # an item twice in each row: it counts once
    history[1, 5:] = n  # padding
    history[2, :] = n  # no history at all
    scorer = Scorer(to_onnx(net), provider="cpu")
    for width in (12, 7):  # 7: as the runtime sends it, padded only to the widest row
        padded = np.full_like(history, n)
        padded[:, :width] = history[:, :width]
        items, scores = scorer.top_k(np.full(6, -1), padded[:, :width], np.full((6, 1), n), n)
        got = np.take_along_axis(scores, np.argsort(items, axis=1), axis=1)
        np.testing.assert_allclose(got, score_users(net, np.full(6, -1), padded), rtol=1e-5, atol=1e-6)


def test_neumf_scores_every_item_as_its_pairwise_call_does(train_once):
    """neumf's catalogue-wide scoring (item-major tower, per-user tables in the known-user
    core) is a rearrangement of the trained pairwise model: the same score for every
    (user, item) pair, through ``score_all``, ``score_known`` and the exported cores."""
    import tensorflow as tf

    from edgerec.session import Scorer
    from edgerec.trainer.validation import score_users

    result = train_once("neumf").result
    net, data = result.model, result.data
    users = np.array([0, 3, 7])
    items = np.arange(net.n_items)
    pairwise = net((tf.constant(np.repeat(users, len(items))), tf.constant(np.tile(items, len(users)))))
    expected = pairwise.numpy().reshape(len(users), -1)
    history = data.recent_items(users, net.history_length)
    np.testing.assert_allclose(score_users(net, users, history), expected, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(net.score_known(tf.constant(users)).numpy(), expected, rtol=1e-5, atol=1e-6)
    bundle = bundles.Bundle.open(train_once("neumf").bundle)
    for core in (bundle.onnx_path, bundle.known_onnx_path):
        got_items, got = Scorer(core.read_bytes(), provider="cpu").top_k(
            users, history, np.full((3, 1), net.n_items), net.n_items)
        np.testing.assert_allclose(np.take_along_axis(got, np.argsort(got_items, 1), 1), expected,
                                   rtol=1e-5, atol=1e-5)
