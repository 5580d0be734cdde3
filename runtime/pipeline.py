"""An ordered map over a few threads, with bounded look-ahead, for batch work.

SQLite and ONNX Runtime release the GIL, so one chunk's history read overlaps another's
scoring, and sessions of one thread score chunks on several cores. While the consumer
holds one result, at most ``workers`` more are computed, so memory stays bounded by the
chunk size whatever the number of chunks.
"""

from __future__ import annotations

from collections import deque
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Callable, Iterable, Iterator, TypeVar

T = TypeVar("T")
R = TypeVar("R")


def ordered_map(fn: Callable[[T], R], items: Iterable[T], workers: int) -> Iterator[R]:
    """``map(fn, items)`` computed up to ``workers`` at a time, results in order."""
    items = iter(items)
    if workers < 2:
        yield from map(fn, items)
        return
    pending: deque[Future] = deque()
    with ThreadPoolExecutor(workers, thread_name_prefix="edgerec-batch") as pool:
        try:
            for item in items:
                pending.append(pool.submit(fn, item))
                if len(pending) > workers:
                    yield pending.popleft().result()
            while pending:
                yield pending.popleft().result()
        finally:  # the consumer stopped early or a chunk failed: start nothing more
            for future in pending:
                future.cancel()
