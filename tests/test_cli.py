"""The CLI end to end, as a user runs it: ingest, train, recommend, batch, info, errors."""

import json

import pytest

from conftest import cli, run_cli


def test_cli_pipeline_from_csv(tmp_path):
    from edgerec.demo import generate

    events, _ = generate(n_users=120, n_items=80, mean_events=20, seed=1)
    csv_path = tmp_path / "ratings.csv"
    csv_path.write_text("user_id,item_id,rating,timestamp\n" + "".join(
        f"{u},{i},{w},{int(t)}\n" for u, i, _, w, t in events))
    store = tmp_path / "store.db"
    ingest = cli("ingest", store, csv_path)
    assert ingest.returncode == 0, ingest.stderr
    assert f"{len(events)} added" in ingest.stdout

    # --fp16 too (one CLI training less in the suite): float16 itself is tested in
    # test_fast_paths.py, the option's way to the manifest here.
    train = cli("train", store, "--out", tmp_path / "models" / "mf", "--epochs", "3", "--dim", "16",
                    "--fp16")
    assert train.returncode == 0, train.stderr
    assert "epoch   1" in train.stderr and "parity ok" in train.stderr
    bundle = tmp_path / "models" / "mf"

    rec = cli("recommend", store, bundle, events[0][0], "-n", "4", "--json")
    assert rec.returncode == 0, rec.stderr
    out = json.loads(rec.stdout)
    assert out["provider"] == "cpu" and out["fallback"] is False and len(out["items"]) == 4
    seen = {i for u, i, *_ in events if u == events[0][0]}
    assert not seen & {r["item_id"] for r in out["items"]}

    users = tmp_path / "users.txt"
    users.write_text(f"{events[0][0]}\nstranger\n")
    batch = cli("batch", store, bundle, "--out", tmp_path / "top.csv", "-n", "2", "--users", users)
    assert batch.returncode == 0, batch.stderr
    lines = (tmp_path / "top.csv").read_text().splitlines()
    assert lines[0] == "user_id,rank,item_id,score" and len(lines) == 5
    assert lines[3].startswith("stranger,1,")

    info = cli("describe", bundle, "--json")
    assert info.returncode == 0
    about = json.loads(info.stdout)
    assert about["model_kind"] == "mf" and about["dims"]["dim"] == 16
    assert about["training"]["params"]["epochs"] == 3 and about["onnx"]["weights_dtype"] == "float16"
    text = cli("describe", bundle).stdout
    assert "sha256" in text and "opset 17" in text


def test_cli_errors_are_one_line(tmp_path):
    missing = cli("recommend", tmp_path / "none.db", tmp_path / "nobundle", "u1")
    assert missing.returncode == 1
    assert missing.stderr.strip().startswith("Error: ")
    assert len(missing.stderr.strip().splitlines()) == 1 and "Traceback" not in missing.stderr

    store = tmp_path / "s.db"
    assert cli("demo-data", store, "--users", "20", "--items", "30").returncode == 0
    bad_bundle = cli("describe", tmp_path)
    assert bad_bundle.returncode == 1 and "not a bundle" in bad_bundle.stderr
    bad_kind = cli("train", store, "--model", "nope", "--out", tmp_path / "m")
    assert bad_kind.returncode == 1 and "unknown model kind 'nope'" in bad_kind.stderr
    assert len(bad_kind.stderr.strip().splitlines()) == 1


@pytest.mark.runtime
def test_demo_data_then_recommend_via_cli(svd, tmp_path):
    out = run_cli("recommend", svd.store, svd.bundle, "u1", "-n", "3")
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    assert lines[0] == "user u1: personalised, provider cpu"
    assert len(lines) == 4 and lines[1].lstrip().startswith("1. ")


@pytest.mark.runtime
def test_cli_ingest_strict_rejects_the_whole_file_and_lenient_skips_the_bad_row(tmp_path):
    store = tmp_path / "s.db"
    bad = tmp_path / "bad.csv"
    bad.write_text("user,item,ts\nu,1,10\nu,2,oops\nu,3,30\n")
    strict = cli("ingest", store, bad, "--strict")
    assert strict.returncode == 1 and strict.stdout == ""
    assert strict.stderr.strip() == f"Error: {bad}, line 3: bad timestamp 'oops' in column 'ts'"
    lenient = cli("ingest", store, bad)
    assert lenient.returncode == 0, lenient.stderr
    assert f"{bad} (csv): 3 rows, 2 added, 0 duplicates, 1 malformed" in lenient.stdout
    assert "line 3" in lenient.stdout
    from edgerec.store import Store

    assert Store.open(store, create=False).history("u") == ["3", "1"]


@pytest.mark.runtime
@pytest.mark.parametrize("option", [("--holdout", "1.5"), ("--tolerance", "-1")])
def test_update_rejects_bad_options_before_loading_the_trainer(svd, option):
    """A runtime test: without TensorFlow the option is still what the error names."""
    done = cli("update", svd.store, svd.bundle, *option)
    assert done.returncode == 1 and done.stderr.startswith(f"Error: {option[0]} must be")
    assert len(done.stderr.strip().splitlines()) == 1


def test_make_demo_runs_end_to_end(tmp_path):
    """`make demo` itself, with this environment's edgerec (the install step is taken as
    done) and a short training, into a temporary folder."""
    import re
    import shutil
    import subprocess
    import sys
    from pathlib import Path

    if shutil.which("make") is None:
        import pytest

        pytest.skip("make is not installed")
    root = Path(__file__).resolve().parent.parent
    venv = Path(sys.executable).parent.parent
    demo = tmp_path / "demo"
    done = subprocess.run(["make", "-s", "-C", str(root), "-o", f"{venv}/.installed", "demo",
                           f"VENV={venv}", f"DEMO={demo}", "DEMO_TRAIN_ARGS=--epochs 3"],
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    out = done.stdout
    assert (demo / "models" / "mf" / "manifest.json").exists()
    assert re.search(r"^model +mf \(format", out, flags=re.M)
    assert re.search(r"^sizes +600 users, 400 items", out, flags=re.M)
    assert "user u0: personalised, provider cpu" in out
    assert "user new-visitor: most popular (user unknown to the model), provider cpu" in out
    assert f"{demo}/store.db: recorded purchase new-visitor -> i0" in out
    # After one purchase the visitor is folded in: a personalised list without i0.
    last = out[out.rindex("user new-visitor"):]
    assert last.startswith("user new-visitor: personalised")
    shown = re.findall(r"^ +\d+\. (\S+) ", last, flags=re.M)
    assert len(shown) == 5 and "i0" not in shown
