"""Snakemake wrapper: aggregate one dataset's block stores (see lindyn.aggregate)."""

from pathlib import Path

from lindyn.aggregate import aggregate
from lindyn.jobs import job_log, results_directory
from lindyn.paths import stats_path

# Dask's worker processes re-import this file as `__mp_main__`: run only in the parent.
if __name__ == "__main__":
    log = Path(snakemake.log[0])  # noqa: F821
    stats = snakemake.input.stats  # noqa: F821
    # Where the Dask workers run is read from the config, not passed as params: it changes
    # no result, so changing it must not rerun the aggregation (params are a rerun trigger).
    settings = snakemake.config["aggregate"]  # noqa: F821
    with job_log(log, "aggregate"):
        aggregate(
            blocks=list(zip(snakemake.input.blocks, snakemake.params.blocks, strict=True)),  # noqa: F821
            # the statistics are read from, and the outputs written to, this directory
            results=results_directory(stats, [stats_path(".", snakemake.wildcards.dataset)]),  # noqa: F821
            workers=snakemake.threads,  # noqa: F821
            cluster=settings["cluster"],
            slurm=settings["slurm"],
            # the Slurm worker jobs' logs, e.g. results/logs/aggregate/{dataset}.dask/
            dask_log_directory=log.with_suffix(".dask"),
        )
