"""The hand-built bundles the runtime suite stands on (tests/bundles.py, conftest ``svd``):
served through the runtime's own path, they give exactly the numpy scores they were built
from, and they rank like a model, so the runtime tests on them mean something."""

from __future__ import annotations

import shutil

import numpy as np
import pytest

from conftest import genre_precision
from edgerec import Recommender
from edgerec.bundle import Bundle

pytestmark = pytest.mark.runtime

# Measured on the demo store (conftest DEMO): the share of top-10 items in each user's two
# favourite genres; the demo users pick 85% of their items there, a random list ~20%.
MEASURED_GENRE_PRECISION = {"svd": 0.892}


def served_against_reference(built, store, users: list[str]) -> None:
    """Every unseen item, best first, scored as the numpy reference scores it."""
    with Recommender.open(built.bundle, store, provider="cpu") as rec:
        for user in users:
            history = rec.store.history(user)
            got = rec.recommend(user, n=rec.bundle.n_items)
            assert not got.fallback, user
            want = built.scores(user, history)
            index = rec.bundle.item_index
            assert {i for i, _ in got} == set(index) - set(history), user
            scores = [s for _, s in got]
            assert scores == sorted(scores, reverse=True), user
            np.testing.assert_allclose(scores, [want[index[i]] for i, _ in got], atol=1e-5)


@pytest.mark.parametrize("name", ["svd", "svd_plain"])
def test_known_users_are_served_the_reference_scores(request, name):
    built = request.getfixturevalue(name)
    served_against_reference(built, built.store, built.user_ids[:8])


def test_visitors_are_folded_in_from_their_recent_history(svd, tmp_path):
    """Only the most recent ``history_length`` items count, duplicates and unknown items
    included in the history the store gives."""
    store = tmp_path / "s.db"
    shutil.copy(svd.store, store)
    long = svd.user_ids[:3]
    with Recommender.open(svd.bundle, store) as rec:
        donors = rec.store.histories(long)
        rec.record_many([("visitor", i, "click", None, 2e9 + t)
                         for t, i in enumerate(sum((donors[u] for u in long), []))])
        rec.record_many([("visitor", "not-in-the-model", "click", None, 3e9),
                         ("short", donors[long[0]][0], "click", None, 2e9)])
        assert len(rec.store.history("visitor")) > svd.history_length
    served_against_reference(svd, store, ["visitor", "short"])


def test_the_manifest_is_a_bundle_the_runtime_accepts(svd, svd_plain):
    folds = Bundle.open(svd.bundle)
    plain = Bundle.open(svd_plain.bundle)
    assert (folds.folds_in, plain.folds_in) == (True, False)
    assert (folds.history_length, plain.history_length) == (svd.history_length, 0)
    assert folds.manifest["training"]["data"]["last_ts"] is not None
    np.testing.assert_array_equal(folds.item_vectors(), svd.item_vectors)


def test_it_ranks_like_a_model(svd):
    got = genre_precision(svd.bundle, svd.store)
    assert got >= 0.9 * MEASURED_GENRE_PRECISION["svd"], got
