rule simulate:
    """One grid cell: a gradient-descent run on a dataset's statistics store."""
    input:
        stats="results/datasets/{dataset}.zarr",
    output:
        directory(f"results/runs/{RUN_PATTERN}.zarr"),
    log:
        f"results/logs/runs/{RUN_PATTERN}.log",
    # On a cluster, a dataset's cells are batched into jobs of this group (profile slurm,
    # group-components); per dataset, so that one dataset's failure holds up no other's cells.
    group:
        "simulate_{dataset}"
    conda:
        "../envs/lindyn.yaml"
    threads: 1
    params:
        max_steps=config["max_steps"],
        log_density=config["log_density"],
        tol=config.get("tol", 1e-8),
        max_components=config.get("max_components", 32),
    shell:
        # one BLAS thread: the matrices are small and jobs run side by side
        "OMP_NUM_THREADS={threads} OPENBLAS_NUM_THREADS={threads}"
        " python -m lindyn simulate --stats {input.stats} --label {wildcards.dataset}"
        " --depth {wildcards.depth} --width {wildcards.width} --init {wildcards.init}"
        " --seed {wildcards.seed} --eta {wildcards.eta} --delta {wildcards.delta}"
        " --max-steps {params.max_steps} --log-density {params.log_density}"
        " --tol {params.tol} --max-components {params.max_components}"
        " --out {output} > {log} 2>&1"
