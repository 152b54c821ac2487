# Figures and the claims report, drawn from the aggregated stores (lindyn.plots, lindyn.report).
# One rule per figure of the registry (lindyn.report.figures.FIGURES), named
# `figure_{kind}`, writing a PNG and a PDF, both tagged for `snakemake --report`.
FIGURE_RULES = {figure: f"figure_{kind}" for figure, (kind, _, _) in FIGURES.items()}
# Figures drawn from the statistics stores alone: they wait for no simulation.
STATISTICS_ONLY = ("fig1_flow", "fig3_eps")
# What a figure needs of each dataset's entry (lindyn.report.figures.figure_datasets): a
# rerun trigger (params), so a change of its options reruns it only through its stores.
FIGURE_DATASETS = {
    name: {"loader": entry["loader"]} for name, entry in config["datasets"].items()
}


# Every directive's value is computed here, at definition time, from this iteration's
# `figure`: no function or lambda that would read the loop variable later.
for figure, (_, title, _) in FIGURES.items():

    rule:
        f"{title} ({figure})."
        name:
            FIGURE_RULES[figure]
        input:
            figure_inputs(
                figure,
                config["datasets"],
                RESULTS,
                aggregates=figure not in STATISTICS_ONLY,
                departure=departure_enabled(),
            ),
        output:
            png=figure_output(figure, "png"),
            pdf=figure_output(figure, "pdf"),
        log:
            f"results/logs/figures/{figure}.log",
        params:
            figure=figure,
            datasets=FIGURE_DATASETS,
        script:
            "../scripts/figures.py"


rule report:
    """The claims report: verdicts computed from the aggregated stores."""
    input:
        stats=expand(STATS_STORE, dataset=config["datasets"]),
        aggregates=[
            path
            for dataset in config["datasets"]
            for path in aggregate_outputs(dataset).values()
        ],
        generalisation=generalisation_outputs(),
        figures=[f"{RESULTS}/figures/{figure}.png" for figure in FIGURES],
        departure=departure_targets(),
    output:
        report(
            "results/report.md",
            caption="../report/report.rst",
            category="Claims report",
        ),
    log:
        "results/logs/report.log",
    params:
        datasets=list(config["datasets"]),
    script:
        "../scripts/report.py"
