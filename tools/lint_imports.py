"""Check edgerec's import contracts (pyproject's [tool.importlinter]): `make test` runs it.

    python tools/lint_imports.py [TREE]

import-linter finds a package's modules on the file system, but edgerec is assembled from
several folders (pyproject's package-dir: runtime/ is ``edgerec``, trainer/ is
``edgerec.trainer``, ...), and an editable install shows it only runtime/. So this lays out
a tree of links in the installed shape (TREE, default build/lint-imports) and runs
``lint-imports`` over it: the check sees exactly what a wheel holds, with no build step.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PYPROJECT = ROOT / "pyproject.toml"


def link_tree(tree: Path) -> Path:
    """``tree``/edgerec/... as installed, made of links to the sources; returns ``tree``."""
    folders = tomllib.loads(PYPROJECT.read_text())["tool"]["setuptools"]["package-dir"]
    shutil.rmtree(tree, ignore_errors=True)
    package = tree / "edgerec"
    package.mkdir(parents=True)
    for source in (ROOT / folders["edgerec"]).iterdir():
        (package / source.name).symlink_to(source)
    for name, folder in folders.items():
        if name != "edgerec":
            (tree / name.replace(".", "/")).symlink_to(ROOT / folder, target_is_directory=True)
    return tree


def lint(tree: Path) -> subprocess.CompletedProcess:
    """``lint-imports`` over the tree (its exit status 0: every contract kept)."""
    exe = Path(sys.executable).with_name("lint-imports")
    return subprocess.run([str(exe), "--no-cache", str(PYPROJECT)], cwd=tree, text=True,
                          capture_output=True, env={**os.environ, "PYTHONPATH": str(tree)})


def main(argv: list[str]) -> int:
    done = lint(link_tree(Path(argv[0]) if argv else ROOT / "build" / "lint-imports"))
    print(done.stdout + done.stderr, end="")
    return done.returncode


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
