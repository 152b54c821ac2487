"""lindyn.query on its own: the results tree, the tables, staleness, the command.

The results come from ``in_process_results`` (conftest), made without Snakemake; each
table is compared with the aggregated store or statistics store it is read from.
"""

from __future__ import annotations

import argparse
import copy
import json
import shutil

import numpy as np
import pandas as pd
import pytest
import xarray as xr
from conftest import IN_PROCESS_CONFIG

from lindyn import generalisation, query
from lindyn.blocks import block_path, plan_blocks
from lindyn.cli import main
from lindyn.config import validated
from lindyn.datasets import load_dataset
from lindyn.paths import AGGREGATES, QUERY_COLUMNS, aggregate_path, generalisation_path, stats_path
from lindyn.runs import MISSING
from lindyn.stats import dataset_stats
from lindyn.store import open_store, read_stats, write_store

DATASET = "commuting"
CONFIG = validated(IN_PROCESS_CONFIG)
BLOCKS = plan_blocks(CONFIG, DATASET)
RUNS = sum(block.cells for block in BLOCKS)


@pytest.fixture
def results_copy(in_process_results, tmp_path):
    """A copy of the results (and config.yaml beside them) that a test may change."""
    root = tmp_path / "copy"
    shutil.copytree(in_process_results.parent, root)
    return root / "results"


def _stored(results, table: str) -> xr.Dataset:
    return open_store(aggregate_path(results, DATASET, table), "aggregated")


def test_open_results_is_a_tree_of_every_aggregated_store(in_process_results):
    tree = query.open_results(in_process_results)
    assert {node.path for node in tree.leaves} == {f"/{DATASET}/{name}" for name in AGGREGATES}
    for name in AGGREGATES:
        node = tree[f"{DATASET}/{name}"].to_dataset()
        xr.testing.assert_identical(node.compute(), _stored(in_process_results, name))


def test_open_results_without_a_run_says_run_the_pipeline(tmp_path):
    with pytest.raises(FileNotFoundError, match="run the pipeline first"):
        query.open_results(tmp_path / "results")


@pytest.mark.parametrize("table", list(QUERY_COLUMNS))
def test_tables_list_the_runs_of_their_store(in_process_results, table):
    frame = query.query_table(in_process_results, table)
    name, columns = QUERY_COLUMNS[table]
    stored = _stored(in_process_results, name)
    assert list(frame.columns) == ["dataset", *stored[columns].dims, *columns]
    assert (frame["dataset"] == DATASET).all()
    assert (frame["status"] != MISSING).all()
    values = [c for c in columns if c != "status"]
    expected = stored[columns].to_dataframe().dropna(how="all", subset=values)
    assert len(frame) == len(expected) > 0
    indexed = frame.set_index(list(stored[columns].dims))[values]
    pd.testing.assert_frame_equal(
        indexed, expected[values], check_dtype=False, check_index_type=False
    )


def test_where_selects_axes_and_datasets(in_process_results):
    where = {"depth": ["2"], "eta": ["0.1"], "fraction": ["0.5", "0.9"]}
    frame = query.query_table(in_process_results, "phase", where)
    assert set(frame["depth"]) == {2} and set(frame["eta"]) == {0.1}
    assert set(frame["fraction"]) == {0.5, 0.9}
    assert not frame.empty
    assert query.query_table(in_process_results, "phase", {"dataset": ["other"]}).empty


def test_where_names_the_axes_when_one_is_unknown(in_process_results):
    with pytest.raises(ValueError, match=r"unknown axis 'dept'; axes: .*depth"):
        query.query_table(in_process_results, "phase", {"dept": ["2"]})


def test_eps_table_is_table_1_of_the_statistics(in_process_results):
    frame = query.query_table(in_process_results, "eps")
    stats = read_stats(stats_path(in_process_results, DATASET), dataset=DATASET)
    row = frame.set_index("dataset").loc[DATASET]
    by_centring = stats.meta["eps_by_centring"]
    for centring in ("raw", "centred"):
        for eps in ("eps_a1", "eps_iso"):
            assert row[f"{eps}_{centring}"] == pytest.approx(by_centring[centring][eps])
    assert row["loader"] == "commuting"


def test_runs_are_fresh_against_their_own_config(in_process_results):
    runs = query.stale_runs(in_process_results)  # config.yaml beside the results
    # one row per run: the aligned init has no seed
    assert len(runs) == RUNS
    assert runs.loc[runs["init"] == "aligned", "seed"].isna().all()
    assert not runs["stale"].any(), runs["why"].unique()
    assert set(runs["status"]) == {"converged", "diverged"}


def test_runs_are_stale_when_a_setting_changes(in_process_results):
    changed = copy.deepcopy(IN_PROCESS_CONFIG) | {"max_steps": 1600}
    runs = query.stale_runs(in_process_results, changed)
    assert runs["stale"].all()
    assert (runs["why"] == "max_steps 1500 -> 1600").all()


def test_runs_outside_a_smaller_grid_are_stale(in_process_results):
    smaller = copy.deepcopy(IN_PROCESS_CONFIG)
    smaller["grid"]["init"] = ["aligned"]
    runs = query.stale_runs(in_process_results, smaller)
    outside = runs["init"] == "random"
    assert (runs.loc[outside, "why"] == "not in the configuration's grid").all()
    assert not runs.loc[~outside, "stale"].any()


def test_a_block_copied_onto_another_is_unusable(results_copy):
    random = [block for block in BLOCKS if block.init == "random"]
    source, target = (block_path(block, str(results_copy)) for block in random[:2])
    shutil.copy(source, target)
    runs = query.stale_runs(results_copy)
    bad = runs[runs["status"] == "unusable"]
    assert len(bad) == 1 and bad["stale"].all()
    assert bad["path"].iloc[0].endswith(f"{random[1].name}.zarr.zip")
    assert len(runs) == RUNS - random[1].cells + 1


def test_changed_statistics_make_every_run_stale(results_copy):
    config = copy.deepcopy(IN_PROCESS_CONFIG)
    config["datasets"][DATASET]["options"]["seed"] = 3
    options = json.dumps(config["datasets"][DATASET]["options"])
    stats = str(stats_path(results_copy, DATASET))
    assert (
        main(["dataset", "commuting", "--options", options, "--label", DATASET, "--out", stats])
        == 0
    )
    runs = query.stale_runs(results_copy, config)
    assert runs["why"].str.contains("dataset statistics changed").all()


@pytest.mark.parametrize("fmt", ["csv", "text"])
def test_query_command_prints_the_table(in_process_results, capsys, fmt):
    args = argparse.Namespace(
        results=str(in_process_results), table="bounds", where=["eta=0.1"], format=fmt
    )
    query.query_main(args)
    out = capsys.readouterr().out
    expected = query.query_table(in_process_results, "bounds", {"eta": ["0.1"]})
    lines = out.strip().splitlines()
    assert len(lines) == len(expected) + 1
    assert lines[0].split("," if fmt == "csv" else None) == list(expected.columns)
    if fmt == "csv":
        values = pd.read_csv(pd.io.common.StringIO(out))["max_violation"].to_numpy()
        np.testing.assert_allclose(values, expected["max_violation"].to_numpy())


def test_query_command_says_when_nothing_matches(in_process_results, capsys):
    args = argparse.Namespace(
        results=str(in_process_results), table="path", where=["dataset=none"], format="csv"
    )
    query.query_main(args)
    captured = capsys.readouterr()
    assert captured.out == "" and "no rows" in captured.err


def test_where_expects_axis_equals_value():
    with pytest.raises(ValueError, match="--where expects AXIS=VALUE, got 'depth'"):
        query.query_main(
            argparse.Namespace(results="results", table="phase", where=["depth"], format="csv")
        )


def test_generalisation_table_is_each_studys_summary(results_copy):
    assert query.query_table(results_copy, "generalisation").empty  # no test set here
    data = load_dataset("digits", n=300)
    stats = dataset_stats(data.X, data.Y, None, data.meta, data.X_test, data.Y_test)
    study = generalisation.study(stats, [1, 2], 0.2, 1.0, 10, 500, 10, 1e-8)
    write_store(study, generalisation_path(results_copy, "digits"))
    frame = query.query_table(results_copy, "generalisation")
    expected = generalisation.summary(study)
    assert (frame["dataset"] == "digits").all()
    pd.testing.assert_frame_equal(frame.drop(columns="dataset"), expected)
    assert query.query_table(results_copy, "generalisation", {"dataset": ["x"]}).empty
