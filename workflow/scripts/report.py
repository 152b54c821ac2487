"""Snakemake wrapper: write the claims report (see lindyn.report.markdown.build_report)."""

import logging
from pathlib import Path

from lindyn.report.markdown import build_report

logging.basicConfig(
    filename=snakemake.log[0],  # noqa: F821
    level=logging.INFO,
    format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    force=True,
)
logging.captureWarnings(True)
log = logging.getLogger("report")
out = Path(snakemake.output[0])  # noqa: F821
try:
    build_report(
        results_dir=out.parent,
        datasets=snakemake.params.datasets,  # noqa: F821
        out=out,
        config=snakemake.config,  # noqa: F821
        figures_dir=Path(snakemake.input.figures[0]).parent,  # noqa: F821
    )
except Exception:
    log.exception("report failed")
    raise
log.info("wrote %s", out)
