"""The real Snakemake workflow on a tiny grid: stores, aggregation, theory checks."""

from __future__ import annotations

import copy
import re
import time

import numpy as np
import pytest
import xarray as xr
from conftest import REPO, SNAKEMAKE, TINY_CONFIG, make_workdir, run_snakemake

from lindyn import theory
from lindyn.config import grid_cells
from lindyn.store import read_run, read_stats

pytestmark = pytest.mark.slow

RUN_DIMS = {"step", "component", "sv_index", "k", "fraction"}
RUN_ATTRS = {"dataset", "depth", "eta", "delta", "seed", "init", "width", "status"}


def _run_path(workdir, cell):
    return workdir / (
        "results/runs/{dataset}/depth{depth}/width{width}/{init}/seed{seed}/"
        "eta{eta}_delta{delta}.zarr".format(**cell)
    )


def test_every_cell_has_a_complete_store(tiny_pipeline):
    for dataset in TINY_CONFIG["datasets"]:
        cells = grid_cells(TINY_CONFIG, dataset)
        assert len(cells) == 2 * 2 * 2 * 2
        for cell in cells:
            ds = read_run(_run_path(tiny_pipeline, cell))
            assert RUN_DIMS <= set(ds.dims)
            assert RUN_ATTRS <= set(ds.attrs)
            assert ds.attrs["status"] in {"converged", "max_steps", "diverged"}
            assert ds.attrs["depth"] == int(cell["depth"])
            assert ds.attrs["eta"] == float(cell["eta"])
            assert ds["step"].attrs["units"] == "steps"
            assert ds["u"].dims == ("step", "component")
            assert ds.attrs["stats_hash"] and ds.attrs["lindyn_version"]
    assert not list((tiny_pipeline / "results").rglob("*.tmp-*"))


def test_statistics_store(tiny_pipeline):
    stats = read_stats(tiny_pipeline / "results/datasets/commuting.zarr")
    assert stats.eps_a1 < 1e-12
    digits = read_stats(tiny_pipeline / "results/datasets/digits.zarr")
    assert 0 < digits.eps_a1 < digits.eps_iso
    ds = xr.open_zarr(tiny_pipeline / "results/datasets/digits.zarr")
    assert {"s", "lam", "eps_a1", "eps_iso"} <= set(ds.data_vars)


def test_aggregate_equals_run_stores(tiny_pipeline):
    agg = xr.open_zarr(tiny_pipeline / "results/aggregate/digits/trajectories.zarr")
    assert {"depth", "width", "eta", "delta", "init", "seed"} <= set(agg.dims)
    for cell in grid_cells(TINY_CONFIG, "digits")[::5]:
        run = read_run(_run_path(tiny_pipeline, cell), load=True)
        sel = agg.sel(
            depth=int(cell["depth"]),
            width=int(cell["width"]),
            init=cell["init"],
            seed=int(cell["seed"]),
            eta=float(cell["eta"]),
            delta=float(cell["delta"]),
        )
        for name in ("u", "loss", "singular_values", "crossing_step"):
            np.testing.assert_array_equal(sel[name].values, run[name].values)
        assert str(sel["status"].values) == run.attrs["status"]


def test_phase_times_and_bounds_recomputed_independently(tiny_pipeline):
    """Commuting data, aligned init: the scalar recursion gives the exact crossings."""
    stats = read_stats(tiny_pipeline / "results/datasets/commuting.zarr")
    phase = xr.open_zarr(tiny_pipeline / "results/aggregate/commuting/phase_times.zarr")
    bounds = xr.open_zarr(tiny_pipeline / "results/aggregate/commuting/bounds.zarr")
    for eta in TINY_CONFIG["grid"]["eta"]:
        for delta in TINY_CONFIG["grid"]["delta"]:
            sel = dict(depth=2, width=3, init="aligned", seed=0, eta=eta, delta=delta)
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


def test_snakemake_lint_is_clean(tiny_pipeline):
    proc = run_snakemake(tiny_pipeline, "--lint", check=False)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "Lints for" not in proc.stdout + proc.stderr


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
    # 4 datasets × 4 depths × 4 η × 4 δ × (aligned + 2 random seeds)
    assert re.search(r"^simulate\s+768$", proc.stdout, re.MULTILINE), proc.stdout[-2000:]


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
