rule simulate:
    """One block of grid cells: a sweep on a dataset's statistics store, one store."""
    input:
        stats=STATS_STORE,
    output:
        "results/blocks/{dataset}/{block}.zarr.zip",
    log:
        "results/logs/blocks/{dataset}/{block}.log",
    threads: config["simulate"]["threads"]
    resources:
        cells=block_cells,
        runtime=block_runtime,
    params:
        cells=block_arguments,
        max_steps=config["max_steps"],
        log_density=config["log_density"],
        tol=config["tol"],
        max_components=config["max_components"],
        budget=config["budget"],
        budget_margin=config["budget_margin"],
        stop=config["stop"],
    shell:
        # BLAS and numba threads as Snakemake grants: several blocks run side by side
        "OMP_NUM_THREADS={threads} OPENBLAS_NUM_THREADS={threads} NUMBA_NUM_THREADS={threads}"
        " python -m lindyn sweep --stats {input.stats} --label {wildcards.dataset}"
        " {params.cells} --max-steps {params.max_steps} --log-density {params.log_density}"
        " --tol {params.tol} --max-components {params.max_components}"
        " --budget {params.budget} --budget-margin {params.budget_margin} --stop {params.stop}"
        " --out {output} > {log} 2>&1"
