"""Export: parity is enforced, and a bundle is published whole or not at all."""

import json

import numpy as np
import pytest

from edgerec import bundle as bundles
from edgerec.errors import BundleError


def test_broken_graph_fails_parity_and_publishes_nothing(mf, tmp_path, monkeypatch):
    import tensorflow as tf

    from edgerec.exporters import ExportError, export_bundle
    from edgerec.exporters import onnx as exporter

    honest = exporter.network_function

    def skewed(net, known=False):  # a conversion that computes something slightly different
        inner = honest(net, known)

        @tf.function(input_signature=exporter.NETWORK_SIGNATURE)
        def network(users, history):
            return {name: value * 1.01 for name, value in inner(users, history).items()}

        return network

    monkeypatch.setattr(exporter, "network_function", skewed)
    out = tmp_path / "bad"
    with pytest.raises(ExportError, match="parity check failed"):
        export_bundle(mf.result, out)
    assert list(tmp_path.iterdir()) == []  # no bundle, no temp directory left behind


@pytest.mark.runtime
def test_republish_replaces_bundle_atomically(svd, tmp_path):
    dest = tmp_path / "current"
    onnx_bytes = (svd.bundle / "model.onnx").read_bytes()
    manifest = json.loads((svd.bundle / "manifest.json").read_text())
    bundles.write(dest, onnx_bytes, {**manifest, "metrics": {"run": {"ndcg@10": 1.0}}})
    bundles.write(dest, onnx_bytes, {**manifest, "metrics": {"run": {"ndcg@10": 2.0}}})
    assert bundles.describe(dest)["metrics"]["run"]["ndcg@10"] == 2.0
    kept = sorted(p.name for p in tmp_path.iterdir() if p.name != "current")
    assert len(kept) == bundles.KEEP_VERSIONS and all(n.startswith(".current.v-") for n in kept)


@pytest.mark.runtime
def test_publish_refuses_an_incomplete_bundle(tmp_path):
    half = tmp_path / "half"
    half.mkdir()
    (half / "model.onnx").write_bytes(b"\x08\x07")
    with pytest.raises(BundleError, match="no manifest.json"):
        bundles.install_staged(half, tmp_path / "current")
    assert not (tmp_path / "current").exists()


def test_manifest_describes_the_model(mf):
    about = bundles.describe(mf.bundle)
    data = mf.result.data
    assert about["model_kind"] == "mf"
    assert about["dims"] == {"n_users": data.n_users, "n_items": data.n_items, "dim": 32,
                             "history_length": 50, "folds_in": True}
    assert about["onnx"]["inputs"] == ["users", "history", "exclude", "k"]
    assert about["onnx"]["outputs"] == ["top_items", "top_scores"]
    assert len(about["onnx"]["sha256"]) == 64
    assert about["training"]["data"]["interactions"] == len(data.users)
    manifest = json.loads((mf.bundle / "manifest.json").read_text())
    assert manifest["item_ids"] == data.item_ids.tolist()
    assert np.isfinite(about["metrics"]["holdout"]["ndcg@10"])


def test_exported_factors_give_the_obvious_answer(tmp_path):
    """Known answer: user u likes only axis u % 4, and larger items on an axis score higher."""
    from edgerec import Recommender
    from edgerec.exporters import export_factors
    from edgerec.store import Store

    dim, n_items = 4, 40
    users = np.eye(dim, dtype=np.float32)[np.arange(8) % dim]
    items = np.eye(dim, dtype=np.float32)[np.arange(n_items) % dim] * (1 + np.arange(n_items))[:, None]
    item_ids = [f"sku-{i}" for i in range(n_items)]
    bundle = export_factors(tmp_path / "b", users, items, user_ids=[f"user-{u}" for u in range(8)],
                            item_ids=item_ids)
    store = Store.open(tmp_path / "s.db")
    store.add_events([("user-1", "sku-37", "purchase", 1.0, 10.0)])  # the best one, already bought
    with Recommender.open(bundle, tmp_path / "s.db") as rec:
        recs = rec.recommend("user-1", n=3)
        other = rec.recommend("user-2", n=2)
    assert [r.item_id for r in recs] == ["sku-33", "sku-29", "sku-25"]
    assert [r.score for r in recs] == [34.0, 30.0, 26.0]
    assert [r.item_id for r in other] == ["sku-38", "sku-34"]
