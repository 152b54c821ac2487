"""Snakemake wrapper: draw one figure from the stores (see lindyn.report.make_figure)."""

import logging
from pathlib import Path

from lindyn.report.figures import make_figure

logging.basicConfig(
    filename=snakemake.log[0],  # noqa: F821
    level=logging.INFO,
    format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    force=True,
)
logging.captureWarnings(True)
log = logging.getLogger("figures")
outputs = [snakemake.output.png, snakemake.output.pdf]  # noqa: F821
try:
    paths = make_figure(
        snakemake.params.figure,  # noqa: F821
        Path(outputs[0]).parents[1],  # results/
        snakemake.params.datasets,  # noqa: F821
        outputs,
    )
except Exception:
    log.exception("figure %s failed", snakemake.params.figure)  # noqa: F821
    raise
log.info("wrote %s", ", ".join(map(str, paths)))
