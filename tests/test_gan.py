"""The gan kind (CFGAN): quality on the fixture, what the exported generator reads, its size.

The trained bundle comes from conftest's ``train_once`` (shared with the behaviour suite
in test_models.py, which checks parity, serving, fold-in and repeatability for every kind).
"""

import numpy as np
import pytest

from edgerec.errors import InputError


@pytest.fixture(scope="module")
def gan(train_once):
    return train_once("gan")


def test_gan_beats_popularity_by_a_clear_margin(gan):
    # Measured on this fixture: 2.25x popularity's holdout NDCG@10 (0.301 vs 0.134, seeds 3 and 11).
    metrics = gan.result.metrics
    assert metrics["holdout"]["ndcg@10"] > 1.5 * metrics["popularity"]["ndcg@10"]


def test_exported_generator_reads_only_the_history(gan):
    """Same history, any user index (or none): the same list, from the ONNX core."""
    from edgerec import contract as C
    from edgerec.session import Scorer

    data, net = gan.result.data, gan.result.model
    history = data.recent_items(np.array([4, 4, 9]), net.history_length)
    exclude = np.full((3, 1), data.n_items, np.int64)
    scorer = Scorer((gan.bundle / C.MODEL_FILE).read_bytes(), provider="cpu")
    items, scores = scorer.top_k(np.array([4, C.UNKNOWN_USER, 4]), history, exclude, 10)
    np.testing.assert_array_equal(items[0], items[1])
    np.testing.assert_allclose(scores[0], scores[1], rtol=1e-6)
    assert not np.array_equal(items[0], items[2])  # a different history, a different list


def test_an_item_repeated_in_the_history_counts_once(gan):
    """Training sees each purchase once; a request whose history repeats an item (events,
    not pairs) must score as if it appeared once, in Keras and in the exported core."""
    from edgerec import contract as C
    from edgerec.session import Scorer
    from edgerec.trainer.validation import score_users

    data, net = gan.result.data, gan.result.model
    items = data.items_by_user()[2][:6].tolist()
    pad = data.n_items
    once = np.array([items + [pad] * 6])
    twice = np.array([items[:3] + items[:3] + items[3:] + [pad] * 3])
    np.testing.assert_allclose(score_users(net, np.array([0]), twice),
                               score_users(net, np.array([0]), once), rtol=1e-5, atol=1e-6)
    scorer = Scorer((gan.bundle / C.MODEL_FILE).read_bytes(), provider="cpu")
    exclude = np.full((2, 1), pad, np.int64)
    got, scores = scorer.top_k(np.array([-1, -1]), np.vstack([once, twice]), exclude, 10)
    np.testing.assert_array_equal(got[0], got[1])
    np.testing.assert_allclose(scores[0], scores[1], rtol=1e-5, atol=1e-6)


def test_bundle_grows_with_items_times_hidden_not_items_squared(gan):
    import onnx
    from onnx import numpy_helper

    from edgerec.trainer.gan import auto_hidden

    n_items, hidden = gan.result.data.n_items, gan.result.model.dim
    model = onnx.load(str(gan.bundle / "model.onnx"))
    largest = max(numpy_helper.to_array(w).size for w in model.graph.initializer)
    assert largest <= (n_items + 1) * hidden < n_items * n_items
    for items in (1_682, 24_000, 100_000):  # generator tables + item vectors, float32
        assert 3 * items * auto_hidden(items) * 4 < 50e6


@pytest.mark.parametrize("params, message", [
    ({"zr_ratio": 1.5}, "zr_ratio and pm_ratio in"),
    ({"hidden": -1}, "hidden >= 0"),
    ({"zr_weight": -0.1}, "zr_weight >= 0"),
])
def test_bad_settings_are_refused_before_training(demo_store, params, message):
    from edgerec.trainer import fit

    with pytest.raises(InputError, match=message):
        fit(demo_store, "gan", epochs=1, **params)


def test_steps_a_pass_stay_bounded_as_the_users_grow():
    """Each step pays a dense update of the [items x hidden] tables, so a pass over many
    users takes bigger batches, not more steps; a small data set keeps the paper's batches."""
    from edgerec.trainer.gan import CollaborativeGAN

    params = CollaborativeGAN.defaults
    assert CollaborativeGAN.batching(943, params) == (32, 30, 1)  # per-user samples
    for users in (30_000, 100_000):
        size, steps, share = CollaborativeGAN.batching(users, params)
        assert steps <= params["max_steps"] and size * steps >= users
        assert size % share == 0 and size // share <= params["batch_size"]
    fixed = {**params, "hidden": 64}  # the automatic width shrinks as the catalogue grows
    shop, larger = (CollaborativeGAN.epoch_seconds(30_000, items, 290_000, fixed)
                    for items in (24_000, 96_000))
    assert 2 * shop < larger  # the dense tables grow with the catalogue


def test_shared_samples_train_too(demo_store):
    """Users sharing sampled items (as in a grown batch) still learn; a batch that
    ``sample_share`` does not divide is rounded up to whole groups."""
    from edgerec.trainer import fit

    result = fit(demo_store, "gan", epochs=1, refit=False, sample_share=4, batch_size=50)
    assert result.params["sample_share"] == 4 and result.metrics["holdout"]["ndcg@10"] > 0
