"""The latency benchmark runs in --quick mode and writes well-formed results.

Speed targets are shown by the benchmark itself, never asserted here: CI machines are
shared and noisy.
"""

import json
import os
import subprocess
import sys
from pathlib import Path

import onnxruntime

from edgerec.serving import SMALL_MODEL_WEIGHTS

BENCH = Path(__file__).parent.parent / "benchmarks" / "latency.py"


def test_latency_benchmark_quick(tmp_path):
    proc = subprocess.run([sys.executable, str(BENCH), "--quick", "--kinds", "als,itemknn", "--out", str(tmp_path)],
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-2000:]
    results = json.loads((tmp_path / "latency.json").read_text())
    assert (tmp_path / "latency.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert [row["n_items"] for row in results["core"]] == [1_000, 1_682, 10_000]
    for row in results["core"]:
        assert row["provider"] == "cpu"
        # Both sides timed over the same, full number of calls (quick mode: 300), on the
        # runtime's own thread policy (one thread while the weights fit in cache).
        assert row["onnx"]["calls"] == row["numpy"]["calls"] == 300
        small = row["n_items"] * row["dim"] <= SMALL_MODEL_WEIGHTS
        assert row["threads"] == (1 if small else 0)
    ml = results["requests"]["ml100k"]
    assert ml["recommend"]["calls"] > 0 and 0 < ml["batch"]["users"] <= ml["users"]
    kinds = results["kinds"]["ml100k-quick"]
    assert set(kinds) == {"als", "itemknn"}
    assert kinds["als"]["ratio_p50_to_als"] == 1.0
    assert all(row["recommend"]["p50_us"] > 0 and row["model_onnx_mb"] > 0 for row in kinds.values())
    # implicit's best case beside every request kind, and where each request's time goes
    assert ml["implicit_best"]["recommend"]["calls"] == ml["recommend"]["calls"]
    stages = ("version", "history", "inputs", "onnx", "results")
    for row in [ml, *kinds.values()]:
        for which in ("repeat", "first"):
            assert all(row["stages"][which][s]["p50_us"] > 0 for s in stages), (which, row["stages"])
    for row in kinds.values():
        assert row["recommend_first"]["calls"] > 0 and row["ratio_p50_to_implicit_best"] > 0
    startup = results["startup"]
    assert startup["tensorflow_loaded"] is False and startup["peak_rss_mb"] > 0
    env = results["environment"]
    assert env["cores"] == os.cpu_count() and env["onnxruntime"] == onnxruntime.__version__
