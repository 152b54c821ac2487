"""Snakemake wrapper: aggregate one dataset's block stores (see lindyn.aggregate)."""

import logging
from pathlib import Path

from lindyn.aggregate import aggregate

# Dask's worker processes re-import this file as `__mp_main__`: run only in the parent.
if __name__ == "__main__":
    log = Path(snakemake.log[0])  # noqa: F821
    logging.basicConfig(filename=log, level=logging.INFO)
    # Where the Dask workers run is read from the config, not passed as params: it changes
    # no result, so changing it must not rerun the aggregation (params are a rerun trigger).
    settings = snakemake.config["aggregate"]  # noqa: F821
    aggregate(
        blocks=list(zip(snakemake.input.blocks, snakemake.params.blocks, strict=True)),  # noqa: F821
        results=Path(snakemake.output.trajectories).parents[2],  # noqa: F821
        workers=snakemake.threads,  # noqa: F821
        cluster=settings["cluster"],
        slurm=settings["slurm"],
        # the Slurm worker jobs' logs, e.g. results/logs/aggregate/{dataset}.dask/
        dask_log_directory=log.with_suffix(".dask"),
    )
