# Beyond the paper. Generalisation (lindyn.generalisation): each dataset with a test set,
# its paths against ridge, RRR and PCA regression; config `generalisation`. The ε > 0
# departure law (lindyn.departure), on the `commuting` loader with its `perturbation`
# option swept; config `departure` (empty perturbation or enabled: false turns it off,
# and the report says so).


rule generalisation:
    """A dataset's generalisation study: paths to convergence against ridge, RRR and PCA."""
    input:
        stats=STATS_STORE,
    output:
        store=GENERALISATION_STORE,
        csv=GENERALISATION_CSV,
    log:
        "results/logs/beyond/generalisation/{dataset}.log",
    params:
        settings=generalisation_arguments(),
    shell:
        "python -m lindyn generalise --stats {input.stats} --label {wildcards.dataset}"
        " {params.settings} --out {output.store} --csv {output.csv} > {log} 2>&1"


rule departure:
    """Aligned-init runs at each perturbation and seed against the exact ε = 0 recursion."""
    output:
        store=str(departure_path(RESULTS)),
        fit=str(departure_fit_path(RESULTS)),
    log:
        "results/logs/beyond/departure.log",
    params:
        settings=config["departure"],
    script:
        "../scripts/departure.py"
