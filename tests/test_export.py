"""Export: parity is enforced, and a bundle is published whole or not at all."""

import json

import numpy as np
import pytest

from edgerec import bundle as bundles
from edgerec.errors import BundleError


def test_broken_graph_fails_parity_and_publishes_nothing(mf, tmp_path, monkeypatch):
    from edgerec.exporters import ExportError, export_bundle

    net = mf.result.model
    honest = type(net).score_all

    def skewed(self, users, history):  # what a wrong export would compute
        return honest(self, users, history) * 1.01

    monkeypatch.setattr(type(net), "score_all", skewed)
    out = tmp_path / "bad"
    with pytest.raises(ExportError, match="parity check failed"):
        export_bundle(mf.result, out)
    assert list(tmp_path.iterdir()) == []  # no bundle, no temp directory left behind


def test_republish_replaces_bundle_atomically(mf, tmp_path):
    dest = tmp_path / "current"
    onnx_bytes = (mf.bundle / "model.onnx").read_bytes()
    manifest = json.loads((mf.bundle / "manifest.json").read_text())
    bundles.write(dest, onnx_bytes, {**manifest, "metrics": {"run": {"ndcg@10": 1.0}}})
    bundles.write(dest, onnx_bytes, {**manifest, "metrics": {"run": {"ndcg@10": 2.0}}})
    assert bundles.describe(dest)["metrics"]["run"]["ndcg@10"] == 2.0
    assert sorted(p.name for p in tmp_path.iterdir()) == ["current"]


def test_publish_refuses_an_incomplete_bundle(tmp_path):
    half = tmp_path / "half"
    half.mkdir()
    (half / "model.onnx").write_bytes(b"\x08\x07")
    with pytest.raises(BundleError, match="no manifest.json"):
        bundles.publish(half, tmp_path / "current")
    assert not (tmp_path / "current").exists()


def test_manifest_describes_the_model(mf):
    about = bundles.describe(mf.bundle)
    data = mf.result.data
    assert about["model_kind"] == "mf"
    assert about["dims"] == {"n_users": data.n_users, "n_items": data.n_items, "dim": 64,
                             "history_length": 0}
    assert about["onnx"]["inputs"] == ["users", "history", "exclude", "k"]
    assert about["onnx"]["outputs"] == ["top_items", "top_scores"]
    assert len(about["onnx"]["sha256"]) == 64
    assert about["training"]["data"]["interactions"] == len(data.users)
    manifest = json.loads((mf.bundle / "manifest.json").read_text())
    assert manifest["item_ids"] == data.item_ids.tolist()
    assert np.isfinite(about["metrics"]["holdout"]["ndcg@10"])
