"""The JavaScript runtime (js/) against the Python one: same bundle, same store, same answers.

Node runs through the package's own CLI (``js/bin/edgerec-js.js``, a thin wrapper over
``js/src/node.js``) and the kiosk page in the system's Chromium, driven by playwright-core
(``js/test/kiosk-taps.mjs``), exactly as an app or a visitor would use them. ``make test``
installs the npm packages first (``npm ci`` in js/); without Node.js these tests skip,
and the browser test also skips where no Chromium is installed.
"""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
import subprocess
from pathlib import Path

import numpy as np
import pytest

from edgerec import Recommender, contract
from edgerec.bundle import Bundle
from edgerec.store import Store
from edgerec.web import CATALOGUE_FILE, export_web

from conftest import DEMO, cli

ROOT = Path(__file__).resolve().parents[1]
JS = ROOT / "js"
NODE = shutil.which("node")
CHROMIUM = next((p for p in ("/usr/bin/chromium", shutil.which("chromium")) if p and Path(p).is_file()), None)
N = 10
KNOWN_USERS = 200
VISITORS = 20
TOL = 1e-5

pytestmark = pytest.mark.skipif(
    NODE is None, reason="node not found: the JavaScript runtime (js/) is tested only where Node.js 20+ is installed")


@pytest.fixture(scope="module", autouse=True)
def npm_packages():
    if not (JS / "node_modules" / "onnxruntime-node").is_dir():
        pytest.fail("js/node_modules is not installed: run `make test`, which runs `npm ci` in js/ first")


def node(*args, check: bool = True) -> subprocess.CompletedProcess:
    proc = subprocess.run([NODE, *map(str, args)], capture_output=True, text=True, timeout=180, cwd=ROOT)
    if check:
        assert proc.returncode == 0, proc.stderr
    return proc


def edgerec_js(*args, check: bool = True) -> subprocess.CompletedProcess:
    return node(JS / "bin" / "edgerec-js.js", *args, check=check)


def json_lines(proc: subprocess.CompletedProcess) -> list[dict]:
    return [json.loads(line) for line in proc.stdout.splitlines()]


# -- data: a copy of the demo store with visitors the bundles never saw -------------------

@pytest.fixture(scope="module")
def parity_store(demo_store, tmp_path_factory) -> Path:
    """The demo store plus 20 visitors, odd histories and three retired popular items.

    Visitors' events include an item no model knows, a repeated item and an event without
    a timestamp, the cases where a history's order and contents are easiest to get wrong.
    """
    path = tmp_path_factory.mktemp("js-store") / "store.db"
    with sqlite3.connect(demo_store) as src, sqlite3.connect(path) as dst:
        src.backup(dst)
    store = Store.open(path)
    rng = np.random.default_rng(11)
    events = [(f"visitor{v}", f"i{j}", "click", 2.0, 1.9e9 + t)
              for v in range(VISITORS)
              for t, j in enumerate(rng.choice(DEMO["n_items"], size=int(rng.integers(2, 12)), replace=False))]
    events += [("visitor0", "i-unknown", "view", 1.0, 1.95e9), ("visitor1", "i3", "view", 1.0, None),
               ("visitor1", "i3", "purchase", 5.0, 1.95e9), ("u5", "i7", "view", 1.0, None)]
    store.add_events(events)
    popular = [item for item, _ in store.popular(6)]
    store.set_active(popular[1::2], False)
    store.close()
    return path


@pytest.fixture(scope="module")
def users(parity_store) -> list[str]:
    store = Store.open(parity_store, create=False)
    ids = store.user_ids()
    store.close()
    known = [u for u in ids if u.startswith("u")][:KNOWN_USERS]
    return known + [f"visitor{v}" for v in range(VISITORS)]


@pytest.fixture(scope="module")
def bundles(svd, svd_plain) -> dict[str, Path]:
    """A hand-built bundle that folds in unknown users and one that does not: the runtimes
    are compared, not models (the kiosk test below runs a trained, exported graph)."""
    return {"folds-in": svd.bundle, "plain": svd_plain.bundle}


def python_lists(bundle: Path, store: Path, users: list[str], **options) -> list[dict]:
    with Recommender.open(bundle, store, provider="cpu") as rec:
        return [rec.recommend(u, N, **options).to_dict() for u in users]


def assert_same(js: list[dict], py: list[dict]) -> None:
    assert len(js) == len(py)
    for mine, theirs in zip(js, py):
        assert mine["user_id"] == theirs["user_id"]
        assert mine["fallback"] == theirs["fallback"], mine["user_id"]
        assert [i["item_id"] for i in mine["items"]] == [i["item_id"] for i in theirs["items"]], mine["user_id"]
        np.testing.assert_allclose([i["score"] for i in mine["items"]],
                                   [i["score"] for i in theirs["items"]], rtol=0, atol=TOL)


# -- Node vs Python -----------------------------------------------------------------------

@pytest.mark.parametrize("kind, folds_in", [("folds-in", True), ("plain", False)])
@pytest.mark.runtime
def test_node_recommend_from_store_equals_python(bundles, parity_store, users, kind, folds_in):
    bundle = bundles[kind]
    assert Bundle.open(bundle).folds_in is folds_in
    js = json_lines(edgerec_js("recommend-store", parity_store, bundle, *users, "-n", N, "--json"))
    py = python_lists(bundle, parity_store, users)
    assert_same(js, py)
    visitors = [r for r in js if r["user_id"].startswith("visitor")]
    assert len(visitors) == VISITORS and all(r["fallback"] is not folds_in for r in visitors)
    retired = Store.open(parity_store, create=False).inactive_items()
    assert retired and not {i["item_id"] for r in js for i in r["items"]} & retired


@pytest.mark.runtime
def test_node_filters_equal_python(bundles, parity_store, users):
    """include/exclude, for scored users and fallback lists alike."""
    chosen = users[:5] + users[-5:]
    include = [f"i{j}" for j in range(0, DEMO["n_items"], 3)]
    exclude = [f"i{j}" for j in range(1, 40, 4)]
    for bundle in bundles.values():
        js = json_lines(edgerec_js("recommend-store", parity_store, bundle, *chosen, "-n", N, "--json",
                                   "--include", ",".join(include), "--exclude", ",".join(exclude)))
        assert_same(js, python_lists(bundle, parity_store, chosen, include=include, exclude=exclude))
        shown = {i["item_id"] for r in js for i in r["items"]}
        assert shown <= set(include) and not shown & set(exclude)


@pytest.mark.runtime
def test_node_errors_are_one_line(bundles, parity_store, tmp_path):
    missing = edgerec_js("recommend-store", tmp_path / "none.db", bundles["folds-in"], "u1", check=False)
    assert missing.returncode == 1 and missing.stderr.strip().endswith("store not found (create one with `edgerec ingest`)")
    broken = tmp_path / "broken"
    shutil.copytree(bundles["folds-in"], broken)
    model = broken / contract.MODEL_FILE
    model.write_bytes(model.read_bytes()[:-10])
    corrupt = edgerec_js("recommend-store", parity_store, broken, "u1", check=False)
    assert corrupt.returncode == 1 and "sha256 does not match" in corrupt.stderr
    assert len(corrupt.stderr.strip().splitlines()) == 1
    bad_n = edgerec_js("recommend-store", parity_store, bundles["folds-in"], "u1", "-n", "0", check=False)
    assert bad_n.returncode == 1 and "n must be at least 1" in bad_n.stderr


@pytest.mark.runtime
def test_js_contract_constants_match_python():
    exported = json.loads(node("--input-type=module", "-e",
                               "const m = await import('./js/src/contract.js'); console.log(JSON.stringify(m));").stdout)
    from edgerec import web

    assert len(exported) > 20
    for name, value in exported.items():
        module = web if name == "CATALOGUE_FILE" else contract
        expected = getattr(module, name)
        assert value == (list(expected) if isinstance(expected, tuple) else expected), name


@pytest.mark.runtime
def test_jsdoc_types_check():
    """The package's JSDoc types hold (TypeScript checks the plain .js files; nothing is built)."""
    proc = node(JS / "node_modules" / "typescript" / "bin" / "tsc", "-p", JS / "jsconfig.json", check=False)
    assert proc.returncode == 0, proc.stdout + proc.stderr


# -- the web export -----------------------------------------------------------------------

@pytest.mark.runtime
def test_export_web_serves_the_same_lists_from_files_alone(bundles, parity_store, tmp_path):
    """What a page gets (no store): the visitor's fallback and folded-in lists as Python's."""
    out = tmp_path / "web"
    proc = cli("export-web", bundles["folds-in"], out, "--store", parity_store)
    assert proc.returncode == 0, proc.stderr
    assert sorted(p.name for p in out.iterdir()) == sorted([contract.MODEL_FILE, contract.MANIFEST_FILE, CATALOGUE_FILE])
    assert Bundle.open(out).item_ids.tolist() == Bundle.open(bundles["folds-in"]).item_ids.tolist()
    catalogue = json.loads((out / CATALOGUE_FILE).read_text())
    store = Store.open(parity_store, create=False)
    assert set(catalogue["retired"]) == store.inactive_items()
    assert catalogue["titles"]["i3"] == store.item_titles(["i3"])["i3"]
    history = store.history("visitor4")
    store.close()
    py = python_lists(bundles["folds-in"], parity_store, ["nobody", "visitor4"])
    nobody = json.loads(edgerec_js("recommend", out, "--user", "nobody", "-n", N, "--json").stdout)
    visitor = json.loads(edgerec_js("recommend", out, "--user", "visitor4", "--history", ",".join(history),
                                    "-n", N, "--json").stdout)
    assert nobody["fallback"] and not visitor["fallback"]
    assert_same([nobody, visitor], py)


@pytest.mark.runtime
def test_export_web_refuses_a_broken_bundle_and_keeps_the_old_export(bundles, tmp_path):
    out = tmp_path / "web"
    export_web(bundles["plain"], out)
    assert json.loads((out / CATALOGUE_FILE).read_text()) == {"titles": {}, "popular": [], "retired": []}
    before = (out / contract.MODEL_FILE).read_bytes()
    proc = cli("export-web", tmp_path / "no-bundle", out)
    assert proc.returncode == 1 and proc.stderr.startswith("Error: ") and "bundle directory not found" in proc.stderr
    assert (out / contract.MODEL_FILE).read_bytes() == before


# -- the kiosk page in a browser ----------------------------------------------------------

@pytest.fixture
def kiosk(train_once, parity_store, tmp_path):
    """The kiosk page served from 127.0.0.1 over a web export of a kind that folds in."""
    bundle = train_once("mf").bundle
    web_dir = export_web(bundle, tmp_path / "web", parity_store)
    server = subprocess.Popen([NODE, JS / "examples" / "kiosk" / "serve.js", web_dir, "--port", "0"],
                              stdout=subprocess.PIPE, text=True, cwd=ROOT)
    try:
        line = server.stdout.readline()
        assert line.startswith("kiosk: http://127.0.0.1:"), line
        yield line.split(" ", 1)[1].strip(), bundle
    finally:
        server.terminate()
        server.wait(timeout=10)


@pytest.mark.skipif(CHROMIUM is None, reason="Chromium not found (Debian: apt-get install chromium): the kiosk "
                                             "page's browser test drives the system browser, never a downloaded one")
def test_kiosk_page_reranks_on_taps_like_python(kiosk, parity_store, tmp_path):
    url, bundle = kiosk
    shot = tmp_path / "kiosk.png"
    page = json.loads(node(JS / "test" / "kiosk-taps.mjs", url, "--taps", 3, "--screenshot", shot,
                           "--chromium", CHROMIUM).stdout)
    assert page["errors"] == [] and page["offsite"] == []
    before = [t["itemId"] for t in page["before"]]
    after = [t["itemId"] for t in page["after"]]
    assert len(page["taps"]) == 3 and page["history"] == page["taps"][::-1]
    assert after != before and not set(page["taps"]) & set(after)
    # Python, for a visitor with no history and then with the same three taps.
    store_copy = tmp_path / "store.db"
    with sqlite3.connect(parity_store) as src, sqlite3.connect(store_copy) as dst:
        src.backup(dst)
    with Recommender.open(bundle, store_copy, provider="cpu") as rec:
        first = rec.recommend("kiosk-visitor", len(before))
        for t, item in enumerate(page["taps"]):
            rec.record("kiosk-visitor", item, "click", ts=2.0e9 + t)
        then = rec.recommend("kiosk-visitor", len(after))
    assert first.fallback and before == [r.item_id for r in first]
    assert not then.fallback and after == [r.item_id for r in then]
    assert len(after) >= N
    np.testing.assert_allclose([t["score"] for t in page["after"]], [r.score for r in then], rtol=0, atol=TOL)
    assert shot.stat().st_size > 10_000
    if os.environ.get("EDGEREC_KIOSK_PNG"):  # `make kiosk-screenshot`: the README's picture
        shutil.copyfile(shot, os.environ["EDGEREC_KIOSK_PNG"])
