"""A store change detector that costs no query: SQLite's WAL-index header, read with pread.

In WAL mode every commit, by any connection of any process, ends by writing the
WAL-index header (``WalIndexHdr`` in SQLite's wal.c, 48 bytes, machine byte order) into
the ``-shm`` file: ``iChange`` counts transactions, ``mxFrame`` is the last committed WAL
frame, ``aFrameCksum`` the running checksum of the frames and ``aSalt`` changes whenever
the WAL restarts. So two equal headers mean the same committed database, and a commit that
completed before a read of the header has changed it. The writer stores two copies, the
second (offset 48) first and then, after a memory barrier, the first (offset 0); a reader
that reads the first copy, then the second, and finds them equal (and ``isInit`` set)
has a header no writer was half-way through, which is SQLite's own test
(``walIndexTryHdr``). Two ``os.pread`` calls keep that order; a pread cannot SIGBUS when
the file shrinks, as a map of it can. When the copies differ, a writer is mid-commit and
the caller falls back to a query.

The pitfall: POSIX locks belong to the process and the file, so closing *any* descriptor
of the ``-shm`` drops every lock SQLite holds on it, including the one that tells other
processes the file is in use (they would then rebuild it under this process's
connections). Hence one descriptor per ``-shm`` file per process, shared by every
``Store`` on that file, opened only after a connection has the file open and closed only
when the last of those stores has closed its connections.
"""

from __future__ import annotations

import os
import threading

HEADER_BYTES = 48  # sizeof(WalIndexHdr): iVersion, unused, iChange, isInit...aCksum
IS_INIT = 12  # offset of the u8 isInit: 1 once SQLite has initialised the header

_lock = threading.Lock()
_shared: dict[tuple[int, int], list] = {}  # (st_dev, st_ino) of a -shm -> [fds, stores using it]


class WalIndex:
    """One store's view of its ``-shm`` header (see the module docstring)."""

    def __init__(self, key: tuple[int, int], fd: int):
        self._key, self._fd = key, fd

    @classmethod
    def open(cls, database: str | os.PathLike) -> "WalIndex | None":
        """The header reader of a database that a connection of this process already has
        open in WAL mode; None where there is no usable ``-shm`` (or no ``os.pread``)."""
        if not hasattr(os, "pread"):
            return None
        # SQLite names the -shm after the database's real path (it follows symlinks).
        path = os.path.realpath(database) + "-shm"
        try:
            st = os.stat(path)
        except OSError:
            return None
        key = (st.st_dev, st.st_ino)
        with _lock:
            entry = _shared.get(key)
            if entry is None:
                try:
                    fd = os.open(path, os.O_RDONLY | getattr(os, "O_CLOEXEC", 0))
                except OSError:
                    return None
                opened = os.fstat(fd)  # the file itself, should the name have moved meanwhile
                key = (opened.st_dev, opened.st_ino)
                entry = _shared.setdefault(key, [[], 0])
                entry[0].append(fd)  # a second descriptor of one file waits for the last close
            entry[1] += 1
            return cls(key, entry[0][0])

    def header(self) -> bytes | None:
        """The current header, or None when a writer is mid-commit or the file is not
        (or no longer) a WAL index: then ask SQLite instead."""
        try:
            first = os.pread(self._fd, HEADER_BYTES, 0)
            if len(first) != HEADER_BYTES or first[IS_INIT] != 1:
                return None
            return first if os.pread(self._fd, HEADER_BYTES, HEADER_BYTES) == first else None
        except OSError:  # the store was closed meanwhile: its connections say so
            return None

    def close(self) -> None:
        """Release this store's use; the descriptor closes with the file's last store, which
        must have closed its SQLite connections first."""
        with _lock:
            entry = _shared.get(self._key)
            if entry is None:
                return
            entry[1] -= 1
            if entry[1] == 0:
                del _shared[self._key]
                for fd in entry[0]:
                    os.close(fd)
