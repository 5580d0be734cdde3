"""The latency work changes how answers are computed, never what they are: cached inputs
for repeat requests, batches scored in parallel chunks, float16-stored weights."""

import json
import shutil
from contextlib import closing

import numpy as np
import pytest

from edgerec import Recommender
from edgerec.demo import GENRES
from edgerec.errors import InputError


@pytest.fixture
def store_copy(svd, tmp_path):
    path = tmp_path / "store.db"
    shutil.copy(svd.store, path)
    return path


def _lists(results):
    return [(r.user_id, r.fallback, [(i, s) for i, s in r]) for r in results]


@pytest.mark.runtime
def test_batch_equals_single_requests(svd, store_copy):
    """Parallel chunks (and a retired item) give exactly the lists of one request at a time."""
    with Recommender.open(svd.bundle, store_copy) as rec:
        users = rec.store.user_ids()[:50] + ["ghost"] + rec.store.user_ids()[50:90]
        rec.retire([rec.recommend(users[0], n=1)[0].item_id])
        single = [rec.recommend(u, n=7) for u in users]
        batched = rec.recommend_many(users, n=7, chunk_size=8)
        assert _lists(batched) == _lists(single)
        genre = {"category": GENRES[1]}
        assert _lists(rec.recommend_many(users, n=7, chunk_size=8, where=genre)) == \
            _lists([rec.recommend(u, n=7, where=genre) for u in users])


@pytest.mark.runtime
def test_batch_csv_matches_recommend_many(svd, store_copy, tmp_path):
    with Recommender.open(svd.bundle, store_copy) as rec:
        users = rec.store.user_ids()
        done = []
        rows = rec.batch(tmp_path / "top.csv", n=3, chunk_size=16, progress=done.append)
        expected = [[r.user_id, str(rank), item] for r in rec.recommend_many(users, n=3)
                    for rank, (item, _) in enumerate(r, 1)]
    lines = (tmp_path / "top.csv").read_text().splitlines()[1:]
    assert rows == len(lines) and [line.split(",")[:3] for line in lines] == expected
    assert sum(done) == len(users) and len(done) == -(-len(users) // 16)


@pytest.mark.runtime
def test_a_failing_chunk_raises_in_the_caller(svd):
    with Recommender.open(svd.bundle, svd.store) as rec, pytest.raises(InputError, match="n must be"):
        rec.recommend_many(rec.store.user_ids(), n=0, chunk_size=8)


@pytest.mark.runtime
def test_repeat_request_uses_inputs_of_the_current_store(svd, store_copy):
    """Cached inputs last one store version: a retirement or a new event shows at once."""
    with Recommender.open(svd.bundle, store_copy) as rec:
        user = rec.store.user_ids()[3]
        first = rec.recommend(user, n=5)
        assert list(rec.recommend(user, n=5)) == list(first)
        rec.retire([first[0].item_id])
        after_retire = rec.recommend(user, n=5)
        assert first[0].item_id not in [r.item_id for r in after_retire]
        rec.record(user, after_retire[0].item_id, "click")
        assert after_retire[0].item_id not in [r.item_id for r in rec.recommend(user, n=5)]


def _mf_factors(mf):
    net, data = mf.result.model, mf.result.data
    return (net.user_embedding.embeddings.numpy(), net.item_embedding.embeddings.numpy(),
            data.user_ids.tolist(), data.item_ids.tolist(),
            net.user_bias.embeddings.numpy()[:, 0], net.item_bias.embeddings.numpy()[:, 0])


def test_float16_weights_export_and_serve(mf, tmp_path):
    from edgerec.exporters import export_factors

    users, items, user_ids, item_ids, user_bias, item_bias = _mf_factors(mf)
    paths = {dtype: export_factors(tmp_path / dtype, users, items, user_ids, item_ids, user_bias,
                                   item_bias, weights_dtype=dtype) for dtype in ("float32", "float16")}
    manifests = {d: json.loads((p / "manifest.json").read_text()) for d, p in paths.items()}
    assert manifests["float16"]["onnx"]["weights_dtype"] == "float16"
    sizes = {d: (p / "model.onnx").stat().st_size for d, p in paths.items()}
    assert sizes["float16"] < 0.6 * sizes["float32"]
    assert 0 < manifests["float16"]["onnx"]["parity"]["max_abs_diff"] < 1e-2
    overlap = []
    with Recommender.open(paths["float32"], mf.store) as full, \
            Recommender.open(paths["float16"], mf.store) as half:
        for user in full.store.user_ids()[:30]:
            a, b = full.recommend(user, n=10), half.recommend(user, n=10)
            assert not b.fallback and len(b) == 10
            overlap.append(len({r.item_id for r in a} & {r.item_id for r in b}))
            assert np.allclose([s for _, s in a], [s for _, s in b], atol=1e-2)
        keep = item_ids[:40]
        assert {r.item_id for r in half.recommend(user, n=5, include=keep)} <= set(keep)
    assert np.mean(overlap) >= 9


def test_unknown_weights_dtype_is_refused_before_training(mf, tmp_path):
    from edgerec.exporters import export_factors
    from edgerec.pipelines import train_bundle

    with pytest.raises(ValueError, match="weights_dtype"):
        train_bundle(mf.store, tmp_path / "b", weights_dtype="int8")
    users, items, *_ = _mf_factors(mf)
    with pytest.raises(ValueError, match="weights_dtype"):
        export_factors(tmp_path / "c", users, items, weights_dtype="bfloat16")


@pytest.mark.runtime
def test_cache_survives_writes_of_other_users(svd, store_copy, monkeypatch):
    """Another user's event, from this Recommender or another connection, keeps B cached;
    A's own event shows at once; a retirement rebuilds B's inputs but keeps B's history."""
    from edgerec.feedback import record
    from edgerec.store import Store

    def fresh(user):
        with Recommender.open(svd.bundle, store_copy) as other:
            return _lists([other.recommend(user, n=5)])

    with Recommender.open(svd.bundle, store_copy) as rec, \
            closing(Store.open(store_copy, create=False)) as second:
        a, b = rec.store.user_ids()[:2]
        read = []
        history = rec.store.history
        monkeypatch.setattr(rec.store, "history", lambda user: read.append(user) or history(user))
        rec.recommend(b, n=5)
        writers = [lambda item: rec.record(a, item, "click"), lambda item: record(second, a, item, "view")]
        for write in writers:
            seen = rec.recommend(a, n=1)[0].item_id
            read.clear()
            write(seen)
            assert b in rec._current(rec._served).histories
            assert _lists([rec.recommend(b, n=5)]) == fresh(b) and read == []
            assert seen not in [r.item_id for r in rec.recommend(a, n=5)] and read == [a]
        top = rec.recommend(b, n=1)[0].item_id
        rec.retire([top])
        after = rec.recommend(b, n=5)
        assert top not in [r.item_id for r in after] and read == [a]
        assert _lists([after]) == fresh(b)


@pytest.mark.runtime
def test_a_repeat_answer_is_a_list_of_its_own(svd, store_copy):
    """Repeat answers share their (immutable) result tuples, never the list: an app that
    edits a list it got changes nothing served later."""
    with Recommender.open(svd.bundle, store_copy) as rec:
        user = rec.store.user_ids()[2]
        first = rec.recommend(user, n=5)
        expected = [(i, s) for i, s in first]
        first.clear()
        first.fallback = True
        again = rec.recommend(user, n=5)
        assert [(i, s) for i, s in again] == expected and not again.fallback
        assert [(i, s) for i, s in rec.recommend(user, n=3)] == expected[:3]
        assert [r.item_id for r in rec.recommend_many([user], n=5)[0]] == [i for i, _ in expected]
