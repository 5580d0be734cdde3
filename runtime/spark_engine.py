"""The Spark engine of ``edgerec.batch`` (extra: ``pip install 'edgerec[spark]'``).

The Parquet histories are read as a DataFrame and ``mapInArrow`` runs ``BatchScorer`` on
each partition's record batches: one ONNX Runtime session per Python worker (kept across
tasks), with as many threads as ``spark.task.cpus``. Map-only: partitions follow the
files' row groups, no shuffle. A failed task is re-run by Spark (up to 4 attempts) and its
output committed once, so every user appears exactly once. On a cluster the bundle is
shipped to executors with ``SparkContext.addFile``; in local mode they read it in place.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

from .batchscore import BatchScorer
from .errors import EdgerecError

RESULT_DDL = "user_id string, items array<string>, scores array<float>, fallback boolean, model string"
ATTEMPTS = 4  # what Spark allows a task on a cluster; local mode is given the same
PARTITIONS_PER_WORKER = 4  # splits of the histories per task slot, for load balance


def _session(workers: int, cpus: int, master: str | None):
    """The active Spark session, or a new one (``local[W*t, attempts]`` unless ``master``)."""
    try:
        from pyspark.sql import SparkSession
    except ImportError:
        raise EdgerecError("the spark engine needs pyspark: pip install 'edgerec[spark]'") from None
    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)  # workers need edgerec and pyarrow
    active = SparkSession.getActiveSession()
    if active is not None:
        return active
    return (SparkSession.builder.master(master or f"local[{workers * cpus},{ATTEMPTS}]")
            .appName("edgerec-batch").config("spark.ui.enabled", "false")
            .config("spark.task.cpus", str(cpus))
            .config("spark.task.maxFailures", str(ATTEMPTS)).getOrCreate())


def _partition_scorer(scorer: BatchScorer, shipped: str | None):
    """The mapInArrow function: the scorer at the executor's copy of the bundle, with
    the task's CPUs as threads."""
    def score(batches):
        from pyspark import SparkFiles, TaskContext

        here = scorer.at(SparkFiles.get(shipped) if shipped else scorer.bundle,
                         threads=TaskContext.get().cpus())
        for batch in batches:
            yield here(batch)

    return score


def run(histories: str, scorer: BatchScorer, out: str, workers: int, cpus: int,
        master: str | None, rows: int) -> int:
    """Score the Parquet ``histories`` into Parquet files under ``out``; returns users."""
    spark = _session(workers, cpus, master)
    sc = spark.sparkContext
    shipped = None
    if not sc.master.startswith("local"):
        sc.addFile(scorer.bundle, recursive=True)
        shipped = Path(scorer.bundle).name
    size = sum(f.stat().st_size for f in Path(histories).rglob("*") if f.is_file()) \
        if Path(histories).is_dir() else Path(histories).stat().st_size
    slots = max(1, sc.defaultParallelism // max(1, int(spark.conf.get("spark.task.cpus", "1"))))
    spark.conf.set("spark.sql.files.maxPartitionBytes",
                   str(max(1 << 20, size // (slots * PARTITIONS_PER_WORKER))))
    spark.conf.set("spark.sql.execution.arrow.maxRecordsPerBatch", str(rows))
    frame = spark.read.parquet(histories).select("user_id", "history")
    frame.mapInArrow(_partition_scorer(scorer, shipped), RESULT_DDL).write.mode("overwrite").parquet(out)
    return spark.read.parquet(out).count()
