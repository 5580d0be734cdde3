"""Shared fixtures: small demo stores and one trained bundle per model kind.

Training is the slow part of the suite, so each model kind is trained once per session on
a small demo store and every behaviour test reuses it.
"""

from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

from edgerec.demo import write_demo
from edgerec.store import Store


DEMO = {"n_users": 300, "n_items": 200, "mean_events": 30, "seed": 7}


@dataclass
class Trained:
    kind: str
    store: Path
    bundle: Path
    result: object  # edgerec.trainer.FitResult


@pytest.fixture(scope="session")
def demo_store(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("demo") / "store.db"
    store = Store.open(path)
    write_demo(store, **DEMO)
    store.close()
    return path


def _model_kinds() -> list[str]:
    from edgerec.trainer import MODEL_KINDS

    return list(MODEL_KINDS)


@pytest.fixture(scope="session")
def train_once(demo_store, tmp_path_factory):
    """Train each model kind at most once per session, on the demo store."""
    from edgerec.exporters import train_bundle

    cache: dict[str, Trained] = {}

    def get(kind: str) -> Trained:
        if kind not in cache:
            out = tmp_path_factory.mktemp(f"bundle-{kind}") / kind
            path, result = train_bundle(demo_store, out, model=kind, epochs=20, seed=3)
            cache[kind] = Trained(kind, demo_store, path, result)
        return cache[kind]

    return get


@pytest.fixture(scope="session", params=_model_kinds())
def trained(request, train_once) -> Trained:
    """A bundle of each model kind: the shared behaviour suite runs once per kind."""
    return train_once(request.param)


@pytest.fixture(scope="session")
def mf(train_once) -> Trained:
    """The MF bundle, for runtime tests that need one bundle of any kind."""
    return train_once("mf")


def run_cli(*args: str, env: dict | None = None, cwd: Path | None = None) -> subprocess.CompletedProcess:
    """The installed ``edgerec`` command, as a user runs it."""
    exe = Path(sys.executable).with_name("edgerec")
    return subprocess.run([str(exe), *map(str, args)], capture_output=True, text=True,
                          env={**os.environ, **(env or {})}, cwd=cwd, timeout=600)
