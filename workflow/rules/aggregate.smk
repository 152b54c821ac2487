rule aggregate:
    """Combine a dataset's blocks with Dask; phase times, bounds and path metrics."""
    input:
        stats="results/datasets/{dataset}.zarr",
        blocks=lambda wildcards: block_paths(wildcards.dataset),
    output:
        trajectories=directory("results/aggregate/{dataset}/trajectories.zarr"),
        phase_times=directory("results/aggregate/{dataset}/phase_times.zarr"),
        bounds=directory("results/aggregate/{dataset}/bounds.zarr"),
        path=directory("results/aggregate/{dataset}/path.zarr"),
    log:
        "results/logs/aggregate/{dataset}.log",
    conda:
        "../envs/lindyn.yaml"
    threads: config["aggregate"]["workers"]
    params:
        blocks=lambda wildcards: list(BLOCKS[wildcards.dataset].values()),
    script:
        "../scripts/aggregate.py"
