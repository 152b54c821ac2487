"""The real Snakemake workflow on a tiny grid: stores, aggregation, theory checks."""

from __future__ import annotations

import copy
import re
import shutil
import subprocess
import sys
import time

import numpy as np
import pandas as pd
import pytest
import yaml
from conftest import REPO, SNAKEMAKE, TINY_CONFIG, make_workdir, run_snakemake

from lindyn import theory
from lindyn.blocks import block_path, plan_blocks, scheduled_cells
from lindyn.config import validated
from lindyn.report.figures import FIGURES
from lindyn.store import open_block, open_store, read_stats
from lindyn.sweeps import sweep

pytestmark = pytest.mark.slow

CELL_DIMS = ("depth", "eta", "delta", "seed")


def test_every_block_has_a_complete_store(tiny_pipeline):
    results = tiny_pipeline / "results"
    for dataset in TINY_CONFIG["datasets"]:
        blocks = plan_blocks(validated(TINY_CONFIG), dataset)
        assert sum(block.cells for block in blocks) == 2 * 2 * 2 * (1 + 1)
        for block in blocks:
            ds = open_block(tiny_pipeline / block_path(block), block.expected())
            assert set(ds["status"].values.ravel()) <= {"converged", "max_steps", "diverged"}
            # the aligned init has no seed axis
            assert ("seed" in ds.dims) == (block.init == "random")
            assert ds["u"].dims == (*[d for d in CELL_DIMS if d in ds.dims], "step", "component")
            assert ds["step"].attrs["units"] == "steps"
            assert ds.attrs["stats_hash"] and ds.attrs["lindyn_version"] and ds.attrs["code_hash"]
    assert not list(results.rglob("*.tmp-*"))
    # One file per block: far fewer files than runs.
    assert len(list((results / "blocks").rglob("*"))) - len(TINY_CONFIG["datasets"]) == 6


def test_block_equals_the_library_sweep(tiny_pipeline):
    """A block job runs exactly what `lindyn.sweep` returns in a notebook."""
    stats = read_stats(tiny_pipeline / "results/datasets/digits.zarr.zip")
    (block,) = [b for b in plan_blocks(validated(TINY_CONFIG), "digits") if b.init == "random"]
    stored = open_block(tiny_pipeline / block_path(block)).load()
    again = sweep(
        stats,
        block.depth,
        block.eta,
        block.delta,
        block.init,
        block.seed,
        block.width,
        max_steps=TINY_CONFIG["max_steps"],
        log_density=TINY_CONFIG["log_density"],
        tol=TINY_CONFIG["tol"],
        max_components=TINY_CONFIG["max_components"],
    )
    for name in ("u", "loss", "singular_values", "crossing_step", "status", "stop_step"):
        np.testing.assert_array_equal(stored[name].values, again[name].values)


def test_statistics_store(tiny_pipeline):
    stats = read_stats(tiny_pipeline / "results/datasets/commuting.zarr.zip")
    assert stats.eps_a1 < 1e-12
    digits = read_stats(tiny_pipeline / "results/datasets/digits.zarr.zip")
    assert 0 < digits.eps_a1 < digits.eps_iso
    ds = open_store(tiny_pipeline / "results/datasets/digits.zarr.zip", "statistics")
    assert {"s", "lam", "eps_a1", "eps_iso"} <= set(ds.data_vars)


def test_aggregate_equals_block_stores(tiny_pipeline):
    agg = open_store(tiny_pipeline / "results/aggregate/digits/trajectories.zarr.zip", "aggregated")
    assert {"depth", "width", "eta", "delta", "init", "seed"} <= set(agg.dims)
    for block in plan_blocks(validated(TINY_CONFIG), "digits"):
        stored = open_block(tiny_pipeline / block_path(block)).load()
        sel = agg.sel(init=block.init, width=block.width, ratio=block.ratio)
        sel = sel.sel(depth=list(block.depth))
        sel = sel.sel(eta=list(block.eta), delta=list(block.delta))
        sel = sel.sel(seed=list(block.seed)) if block.seed else sel.sel(seed=0)
        for name in ("u", "loss", "singular_values", "crossing_step", "status"):
            np.testing.assert_array_equal(
                sel[name].transpose(*stored[name].dims).values, stored[name].values
            )


def test_tables_list_runs_only(tiny_pipeline):
    """No phantom cells: the aligned init has no seed, tables never list it under one."""
    config = copy.deepcopy(TINY_CONFIG)
    config["grid"]["seed"] = [0, 1]
    workdir = make_workdir(tiny_pipeline.parent / "two_seeds", config)
    run_snakemake(workdir, "results/aggregate/commuting/phase_times.zarr.zip")
    frame = pd.read_csv(workdir / "results/aggregate/commuting/phase_times.csv")
    aligned = frame[frame["init"] == "aligned"]
    assert set(aligned["seed"]) == {0} and len(aligned)
    assert set(frame.loc[frame["init"] == "random", "seed"]) == {0, 1}
    assert "missing" not in set(frame["status"])


def test_phase_times_and_bounds_recomputed_independently(tiny_pipeline):
    """Commuting data, aligned init: the scalar recursion gives the exact crossings."""
    stats = read_stats(tiny_pipeline / "results/datasets/commuting.zarr.zip")
    phase = open_store(
        tiny_pipeline / "results/aggregate/commuting/phase_times.zarr.zip", "aggregated"
    )
    bounds = open_store(tiny_pipeline / "results/aggregate/commuting/bounds.zarr.zip", "aggregated")
    for eta in TINY_CONFIG["grid"]["eta"]:
        for delta in TINY_CONFIG["grid"]["delta"]:
            sel = dict(depth=2, width=3, ratio=1.0, init="aligned", seed=0, eta=eta, delta=delta)
            u = theory.gd_component(stats.s[:3], stats.lam[:3], 2, eta, delta, 2000)
            for f in (0.1, 0.5, 0.9):
                expected = theory.first_crossing(u, stats.rho[:3], f, axis=0).astype(float)
                got = phase["t_measured"].sel(**sel, fraction=f).values
                np.testing.assert_array_equal(got, np.where(expected < 0, np.nan, expected))
                lo, hi = theory.crossing_bracket(stats.s[:3], stats.lam[:3], u[0], eta, f)
                np.testing.assert_allclose(phase["t_minus"].sel(**sel, fraction=f), lo)
                np.testing.assert_allclose(phase["t_plus"].sel(**sel, fraction=f), hi)
            np.testing.assert_allclose(
                phase["t_asymptotic"].sel(**sel, fraction=0.5),
                delta / (eta * stats.s[:3]),
            )
            assert (
                float(bounds["max_violation"].sel(**{k: v for k, v in sel.items() if k != "depth"}))
                <= 1e-12
            )
    # Theorem 3 holds on every aligned depth-2 commuting run, and the bracket contains the truth.
    aligned = bounds.sel(init="aligned", seed=0)
    assert float(aligned["max_violation"].max()) <= 1e-12
    assert bool(aligned["in_bracket"].sel(fraction=0.5).all())


# The lint that the workflow keeps: its jobs run in the project's virtual environment,
# with no conda environment or container (README, "The two commands").
NO_SOFTWARE_DEFINITION = "Specify a conda environment or container for each rule."


def test_snakemake_lint_finds_nothing_but_the_missing_conda_environments(tmp_path):
    proc = run_snakemake(make_workdir(tmp_path, TINY_CONFIG), "--lint", check=False)
    text = proc.stdout + proc.stderr
    assert "Lints for snakefile" not in text, text
    assert set(re.findall(r"^    \* (.+):$", text, re.MULTILINE)) <= {NO_SOFTWARE_DEFINITION}, text


def test_the_default_profile_is_used_from_the_top_level(tmp_path):
    """`snakemake` and `lindyn run` in the top-level directory pick up
    workflow/profiles/default (through `profiles`): its `printshellcmds` shows."""
    workdir = make_workdir(tmp_path, TINY_CONFIG)
    shutil.copytree(REPO / "profiles", workdir / "profiles", symlinks=True)
    lindyn_run = [sys.executable, "-m", "lindyn", "run", "--cores", "1", "--no-report", "--"]
    for command in ([*SNAKEMAKE, "--cores", "1"], lindyn_run):
        proc = subprocess.run(
            [*command, "--dry-run"], cwd=workdir, capture_output=True, text=True, timeout=300
        )
        output = proc.stdout + proc.stderr
        assert proc.returncode == 0, output
        assert "Using workflow specific profile profiles/default" in output
        assert "Shell command: python -m lindyn dataset commuting --options" in output


def test_one_rule_per_figure_of_the_registry(tmp_path):
    proc = run_snakemake(make_workdir(tmp_path, TINY_CONFIG), "--list-rules")
    listed = dict(re.findall(r"^(figure_\w+) \((.+)\)$", proc.stdout, re.MULTILINE))
    expected = {
        f"figure_{kind}": f"{title} ({stem})." for stem, (kind, title, _) in FIGURES.items()
    }
    assert listed == expected


def test_dataset_options_reach_the_command_as_typed_json(tiny_pipeline, tmp_path):
    """One JSON mapping, keys sorted: reordering a dataset's options reruns nothing."""
    workdir = shutil.copytree(tiny_pipeline, tmp_path / "copy", symlinks=True)
    proc = run_snakemake(
        workdir, "-n", "-p", "results/datasets/commuting.zarr.zip", "--forcerun", "dataset_stats"
    )
    assert '--options \'{"d": 6, "n": 60, "p": 3, "seed": 1}\'' in proc.stdout
    config = copy.deepcopy(TINY_CONFIG)
    options = config["datasets"]["commuting"]["options"]
    config["datasets"]["commuting"]["options"] = dict(reversed(options.items()))
    (workdir / "config.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
    assert "Nothing to be done" in run_snakemake(workdir, "-n").stdout


def test_rerun_has_nothing_to_do(tiny_pipeline):
    proc = run_snakemake(tiny_pipeline, "-n")
    assert "Nothing to be done" in proc.stdout + proc.stderr


def test_default_config_dry_run_is_fast(tmp_path):
    workdir = make_workdir(tmp_path, {})
    (workdir / "config.yaml").write_text((REPO / "config.yaml").read_text())
    start = time.perf_counter()
    proc = run_snakemake(workdir, "-n")
    elapsed = time.perf_counter() - start
    assert elapsed < 30, f"dry run took {elapsed:.1f} s"
    # 4 datasets × (aligned + random) × 2 δ tiles (4 + 1 values): 960 cells in 16 blocks,
    # and on commuting 3 ratios × 2 widths instead of 1: 1200 cells in 20 blocks more
    assert re.search(r"^simulate\s+36$", proc.stdout, re.MULTILINE), proc.stdout[-2000:]
    assert sum(cells for _, cells in scheduled_cells(proc.stdout).values()) == 2160


@pytest.mark.parametrize(
    ("edit", "key"),
    [
        (lambda c: c["grid"].update(eta=[0.1, -0.2]), "eta"),
        (lambda c: c["grid"].update(depth=[0]), "depth"),
        (lambda c: c.update(width=0), "width"),
        (lambda c: c["datasets"]["digits"].update(loader="nope"), "loader"),
        (lambda c: c["grid"].update(delta=[1.0, 1.0]), "delta"),
        (lambda c: c.update(colour="red"), "colour"),
        (lambda c: c["datasets"]["digits"]["options"].update(centre=True), "centre"),
    ],
)
def test_bad_config_is_refused_before_any_job(tmp_path, edit, key):
    config = copy.deepcopy(TINY_CONFIG)
    edit(config)
    workdir = make_workdir(tmp_path, config)
    proc = run_snakemake(workdir, "-n", check=False)
    assert proc.returncode != 0
    assert key in proc.stdout + proc.stderr
    assert not (workdir / "results").exists()


def test_snakemake_module_is_importable():
    assert SNAKEMAKE[-1] == "snakemake"


def test_every_file_the_pipeline_writes_is_declared(tiny_pipeline):
    """Each file under results/ is a declared output or log of a job (so Snakemake removes
    it when its job fails) and none is a temporary; `snakemake --summary` lists them."""
    proc = run_snakemake(tiny_pipeline, "--summary")
    rows = [line.split("\t") for line in proc.stdout.splitlines()[1:] if "\t" in line]
    declared = {row[0] for row in rows} | {log for row in rows for log in row[3].split(",")}
    written = {
        str(path.relative_to(tiny_pipeline))
        for path in (tiny_pipeline / "results").rglob("*")
        if path.is_file() and path.name != ".gitkeep"
    }
    assert written - declared == set()
    assert {"results/aggregate/commuting/phase_times.csv", "results/report.md"} <= written
