rule dataset_stats:
    """Load a dataset once and store its sufficient statistics and spectra."""
    output:
        STATS_STORE,
    log:
        "results/logs/datasets/{dataset}.log",
    params:
        loader=lambda wildcards: config["datasets"][wildcards.dataset]["loader"],
        options=dataset_options,
    shell:
        "python -m lindyn dataset {params.loader} --options {params.options}"
        " --label {wildcards.dataset} --out {output} > {log} 2>&1"
