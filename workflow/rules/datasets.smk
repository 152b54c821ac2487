rule dataset_stats:
    """Load a dataset once and store its sufficient statistics and spectra."""
    output:
        "results/datasets/{dataset}.zarr.zip",
    log:
        "results/logs/datasets/{dataset}.log",
    conda:
        "../envs/lindyn.yaml"
    params:
        loader=lambda wildcards: config["datasets"][wildcards.dataset]["loader"],
        options=dataset_option_args,
    shell:
        "python -m lindyn dataset {params.loader} {params.options} --label {wildcards.dataset}"
        " --out {output} > {log} 2>&1"
