# Helpers shared by the rules: config validation, the grid, paths.
import math
import sys
from pathlib import Path

from snakemake.exceptions import WorkflowError

from lindyn.blocks import BLOCK_PATTERN, block_path, plan_blocks
from lindyn.paths import AGGREGATES, CSV_TABLES, aggregate_path, csv_path
from lindyn.config import ConfigError, format_value, validated

# Refuse a bad configuration before any job runs, with one line per problem naming
# the key, the value and what is allowed (no Python traceback). Snakemake's validate,
# against workflow/schemas/config.schema.yaml (lindyn.config), fills in every default.
try:
    config.update(validated(config))
except ConfigError as err:
    raise WorkflowError(str(err)) from None

# Jobs run `python -m lindyn` with the interpreter that runs Snakemake (the
# project's virtual environment), without naming it in any rule's params.
shell.prefix(f'set -euo pipefail; export PATH="{Path(sys.executable).parent}:$PATH"; ')


wildcard_constraints:
    dataset=r"[A-Za-z][A-Za-z0-9_]*",
    block=BLOCK_PATTERN,


# The blocks of every dataset, planned once (lindyn.blocks): name -> Block.
BLOCKS = {
    dataset: {block.name: block for block in plan_blocks(config, dataset)}
    for dataset in config["datasets"]
}


def block_paths(dataset):
    """Block stores of one dataset."""
    return [block_path(block) for block in BLOCKS[dataset].values()]


def block_arguments(wildcards):
    """The cells of a block as `lindyn sweep` arguments (a rerun trigger: params)."""
    return BLOCKS[wildcards.dataset][wildcards.block].sweep_arguments()


def block_cells(wildcards):
    """Number of cells a block simulates (shown by `lindyn plan`)."""
    return BLOCKS[wildcards.dataset][wildcards.block].cells


def block_runtime(wildcards, attempt):
    """Minutes of a block job under a cluster executor (workflow/profiles/slurm): 5, plus
    config simulate.minutes_per_million_steps per million cell-steps; times the attempt.
    """
    million_steps = block_cells(wildcards) * config["max_steps"] / 1e6
    rate = config["simulate"]["minutes_per_million_steps"]
    return attempt * (5 + math.ceil(million_steps * rate))


def dataset_option_args(wildcards):
    """The dataset's options as repeated `--option KEY=VALUE` arguments."""
    options = config["datasets"][wildcards.dataset].get("options", {})
    return " ".join(
        f"--option {key}={format_value(value)}"
        for key, value in sorted(options.items())
    )


def aggregate_outputs(dataset):
    """A dataset's aggregated stores and CSV tables (lindyn.paths)."""
    return [aggregate_path("results", dataset, name) for name in AGGREGATES] + [
        csv_path("results", dataset, name) for name in CSV_TABLES
    ]


def all_targets():
    return [
        path for dataset in config["datasets"] for path in aggregate_outputs(dataset)
    ] + report_targets()
