"""Incremental reruns (Snakemake's plan), querying, and staleness (issue: provenance)."""

from __future__ import annotations

import copy
import re
import shutil
import subprocess
import sys

import numpy as np
import pytest
import xarray as xr
import yaml
from conftest import TINY_CONFIG, run_snakemake

import lindyn
from lindyn import provenance, query
from lindyn.store import read_run

pytestmark = pytest.mark.slow


def planned_jobs(workdir) -> dict[str, int]:
    """Snakemake's own dry-run plan: rule -> number of jobs."""
    proc = run_snakemake(workdir, "-n")
    table = re.search(r"Job stats:\n(.*?)\n\n", proc.stdout, re.DOTALL)
    if table is None:
        assert "Nothing to be done" in proc.stdout + proc.stderr, proc.stdout
        return {}
    rows = (line.split() for line in table.group(1).splitlines()[2:])
    return {row[0]: int(row[1]) for row in rows if len(row) == 2 and row[0] != "total"}


@pytest.fixture
def copy_of_pipeline(tiny_pipeline, tmp_path):
    workdir = tmp_path / "copy"
    shutil.copytree(tiny_pipeline, workdir, symlinks=True)
    return workdir


def _write_config(workdir, config):
    (workdir / "config.yaml").write_text(yaml.safe_dump(config, sort_keys=False))


def test_adding_a_grid_value_schedules_only_new_cells(copy_of_pipeline):
    config = copy.deepcopy(TINY_CONFIG)
    config["grid"]["eta"].append(0.05)
    _write_config(copy_of_pipeline, config)
    plan = planned_jobs(copy_of_pipeline)
    # per dataset: 2 depths × (aligned + 1 random seed) × 1 new η × 2 δ
    assert plan["simulate"] == 3 * 2 * 2 * 1 * 2
    assert plan["aggregate"] == 3
    assert "dataset_stats" not in plan


def test_adding_a_seed_schedules_only_random_init_cells(copy_of_pipeline):
    config = copy.deepcopy(TINY_CONFIG)
    config["grid"]["seed"].append(7)
    _write_config(copy_of_pipeline, config)
    plan = planned_jobs(copy_of_pipeline)
    assert plan["simulate"] == 3 * 2 * 1 * 2 * 2  # datasets × depths × random × η × δ
    assert "dataset_stats" not in plan


def test_dataset_option_change_recomputes_that_dataset_only(copy_of_pipeline):
    config = copy.deepcopy(TINY_CONFIG)
    config["datasets"]["digits"]["options"]["n"] = 300
    _write_config(copy_of_pipeline, config)
    plan = planned_jobs(copy_of_pipeline)
    assert plan["dataset_stats"] == 1
    assert plan["simulate"] == 16
    assert plan["aggregate"] == 1


def test_step_budget_change_recomputes_runs_and_says_why(copy_of_pipeline):
    config = copy.deepcopy(TINY_CONFIG)
    config["max_steps"] = 1500
    _write_config(copy_of_pipeline, config)
    assert planned_jobs(copy_of_pipeline)["simulate"] == 48
    proc = run_snakemake(copy_of_pipeline, "--list-changes", "params")
    changed = [line for line in proc.stdout.splitlines() if line.startswith("results/runs/")]
    assert len(changed) == 48


def test_cosmetic_changes_recompute_no_simulation(copy_of_pipeline):
    config_text = (copy_of_pipeline / "config.yaml").read_text()
    (copy_of_pipeline / "config.yaml").write_text("# a comment\n" + config_text)
    assert planned_jobs(copy_of_pipeline) == {}
    script = copy_of_pipeline / "workflow/scripts/aggregate.py"
    script.write_text(script.read_text() + "\n# restyled\n")
    plan = planned_jobs(copy_of_pipeline)
    assert "simulate" not in plan and "dataset_stats" not in plan
    assert plan["aggregate"] == 3


def test_open_results_and_query_match_run_stores(tiny_pipeline):
    tree = lindyn.open_results(tiny_pipeline / "results")
    assert set(tree.children) == set(TINY_CONFIG["datasets"])
    phase = tree["commuting/phase_times"].ds
    run = read_run(
        tiny_pipeline / "results/runs/commuting/depth2/width3/random/seed0/eta0.2_delta3.0.zarr",
        load=True,
    )
    sel = dict(depth=2, width=3, init="random", seed=0, eta=0.2, delta=3.0)
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
    stats = xr.open_zarr(tiny_pipeline / "results/datasets/digits.zarr")
    assert digits["eps_a1_raw"] == pytest.approx(float(stats["eps_a1"]))


def test_stale_runs_after_code_or_config_change(tiny_pipeline, monkeypatch):
    results = tiny_pipeline / "results"
    fresh = query.stale_runs(results, TINY_CONFIG)
    assert len(fresh) == 48 and not fresh["stale"].any()
    changed = copy.deepcopy(TINY_CONFIG)
    changed["max_steps"] = 999
    stale = query.stale_runs(results, changed)
    assert stale["stale"].all() and stale["why"].str.contains("max_steps").all()
    monkeypatch.setattr(query, "code_hash", lambda: "0" * 16)
    assert query.stale_runs(results, TINY_CONFIG)["why"].str.contains("code changed").all()
    assert provenance.code_hash() != "0" * 16
