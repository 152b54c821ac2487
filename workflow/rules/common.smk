# Helpers shared by the rules: config validation, the grid, paths.
import json
import math
import shlex
import sys
from pathlib import Path

from snakemake.exceptions import WorkflowError

from lindyn.blocks import BLOCK_PATTERN, block_path, plan_blocks
from lindyn.datasets import with_test_sets
from lindyn.paths import (
    AGGREGATES,
    CSV_TABLES,
    aggregate_path,
    csv_path,
    departure_fit_path,
    departure_path,
    generalisation_path,
    stats_path,
)
from lindyn.config import DATASET_PATTERN, ConfigError, format_value, validated
from lindyn.report.figures import FIGURES, figure_inputs, report_targets

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


# The results directory, laid out by lindyn.paths (the scripts find it from their files).
RESULTS = "results"
# A dataset's statistics store, with the wildcard left in.
STATS_STORE = str(stats_path(RESULTS, "{dataset}"))
# A dataset's generalisation study: its store and summary table.
GENERALISATION_STORE = str(generalisation_path(RESULTS, "{dataset}"))
GENERALISATION_CSV = str(generalisation_path(RESULTS, "{dataset}", ".csv"))
# The datasets with a test set, which get a generalisation study.
GENERALISATION_DATASETS = with_test_sets(config["datasets"])


wildcard_constraints:
    dataset=DATASET_PATTERN,
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


def dataset_options(wildcards):
    """The dataset's typed options as one shell-quoted JSON mapping (`--options`).

    A rerun trigger (params): keys sorted, so that only a changed option reruns the rule.
    """
    options = config["datasets"][wildcards.dataset].get("options", {})
    return shlex.quote(json.dumps(options, sort_keys=True))


def aggregate_outputs(dataset):
    """A dataset's aggregated stores and CSV tables (lindyn.paths), by the names
    lindyn.aggregate.aggregate returns them under."""
    stores = {name: aggregate_path(RESULTS, dataset, name) for name in AGGREGATES}
    tables = {f"{name}_csv": csv_path(RESULTS, dataset, name) for name in CSV_TABLES}
    return {name: str(path) for name, path in (stores | tables).items()}


def figure_output(figure, fmt):
    """One file of a figure, with the figure's caption, category and title in the report."""
    _, title, category = FIGURES[figure]
    return report(
        f"{RESULTS}/figures/{figure}.{fmt}",
        caption=f"../report/{figure}.rst",
        category=category,
        labels={"figure": title, "format": fmt.upper()},
    )


def generalisation_outputs():
    """Every generalisation study's store and summary table."""
    return expand(
        [GENERALISATION_STORE, GENERALISATION_CSV], dataset=GENERALISATION_DATASETS
    )


def generalisation_arguments():
    """Config `generalisation` as `lindyn generalise` arguments (a rerun trigger)."""
    settings = config["generalisation"]
    return " ".join(
        f"--{key.replace('_', '-')} {format_value(value).replace(',', ' ')}"
        for key, value in sorted(settings.items())
    )


def departure_enabled():
    """Whether the ε > 0 departure study runs (config `departure`)."""
    return bool(config["departure"]["enabled"] and config["departure"]["perturbation"])


def departure_targets():
    """The departure study's store and fit (lindyn.paths), if it runs."""
    if not departure_enabled():
        return []
    return [str(departure_path(RESULTS)), str(departure_fit_path(RESULTS))]


def all_targets():
    return (
        [
            path
            for dataset in config["datasets"]
            for path in aggregate_outputs(dataset).values()
        ]
        + generalisation_outputs()
        + departure_targets()
        + report_targets(RESULTS)
    )
