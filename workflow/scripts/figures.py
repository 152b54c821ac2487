"""Snakemake wrapper: draw one figure from the stores (see lindyn.report.make_figure)."""

from lindyn.jobs import job_log, results_directory
from lindyn.report.figures import make_figure, report_targets

with job_log(snakemake.log[0], "figures") as log:  # noqa: F821
    outputs = [snakemake.output.png, snakemake.output.pdf]  # noqa: F821
    paths = make_figure(
        snakemake.params.figure,  # noqa: F821
        results_directory(outputs[0], report_targets(".")),
        snakemake.params.datasets,  # noqa: F821
        outputs,
    )
    log.info("wrote %s", ", ".join(map(str, paths)))
