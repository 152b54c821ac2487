rule generalisation:
    """A dataset's generalisation study: paths to convergence against ridge, RRR and PCA."""
    input:
        stats=STATS_STORE,
    output:
        store=GENERALISATION_STORE,
        csv=GENERALISATION_CSV,
    log:
        "results/logs/generalisation/{dataset}.log",
    params:
        settings=generalisation_arguments(),
    shell:
        "python -m lindyn generalise --stats {input.stats} --label {wildcards.dataset}"
        " {params.settings} --out {output.store} --csv {output.csv} > {log} 2>&1"
