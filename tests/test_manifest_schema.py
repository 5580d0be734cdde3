"""The manifest's JSON schema (``contract.MANIFEST_SCHEMA``) is what bundles hold and what
the runtime enforces: every model kind's exported manifest validates against it with the
``jsonschema`` package, and the runtime's own walker (``edgerec.manifest``) rejects what
``jsonschema`` rejects."""

import copy
import json
from pathlib import Path

import pytest

from edgerec import bundle as bundles
from edgerec import contract as C
from edgerec.errors import BundleError
from edgerec.manifest import check_manifest

jsonschema = pytest.importorskip("jsonschema")

DOC = Path(__file__).resolve().parent.parent / "docs" / "manifest.schema.json"


def _validator():
    jsonschema.Draft202012Validator.check_schema(C.MANIFEST_SCHEMA)
    return jsonschema.Draft202012Validator(C.MANIFEST_SCHEMA)


def _json(bundle_path) -> dict:
    directory = bundles.recover(Path(bundle_path))
    return json.loads((directory / C.MANIFEST_FILE).read_text(encoding="utf-8"))


def test_every_kinds_manifest_fits_the_schema(trained):
    raw = _json(trained.bundle)
    errors = [e.message for e in _validator().iter_errors(raw)]
    assert not errors, f"{trained.kind}: {errors[:3]}"
    manifest = check_manifest(raw, Path("manifest.json"))
    assert manifest.version == C.FORMAT_VERSION and manifest.model_kind == raw["model_kind"]
    assert manifest.trained_until == raw["training"]["data"]["last_ts"]
    assert manifest.dims.n_items == len(manifest.item_ids) == raw["dims"]["n_items"]
    assert manifest.has_vectors == ("item_vectors" in raw)
    assert dict(manifest) == raw  # the JSON view is the file, unchanged


def test_docs_copy_of_the_schema_is_current():
    assert json.loads(DOC.read_text(encoding="utf-8")) == json.loads(json.dumps(C.MANIFEST_SCHEMA))


def _bad_manifests(raw):
    def drop(key):
        return lambda m: m.pop(key)

    def set_(path, value):
        def change(m):
            *outer, last = path
            for key in outer:
                m = m[key]
            m[last] = value
        return change

    return {
        "no dims": drop("dims"), "no onnx": drop("onnx"), "no item_ids": drop("item_ids"),
        "dims not an object": set_(["dims"], "big"),
        "n_items too large": set_(["dims", "n_items"], 10**12),
        "n_items a bool": set_(["dims", "n_items"], True),
        "dim negative": set_(["dims", "dim"], -1),
        "folds_in a string": set_(["dims", "folds_in"], "yes"),
        "file escapes": set_(["onnx", "file"], "../model.onnx"),
        "file is ..": set_(["onnx", "file"], ".."),
        "sha256 short": set_(["onnx", "sha256"], "abc"),
        "sha256 a number": set_(["onnx", "sha256"], 5),
        "ids a dict": set_(["user_ids"], {"a": 1}),
        "id empty": set_(["item_ids", 0], ""),
        "id with NUL": set_(["item_ids", 0], "a\x00b"),
        "id twice": set_(["item_ids", 1], raw["item_ids"][0]),
        "kind a number": set_(["model_kind"], 3),
        "last_ts text": set_(["training", "data", "last_ts"], "yesterday"),
        "metrics a list": set_(["metrics"], []),
        "format version": set_(["format_version"], 2),
    }


def test_the_runtime_rejects_what_jsonschema_rejects(mf):
    raw = _json(mf.bundle)
    validator = _validator()
    for name, change in _bad_manifests(raw).items():
        bad = copy.deepcopy(raw)
        change(bad)
        assert not validator.is_valid(bad), f"{name}: the schema lets it through"
        with pytest.raises(BundleError, match="manifest.json: "):
            check_manifest(bad, Path("manifest.json"))
