"""The CLI end to end, as a user runs it: ingest, train, recommend, batch, info, errors."""

import json

from conftest import run_cli


def test_cli_pipeline_from_csv(tmp_path):
    from edgerec.demo import generate

    events, _ = generate(n_users=120, n_items=80, mean_events=20, seed=1)
    csv_path = tmp_path / "ratings.csv"
    csv_path.write_text("user_id,item_id,rating,timestamp\n" + "".join(
        f"{u},{i},{w},{int(t)}\n" for u, i, _, w, t in events))
    store = tmp_path / "store.db"
    ingest = run_cli("ingest", store, csv_path)
    assert ingest.returncode == 0, ingest.stderr
    assert f"{len(events)} added" in ingest.stdout

    train = run_cli("train", store, "--out", tmp_path / "models" / "mf", "--epochs", "3", "--dim", "16")
    assert train.returncode == 0, train.stderr
    assert "epoch   1" in train.stderr and "parity ok" in train.stderr
    bundle = tmp_path / "models" / "mf"

    rec = run_cli("recommend", store, bundle, events[0][0], "-n", "4", "--json")
    assert rec.returncode == 0, rec.stderr
    out = json.loads(rec.stdout)
    assert out["provider"] == "cpu" and out["fallback"] is False and len(out["items"]) == 4
    seen = {i for u, i, *_ in events if u == events[0][0]}
    assert not seen & {r["item_id"] for r in out["items"]}

    users = tmp_path / "users.txt"
    users.write_text(f"{events[0][0]}\nstranger\n")
    batch = run_cli("batch", store, bundle, "--out", tmp_path / "top.csv", "-n", "2", "--users", users)
    assert batch.returncode == 0, batch.stderr
    lines = (tmp_path / "top.csv").read_text().splitlines()
    assert lines[0] == "user_id,rank,item_id,score" and len(lines) == 5
    assert lines[3].startswith("stranger,1,")

    info = run_cli("info", bundle, "--json")
    assert info.returncode == 0
    about = json.loads(info.stdout)
    assert about["model_kind"] == "mf" and about["dims"]["dim"] == 16
    assert about["training"]["params"]["epochs"] == 3
    text = run_cli("info", bundle).stdout
    assert "sha256" in text and "opset 17" in text


def test_cli_errors_are_one_line(tmp_path):
    missing = run_cli("recommend", tmp_path / "none.db", tmp_path / "nobundle", "u1")
    assert missing.returncode == 1
    assert missing.stderr.strip().startswith("Error: ")
    assert len(missing.stderr.strip().splitlines()) == 1 and "Traceback" not in missing.stderr

    store = tmp_path / "s.db"
    assert run_cli("demo-data", store, "--users", "20", "--items", "30").returncode == 0
    bad_bundle = run_cli("info", tmp_path)
    assert bad_bundle.returncode == 1 and "not a bundle" in bad_bundle.stderr
    bad_kind = run_cli("train", store, "--model", "nope", "--out", tmp_path / "m")
    assert bad_kind.returncode == 1 and "unknown model kind 'nope'" in bad_kind.stderr
    assert len(bad_kind.stderr.strip().splitlines()) == 1


def test_demo_data_then_recommend_via_cli(mf, tmp_path):
    out = run_cli("recommend", mf.store, mf.bundle, "u1", "-n", "3")
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    assert lines[0] == "user u1: personalised, provider cpu"
    assert len(lines) == 4 and lines[1].lstrip().startswith("1. ")
