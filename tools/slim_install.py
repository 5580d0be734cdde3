"""Install a built edgerec wheel with the CPU-only ``onnxruntime`` (the slim install).

Why a script: on Linux x86_64 and Windows AMD64 the wheel depends on ``onnxruntime-gpu``
(340 MB installed, CUDA kernels a kiosk never runs). ``onnxruntime`` provides the same
``onnxruntime`` module; with both installed one overwrites the other's files, and removing
either later breaks the module. pip cannot swap one dependency for another, so the slim
install is the wheel's own requirements with ``onnxruntime-gpu`` replaced by
``onnxruntime``, then the wheel with ``--no-deps`` (in this order pip does not warn; ``pip
check`` still names the missing ``onnxruntime-gpu``). They are read from the wheel's METADATA,
so this never drifts from pyproject.toml. Standard library only: it runs before anything
is installed.

    python tools/slim_install.py VENV dist/edgerec-0.1.0-py3-none-any.whl [--extra kiosk]
    python tools/slim_install.py --print dist/edgerec-0.1.0-py3-none-any.whl   # the list only
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import venv
import zipfile
from email.parser import HeaderParser
from pathlib import Path

GPU, CPU = "onnxruntime-gpu", "onnxruntime"
EXTRA = re.compile(r"""\s*(?:and\s+)?extra\s*==\s*["']([^"']+)["']""")


def wheel_requirements(wheel: str | Path) -> list[str]:
    """The ``Requires-Dist`` lines of a wheel, markers included, as pip reads them."""
    with zipfile.ZipFile(wheel) as zf:
        name = next(n for n in zf.namelist() if n.endswith(".dist-info/METADATA"))
        metadata = HeaderParser().parsestr(zf.read(name).decode("utf-8"))
    return metadata.get_all("Requires-Dist") or []


def _selected(requirement: str, extras: set[str]) -> str | None:
    """The requirement without its ``extra == ...`` clause, or None when not asked for."""
    spec, _, marker = requirement.partition(";")
    found = EXTRA.search(marker)
    if found is None:
        return requirement
    if found.group(1) not in extras:
        return None
    marker = EXTRA.sub("", marker).strip()
    return f"{spec.strip()}; {marker}" if marker else spec.strip()


def _cpu(requirement: str) -> str:
    """``onnxruntime-gpu...`` becomes ``onnxruntime...``, same version bound and marker."""
    return CPU + requirement[len(GPU):] if requirement.startswith(GPU) else requirement


def slim_requirements(wheel: str | Path, extras: set[str] = frozenset()) -> list[str]:
    """The wheel's base requirements (plus ``extras``) with the CPU-only ONNX Runtime."""
    kept = (_selected(r, set(extras)) for r in wheel_requirements(wheel))
    return [_cpu(r) for r in kept if r is not None]


def install(target: Path, wheel: Path, extras: set[str]) -> None:
    """A fresh venv at ``target`` holding the wheel and its slim requirements."""
    venv.create(target, with_pip=True, clear=True)
    python = target / ("Scripts/python.exe" if os.name == "nt" else "bin/python")
    pip = [str(python), "-m", "pip", "install", "--quiet"]
    subprocess.run([*pip, *slim_requirements(wheel, extras)], check=True)
    subprocess.run([*pip, "--no-deps", str(wheel)], check=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("venv", nargs="?", type=Path, help="where to create the venv")
    parser.add_argument("wheel", type=Path)
    parser.add_argument("--extra", action="append", default=[], help="an extra to add (repeatable)")
    parser.add_argument("--print", action="store_true", help="print the requirements, install nothing")
    args = parser.parse_args(argv)
    if args.print:
        print("\n".join(slim_requirements(args.wheel, set(args.extra))))
    elif args.venv is None:
        parser.error("give a VENV to install into, or --print")
    else:
        install(args.venv, args.wheel, set(args.extra))
    return 0


if __name__ == "__main__":
    sys.exit(main())
