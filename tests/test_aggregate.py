"""lindyn.aggregate on its own: combining blocks, the three tables, the outputs.

The stores come from ``in_process_results`` (conftest): the workflow's jobs run in this
process on a grid of 24 runs, half of which diverge. Each table is checked against a
computation made here from the block stores and lindyn.theory / lindyn.flow directly.
"""

from __future__ import annotations

import json
from dataclasses import replace

import numpy as np
import pandas as pd
import pytest
import xarray as xr
from conftest import IN_PROCESS_CONFIG

from lindyn import flow, theory
from lindyn.aggregate import (
    PATH_TOLERANCE,
    aggregate,
    bounds,
    combine_blocks,
    path_metrics,
    phase_times,
)
from lindyn.blocks import block_path, plan_blocks
from lindyn.config import validated
from lindyn.paths import AGGREGATES, CSV_TABLES, aggregate_path, csv_path, stats_path
from lindyn.runs import GRID_DIMS, MISSING, USABLE_STATUSES
from lindyn.store import StoreError, open_block, open_store, read_stats

DATASET = "commuting"
CONFIG = validated(IN_PROCESS_CONFIG)
BLOCKS = plan_blocks(CONFIG, DATASET)


def _pairs(results):
    return [(block_path(block, str(results)), block) for block in BLOCKS]


@pytest.fixture(scope="module")
def runs(in_process_results) -> xr.Dataset:
    return combine_blocks(_pairs(in_process_results)).compute()


@pytest.fixture(scope="module")
def stats(in_process_results):
    return read_stats(stats_path(in_process_results, DATASET), dataset=DATASET)


@pytest.fixture(scope="module")
def spectra(runs, stats) -> tuple[xr.DataArray, xr.DataArray]:
    component = runs["component"]
    return (
        xr.DataArray(stats.s[: component.size], coords={"component": component}),
        xr.DataArray(stats.lam[: component.size], coords={"component": component}),
    )


def _stored(results, table: str) -> xr.Dataset:
    return open_store(aggregate_path(results, DATASET, table), "aggregated")


# ---------------------------------------------------------------- combine_blocks


def test_combined_grid_holds_every_block_at_its_cells(in_process_results, runs):
    grid = CONFIG["grid"]
    assert {dim: runs.sizes[dim] for dim in GRID_DIMS} == {
        "depth": len(grid["depth"]),
        "width": 1,
        "ratio": 1,
        "eta": len(grid["eta"]),
        "delta": len(grid["delta"]),
        "init": len(grid["init"]),
        "seed": len(grid["seed"]),
    }
    for path, block in _pairs(in_process_results):
        stored = open_block(path, block.expected()).compute()
        where = {"init": block.init, "width": block.width, "ratio": block.ratio}
        where |= {"depth": list(block.depth)}
        where |= {"eta": list(block.eta), "delta": list(block.delta)}
        placed = runs.sel(where | {"seed": list(block.seed) if block.seed else [0]})
        if not block.seed:  # the aligned init has no seed axis: it sits at seed 0
            stored = stored.expand_dims(seed=[0])
        for name in ("u", "loss", "crossing_step", "stop_step", "status"):
            a, b = xr.align(placed[name], stored[name], join="inner")
            assert a.size == b.size > 0
            np.testing.assert_array_equal(
                a.transpose(*b.dims).values, b.values, err_msg=f"{block.name}: {name}"
            )


def test_cells_that_are_no_run_are_missing_and_nan(runs):
    # the aligned init is deterministic: it runs at seed 0 only
    aligned_other_seed = runs.sel(init="aligned", seed=1)
    assert (aligned_other_seed["status"] == MISSING).all()
    assert aligned_other_seed["u"].isnull().all()
    assert not (runs.sel(init="random")["status"] == MISSING).any()


def test_combine_refuses_blocks_of_other_statistics(in_process_results):
    with pytest.raises(StoreError, match="stats_hash") as info:
        combine_blocks(_pairs(in_process_results), stats_hash="0" * 16)
    assert str(BLOCKS[0].name) in str(info.value)


# ---------------------------------------------------------------- phase_times


def test_phase_times_measure_the_usable_runs_only(runs, spectra):
    phase = phase_times(runs, *spectra)
    usable = runs["status"].isin(USABLE_STATUSES)
    assert usable.any() and not usable.all()  # both kinds are in the grid
    measured = runs["crossing_step"].where(usable)
    xr.testing.assert_equal(phase["t_measured"].transpose(*measured.dims), measured)
    assert phase["t_measured"].where(~usable).isnull().all()


def test_phase_time_predictions_are_theorys_at_each_cell(runs, spectra):
    s, lam = spectra
    phase = phase_times(runs, s, lam)
    cell = {"init": "random", "width": 3, "ratio": 1.0, "seed": 1, "delta": 3.0, "eta": 0.1}
    for depth in CONFIG["grid"]["depth"]:
        at = phase.sel(cell | {"depth": depth})
        u0 = runs["u"].sel(cell | {"depth": depth}).isel(step=0)
        for f in at["fraction"].values:
            expected_flow = flow.flow_crossing_time(f, s.values, lam.values, depth, u0.values) / 0.1
            np.testing.assert_allclose(at["t_flow"].sel(fraction=f), expected_flow, rtol=1e-12)
            np.testing.assert_allclose(
                at["t_asymptotic"].sel(fraction=f),
                theory.predicted_transition_step(depth, 3.0, 0.1, s.values),
                rtol=1e-12,
            )
            if depth == 2:
                t_minus, t_plus = theory.crossing_bracket(s.values, lam.values, u0.values, 0.1, f)
                np.testing.assert_allclose(at["t_minus"].sel(fraction=f), t_minus, rtol=1e-12)
                np.testing.assert_allclose(at["t_plus"].sel(fraction=f), t_plus, rtol=1e-12)
            else:  # Corollary 3's bracket is a depth-2 result
                assert at["t_minus"].sel(fraction=f).isnull().all()
    measured, predicted = phase["t_measured"], phase["t_flow"]
    np.testing.assert_allclose(
        phase["rel_error_flow"], (measured - predicted) / predicted, rtol=1e-12
    )


def test_in_bracket_is_where_the_measured_step_lies(runs, spectra):
    phase = phase_times(runs, *spectra).sel(depth=2)
    known = phase["in_bracket"].notnull()
    assert known.any()
    inside = (phase["t_measured"] >= np.floor(phase["t_minus"])) & (
        phase["t_measured"] <= phase["t_plus"]
    )
    assert (phase["in_bracket"].where(known) == inside.where(known)).where(known).all()


# ---------------------------------------------------------------- bounds


def test_bounds_without_depth_two_say_so(runs, spectra):
    shallow = runs.sel(depth=[1])
    table = bounds(shallow, phase_times(shallow, *spectra), *spectra)
    assert table.attrs == {"note": "no depth-2 runs in the grid"}
    assert not table.data_vars


def test_bounds_take_the_largest_violation_of_usable_runs(runs, spectra):
    table = bounds(runs, phase_times(runs, *spectra), *spectra)
    two = runs.sel(depth=2, drop=True)
    usable = two["status"].isin(USABLE_STATUSES)
    expected = two["bound_violation"].where(usable).max("component")
    xr.testing.assert_allclose(table["max_violation"].transpose(*expected.dims), expected)
    assert table["max_violation"].where(~usable).isnull().all()
    assert float(abs(table["eta_s"] - runs["eta"] * spectra[0]).max()) < 1e-15


# ---------------------------------------------------------------- path_metrics


def test_path_metrics_on_a_trajectory_made_by_hand():
    step = [0, 1, 2, 4, 8]
    dist = np.array([[10.0, 4.0, 0.5, 0.8, 2.0]])  # one k; its norm is 10
    runs = xr.Dataset(
        {
            "dist_seq": (("k", "step"), dist),
            "dist_rrr": (("k", "step"), dist[:, ::-1].copy()),
            "status": ((), "converged"),
        },
        coords={"k": [1], "step": step},
    )
    norm = xr.DataArray([10.0], coords={"k": [1]})
    table = path_metrics(runs, norm, norm)
    assert table.attrs["tolerance"] == PATH_TOLERANCE == 0.1
    assert table["min_rel_dist_seq"].item() == pytest.approx(0.05)
    assert table["argmin_step_seq"].item() == 2
    # within 10 % of the norm (distance ≤ 1) at steps 2 and 4
    assert (table["window_start_seq"].item(), table["window_end_seq"].item()) == (2, 4)
    # the distances reversed: within at steps 1 and 2, closest at step 2
    assert (table["window_start_rrr"].item(), table["window_end_rrr"].item()) == (1, 2)
    assert table["argmin_step_rrr"].item() == 2
    diverged = path_metrics(runs.assign(status=((), "diverged")), norm, norm)
    assert diverged["min_rel_dist_seq"].isnull().all()


# ---------------------------------------------------------------- aggregate


def test_aggregate_writes_every_store_and_table(in_process_results):
    for name in AGGREGATES:
        stored = _stored(in_process_results, name)
        assert stored.attrs["kind"] == f"lindyn.aggregate.{name}"
        assert stored.attrs["n_runs"] == sum(block.cells for block in BLOCKS) == 24
        counts = json.loads(stored.attrs["status_counts"])
        assert MISSING not in counts and sum(counts.values()) == 24
    for name in CSV_TABLES:
        csv = pd.read_csv(csv_path(in_process_results, DATASET, name))
        table = _stored(in_process_results, name)
        values = [v for v in table.data_vars if table[v].dtype.kind == "f"]
        assert set(values) <= set(csv.columns)
        assert (csv["status"] != MISSING).all(), "tables list runs only"
        # every run with a value is a row
        rows = table[[*values, "status"]].to_dataframe().dropna(how="all", subset=values)
        assert len(csv) == len(rows) > 0, name


def test_aggregated_tables_equal_a_fresh_computation(in_process_results, runs, spectra):
    phase = phase_times(runs, *spectra)
    ran = phase["status"] != MISSING
    stored = _stored(in_process_results, "phase_times")
    for name in ("t_measured", "t_flow", "t_asymptotic", "t_plus"):
        fresh = phase[name].where(ran)
        xr.testing.assert_allclose(stored[name].transpose(*fresh.dims), fresh)


@pytest.mark.parametrize(
    ("pairs", "message"),
    [
        (lambda pairs: [], "no block stores"),
        (
            lambda pairs: [pairs[0], (pairs[1][0], replace(BLOCKS[1], dataset="other"))],
            "blocks of several datasets",
        ),
    ],
    ids=["none", "two-datasets"],
)
def test_aggregate_refuses_what_is_not_one_datasets_blocks(in_process_results, pairs, message):
    with pytest.raises(ValueError, match=message):
        aggregate(pairs(_pairs(in_process_results)), in_process_results)
