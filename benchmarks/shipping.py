"""What shipping edgerec inside an app costs: installed sizes, executable size, start-up time.

    python benchmarks/shipping.py --wheel dist/edgerec-X-py3-none-any.whl \
        --kiosk-venv .venv-kiosk --exe dist/kiosk/kiosk [--runs 5] [--out DIR]

(`make shipping` runs it after `make kiosk-exe`.) Writes DIR/shipping.json. Sections:

1. install: the wheel installed into fresh venvs, as pip would (``onnxruntime-gpu`` on
   Linux x86_64) and slim (``onnxruntime``, tools/slim_install.py); the megabytes each adds
   to an empty venv's site-packages, and the ONNX Runtime package's share.
2. kiosk: the frozen folder's size and its executable's; start-up time to the first list
   shown (process start until the last line of the first top-10 is printed) of the frozen
   app and of ``python -m kiosk`` in the slim venv it was frozen from, run in turn on fresh
   copies of the same store and bundle, with a bare environment. The first run of each is
   reported apart (cold file cache), then the median of the rest.
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import venv
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tools"))
import slim_install  # noqa: E402

BARE_ENV = {"PATH": "/usr/bin:/bin", "LANG": "C.UTF-8"}
MB = 1 << 20


def tree_mb(path: Path) -> float:
    """Bytes of the files under ``path`` (links not followed), in MiB."""
    files = [path] if path.is_file() else path.rglob("*")
    return round(sum(f.lstat().st_size for f in files if f.is_file() and not f.is_symlink()) / MB, 1)


def site_packages(env: Path) -> Path:
    return next((env / "lib").glob("python*/site-packages"))


def install_sizes(wheel: Path, work: Path) -> dict:
    """MiB each variant adds to an empty venv, and its ONNX Runtime package's share."""
    empty = work / "empty"
    venv.create(empty, with_pip=True)
    base = tree_mb(site_packages(empty))
    full = work / "full"
    venv.create(full, with_pip=True)
    subprocess.run([str(full / "bin" / "python"), "-m", "pip", "install", "--quiet", str(wheel)], check=True)
    slim = work / "slim"
    slim_install.install(slim, wheel, set())
    return {name: {"added_mb": round(tree_mb(site_packages(env)) - base, 1),
                   "onnxruntime_mb": tree_mb(site_packages(env) / "onnxruntime")}
            for name, env in (("default (onnxruntime-gpu)", full), ("slim (onnxruntime)", slim))}


def demo_data(work: Path) -> Path:
    """A demo store and an MF bundle (needs the trainer: run from the dev venv)."""
    from edgerec.demo import write_demo
    from edgerec.pipelines import train_bundle
    from edgerec.store import Store

    home = work / "data"
    home.mkdir()
    store = Store.open(home / "store.db")
    write_demo(store)
    train_bundle(store, home / "model", model="mf", epochs=5, seed=1)
    store.close()
    return home


def first_list_seconds(cmd: list[str], data: Path, work: Path, env: dict) -> float:
    """Seconds from process start until the first list's last line, on a fresh data copy."""
    home = Path(tempfile.mkdtemp(dir=work))
    shutil.copytree(data, home, dirs_exist_ok=True)
    start = time.perf_counter()
    proc = subprocess.Popen([*cmd, "--home", str(home), "u0"], stdout=subprocess.PIPE, text=True,
                            env={**BARE_ENV, **env}, cwd=home)
    for line in proc.stdout:
        if line.lstrip().startswith("10. "):
            elapsed = time.perf_counter() - start
            break
    else:
        raise RuntimeError(f"{cmd[0]} printed no first list")
    proc.stdout.read()
    if proc.wait() != 0:
        raise RuntimeError(f"{cmd[0]} exited with {proc.returncode}")
    return elapsed


def kiosk(exe: Path, kiosk_venv: Path, data: Path, runs: int, work: Path) -> dict:
    """Sizes of the frozen app; its start-up beside ``python -m kiosk``, runs in turn."""
    apps = {"frozen": ([str(exe)], {}),
            "python -m kiosk": ([str(kiosk_venv / "bin" / "python"), "-m", "kiosk"],
                                {"PYTHONPATH": str(ROOT / "examples" / "kiosk_app")})}
    times: dict[str, list[float]] = {name: [] for name in apps}
    for _ in range(runs + 1):
        for name, (cmd, env) in apps.items():
            times[name].append(first_list_seconds(cmd, data, work, env))
    startup = {name: {"cold_s": round(t[0], 3), "median_s": round(statistics.median(t[1:]), 3),
                      "runs": [round(x, 3) for x in t]} for name, t in times.items()}
    return {"folder_mb": tree_mb(exe.parent), "executable_mb": tree_mb(exe), "startup": startup}


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--wheel", type=Path, required=True)
    parser.add_argument("--kiosk-venv", type=Path, required=True)
    parser.add_argument("--exe", type=Path, required=True)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "out")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        results = {"install": install_sizes(args.wheel, work),
                   "kiosk": kiosk(args.exe.resolve(), args.kiosk_venv.resolve(), demo_data(work),
                                  args.runs, work)}
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "shipping.json").write_text(json.dumps(results, indent=2))
    print(json.dumps(results, indent=2))
    return results


if __name__ == "__main__":
    main()
