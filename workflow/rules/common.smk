# Helpers shared by the rules: config validation, the grid, paths.
import sys
from pathlib import Path

from snakemake.exceptions import WorkflowError
from snakemake.utils import validate

from lindyn.config import (
    ConfigError,
    check_config,
    config_error_message,
    format_value,
    grid_cells,
)

# Refuse a bad configuration before any job runs, with one line per problem naming
# the key, the value and what is allowed (no Python traceback).
CONFIG_SCHEMA = "../schemas/config.schema.yaml"
try:
    validate(config, CONFIG_SCHEMA)
    check_config(config)
except (WorkflowError, ConfigError) as err:
    raise WorkflowError(
        config_error_message(
            err, config, workflow.source_path(CONFIG_SCHEMA)  # every schema violation
        )
    ) from None

# Jobs run `python -m lindyn` with the interpreter that runs Snakemake (the
# project's virtual environment), without naming it in any rule's params.
shell.prefix(f'set -euo pipefail; export PATH="{Path(sys.executable).parent}:$PATH"; ')
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
