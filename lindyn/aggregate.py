"""Combine one dataset's run stores with Dask and measure them against the theory.

Outputs, in ``out_dir`` (``results/aggregate/{dataset}/``):

``trajectories.zarr``
    Every run's logged trajectory, with the grid axes ``depth``, ``width``,
    ``eta``, ``delta``, ``init``, ``seed`` as dimensions (NaN for cells not in
    the grid or past a run's stop step) and the run ``status``.
``phase_times.zarr`` / ``.csv``
    Per run and component, for ``f`` in 0.1, 0.5, 0.9: the measured first
    crossing step ``t_measured``; the gradient-flow prediction ``t_flow``
    (time of the per-component flow from the run's own ``u_i(0)``, divided by
    η); the asymptotic ``t_asymptotic = τ_L(δ)/(η s_i)``; for depth 2 the
    Corollary 3 bracket ``t_minus``, ``t_plus``; relative errors; whether the
    measured step lies in the bracket and where.
``bounds.zarr`` / ``.csv``
    Per depth-2 run: the largest Theorem 3 violation over steps and components,
    the bracket ratio ``t⁺/t⁻``, the measured crossing's position in it, and
    whether consecutive components are separated (Corollary 3).
``path.zarr`` / ``.csv``
    Per run and ``k``: the smallest distance to ``W_k^seq`` and ``W_k^RRR``
    relative to their norms, and the logged-step window where it stays within
    :data:`PATH_TOLERANCE`.

The per-cell computations are array expressions over the combined dataset, so
they run vectorised over all runs; Dask evaluates them chunk by chunk.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import xarray as xr

from lindyn import flow, theory
from lindyn.provenance import provenance
from lindyn.store import RunArrays, StoreError, read_run_arrays, read_stats, write_store

__all__ = [
    "GRID_DIMS",
    "PATH_TOLERANCE",
    "aggregate",
    "bounds",
    "combine_runs",
    "path_metrics",
    "phase_times",
]

GRID_DIMS = ("depth", "width", "eta", "delta", "init", "seed")
# Statuses whose measurements enter phase times, bounds and path metrics. A
# diverged run keeps its trajectory (up to its stop step) in trajectories.zarr
# and its status everywhere, but its crossings and distances are NaN.
USABLE_STATUSES = ("converged", "max_steps")
PATH_TOLERANCE = 0.1
log = logging.getLogger(__name__)


# Per-run scalars kept from each store's attributes, with their fill for absent cells.
RUN_SCALARS = {
    "status": "missing",
    "stop_step": np.nan,
    "loss_final": np.nan,
    "elapsed_seconds": np.nan,
    "created": "",
    "git_commit": "",
    "code_hash": "",
}
# Spectra are per dataset, not per run: they come from the statistics store.
PER_DATASET = ("s", "lam", "rho")


def _read_all(run_paths: Sequence[str | Path], client: Any = None) -> list[RunArrays]:
    """Read and verify every run store, in parallel on the Dask cluster if there is one."""
    if client is None:
        results = [_try_read(path) for path in run_paths]
    else:
        import dask.bag as db

        partitions = max(1, min(len(run_paths), 8 * len(client.scheduler_info()["workers"])))
        bag = db.from_sequence([str(p) for p in run_paths], npartitions=partitions)
        results = bag.map(_try_read).compute()
    damaged = [
        (path, err)
        for path, err in zip(run_paths, results, strict=True)
        if isinstance(err, StoreError)
    ]
    if len(damaged) == 1:
        raise damaged[0][1]
    if damaged:
        raise StoreError(
            f"{len(damaged)} of {len(run_paths)} run stores cannot be used:\n"
            + "\n".join(f"  {err}" for _, err in damaged)
            + "\ndelete them and rerun the pipeline to recompute them: rm -r "
            + " ".join(str(path) for path, _ in damaged)
        )
    return results


def _try_read(path: str | Path) -> RunArrays | StoreError:
    try:
        return read_run_arrays(path)
    except StoreError as err:
        return err


def combine_runs(run_paths: Sequence[str | Path], client: Any = None) -> xr.Dataset:
    """Read run stores and combine them along the grid axes.

    Each store is small, so it is read whole (and verified against the checksum
    recorded when it was written) and placed into arrays indexed by the grid
    axes; with a Dask ``client`` the stores are read in parallel on its workers.

    Parameters
    ----------
    run_paths : sequence of path-like
        Run stores of one dataset.
    client : distributed.Client, optional

    Returns
    -------
    xarray.Dataset
        Dims ``GRID_DIMS`` plus each variable's own dims; NaN (text: "missing"
        or "") where a cell of the grid has no run or a run stopped early.

    Raises
    ------
    lindyn.store.StoreError
        If a store is missing, incomplete or damaged (the message names every
        such store and how to recompute it).
    """
    if not run_paths:
        raise ValueError("no run stores to aggregate")
    runs = _read_all(run_paths, client)
    grid = {dim: np.array(sorted({run.attrs[dim] for run in runs})) for dim in GRID_DIMS}
    first = runs[0]
    own_dims = sorted({d for run in runs for dims in run.dims.values() for d in dims})
    coords = {
        dim: np.array(sorted({v for run in runs for v in run.values[dim].tolist()}))
        for dim in own_dims
    }
    names = [
        name for name, dims in first.dims.items() if name not in coords and name not in PER_DATASET
    ]
    shape = tuple(len(grid[dim]) for dim in GRID_DIMS)
    data = {
        name: np.full(shape + tuple(len(coords[d]) for d in first.dims[name]), np.nan)
        for name in names
    }
    scalars = {
        name: np.full(shape, fill, dtype=object if isinstance(fill, str) else float)
        for name, fill in RUN_SCALARS.items()
    }
    for run in runs:
        cell = tuple(int(np.searchsorted(grid[dim], run.attrs[dim])) for dim in GRID_DIMS)
        for name in names:
            positions = [np.searchsorted(coords[d], run.values[d]) for d in run.dims[name]]
            data[name][cell][np.ix_(*positions)] = run.values[name]
        for name in scalars:
            scalars[name][cell] = run.attrs.get(name, RUN_SCALARS[name])
    variables = {name: ((*GRID_DIMS, *first.dims[name]), values) for name, values in data.items()}
    variables.update(
        {
            name: (GRID_DIMS, values.astype(str) if values.dtype == object else values)
            for name, values in scalars.items()
        }
    )
    combined = xr.Dataset(variables, coords={**grid, **coords})
    for name in [*names, *coords]:
        combined[name].attrs = first.var_attrs.get(name, {})
    return combined


def _usable(runs: xr.Dataset) -> xr.DataArray:
    """Runs whose measurements mean something: not diverged (and not missing)."""
    return runs["status"].isin(USABLE_STATUSES)


def _u0(runs: xr.Dataset) -> xr.DataArray:
    return runs["u"].isel(step=0, drop=True)


def phase_times(runs: xr.Dataset, s: xr.DataArray, lam: xr.DataArray) -> xr.Dataset:
    """Measured crossing steps against the flow, asymptotic and discrete predictions.

    Parameters
    ----------
    runs : xarray.Dataset
        Output of :func:`combine_runs`.
    s, lam : xarray.DataArray
        Spectra along ``component``.
    """
    rho = s / lam
    u0 = _u0(runs)
    fraction = runs["fraction"]
    depth, eta, delta = runs["depth"], runs["eta"], runs["delta"]
    # A diverged run "crosses" every fraction on its way to overflow: not a measurement.
    measured = runs["crossing_step"].where(_usable(runs))

    # The flow's quadrature takes one depth at a time.
    t_flow = (
        xr.concat(
            [
                xr.apply_ufunc(
                    flow.flow_crossing_time,
                    fraction,
                    s,
                    lam,
                    int(L),
                    u0.sel(depth=L),
                    dask="parallelized",
                    output_dtypes=[float],
                )
                for L in depth.values
            ],
            dim=depth,
        )
        / eta
    )
    t_asymptotic = xr.apply_ufunc(
        theory.predicted_transition_step,
        depth,
        delta,
        eta,
        s,
        dask="parallelized",
        output_dtypes=[float],
    )
    bracket = xr.apply_ufunc(
        theory.crossing_bracket,
        s,
        lam,
        u0,
        eta,
        fraction,
        output_core_dims=[[], []],
        dask="parallelized",
        output_dtypes=[float, float],
    )
    t_minus = bracket[0].where(depth == 2)
    t_plus = bracket[1].where(depth == 2)
    width = t_plus - t_minus
    out = xr.Dataset(
        {
            "t_measured": measured,
            "t_flow": t_flow,
            "t_asymptotic": t_asymptotic,
            "t_minus": t_minus,
            "t_plus": t_plus,
            "rel_error_flow": (measured - t_flow) / t_flow,
            "rel_error_asymptotic": (measured - t_asymptotic) / t_asymptotic,
            "in_bracket": ((measured >= np.floor(t_minus)) & (measured <= t_plus)).where(
                t_minus.notnull() & measured.notnull()
            ),
            "bracket_position": ((measured - t_minus) / width.where(width > 0)),
            "s": s,
            "rho": rho,
            "status": runs["status"],
        }
    )
    # Predictions depend on fewer axes than measurements: give every variable all of them.
    out = out.broadcast_like(measured)
    out["t_measured"].attrs = {"long_name": "first step with u_i ≥ f·ρ_i", "units": "steps"}
    out["t_flow"].attrs = {"long_name": "gradient-flow crossing time / η", "units": "steps"}
    out["t_asymptotic"].attrs = {"long_name": "τ_L(δ)/(η s_i)", "units": "steps"}
    out["t_minus"].attrs = {"long_name": "Corollary 3 lower bound (depth 2)", "units": "steps"}
    out["t_plus"].attrs = {"long_name": "Corollary 3 upper bound (depth 2)", "units": "steps"}
    return out


def bounds(runs: xr.Dataset, phase: xr.Dataset, s: xr.DataArray, lam: xr.DataArray) -> xr.Dataset:
    """Theorem 3 and Corollary 3 tightness for the depth-2 runs.

    Parameters
    ----------
    runs : xarray.Dataset
        Output of :func:`combine_runs`.
    phase : xarray.Dataset
        Output of :func:`phase_times`.
    s, lam : xarray.DataArray
        Spectra along ``component``.
    """
    if 2 not in runs["depth"].values:
        return xr.Dataset(attrs={"note": "no depth-2 runs in the grid"})
    two = runs.sel(depth=2, drop=True)
    phase2 = phase.sel(depth=2, drop=True)
    eta = two["eta"]
    half = phase2["t_plus"].sel(fraction=0.5) / phase2["t_minus"].sel(fraction=0.5)
    # Components i and i+1 separated: t_i⁺(1−f) < t_{i+1}⁻(f), f = 0.1.
    upper_i = phase2["t_plus"].sel(fraction=0.9)
    lower_next = phase2["t_minus"].sel(fraction=0.1).shift(component=-1)
    separated = (upper_i < lower_next).where(lower_next.notnull() & upper_i.notnull())
    gap = (s - s.shift(component=-1)) / s
    violation = two["bound_violation"].where(_usable(two))
    out = xr.Dataset(
        {
            "max_violation": violation.max("component"),
            "violation": violation,
            "applicable": violation.notnull().any("component"),
            "eta_s": eta * s,
            "bracket_ratio": half,
            "bracket_position": phase2["bracket_position"],
            "in_bracket": phase2["in_bracket"],
            "separated": separated,
            "eigengap_margin": gap - 1.5 * eta * s,
            "status": two["status"],
        }
    )
    out["max_violation"].attrs = {
        "long_name": "largest Theorem 3 envelope violation over steps and components / ρ_i"
    }
    out["bracket_ratio"].attrs = {"long_name": "t⁺/t⁻ at f = 0.5"}
    out["separated"].attrs = {
        "long_name": "component i reaches 0.9ρ_i before i+1 can reach 0.1ρ_{i+1} (Corollary 3)"
    }
    return out


def path_metrics(runs: xr.Dataset, seq_norm: xr.DataArray, rrr_norm: xr.DataArray) -> xr.Dataset:
    """Closest approach to ``W_k^seq`` and ``W_k^RRR`` and the plateau windows.

    Parameters
    ----------
    runs : xarray.Dataset
        Output of :func:`combine_runs`.
    seq_norm, rrr_norm : xarray.DataArray
        ``‖W_k^seq‖_F`` and ``‖W_k^RRR‖_F`` along ``k``.
    """
    out = {}
    step = runs["step"]
    usable = _usable(runs)
    for name, norm in (("seq", seq_norm), ("rrr", rrr_norm)):
        rel = (runs[f"dist_{name}"] / norm).where(usable)
        within = rel <= PATH_TOLERANCE
        out[f"min_rel_dist_{name}"] = rel.min("step")
        out[f"argmin_step_{name}"] = step.where(rel == rel.min("step")).min("step")
        out[f"window_start_{name}"] = step.where(within).min("step")
        out[f"window_end_{name}"] = step.where(within).max("step")
    ds = xr.Dataset(out)
    ds["status"] = runs["status"]
    ds.attrs["tolerance"] = PATH_TOLERANCE
    for name in ("seq", "rrr"):
        ds[f"min_rel_dist_{name}"].attrs = {
            "long_name": f"min over logged steps of ‖W(t) − W_k^{name}‖_F / ‖W_k^{name}‖_F"
        }
    return ds


def _status_counts(status: np.ndarray) -> dict[str, int]:
    values, counts = np.unique(np.asarray(status, dtype=str), return_counts=True)
    return {k: int(v) for k, v in zip(values, counts, strict=True) if k != "missing"}


def _table(ds: xr.Dataset, path: Path) -> None:
    frame = ds.drop_vars([v for v in ds.data_vars if ds[v].dtype == object and v != "status"])
    frame = frame.to_dataframe().dropna(
        how="all", subset=[v for v in frame.data_vars if v != "status"]
    )
    frame.to_csv(path)


def aggregate(
    run_paths: Sequence[str | Path],
    stats_path: str | Path,
    out_dir: str | Path,
    workers: int = 1,
) -> dict[str, Path]:
    """Aggregate one dataset's runs into trajectories, phase times, bounds and path stores.

    Parameters
    ----------
    run_paths : sequence of path-like
        The dataset's run stores.
    stats_path : path-like
        The dataset's statistics store.
    out_dir : path-like
        Output directory.
    workers : int
        Size of the Dask ``LocalCluster`` (1: Dask's synchronous scheduler, no cluster).

    Returns
    -------
    dict
        Output paths by name.
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    stats = read_stats(stats_path)
    client = None
    if workers > 1:
        from distributed import Client, LocalCluster

        cluster = LocalCluster(
            n_workers=workers, threads_per_worker=1, processes=True, dashboard_address=":0"
        )
        client = Client(cluster)
    try:
        runs = combine_runs(run_paths, client)
        read = time.perf_counter()
        if client is not None:  # the measurements below then run as Dask tasks on the workers
            runs = runs.chunk({"depth": 1})
        comp, ks = runs["component"], runs["k"]
        s = xr.DataArray(stats.s[: comp.size], coords={"component": comp})
        lam = xr.DataArray(stats.lam[: comp.size], coords={"component": comp})
        seq_norm = xr.DataArray(
            [np.linalg.norm(theory.w_seq(stats.U, stats.V, stats.rho, k)) for k in ks.values],
            coords={"k": ks},
        )
        rrr_norm = xr.DataArray(
            [np.linalg.norm(stats.w_rrr(k)) for k in ks.values], coords={"k": ks}
        )
        phase = phase_times(runs, s, lam)
        tables = {
            "phase_times": phase,
            "bounds": bounds(runs, phase, s, lam),
            "path": path_metrics(runs, seq_norm, rrr_norm),
        }
        attrs = {
            "dataset": stats.meta.get("label") or stats.meta.get("name", ""),
            "stats_hash": stats.stats_hash,
            "eps_a1": stats.eps_a1,
            "eps_iso": stats.eps_iso,
            "n_runs": len(run_paths),
            # Runs by status (cells of the combined grid that are not runs, e.g. the
            # aligned init's unused seeds, are "missing" and not counted).
            "status_counts": json.dumps(_status_counts(runs["status"].values)),
            **provenance(),
        }
        paths = {}
        runs.attrs = attrs
        paths["trajectories"] = write_store(runs, out_dir / "trajectories.zarr")
        for name, table in tables.items():
            table = table.compute()
            table.attrs = attrs
            paths[name] = write_store(table, out_dir / f"{name}.zarr")
            _table(table, out_dir / f"{name}.csv")
    finally:
        if client is not None:
            client.close()
            client.cluster.close()
    log.info(
        "aggregated %d runs in %.1f s (reading and combining %.1f s)",
        len(run_paths),
        time.perf_counter() - start,
        read - start,
    )
    return paths
