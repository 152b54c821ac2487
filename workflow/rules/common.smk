# Helpers shared by the rules: config validation, the grid, paths.
import sys

from snakemake.utils import validate

from lindyn.config import check_config, format_value, grid_cells

validate(config, "../schemas/config.schema.yaml")
check_config(config)

# Every job runs lindyn with the interpreter that runs Snakemake.
LINDYN = f"{sys.executable} -m lindyn"
RUN_PATTERN = (
    "{dataset}/depth{depth}/width{width}/{init}/seed{seed}/eta{eta}_delta{delta}"
)


wildcard_constraints:
    dataset=r"[A-Za-z][A-Za-z0-9_]*",
    depth=r"\d+",
    width=r"\d+",
    init=r"aligned|random",
    seed=r"\d+",
    eta=r"[0-9][0-9.e+-]*",
    delta=r"-?[0-9][0-9.e+-]*",


def run_paths(dataset):
    """Run stores of one dataset, one per grid cell."""
    return [
        f"results/runs/{RUN_PATTERN}.zarr".format(**cell)
        for cell in grid_cells(config, dataset)
    ]


def dataset_option_args(wildcards):
    """The dataset's options as repeated `--option KEY=VALUE` arguments."""
    options = config["datasets"][wildcards.dataset].get("options", {})
    return " ".join(
        f"--option {key}={format_value(value)}"
        for key, value in sorted(options.items())
    )


def aggregate_outputs(dataset):
    return [
        f"results/aggregate/{dataset}/{name}"
        for name in (
            "trajectories.zarr",
            "phase_times.zarr",
            "bounds.zarr",
            "path.zarr",
        )
    ]


def all_targets():
    return [
        path for dataset in config["datasets"] for path in aggregate_outputs(dataset)
    ] + report_targets()
