"""The Ray Data engine of ``edgerec.batch`` (extra: ``pip install 'edgerec[ray]'``).

``read_parquet`` -> ``map_batches(BatchScorer, batch_format="pyarrow")`` on a pool of
``workers`` actors of ``cpus`` CPUs each (one ONNX Runtime session per actor, opened on its
first batch) -> ``write_parquet``. Map-only: no shuffle. Ray restarts an actor that dies
and re-runs its batch, and a block is written only from a finished batch, so every user
appears exactly once. The bundle and histories must be at a path every node can read.
"""

from __future__ import annotations

import dataclasses

from .batchscore import BatchScorer
from .errors import EdgerecError


def _ray():
    try:
        import ray
        import ray.data  # noqa: F401
    except ImportError:
        raise EdgerecError("the ray engine needs Ray: pip install 'edgerec[ray]'") from None
    return ray


def cluster() -> str:
    """The address of the cluster the job ran on (the run summary says where)."""
    return _ray().get_runtime_context().gcs_address


def run(histories: str, scorer: BatchScorer, out: str, workers: int, cpus: int,
        address: str | None, rows: int) -> int:
    """Score the Parquet ``histories`` into Parquet files under ``out``; returns users.

    Joins the running Ray (``ray.init`` already called), the cluster at ``address``, or
    starts a local one.
    """
    ray = _ray()
    if not ray.is_initialized():
        ray.init(address=address, log_to_driver=False, include_dashboard=False)
    context = ray.data.DataContext.get_current()
    if hasattr(context, "use_datasource_v2"):  # its file listing takes a CPU slot of its own
        context.use_datasource_v2 = False
    # Reading and writing Parquet is light, and take no CPU slot: W actors of t CPUs may
    # fill the cluster, and a read task waiting for a free slot would wait forever.
    light = {"num_cpus": 0}
    histories = ray.data.read_parquet(histories, columns=["user_id", "history"], ray_remote_args=light)
    results = histories.map_batches(
        BatchScorer, fn_constructor_kwargs=dataclasses.asdict(scorer), batch_format="pyarrow",
        batch_size=rows, compute=ray.data.ActorPoolStrategy(size=workers), num_cpus=cpus,
        max_restarts=-1, max_task_retries=-1)
    results.write_parquet(out, ray_remote_args=light)
    return ray.data.read_parquet(out, columns=["user_id"]).count()
