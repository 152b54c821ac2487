"""The Dask cluster that :func:`lindyn.aggregate.aggregate` computes on (config ``aggregate``).

Three kinds, none of which changes a result:

- ``local`` with one worker: no cluster and no client (Dask's synchronous scheduler);
- ``local`` with ``workers > 1``: a :class:`distributed.LocalCluster` of that many
  single-threaded worker processes, inside the aggregate job;
- ``slurm``: a :class:`dask_jobqueue.SLURMCluster`. The scheduler runs in the calling
  process (the aggregate job, which then only orchestrates and belongs on the submitting
  host); its workers are ``jobs`` Slurm jobs of ``cores`` single-threaded worker processes
  sharing ``memory``, each submitted with ``sbatch`` from the current directory, which
  must be on a file system the compute nodes share.

Settings of a ``slurm`` cluster (config ``aggregate.slurm``; the schema has the defaults):
``jobs``, ``cores``, ``memory``, ``walltime``, ``job_name``, and optionally ``partition``
(else ``$LINDYN_SLURM_PARTITION_AGGREGATE``, else ``$LINDYN_SLURM_PARTITION``, else the
cluster's default partition), ``account`` and ``interface`` (the network interface of the
scheduler and the workers, e.g. ``ib0``). Anything else (extra ``#SBATCH`` lines, a job
script prologue) comes from Dask's own configuration, ``jobqueue.slurm`` in
``~/.config/dask/jobqueue.yaml``.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from distributed import Client

__all__ = ["KINDS", "WORKER_WAIT_SECONDS", "dask_client", "slurm_partition"]

KINDS = ("local", "slurm")
# How long a SLURMCluster client waits for all its worker jobs to start before it starts
# computing with the workers it has (the others join when Slurm starts them).
WORKER_WAIT_SECONDS = 120
log = logging.getLogger(__name__)


def slurm_partition(settings: Mapping[str, Any]) -> str | None:
    """The partition of the worker jobs: configured, else from the environment, else None."""
    return (
        settings.get("partition")
        or os.environ.get("LINDYN_SLURM_PARTITION_AGGREGATE")
        or os.environ.get("LINDYN_SLURM_PARTITION")
        or None
    )


def _slurm_client(settings: Mapping[str, Any], log_directory: str | os.PathLike | None) -> Client:
    from dask_jobqueue import SLURMCluster
    from distributed import Client

    cores = int(settings["cores"])
    options: dict[str, Any] = {
        "cores": cores,
        "processes": cores,  # one single-threaded worker process per core
        "memory": settings["memory"],
        "walltime": settings["walltime"],
        "job_name": settings["job_name"],
        "scheduler_options": {"dashboard_address": ":0"},
        # keep the scheduler's INFO lines (workers registering, leaving) in the job's log
        "silence_logs": False,
    }
    for key, value in (
        ("queue", slurm_partition(settings)),
        ("account", settings.get("account")),
        ("interface", settings.get("interface")),
    ):
        if value:
            options[key] = value
    if log_directory is not None:
        Path(log_directory).mkdir(parents=True, exist_ok=True)
        options["log_directory"] = str(log_directory)
    cluster = SLURMCluster(**options)
    jobs = int(settings["jobs"])
    log.info(
        "SLURMCluster: %d worker jobs of %d cores; job script:\n%s",
        jobs,
        cores,
        cluster.job_script(),
    )
    cluster.scale(jobs=jobs)
    client = Client(cluster)
    start = time.perf_counter()
    try:
        client.wait_for_workers(jobs * cores, timeout=WORKER_WAIT_SECONDS)
    except TimeoutError:
        log.warning(
            "only %d of %d Dask workers started within %d s; computing with them meanwhile",
            len(client.scheduler_info()["workers"]),
            jobs * cores,
            WORKER_WAIT_SECONDS,
        )
    job_ids = sorted(str(job.job_id) for job in cluster.workers.values() if job.job_id)
    log.info(
        "SLURMCluster: %d Dask workers in %.1f s, Slurm jobs %s",
        len(client.scheduler_info()["workers"]),
        time.perf_counter() - start,
        " ".join(job_ids),
    )
    return client


def dask_client(
    kind: str = "local",
    workers: int = 1,
    slurm: Mapping[str, Any] | None = None,
    log_directory: str | os.PathLike | None = None,
) -> Client | None:
    """A Dask client on the configured cluster, or None for Dask's synchronous scheduler.

    Parameters
    ----------
    kind : {"local", "slurm"}
        Config ``aggregate.cluster``.
    workers : int
        Config ``aggregate.workers``: size of a ``local`` cluster (1: no cluster).
        Not used by a ``slurm`` cluster, whose size is ``jobs × cores`` workers.
    slurm : mapping, optional
        Config ``aggregate.slurm``; required for ``kind="slurm"``.
    log_directory : path-like, optional
        Where the Slurm worker jobs write their output (``{job_name}-{jobid}.err``/``.out``).

    Returns
    -------
    distributed.Client or None
        Close it with ``client.close(); client.cluster.close()`` (which cancels the
        worker jobs of a ``slurm`` cluster).
    """
    if kind == "slurm":
        if slurm is None:
            raise ValueError("a slurm Dask cluster needs its settings (config aggregate.slurm)")
        return _slurm_client(slurm, log_directory)
    if kind != "local":
        raise ValueError(f"unknown Dask cluster kind {kind!r}; one of {', '.join(KINDS)}")
    if workers <= 1:
        return None
    from distributed import Client, LocalCluster

    cluster = LocalCluster(
        n_workers=workers, threads_per_worker=1, processes=True, dashboard_address=":0"
    )
    return Client(cluster)
