"""Snakemake wrapper: write the claims report (see lindyn.report.markdown.build_report)."""

from pathlib import Path

from lindyn.jobs import job_log, results_directory
from lindyn.report.figures import report_targets
from lindyn.report.markdown import build_report

with job_log(snakemake.log[0], "report") as log:  # noqa: F821
    out = snakemake.output[0]  # noqa: F821
    build_report(
        results_dir=results_directory(out, report_targets(".")),
        datasets=snakemake.params.datasets,  # noqa: F821
        out=out,
        config=snakemake.config,  # noqa: F821
        figures_dir=Path(snakemake.input.figures[0]).parent,  # noqa: F821
    )
    log.info("wrote %s", out)
