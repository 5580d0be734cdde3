"""Shipping edgerec: the built wheel and sdist, a clean slim install, a frozen kiosk app.

Everything goes through the commands a user runs (`make dist`, `make kiosk-exe`,
tools/slim_install.py) into temporary folders. The installs use the CPU-only
``onnxruntime`` wheel: under a quarter of ``onnxruntime-gpu``'s size, so faster from pip's
cache, and it proves more: the main suite runs on ``onnxruntime-gpu``, these on
``onnxruntime``, and both must serve the same lists.
"""

from __future__ import annotations

import json
import re
import shlex
import shutil
import sqlite3
import subprocess
import sys
import tarfile
import zipfile
from dataclasses import dataclass
from email.parser import HeaderParser
from pathlib import Path

import pytest
from packaging.requirements import Requirement

import edgerec
from edgerec import Recommender

ROOT = Path(__file__).resolve().parent.parent
SMOKE = Path(__file__).with_name("installed_smoke.py")
# What a machine without this project's venv has: no PYTHONPATH, no venv on PATH.
BARE_ENV = {"PATH": "/usr/bin:/bin", "LANG": "C.UTF-8"}
RANKED = re.compile(r"^\s*\d+\. (\S+)", re.MULTILINE)
sys.path.insert(0, str(ROOT / "tools"))
import slim_install  # noqa: E402




@dataclass
class Dist:
    wheel: Path
    sdist: Path
    log: str


def make(*args: str) -> str:
    proc = subprocess.run(["make", "-C", str(ROOT), *args], capture_output=True, text=True,
                          timeout=900)
    assert proc.returncode == 0, (proc.stdout + proc.stderr)[-3000:]
    return proc.stdout + proc.stderr


def copy_store(src: Path, dest: Path) -> Path:
    """A consistent copy of a SQLite store (the backup API, not a file copy)."""
    with sqlite3.connect(src) as a, sqlite3.connect(dest) as b:
        a.backup(b)
    a.close()
    b.close()
    return dest


@pytest.fixture(scope="module")
def dist(tmp_path_factory) -> Dist:
    out = tmp_path_factory.mktemp("dist")
    log = make("dist", f"DIST={out}")
    (wheel,), (sdist,) = out.glob("edgerec-*.whl"), out.glob("edgerec-*.tar.gz")
    return Dist(wheel, sdist, log)


def test_wheel_holds_the_runtime_license_and_readme(dist):
    version = edgerec.__version__
    assert dist.wheel.name == f"edgerec-{version}-py3-none-any.whl"
    names = zipfile.ZipFile(dist.wheel).namelist()
    info = f"edgerec-{version}.dist-info/"
    modules = {n for n in names if not n.startswith(info)}
    expected = {f"edgerec/{sub}{p.relative_to(ROOT / folder).as_posix()}" for folder, sub in
                (("runtime", ""), ("trainer", "trainer/"), ("exporters", "exporters/"),
                 ("pipelines", "pipelines/"))
                for p in (ROOT / folder).rglob("*.py")}
    assert modules == expected  # every module, and nothing from tests, benchmarks or examples
    assert f"{info}licenses/LICENSE" in names
    meta = HeaderParser().parsestr(zipfile.ZipFile(dist.wheel).read(f"{info}METADATA").decode())
    assert meta["Version"] == version and meta["License-Expression"] == "Apache-2.0"
    assert meta["License"] is None  # the deprecated free-text field
    assert meta.get_payload().strip() == (ROOT / "README.md").read_text(encoding="utf-8").strip()
    assert "SetuptoolsDeprecationWarning" not in dist.log


def test_sdist_builds_the_wheel_and_holds_no_tests(dist):
    top = f"edgerec-{edgerec.__version__}/"
    names = {n[len(top):] for n in tarfile.open(dist.sdist).getnames()}
    assert {"LICENSE", "README.md", "pyproject.toml", "runtime/recommender.py",
            "trainer/train.py", "exporters/onnx.py", "pipelines/update.py"} <= names
    assert not {n for n in names if n.split("/")[0] in {"tests", "benchmarks", "examples", "tools"}}


def test_readme_installs_only_what_exists(dist):
    """No line for the unpublished `pip install edgerec`; the slim recipe is the wheel's own list."""
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    assert not re.search(r"pip install '?edgerec\b", readme)
    line = next(ln for ln in readme.splitlines() if ln.startswith("pip install") and "'onnxruntime>=" in ln)
    wanted = [Requirement(r) for r in slim_install.slim_requirements(dist.wheel)]
    here = {f"{r.name}{r.specifier}" for r in wanted if r.marker is None or r.marker.evaluate()}
    assert set(shlex.split(line)[2:]) == here
    assert "pip install --no-deps dist/edgerec-*.whl" in readme


@pytest.fixture(scope="module")
def slim_venv(dist, tmp_path_factory) -> Path:
    """The wheel's slim install as `make kiosk-exe` makes it (with the kiosk extra,
    PyInstaller): the clean-venv test serves from it, and the frozen kiosk is built in it,
    so the suite installs it once."""
    venv = tmp_path_factory.mktemp("slim") / "venv"
    make(f"{venv}/.installed", f"DIST={dist.wheel.parent}", f"KIOSK_VENV={venv}")
    return venv


def test_clean_venv_serves_with_cpu_onnxruntime_and_no_tensorflow(dist, slim_venv, svd, tmp_path):
    venv = slim_venv
    store = copy_store(svd.store, tmp_path / "store.db")
    with Recommender.open(svd.bundle, svd.store) as rec:  # on onnxruntime-gpu's CPU provider
        known = rec.recommend("u0", 10)
    proc = subprocess.run([str(venv / "bin" / "python"), str(SMOKE), str(svd.bundle), str(store), "u0"],
                          capture_output=True, text=True, env=BARE_ENV, cwd=tmp_path, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = json.loads(proc.stdout)
    assert out["edgerec_file"].startswith(str(venv))  # the installed wheel, not this checkout
    assert out["tensorflow_importable"] is False
    assert (out["onnxruntime"], out["onnxruntime_gpu"], out["provider"]) == (True, False, "cpu")
    assert [r["item_id"] for r in out["known"]["items"]] == [r.item_id for r in known]
    assert out["known"]["fallback"] is False and out["before"]["fallback"] is True
    assert out["stored"] is True and out["after"]["fallback"] is False
    after = [r["item_id"] for r in out["after"]["items"]]
    assert len(after) == 10 and out["clicked"] not in after


def _lists(output: str) -> tuple[list[str], str, list[str]]:
    """(first list, clicked item, second list) from the kiosk's output."""
    head, clicked, tail = re.split(r"^Clicked (\S+)\.$", output, flags=re.MULTILINE)
    return RANKED.findall(head), clicked, RANKED.findall(tail)


@pytest.mark.slow
def test_frozen_kiosk_runs_without_python(dist, slim_venv, svd, tmp_path):
    make("kiosk-exe", f"DIST={dist.wheel.parent}", f"KIOSK_VENV={slim_venv}",
         f"KIOSK_WORK={tmp_path / 'work'}")
    app = shutil.copytree(dist.wheel.parent / "kiosk", tmp_path / "app")
    shutil.copytree(svd.bundle, app / "model")
    copy_store(svd.store, app / "store.db")
    unfrozen = tmp_path / "unfrozen"
    shutil.copytree(svd.bundle, unfrozen / "model")
    copy_store(svd.store, unfrozen / "store.db")

    def run(*cmd: str, home: Path, code: int = 0, **env) -> str:
        proc = subprocess.run([*cmd, "u0"], capture_output=True, text=True, cwd=home.parent,
                              env={**BARE_ENV, **env}, timeout=300)
        assert proc.returncode == code, proc.stderr[-3000:]
        return proc.stdout + proc.stderr

    frozen = run(str(app / "kiosk"), home=app)  # store.db and model/ found next to it
    first, clicked, second = _lists(frozen)
    with Recommender.open(svd.bundle, copy_store(svd.store, tmp_path / "check.db")) as rec:
        assert first == [r.item_id for r in rec.recommend("u0", 10)] and clicked == first[0]
        rec.record("u0", clicked, "click")
        assert second == [r.item_id for r in rec.recommend("u0", 10)] and clicked not in second
    assert "provider cpu" in frozen
    python_m = run(str(slim_venv / "bin" / "python"), "-m", "kiosk", "--home", str(unfrozen),
                   home=unfrozen, PYTHONPATH=str(ROOT / "examples" / "kiosk_app"))
    assert python_m == frozen
    empty = tmp_path / "empty"
    empty.mkdir()
    missing = run(str(app / "kiosk"), "--home", str(empty), home=empty, code=1)
    assert missing.startswith(f"Error: {empty / 'store.db'}: ") and missing.count("\n") == 1
