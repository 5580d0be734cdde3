"""Run by a fresh venv's python holding only the installed wheel (tests/test_shipping.py).

It uses edgerec as an app would: open a bundle over a store, serve a known user and a new
visitor, record the visitor's click, serve the visitor again; and it reports what it ran
on (which edgerec, which ONNX Runtime distribution, whether TensorFlow is importable) as
one JSON object, for the test to judge.

    python installed_smoke.py BUNDLE STORE KNOWN_USER
"""

import importlib.metadata as md
import importlib.util
import json
import sys

from edgerec import Recommender


def installed(name: str) -> bool:
    try:
        md.distribution(name)
        return True
    except md.PackageNotFoundError:
        return False


def main(bundle: str, store: str, known: str) -> dict:
    visitor = "smoke-visitor"
    with Recommender.open(bundle, store) as rec:
        known_list = rec.recommend(known, 10)
        before = rec.recommend(visitor, 10)
        clicked = before[0].item_id
        stored = rec.record(visitor, clicked, "click")
        after = rec.recommend(visitor, 10)
        provider = rec.provider
    return {
        "edgerec_file": importlib.util.find_spec("edgerec").origin,
        "tensorflow_importable": importlib.util.find_spec("tensorflow") is not None,
        "onnxruntime": installed("onnxruntime"), "onnxruntime_gpu": installed("onnxruntime-gpu"),
        "provider": provider, "clicked": clicked, "stored": stored,
        "known": known_list.to_dict(), "before": before.to_dict(), "after": after.to_dict(),
    }


if __name__ == "__main__":
    print(json.dumps(main(*sys.argv[1:4])))
