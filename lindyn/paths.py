"""Where the pipeline keeps each store under its results directory, and what each is.

The one home of the results layout: the workflow's rules, the aggregation, the
report and ``lindyn query`` all build their paths here (block stores:
:func:`lindyn.blocks.block_path`). A leaf module: the ``Snakefile`` imports it.
"""

from __future__ import annotations

from pathlib import Path

__all__ = [
    "AGGREGATES",
    "CSV_TABLES",
    "QUERY_COLUMNS",
    "QUERY_TABLES",
    "aggregate_kind",
    "aggregate_path",
    "csv_path",
    "departure_fit_path",
    "departure_path",
    "generalisation_path",
    "stats_path",
]

# The aggregated stores of a dataset (lindyn.aggregate), in the order they are written.
AGGREGATES = ("trajectories", "phase_times", "bounds", "path", "learning")
# The aggregated tables that are also written as CSV files.
CSV_TABLES = ("phase_times", "bounds", "path", "learning")
# What each table of `lindyn query` shows: its aggregated store and columns.
QUERY_COLUMNS = {
    "phase": (
        "phase_times",
        [
            "t_measured",
            "t_flow",
            "t_asymptotic",
            "t_minus",
            "t_plus",
            "rel_error_flow",
            "rel_error_asymptotic",
            "in_bracket",
            "status",
        ],
    ),
    "bounds": (
        "bounds",
        ["max_violation", "bracket_ratio", "in_bracket", "separated", "eigengap_margin", "status"],
    ),
    "path": (
        "path",
        [
            "min_rel_dist_seq",
            "window_start_seq",
            "window_end_seq",
            "min_rel_dist_rrr",
            "window_start_rrr",
            "window_end_rrr",
            "status",
        ],
    ),
    "learning": (
        "learning",
        [
            "sequential_fraction",
            "sequential_pairs",
            "peak_effective_rank",
            "effective_rank_at_first",
            "final_effective_rank",
            "status",
        ],
    ),
}
# The tables of `lindyn query`: the aggregated ones, Table 1, the runs with their staleness,
# the generalisation studies' summaries (lindyn.generalisation.summary) and the ε > 0
# departure study (its measurements and its fitted law; lindyn.departure).
QUERY_TABLES = (*QUERY_COLUMNS, "eps", "runs", "generalisation", "departure", "departure_fit")


def stats_path(results: str | Path, dataset: str) -> Path:
    """A dataset's statistics store."""
    return Path(results) / "datasets" / f"{dataset}.zarr.zip"


def aggregate_path(results: str | Path, dataset: str, name: str) -> Path:
    """One of a dataset's aggregated stores (``name`` in :data:`AGGREGATES`)."""
    if name not in AGGREGATES:
        raise ValueError(f"unknown aggregated store {name!r}; one of {', '.join(AGGREGATES)}")
    return Path(results) / "aggregate" / dataset / f"{name}.zarr.zip"


def csv_path(results: str | Path, dataset: str, name: str) -> Path:
    """The CSV copy of one of a dataset's aggregated tables (``name`` in :data:`CSV_TABLES`)."""
    if name not in CSV_TABLES:
        raise ValueError(f"no CSV table {name!r}; one of {', '.join(CSV_TABLES)}")
    return Path(results) / "aggregate" / dataset / f"{name}.csv"


def generalisation_path(results: str | Path, dataset: str, suffix: str = ".zarr.zip") -> Path:
    """A dataset's generalisation study (:mod:`lindyn.generalisation`): store, or ``.csv``."""
    return Path(results) / "beyond" / "generalisation" / f"{dataset}{suffix}"


def aggregate_kind(name: str) -> str:
    """The ``kind`` attribute of an aggregated store, checked when it is read."""
    return f"lindyn.aggregate.{name}"


def departure_path(results: str | Path) -> Path:
    """The ε > 0 departure study's store (:func:`lindyn.departure.measure`)."""
    return Path(results) / "beyond" / "departure.zarr.zip"


def departure_fit_path(results: str | Path) -> Path:
    """The departure study's fitted law as CSV (:func:`lindyn.departure.fit_table`)."""
    return Path(results) / "beyond" / "departure_fit.csv"
