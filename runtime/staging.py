"""Output that appears only when complete: written aside, then renamed into place.

A reader (or a re-run) of a batch result or a histories export finds the previous
complete output or the new one, never a partial one; a failed job leaves no scratch behind.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from pathlib import Path
from typing import Iterator

from .errors import InputError


@contextlib.contextmanager
def staged_file(out: Path) -> Iterator[Path]:
    """A temporary path beside ``out``, renamed to ``out`` when the block succeeds."""
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{out.name}.", dir=out.parent)
    except OSError as exc:
        raise InputError(f"{out}: cannot write there ({exc.strerror or exc})") from None
    os.close(fd)
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(tmp, 0o666 & ~umask)  # mkstemp's 0600 would hide the result from other users
    try:
        yield Path(tmp)
        os.replace(tmp, out)
    finally:
        Path(tmp).unlink(missing_ok=True)


@contextlib.contextmanager
def staged_dir(out: Path) -> Iterator[Path]:
    """A scratch directory beside ``out``; its ``result`` subdirectory (which the block
    creates) replaces ``out`` when the block succeeds. The scratch space also holds what
    a job needs on the way (a store's histories as Parquet)."""
    out.parent.mkdir(parents=True, exist_ok=True)
    stage = Path(tempfile.mkdtemp(prefix=f".{out.name}.tmp-", dir=out.parent))
    try:
        yield stage
        result = stage / "result"
        if not result.is_dir():
            raise InputError(f"{out}: the job wrote no output")
        old = stage / "previous"
        if out.exists():
            os.rename(out, old)
        os.rename(result, out)
    finally:
        shutil.rmtree(stage, ignore_errors=True)
