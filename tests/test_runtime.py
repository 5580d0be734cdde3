"""The runtime as an embedding app uses it: fallback, providers, no TensorFlow needed.

On hand-built bundles (conftest ``svd``): no test here depends on a trained model.
"""

import json
import os
import shutil
import subprocess
import sys
import textwrap

import pytest

from edgerec import Recommender
from edgerec.errors import BundleError, ProviderError
from edgerec.session import Scorer

pytestmark = pytest.mark.runtime


def test_unknown_user_gets_popular_fallback(svd):
    with Recommender.open(svd.bundle, svd.store) as rec:
        recs = rec.recommend("never-seen-user", n=5)
        popular = rec.store.popular(5)
    assert recs.fallback
    assert [(r.item_id, r.score) for r in recs] == [(i, float(c)) for i, c in popular]


def test_unknown_user_with_history_falls_back_when_the_bundle_cannot_fold_in(svd_plain, tmp_path):
    """Bundles that read only the user index (factors computed elsewhere have no fold-in
    map): popularity, minus the seen."""
    from edgerec.store import Store

    store_path = tmp_path / "s.db"
    shutil.copy(svd_plain.store, store_path)
    with Recommender.open(svd_plain.bundle, store_path) as rec:
        assert not rec.bundle.folds_in
        top = [i for i, _ in rec.store.popular(2)]
        rec.store.add_events([("newcomer", top[0], "click", 1.0, 2e9)])
        recs = rec.recommend("newcomer", n=3)
    assert recs.fallback and top[0] not in [r.item_id for r in recs]
    assert recs[0].item_id == top[1]
    Store.open(store_path).close()


def test_recommend_many_keeps_order_and_mixes_fallback(svd):
    with Recommender.open(svd.bundle, svd.store) as rec:
        known = rec.store.user_ids()[:3]
        results = rec.recommend_many([known[0], "ghost", known[1], known[2]], n=4, chunk_size=2)
        single = rec.recommend(known[1], n=4)
    assert [r.user_id for r in results] == [known[0], "ghost", known[1], known[2]]
    assert [r.fallback for r in results] == [False, True, False, False]
    assert list(results[2]) == list(single)


def test_batch_writes_csv_for_every_user(svd, tmp_path):
    out = tmp_path / "top.csv"
    with Recommender.open(svd.bundle, svd.store) as rec:
        rows = rec.batch(out, n=3, chunk_size=50)
        n_users = len(rec.store.user_ids())
    lines = out.read_text().splitlines()
    assert lines[0] == "user_id,rank,item_id,score"
    assert rows == len(lines) - 1 == 3 * n_users
    assert [line.split(",")[1] for line in lines[1:4]] == ["1", "2", "3"]


def test_cpu_chosen_quietly_without_cuda(svd):
    """On a machine without CUDA, auto picks the CPU and ONNX Runtime prints nothing."""
    code = textwrap.dedent(f"""
        from edgerec import Recommender
        rec = Recommender.open({str(svd.bundle)!r}, {str(svd.store)!r})
        print(rec.provider, rec.scorer.provider_note)
    """)
    env = {k: v for k, v in os.environ.items() if k != "EDGEREC_PROVIDER"}
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env)
    assert proc.returncode == 0, proc.stderr
    from edgerec.session import cuda_unusable_reason

    if cuda_unusable_reason() is None:
        pytest.skip("this machine has a usable CUDA device")
    assert proc.stdout.startswith("cpu ")
    assert proc.stderr == ""


def test_provider_override_and_env(svd, monkeypatch):
    monkeypatch.setenv("EDGEREC_PROVIDER", "cpu")
    assert Scorer(svd.bundle / "model.onnx").provider == "cpu"
    monkeypatch.setenv("EDGEREC_PROVIDER", "tpu")
    with pytest.raises(ProviderError, match="unknown provider 'tpu'"):
        Scorer(svd.bundle / "model.onnx")


def test_cuda_request_fails_clearly_without_cuda(svd):
    from edgerec.session import cuda_unusable_reason

    if cuda_unusable_reason() is None:
        pytest.skip("this machine has a usable CUDA device")
    with pytest.raises(ProviderError, match="CUDA execution provider requested but unusable"):
        Scorer(svd.bundle / "model.onnx", provider="cuda")


def test_runtime_works_without_tensorflow(svd):
    """An app without TensorFlow installed can import edgerec, open a bundle and recommend."""
    code = textwrap.dedent(f"""
        import sys
        class Block:
            def find_spec(self, name, path=None, target=None):
                if name.split(".")[0] in ("tensorflow", "tf2onnx", "keras", "onnx"):
                    raise ImportError("blocked: " + name)
        sys.meta_path.insert(0, Block())
        import json
        from edgerec import Recommender
        rec = Recommender.open({str(svd.bundle)!r}, {str(svd.store)!r})
        user = rec.store.user_ids()[0]
        recs = rec.recommend(user, n=5)
        print(json.dumps({{"n": len(recs), "fallback": recs.fallback,
                          "heavy": [m for m in sys.modules if m.split(".")[0] in
                                    ("tensorflow", "tf2onnx", "keras", "onnx")]}}))
    """)
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout) == {"n": 5, "fallback": False, "heavy": []}


def test_corrupted_bundle_is_rejected(svd, tmp_path):
    copy = tmp_path / "bundle"
    shutil.copytree(svd.bundle, copy)
    data = (copy / "model.onnx").read_bytes()
    (copy / "model.onnx").write_bytes(data[: len(data) // 2])
    with pytest.raises(BundleError, match="sha256 does not match"):
        Recommender.open(copy, svd.store)


def test_bundle_of_other_format_version_is_rejected(svd, tmp_path):
    copy = tmp_path / "bundle"
    shutil.copytree(svd.bundle, copy)
    manifest = json.loads((copy / "manifest.json").read_text())
    manifest["format_version"] = 999
    (copy / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(BundleError, match="format version 999"):
        Recommender.open(copy, svd.store)


@pytest.mark.parametrize("writer", ["same connection", "other connection"])
def test_new_events_are_excluded_at_once_despite_caching(svd, tmp_path, writer):
    from edgerec.store import Store

    store_path = tmp_path / "s.db"
    shutil.copy(svd.store, store_path)
    with Recommender.open(svd.bundle, store_path) as rec:
        user = rec.store.user_ids()[4]
        first = rec.recommend(user, n=3)
        assert rec.recommend(user, n=3) == first  # served from the cache
        other = rec.store if writer == "same connection" else Store.open(store_path)
        other.add_events([(user, first[0].item_id, "click", 1.0, 2e9)])
        after = rec.recommend(user, n=3)
        popular_before = rec.recommend("ghost", n=1)[0].item_id
        other.add_events([(f"fan{i}", "brand-new", "click", 1.0, 2e9) for i in range(500)])
        assert rec.recommend("ghost", n=1)[0].item_id == "brand-new" != popular_before
    assert first[0].item_id not in [r.item_id for r in after]
    assert [r.item_id for r in after][:2] == [r.item_id for r in first][1:]
