# The Dask workers of a local cluster (config aggregate.workers); a slurm cluster's workers
# are Slurm jobs of their own (aggregate.slurm), which the job, then a local rule (Snakefile),
# only orchestrates.
AGGREGATE_THREADS = (
    config["aggregate"]["workers"] if config["aggregate"]["cluster"] == "local" else 1
)


rule aggregate:
    """Combine a dataset's blocks with Dask; phase times, bounds and path metrics."""
    input:
        stats=STATS_STORE,
        blocks=lambda wildcards: block_paths(wildcards.dataset),
    output:
        **aggregate_outputs("{dataset}"),
    log:
        "results/logs/aggregate/{dataset}.log",
    threads: AGGREGATE_THREADS
    params:
        blocks=lambda wildcards: list(BLOCKS[wildcards.dataset].values()),
    script:
        "../scripts/aggregate.py"
