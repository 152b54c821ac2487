"""Snakemake wrapper: aggregate one dataset's block stores (see lindyn.aggregate)."""

import logging
from pathlib import Path

from lindyn.aggregate import aggregate

# Dask's worker processes re-import this file as `__mp_main__`: run only in the parent.
if __name__ == "__main__":
    logging.basicConfig(filename=snakemake.log[0], level=logging.INFO)  # noqa: F821
    aggregate(
        blocks=list(zip(snakemake.input.blocks, snakemake.params.blocks, strict=True)),  # noqa: F821
        stats_path=snakemake.input.stats,  # noqa: F821
        out_dir=Path(snakemake.output.trajectories).parent,  # noqa: F821
        workers=snakemake.threads,  # noqa: F821
    )
