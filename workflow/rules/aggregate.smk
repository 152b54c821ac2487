# The Dask workers of a local cluster (config aggregate.workers); a slurm cluster's workers
# are Slurm jobs of their own (aggregate.slurm), which the job, then a local rule (Snakefile),
# only orchestrates.
AGGREGATE_THREADS = (
    config["aggregate"]["workers"] if config["aggregate"]["cluster"] == "local" else 1
)


rule aggregate:
    """Combine a dataset's blocks with Dask; phase times, bounds and path metrics."""
    input:
        stats="results/datasets/{dataset}.zarr.zip",
        blocks=lambda wildcards: block_paths(wildcards.dataset),
    output:
        trajectories="results/aggregate/{dataset}/trajectories.zarr.zip",
        phase_times="results/aggregate/{dataset}/phase_times.zarr.zip",
        bounds="results/aggregate/{dataset}/bounds.zarr.zip",
        path="results/aggregate/{dataset}/path.zarr.zip",
        phase_times_csv="results/aggregate/{dataset}/phase_times.csv",
        bounds_csv="results/aggregate/{dataset}/bounds.csv",
        path_csv="results/aggregate/{dataset}/path.csv",
    log:
        "results/logs/aggregate/{dataset}.log",
    conda:
        "../envs/lindyn.yaml"
    threads: AGGREGATE_THREADS
    params:
        blocks=lambda wildcards: list(BLOCKS[wildcards.dataset].values()),
    script:
        "../scripts/aggregate.py"
