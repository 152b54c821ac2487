"""Snakemake wrapper: the ε > 0 departure study (lindyn.departure.measure), store and fit."""

from lindyn.departure import measure, write_departure
from lindyn.jobs import job_log

with job_log(snakemake.log[0], "departure") as log:  # noqa: F821
    settings = dict(snakemake.params.settings)  # noqa: F821
    settings.pop("enabled", None)
    perturbation = settings.pop("perturbation")
    seeds = settings.pop("seeds")
    depth, eta, delta = settings.pop("depth"), settings.pop("eta"), settings.pop("delta")
    ds = measure(perturbation, seeds, depth, eta, delta, log=log, **settings)
    table = write_departure(ds, snakemake.output.store, snakemake.output.fit)  # noqa: F821
    pooled = table[table["cell"] == "all"]
    for row in pooled.itertuples():
        log.info(
            "%s, depth %d: alpha = %.3f ± %.3f, C = %.3g ± %.2g, "
            "eps_10%% = %.3g (fit), %.3g (grid)",
            row.measure,
            row.depth,
            row.alpha,
            row.alpha_se,
            row.C,
            row.C_se,
            row.eps10_fit,
            row.eps10_measured,
        )
