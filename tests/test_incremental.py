"""Incremental reruns (Snakemake's plan), querying, and staleness (issue: provenance)."""

from __future__ import annotations

import copy
import re
import shutil
import subprocess
import sys

import numpy as np
import pytest
import yaml
from conftest import TINY_CONFIG, run_snakemake

import lindyn
from lindyn import provenance, query
from lindyn.blocks import plan_blocks, scheduled_cells
from lindyn.config import validated
from lindyn.store import open_block, open_store

pytestmark = pytest.mark.slow


def planned_jobs(workdir) -> tuple[dict[str, int], int]:
    """Snakemake's own dry-run plan: rule -> number of jobs, and the cells to simulate."""
    proc = run_snakemake(workdir, "-n")
    table = re.search(r"Job stats:\n(.*?)\n\n", proc.stdout, re.DOTALL)
    if table is None:
        assert "Nothing to be done" in proc.stdout + proc.stderr, proc.stdout
        return {}, 0
    rows = (line.split() for line in table.group(1).splitlines()[2:])
    jobs = {row[0]: int(row[1]) for row in rows if len(row) == 2 and row[0] != "total"}
    cells = sum(cells for _, cells in scheduled_cells(proc.stdout).values())
    return jobs, cells


def grid_size(config) -> int:
    config = validated(config)
    return sum(block.cells for name in config["datasets"] for block in plan_blocks(config, name))


@pytest.fixture
def copy_of_pipeline(tiny_pipeline, tmp_path):
    workdir = tmp_path / "copy"
    shutil.copytree(tiny_pipeline, workdir, symlinks=True)
    return workdir


def _write_config(workdir, config):
    (workdir / "config.yaml").write_text(yaml.safe_dump(config, sort_keys=False))


@pytest.mark.parametrize("axis", ["eta", "delta", "seed"])
@pytest.mark.parametrize("tile", [2, 4])
def test_appending_a_value_simulates_at_most_tile_times_the_new_cells(copy_of_pipeline, axis, tile):
    """The README's rule: at most (tile size) × the new cells; exactly the new ones if the
    last tile along the axis was full."""
    before = copy.deepcopy(TINY_CONFIG)
    before["blocks"] = {axis: tile}
    _write_config(copy_of_pipeline, before)
    if tile != 4:  # a new tiling: every block is new
        run_snakemake(copy_of_pipeline)
    after = copy.deepcopy(before)
    after["grid"][axis].append({"eta": 0.05, "delta": 5.0, "seed": 7}[axis])
    _write_config(copy_of_pipeline, after)
    jobs, cells = planned_jobs(copy_of_pipeline)
    new = grid_size(after) - grid_size(before)
    last_tile_full = len(before["grid"][axis]) % tile == 0
    assert cells == new if last_tile_full else new < cells <= tile * new
    assert jobs["aggregate"] == 3 and "dataset_stats" not in jobs
    if axis == "seed":  # the aligned init has no seed: its blocks are untouched
        assert jobs["simulate"] == 3


def test_adding_a_ratio_or_a_width_simulates_only_their_blocks(copy_of_pipeline):
    """The balanced blocks keep their names and arguments: only the new ones run."""
    before = copy.deepcopy(TINY_CONFIG)
    after = copy.deepcopy(before)
    after["grid"]["ratio"] = [1, 4]
    after["datasets"]["commuting"]["width"] = [3, 5]
    _write_config(copy_of_pipeline, after)
    jobs, cells = planned_jobs(copy_of_pipeline)
    new = [
        block
        for name in after["datasets"]
        for block in plan_blocks(validated(after), name)
        if block.ratio != 1 or block.width != 3
    ]
    assert cells == grid_size(after) - grid_size(before) == sum(b.cells for b in new)
    assert jobs["simulate"] == len(new) == 2 * 3 + 2 * 2  # ratio 4 everywhere, width 5 twice
    assert jobs["aggregate"] == 3 and "dataset_stats" not in jobs


def test_dataset_option_change_recomputes_that_dataset_only(copy_of_pipeline):
    config = copy.deepcopy(TINY_CONFIG)
    config["datasets"]["digits"]["options"]["n"] = 300
    _write_config(copy_of_pipeline, config)
    jobs, cells = planned_jobs(copy_of_pipeline)
    assert jobs["dataset_stats"] == 1
    assert cells == 16 and jobs["simulate"] == 2
    assert jobs["aggregate"] == 1


def test_step_budget_change_recomputes_runs_and_says_why(copy_of_pipeline):
    config = copy.deepcopy(TINY_CONFIG)
    config["max_steps"] = 1500
    _write_config(copy_of_pipeline, config)
    assert planned_jobs(copy_of_pipeline)[1] == 48
    proc = run_snakemake(copy_of_pipeline, "--list-changes", "params")
    changed = [line for line in proc.stdout.splitlines() if line.startswith("results/blocks/")]
    assert len(changed) == 6


def test_plan_command_counts_cells_before_running(copy_of_pipeline):
    config = copy.deepcopy(TINY_CONFIG)
    config["grid"]["delta"].append(4.0)
    _write_config(copy_of_pipeline, config)
    proc = subprocess.run(
        [sys.executable, "-m", "lindyn", "plan"],
        cwd=copy_of_pipeline,
        capture_output=True,
        text=True,
        check=True,
    )
    assert proc.stdout.strip().splitlines()[-1] == "total: 72 cells in 6 blocks to simulate"


def test_cosmetic_changes_recompute_no_simulation(copy_of_pipeline):
    config_text = (copy_of_pipeline / "config.yaml").read_text()
    (copy_of_pipeline / "config.yaml").write_text("# a comment\n" + config_text)
    assert planned_jobs(copy_of_pipeline) == ({}, 0)
    script = copy_of_pipeline / "workflow/scripts/aggregate.py"
    script.write_text(script.read_text() + "\n# restyled\n")
    plan, cells = planned_jobs(copy_of_pipeline)
    assert "simulate" not in plan and "dataset_stats" not in plan and cells == 0
    assert plan["aggregate"] == 3


def test_open_results_and_query_match_block_stores(tiny_pipeline):
    tree = lindyn.open_results(tiny_pipeline / "results")
    assert set(tree.children) == set(TINY_CONFIG["datasets"])
    phase = tree["commuting/phase_times"].ds
    block = open_block(
        tiny_pipeline / "results/blocks/commuting/random_w3_L0_e0_d0_s0.zarr.zip"
    ).load()
    run = block.sel(depth=2, seed=0, eta=0.2, delta=3.0)
    sel = dict(depth=2, width=3, ratio=1.0, init="random", seed=0, eta=0.2, delta=3.0)
    np.testing.assert_array_equal(
        phase["t_measured"].sel(**sel).values, run["crossing_step"].values
    )
    frame = query.query_table(
        tiny_pipeline / "results",
        "phase",
        {
            "dataset": ["commuting"],
            "depth": ["2"],
            "init": ["random"],
            "eta": ["0.2"],
            "delta": ["3.0"],
            "fraction": ["0.5"],
        },
    )
    assert len(frame) == run.sizes["component"]
    np.testing.assert_array_equal(
        frame.sort_values("component")["t_measured"].to_numpy(),
        run["crossing_step"].sel(fraction=0.5).values,
    )
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "lindyn",
            "query",
            "phase",
            "--results",
            str(tiny_pipeline / "results"),
            "-w",
            "dataset=commuting",
            "-w",
            "depth=2",
            "-w",
            "init=random",
            "-w",
            "eta=0.2",
            "-w",
            "delta=3.0",
            "-w",
            "fraction=0.5",
            "--format",
            "csv",
        ],
        capture_output=True,
        text=True,
        check=True,
    )
    lines = proc.stdout.strip().splitlines()
    assert lines[0].startswith("dataset,depth")
    assert len(lines) == 1 + run.sizes["component"]
    eps = query.query_table(tiny_pipeline / "results", "eps")
    digits = eps.set_index("dataset").loc["digits"]
    stats = open_store(tiny_pipeline / "results/datasets/digits.zarr.zip", "statistics")
    assert digits["eps_a1_raw"] == pytest.approx(float(stats["eps_a1"]))


def test_stale_runs_after_code_or_config_change(tiny_pipeline, monkeypatch):
    results = tiny_pipeline / "results"
    fresh = query.stale_runs(results, TINY_CONFIG)
    assert len(fresh) == 48 and not fresh["stale"].any()
    changed = copy.deepcopy(TINY_CONFIG)
    changed["max_steps"] = 999
    stale = query.stale_runs(results, changed)
    assert stale["stale"].all() and stale["why"].str.contains("max_steps").all()
    # Options the tiny pipeline's blocks predate: read as lindyn.sweep's defaults.
    changed = {**TINY_CONFIG, "budget": "theory", "stop": "crossings"}
    why = query.stale_runs(results, changed)["why"]
    assert why.str.contains("budget fixed -> theory").all(), why
    assert why.str.contains("stop converged -> crossings").all(), why
    assert not query.stale_runs(results, {**TINY_CONFIG, "stop": "converged"})["stale"].any()
    monkeypatch.setattr(query, "code_hash", lambda: "0" * 16)
    assert query.stale_runs(results, TINY_CONFIG)["why"].str.contains("code changed").all()
    assert provenance.code_hash() != "0" * 16
