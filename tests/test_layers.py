"""The import contracts (pyproject's [tool.importlinter], README "Layout") hold, and bite.

`make test` runs the linter on the sources before pytest; this checks that the contracts
catch what they are for, on a copy of the package tree with one violation of each kind
added: a module that joins the runtime without being placed in a layer, a runtime module
that imports the trainer, one that imports TensorFlow.
"""

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tools"))
from lint_imports import lint, link_tree  # noqa: E402


def test_the_sources_keep_every_contract(tmp_path):
    done = lint(link_tree(tmp_path / "tree"))
    assert done.returncode == 0, done.stdout + done.stderr
    assert "Contracts: 3 kept, 0 broken." in done.stdout


def test_the_contracts_catch_each_kind_of_violation(tmp_path):
    package = link_tree(tmp_path / "tree") / "edgerec"
    (package / "unplaced.py").write_text('"""A module no layer lists."""\n')
    (package / "metrics.py").unlink()  # a runtime module, now with two forbidden imports
    source = (ROOT / "runtime" / "metrics.py").read_text()
    (package / "metrics.py").write_text(source + "\nfrom .trainer import fit  # noqa\nimport tensorflow  # noqa\n")
    done = lint(package.parent)
    out = " ".join((done.stdout + done.stderr).split())
    assert done.returncode == 1
    assert "edgerec.unplaced" in out  # exhaustive layers: every module must be placed
    assert "edgerec.metrics -> edgerec.trainer" in out
    assert "edgerec.metrics -> tensorflow" in out
