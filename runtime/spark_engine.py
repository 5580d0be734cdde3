"""The Spark engine of ``edgerec.batch`` (extra: ``pip install 'edgerec[spark]'``).

The Parquet histories are read as a DataFrame and ``mapInArrow`` runs ``BatchScorer`` on
each partition's record batches: one ONNX Runtime session per Python worker (kept across
tasks), with as many threads as ``spark.task.cpus``. Map-only: partitions follow the
files' row groups, no shuffle. A failed task is re-run by Spark (up to 4 attempts) and its
output committed once, so every user appears exactly once. The bundle is shipped to the
executors as a zip archive (``SparkContext.addArchive``), in local mode too, so the code
path a cluster runs is the one the tests run.
"""

from __future__ import annotations

import hashlib
import os
import sys
import zipfile
from pathlib import Path

from . import contract as C
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


def ship(sc, bundle: str, stage: Path) -> str:
    """Ship ``bundle`` to every executor; returns the name ``SparkFiles.get`` unpacks it at.

    Why an archive: ``addFile`` takes a directory only from a Hadoop file system (a local
    bundle directory fails on a cluster), while ``addArchive`` takes a local file and
    unpacks it on every node. Why the manifest's hash in the name: Spark keeps the first
    copy of a name, so a bundle re-published at the same path under the same name would
    be served stale by a long-lived session. Stored, not deflated: ONNX and float tables
    barely compress, and the copy is the cost.
    """
    root = Path(bundle).resolve()
    digest = hashlib.sha256((root / C.MANIFEST_FILE).read_bytes()).hexdigest()[:16]
    archive = stage / f"edgerec-bundle-{digest}.zip"
    with zipfile.ZipFile(archive, "w", zipfile.ZIP_STORED) as zf:
        for path in sorted(p for p in root.rglob("*") if p.is_file()):
            zf.write(path, path.relative_to(root).as_posix())
    sc.addArchive(str(archive))
    return archive.name


def _partition_scorer(scorer: BatchScorer, shipped: str):
    """The mapInArrow function: the scorer at the executor's copy of the bundle, with
    the task's CPUs as threads."""
    def score(batches):
        from pyspark import SparkFiles, TaskContext

        here = scorer.at(SparkFiles.get(shipped), threads=TaskContext.get().cpus())
        for batch in batches:
            yield here(batch)

    return score


def run(histories: str, scorer: BatchScorer, out: str, workers: int, cpus: int,
        master: str | None, rows: int) -> int:
    """Score the Parquet ``histories`` into Parquet files under ``out``; returns users."""
    spark = _session(workers, cpus, master)
    sc = spark.sparkContext
    shipped = ship(sc, scorer.bundle, Path(out).parent)
    size = sum(f.stat().st_size for f in Path(histories).rglob("*") if f.is_file()) \
        if Path(histories).is_dir() else Path(histories).stat().st_size
    slots = max(1, sc.defaultParallelism // max(1, int(spark.conf.get("spark.task.cpus", "1"))))
    spark.conf.set("spark.sql.files.maxPartitionBytes",
                   str(max(1 << 20, size // (slots * PARTITIONS_PER_WORKER))))
    spark.conf.set("spark.sql.execution.arrow.maxRecordsPerBatch", str(rows))
    frame = spark.read.parquet(histories).select("user_id", "history")
    frame.mapInArrow(_partition_scorer(scorer, shipped), RESULT_DDL).write.mode("overwrite").parquet(out)
    return spark.read.parquet(out).count()


def cluster() -> str:
    """The master URL of the session the job ran on (the run summary says where)."""
    from pyspark.sql import SparkSession

    return SparkSession.getActiveSession().sparkContext.master
