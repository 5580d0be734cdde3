"""Offline top-N on Ray Data and Spark from the same bundle: equal to ``recommend_many``.

One local Ray cluster (2 CPUs, small object store) and one Spark session (``local[2]``,
UI off) serve the whole test session. About 2,000 synthetic users: some the bundle knows,
many it does not (folded in from their history, or given popular items), a few with only
unknown items; the most popular items are retired.
"""

from __future__ import annotations

import re
import shutil
import sys
from contextlib import closing
from pathlib import Path

import pytest

pa = pytest.importorskip("pyarrow", reason="pyarrow (edgerec[arrow]) is not installed")
import pyarrow.parquet as pq  # noqa: E402

from edgerec import Recommender  # noqa: E402
from edgerec.batch import batch  # noqa: E402
from edgerec.demo import write_demo  # noqa: E402
from edgerec.errors import BundleError  # noqa: E402
from edgerec.histories import export_histories  # noqa: E402
from edgerec.store import Store  # noqa: E402

from conftest import cli, run_cli  # noqa: E402

README = Path(__file__).resolve().parents[1] / "README.md"
USERS = 2000
N = 10


# -- one Ray cluster and one Spark session for the whole test session -----------------------

@pytest.fixture(scope="session")
def ray_cluster():
    ray = pytest.importorskip("ray", reason="ray (edgerec[ray]) is not installed")
    ray.init(num_cpus=2, object_store_memory=96 * 1024 * 1024, include_dashboard=False,
             log_to_driver=False, configure_logging=False)
    ray.data.DataContext.get_current().enable_progress_bars = False
    yield ray
    ray.shutdown()


@pytest.fixture(scope="session")
def spark():
    if shutil.which("java") is None:
        pytest.skip("the Spark tests need Java (no `java` on PATH)")
    pytest.importorskip("pyspark", reason="pyspark (edgerec[spark]) is not installed")
    import os

    from pyspark.sql import SparkSession

    os.environ["PYSPARK_PYTHON"] = sys.executable
    session = (SparkSession.builder.master("local[2]").appName("edgerec-tests")
               .config("spark.ui.enabled", "false").config("spark.sql.shuffle.partitions", "2")
               .getOrCreate())
    session.sparkContext.setLogLevel("ERROR")
    yield session
    session.stop()


# -- data: a store of 2,000 users over the demo catalogue, two bundles ----------------------

@pytest.fixture(scope="module")
def big_store(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("distributed") / "store.db"
    store = Store.open(path)
    write_demo(store, n_users=USERS - 5, n_items=200, mean_events=25, seed=11)
    # Users with only items the models never saw: nothing to fold in.
    store.add_events([(f"stranger{k}", f"new-item{k}", "click", 1.0, 1.7e9) for k in range(5)])
    store.set_active([i for i, _ in store.popular(3)], False)  # the 3 most popular retire
    store.close()
    return path


@pytest.fixture(scope="module")
def bundles(svd, svd_plain) -> dict[str, Path]:
    """"folds-in": a hand-built bundle; "no-fold-in": the same without fold-in."""
    return {"folds-in": Path(svd.bundle), "no-fold-in": Path(svd_plain.bundle)}


@pytest.fixture(scope="module")
def expected(big_store, bundles) -> dict[str, dict]:
    """``Recommender.recommend_many`` for every user, per bundle: what every engine must give."""
    out = {}
    for name, bundle in bundles.items():
        with Recommender.open(bundle, big_store, provider="cpu") as rec:
            users = rec.store.user_ids()
            out[name] = {r.user_id: r for r in rec.recommend_many(users, n=N)}
    return out


@pytest.fixture(scope="module")
def histories(big_store, tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("hist") / "histories.parquet"
    export_histories(big_store, path)
    return path


def _read(out: Path) -> dict[str, dict]:
    table = pq.read_table(out)
    rows = table.to_pylist()
    users = [r["user_id"] for r in rows]
    assert len(users) == len(set(users)), "a user appears more than once"
    return {r["user_id"]: r for r in rows}


def _assert_same(got: dict[str, dict], want: dict, big_store: Path) -> None:
    assert set(got) == set(want)
    with closing(Store.open(big_store, create=False)) as store:
        retired = store.inactive_items()
        seen = store.histories(list(want))
    assert retired
    for user, recs in want.items():
        row = got[user]
        assert row["items"] == [r.item_id for r in recs], user
        assert row["scores"] == pytest.approx([r.score for r in recs], abs=1e-5), user
        assert row["fallback"] == recs.fallback, user
        assert not retired & set(row["items"]) and not set(seen[user]) & set(row["items"]), user


def _kinds(want: dict, bundle: Path, store: Path) -> dict[str, int]:
    """How many users of each kind the expected lists cover (so the test means something)."""
    with Recommender.open(bundle, store, provider="cpu") as rec:
        known = rec.bundle.user_index
    return {"known": sum(u in known for u in want),
            "folded": sum(u not in known and not r.fallback for u, r in want.items()),
            "fallback": sum(r.fallback for r in want.values())}


# -- equivalence ----------------------------------------------------------------------------

@pytest.fixture(scope="module")
def republished(tmp_path_factory) -> Path:
    """One bundle path that each model is published at in turn (for Spark's shipping)."""
    return tmp_path_factory.mktemp("republished") / "model"


@pytest.mark.parametrize("model", ["folds-in", "no-fold-in"])
def test_engines_equal_recommend_many(model, big_store, bundles, expected, histories,
                                      republished, ray_cluster, spark, tmp_path):
    """Spark reads the bundle from the zip archive shipped to its executors; both models
    are published at one path in turn, so the second run shows that a long-lived session
    serves the re-published bundle, not its first copy."""
    want = expected[model]
    kinds = _kinds(want, bundles[model], big_store)
    assert kinds["known"] > 100 and kinds["fallback"] >= 5
    assert (kinds["folded"] > 1000) == (model == "folds-in")
    shutil.rmtree(republished, ignore_errors=True)
    shutil.copytree(bundles[model], republished)
    runs = {"local": (big_store, "local", bundles[model]), "ray": (histories, "ray", bundles[model]),
            "spark": (big_store, "spark", republished)}
    for label, (source, engine, bundle) in runs.items():
        out = tmp_path / label
        about = batch(source, bundle, out, n=N, engine=engine, workers=2)
        assert about["users"] == USERS, label
        got = _read(out)
        _assert_same(got, want, big_store)
        assert {r["model"] for r in got.values()} == {_model_name(bundles[model])}
    shipped = {Path(a).name for a in spark.sparkContext.listArchives}
    assert f"edgerec-bundle-{_manifest_hash(republished)}.zip" in shipped, shipped


def _manifest_hash(bundle: Path) -> str:
    import hashlib

    return hashlib.sha256((bundle / "manifest.json").read_bytes()).hexdigest()[:16]


def _model_name(bundle: Path) -> str:
    import json

    manifest = json.loads((bundle / "manifest.json").read_text())
    return f"{manifest['model_kind']}:{manifest['onnx']['sha256'][:16]}"


# -- an existing Ray cluster, joined at its address -----------------------------------------

@pytest.fixture(scope="module")
def few_histories(histories, tmp_path_factory) -> Path:
    """The first 300 users' histories: cheap to score in a second process."""
    path = tmp_path_factory.mktemp("few") / "few.parquet"
    pq.write_table(pq.read_table(histories).slice(0, 300), path)
    return path


def test_cli_joins_the_ray_cluster_at_address(few_histories, bundles, expected, big_store,
                                              ray_cluster, tmp_path):
    """A second process (the CLI) runs its job on the test session's cluster, not a new one."""
    address = ray_cluster.get_runtime_context().gcs_address
    done = run_cli("batch", few_histories, bundles["folds-in"], "--out", tmp_path / "out",
                   "-n", str(N), "--engine", "ray", "--workers", "1", "--address", address)
    assert done.returncode == 0, done.stderr
    assert f"300 users (ray on {address}," in done.stdout
    got = _read(tmp_path / "out")
    assert len(got) == 300
    _assert_same(got, {u: expected["folds-in"][u] for u in got}, big_store)


# -- failure behaviour ----------------------------------------------------------------------

def test_ray_reruns_a_dead_worker_and_writes_every_user_once(big_store, bundles, expected,
                                                            histories, ray_cluster, tmp_path,
                                                            monkeypatch):
    marker = tmp_path / "died"
    monkeypatch.setenv("EDGEREC_TEST_FAIL_ONCE", str(marker))
    out = tmp_path / "out"
    about = batch(histories, bundles["folds-in"], out, n=N, engine="ray", workers=2)
    assert marker.exists(), "the hook did not kill a worker"
    assert about["users"] == USERS
    _assert_same(_read(out), expected["folds-in"], big_store)
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []


def test_rerun_overwrites_and_failed_run_keeps_the_old_output(big_store, bundles, tmp_path):
    out = tmp_path / "out"
    batch(big_store, bundles["folds-in"], out, n=3)
    batch(big_store, bundles["folds-in"], out, n=2)  # overwrites cleanly
    assert {len(r["items"]) for r in _read(out).values()} == {2}
    def interrupted(done, total):
        raise KeyboardInterrupt  # the job dies after its first chunk

    with pytest.raises(KeyboardInterrupt):
        batch(big_store, bundles["folds-in"], out, n=3, progress=interrupted)
    assert {len(r["items"]) for r in _read(out).values()} == {2}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]


# -- bad input: one clear line, before any work ---------------------------------------------

def test_bad_bundle_fails_before_any_work(big_store, bundles, tmp_path):
    broken = tmp_path / "broken"
    shutil.copytree(bundles["folds-in"], broken)
    (broken / "model.onnx").write_bytes(b"not a model")
    with pytest.raises(BundleError, match="sha256"):
        batch(big_store, broken, tmp_path / "out", engine="ray")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["broken"]
    result = cli("batch", big_store, tmp_path / "nowhere", "--out", tmp_path / "o", "--engine", "spark")
    assert result.returncode == 1
    assert result.stderr.strip().count("\n") == 0 and "bundle directory not found" in result.stderr


@pytest.mark.parametrize("schema, field", [
    (pa.schema([("user", pa.string()), ("history", pa.list_(pa.string()))]), "'user_id'"),
    (pa.schema([("user_id", pa.string()), ("history", pa.string())]), "'history' is string"),
    (pa.schema([("user_id", pa.int64()), ("history", pa.list_(pa.string()))]), "'user_id' is int64"),
])
def test_wrong_history_schema_fails_with_one_line(schema, field, bundles, tmp_path):
    path = tmp_path / "h.parquet"
    pq.write_table(pa.Table.from_pylist([], schema=schema), path)
    result = cli("batch", path, bundles["folds-in"], "--out", tmp_path / "out", "--engine", "ray")
    assert result.returncode == 1
    line = result.stderr.strip()
    assert "\n" not in line and str(path) in line and field in line, line
    assert not (tmp_path / "out").exists()


# -- the CLI, export-histories and the documented schemas -----------------------------------

def test_cli_export_then_local_batch_csv_and_parquet(big_store, bundles, expected, tmp_path):
    users = tmp_path / "users.txt"
    users.write_text("u5\nstranger1\nu1500\n")
    hist = tmp_path / "h.parquet"
    assert cli("export-histories", big_store, hist, "--users", users).returncode == 0
    assert pq.read_table(hist).column("user_id").to_pylist() == ["u5", "stranger1", "u1500"]
    done = cli("batch", hist, bundles["folds-in"], "--out", tmp_path / "res", "-n", str(N))
    assert done.returncode == 0, done.stderr
    got = _read(tmp_path / "res")
    assert got["u1500"]["items"] == [r.item_id for r in expected["folds-in"]["u1500"]]
    csv = cli("batch", big_store, bundles["folds-in"], "--out", tmp_path / "top.csv", "-n", "2")
    assert csv.returncode == 0, csv.stderr
    lines = (tmp_path / "top.csv").read_text().splitlines()
    assert lines[0] == "user_id,rank,item_id,score" and len(lines) == 1 + 2 * USERS


def test_export_since_keeps_only_recent_users_with_whole_histories(big_store, tmp_path):
    with closing(Store.open(big_store, create=False)) as store:
        full = store.histories(store.user_ids())
        newest = store.newest_event_times(list(full))
    cut = sorted(newest.values())[len(newest) // 2]
    out = tmp_path / "recent.parquet"
    written = export_histories(big_store, out, since=cut)
    table = pq.read_table(out).to_pylist()
    assert written == len(table) == sum(t >= cut for t in newest.values())
    assert all(row["history"] == full[row["user_id"]] for row in table)


def _documented(title: str) -> dict[str, str]:
    """The column -> type table under ``title`` in the README's "Batch on a cluster"."""
    text = README.read_text(encoding="utf-8")
    section = text[text.index("## Batch on a cluster"):]
    block = section[section.index(title):]
    block = block[:block.index("\n\n", block.index("|"))]
    return dict(re.findall(r"^\| `(\w+)` \| `([^`]+)` \|", block, flags=re.M))


def _arrow_types(schema) -> dict[str, str]:
    """Arrow type names without the list item's field name (``item`` or ``element``)."""
    return {f.name: re.sub(r"<\w+: ", "<", str(f.type)) for f in schema}


def test_readme_documents_the_schemas_the_code_writes(histories, big_store, bundles, tmp_path):
    assert _documented("Histories") == _arrow_types(pq.read_schema(histories))
    batch(histories, bundles["folds-in"], tmp_path / "res", n=2)
    assert _documented("Results") == _arrow_types(pq.read_schema(next((tmp_path / "res").glob("*.parquet"))))
    meta = pq.read_schema(histories).metadata
    assert set(meta) >= {b"edgerec.retired", b"edgerec.popular"}
