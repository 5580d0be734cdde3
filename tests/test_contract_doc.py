"""docs/bundle-contract.md, the contract written down for other languages, against the code.

Every constant of ``edgerec.contract`` must be in the document's table with its value, and
every name in the table must exist in the code with that value, so neither can change
without the other.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from edgerec import contract, web

pytestmark = pytest.mark.runtime

DOC = Path(__file__).resolve().parents[1] / "docs" / "bundle-contract.md"
ROW = re.compile(r"^\| `([A-Za-z_.]+)` \| `(.+)` \|$")
MODULES = {"": contract, "web.": web}


def _table() -> dict[str, object]:
    rows = [ROW.match(line) for line in DOC.read_text(encoding="utf-8").splitlines()]
    return {m[1]: json.loads(m[2]) for m in rows if m}


def _value(name: str):
    prefix, _, attr = name.rpartition(".")
    value = getattr(MODULES[prefix + "." if prefix else ""], attr)
    return list(value) if isinstance(value, tuple) else value


def test_every_documented_name_has_its_value_in_the_code():
    table = _table()
    assert len(table) >= 30
    for name, documented in table.items():
        assert _value(name) == documented, f"docs/bundle-contract.md: {name} is {_value(name)!r} in the code"


def test_every_contract_constant_is_documented():
    table = _table()
    # MANIFEST_SCHEMA is documented whole as docs/manifest.schema.json (test_manifest_schema.py)
    constants = [name for name in vars(contract) if name.isupper() and name != "MANIFEST_SCHEMA"]
    assert "INPUT_ITEM_MASK" in constants
    missing = [name for name in constants if name not in table]
    assert not missing, f"docs/bundle-contract.md lacks {missing}"


@pytest.mark.parametrize("name", ["INPUTS", "OUTPUTS", "OPTIONAL_INPUTS"])
def test_input_and_output_tables_list_the_signature(name):
    text = DOC.read_text(encoding="utf-8")
    for tensor in getattr(contract, name):
        assert f"\n| `{tensor}` |" in text, f"{tensor} has no row in the scoring core's tables"
