"""Combine one dataset's block stores with Dask and measure them against the theory.

Outputs, in ``results/aggregate/{dataset}/`` (:mod:`lindyn.paths`):

``trajectories.zarr.zip``
    Every run's logged trajectory, with the grid axes ``depth``, ``width``,
    ``eta``, ``delta``, ``init``, ``seed`` as dimensions (NaN for cells not in
    the grid or past a run's stop step) and the run ``status``.
``phase_times.zarr.zip`` / ``phase_times.csv``
    Per run and component, for ``f`` in 0.1, 0.5, 0.9: the measured first
    crossing step ``t_measured``; the gradient-flow prediction ``t_flow``
    (time of the per-component flow from the run's own ``u_i(0)``, divided by
    η); the asymptotic ``t_asymptotic = τ_L(δ)/(η s_i)``; for depth 2 the
    Corollary 3 bracket ``t_minus``, ``t_plus``; relative errors; whether the
    measured step lies in the bracket and where.
``bounds.zarr.zip`` / ``bounds.csv``
    Per depth-2 run: the largest Theorem 3 violation over steps and components,
    the bracket ratio ``t⁺/t⁻``, the measured crossing's position in it, and
    whether consecutive components are separated (Corollary 3).
``path.zarr.zip`` / ``path.csv``
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
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import xarray as xr
from numpy.typing import NDArray

from lindyn import flow, theory
from lindyn.blocks import Block
from lindyn.dask_cluster import dask_client
from lindyn.paths import aggregate_kind, aggregate_path, csv_path, stats_path
from lindyn.provenance import provenance
from lindyn.runs import GRID_DIMS, MISSING, USABLE_STATUSES
from lindyn.store import StoreError, open_block, read_stats, write_atomically, write_store

__all__ = [
    "GRID_DIMS",
    "PATH_TOLERANCE",
    "aggregate",
    "bounds",
    "combine_blocks",
    "path_metrics",
    "phase_times",
]

PATH_TOLERANCE = 0.1
# Components i and i+1 are separated when i is 1 − f learned before i+1 reaches f (THEORY §7).
SEPARATION_FRACTION = 0.1
log = logging.getLogger(__name__)


# Per-cell provenance, from each block's attributes (fill for cells that are not runs).
PROVENANCE = {"created": "", "git_commit": "", "code_hash": ""}
# Fill of the per-cell text variables where a cell of the combined grid is not a run
# (e.g. the aligned init at seeds other than 0).
TEXT_FILL = {"status": MISSING, **PROVENANCE}


def _cells(ds: xr.Dataset) -> xr.Dataset:
    """A block with per-cell provenance and every grid axis as a dimension."""
    cell_dims = [d for d in ("depth", "eta", "delta", "seed") if d in ds.dims]
    shape = tuple(ds.sizes[d] for d in cell_dims)
    ds = ds.assign(
        {
            name: (cell_dims, np.full(shape, str(ds.attrs.get(name, fill)), dtype=object))
            for name, fill in PROVENANCE.items()
        }
    )
    # The block's simulation time, shared out evenly over its cells.
    ds["elapsed_seconds"] = (
        cell_dims,
        np.full(shape, ds.attrs["elapsed_seconds"] / np.prod(shape)),
    )
    ds = ds.expand_dims(["init", "width"])
    if "seed" not in ds.dims:  # the aligned init has no seed: it is placed at seed 0
        ds = ds.expand_dims(seed=[0])
    return ds


def combine_blocks(
    blocks: Sequence[tuple[str | Path, Block]], stats_hash: str | None = None
) -> xr.Dataset:
    """Open a dataset's block stores lazily and combine them along the grid axes.

    Each block is checked (:func:`lindyn.store.open_block`: whole, verifiable,
    and holding the cells its place in the configuration says), then opened with
    Dask arrays; :func:`xarray.combine_nested` places the blocks of each init
    by their tile, and :func:`xarray.concat` joins the inits.

    Parameters
    ----------
    blocks : sequence of (path, Block)
        Every block store of one dataset, with the block it must hold.
    stats_hash : str, optional
        The hash of the statistics every block must have been simulated on.

    Returns
    -------
    xarray.Dataset
        Dims ``GRID_DIMS`` (sorted coordinates) plus each variable's own dims;
        NaN (text: "missing" or "") where a cell of the grid is not a run, e.g.
        the aligned init at seeds other than 0.

    Raises
    ------
    lindyn.store.StoreError
        Naming every block store that cannot be used and how to recompute it.
    """
    if not blocks:
        raise ValueError("no block stores to aggregate")
    opened: dict[str, dict[tuple[int, ...], xr.Dataset]] = {}
    damaged = []
    for path, block in blocks:
        try:
            expected = block.expected()
            if stats_hash is not None:
                expected["stats_hash"] = stats_hash
            ds = open_block(path, expected)
        except StoreError as err:
            damaged.append((path, err))
            continue
        opened.setdefault(block.init, {})[block.tile] = _cells(ds)
    if len(damaged) == 1:
        raise damaged[0][1]
    if damaged:
        raise StoreError(
            f"{len(damaged)} of {len(blocks)} block stores cannot be used:\n"
            + "\n".join(f"  {err}" for _, err in damaged)
            + "\ndelete them and rerun the pipeline (make run) to recompute them: rm "
            + " ".join(str(path) for path, _ in damaged)
        )
    by_init = []
    for tiles in opened.values():
        shape = tuple(
            max(tile[axis] for tile in tiles) + 1 for axis in range(len(next(iter(tiles))))
        )
        nested = np.empty(shape, dtype=object)
        for tile, ds in tiles.items():
            nested[tile] = ds
        concat_dims = ["depth", "eta", "delta", "seed"][: len(shape)]
        by_init.append(
            xr.combine_nested(
                nested.tolist(),
                concat_dim=concat_dims,
                data_vars="all",
                coords="different",
                compat="equals",
                join="exact",
                combine_attrs="drop_conflicts",
            )
        )
    combined = (
        xr.concat(
            by_init,
            dim="init",
            join="outer",
            fill_value=TEXT_FILL,
            combine_attrs="drop_conflicts",
        )
        if len(by_init) > 1
        else by_init[0]
    )
    return combined.sortby(list(GRID_DIMS)).transpose(*GRID_DIMS, ...)


def _name_unreadable_blocks(blocks: Sequence[tuple[str | Path, Block]], err: Exception) -> None:
    """Raise a StoreError naming the blocks whose data cannot be read; else re-raise ``err``.

    Reading is lazy, so a chunk that fails its checksum shows up only when the
    combined data is computed, without the name of its block.
    """
    unreadable = []
    for path, _ in blocks:
        try:
            open_block(path).load()
        except (StoreError, ValueError) as problem:
            unreadable.append((path, problem))
    if not unreadable:
        raise err
    raise StoreError(
        f"{len(unreadable)} of {len(blocks)} block stores have chunks that cannot be read:\n"
        + "\n".join(f"  block store {path}: {problem}" for path, problem in unreadable)
        + "\ndelete them and rerun the pipeline (make run) to recompute them: rm "
        + " ".join(str(path) for path, _ in unreadable)
    ) from err


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
        Output of :func:`combine_blocks`.
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


def _at_first_of_pair(values: np.ndarray) -> np.ndarray:
    """A pairwise result ``(..., n-1)`` placed at component i of pair (i, i+1), NaN at the last."""
    out = np.full((*values.shape[:-1], values.shape[-1] + 1), np.nan)
    out[..., :-1] = values
    return out


def _separated(s: NDArray, lam: NDArray, u0: NDArray, eta: NDArray) -> NDArray:
    return _at_first_of_pair(theory.separation(s, lam, u0, eta[..., None], SEPARATION_FRACTION))


def _eigengap_margin(s: NDArray, eta: NDArray) -> NDArray:
    return _at_first_of_pair(theory.eigengap_condition(s, eta[..., None])[1])


def bounds(runs: xr.Dataset, phase: xr.Dataset, s: xr.DataArray, lam: xr.DataArray) -> xr.Dataset:
    """Theorem 3 and Corollary 3 tightness for the depth-2 runs.

    Parameters
    ----------
    runs : xarray.Dataset
        Output of :func:`combine_blocks`.
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
    # Pair (i, i+1) at component i; NaN where Corollary 3's bracket does not apply to it.
    applies = (
        phase2["t_plus"].sel(fraction=1 - SEPARATION_FRACTION).notnull()
        & phase2["t_minus"].sel(fraction=SEPARATION_FRACTION).shift(component=-1).notnull()
    )
    separated = xr.apply_ufunc(
        _separated,
        s,
        lam,
        _u0(two),
        eta,
        input_core_dims=[["component"]] * 3 + [[]],
        output_core_dims=[["component"]],
        dask="parallelized",
        output_dtypes=[float],
    ).where(applies)
    margin = xr.apply_ufunc(
        _eigengap_margin,
        s,
        eta,
        input_core_dims=[["component"], []],
        output_core_dims=[["component"]],
    )
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
            "eigengap_margin": margin,
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
    out["eigengap_margin"].attrs = {"long_name": "(s_i − s_{i+1})/s_i − 1.5ηs_i (THEORY §7)"}
    return out


def path_metrics(runs: xr.Dataset, seq_norm: xr.DataArray, rrr_norm: xr.DataArray) -> xr.Dataset:
    """Closest approach to ``W_k^seq`` and ``W_k^RRR`` and the plateau windows.

    Parameters
    ----------
    runs : xarray.Dataset
        Output of :func:`combine_blocks`.
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
    return {k: int(v) for k, v in zip(values, counts, strict=True) if k != MISSING}


def _table(ds: xr.Dataset, path: Path) -> None:
    frame = ds.drop_vars([v for v in ds.data_vars if ds[v].dtype == object and v != "status"])
    frame = frame.to_dataframe()
    # Rows of runs only: a boolean column (e.g. `applicable`) is never NaN, so cells of the
    # grid that are not runs are dropped by their status, not by dropna alone.
    frame = frame[frame["status"] != MISSING].dropna(
        how="all", subset=[v for v in frame.columns if v != "status"]
    )
    # Flat columns: pandas writes a MultiIndex row by row, minutes for 10⁶ rows.
    write_atomically(path, lambda tmp: frame.reset_index().to_csv(tmp, index=False))


def aggregate(
    blocks: Sequence[tuple[str | Path, Block]],
    results: str | Path,
    workers: int = 1,
    cluster: str = "local",
    slurm: Mapping[str, Any] | None = None,
    dask_log_directory: str | Path | None = None,
) -> dict[str, Path]:
    """Aggregate one dataset's blocks into trajectories, phase times, bounds and path stores.

    Parameters
    ----------
    blocks : sequence of (path, Block)
        The dataset's block stores and the blocks they must hold
        (:func:`lindyn.blocks.plan_blocks`), all of one dataset.
    results : path-like
        The results directory: the dataset's statistics store is read from it
        and the aggregated stores and CSV tables written to it
        (:mod:`lindyn.paths`).
    workers : int
        Size of the Dask ``LocalCluster`` (1: Dask's synchronous scheduler, no
        cluster) when ``cluster`` is ``"local"``.
    cluster : {"local", "slurm"}
        Where the Dask workers run (:func:`lindyn.dask_cluster.dask_client`):
        in this process's ``LocalCluster``, or in Slurm jobs of a ``SLURMCluster``.
    slurm : mapping, optional
        The ``SLURMCluster``'s settings (config ``aggregate.slurm``).
    dask_log_directory : path-like, optional
        Where the ``SLURMCluster``'s worker jobs write their logs.

    Returns
    -------
    dict
        Output paths by name.
    """
    import dask

    if not blocks:
        raise ValueError("no block stores to aggregate")
    dataset = blocks[0][1].dataset
    if any(block.dataset != dataset for _, block in blocks):
        raise ValueError(f"blocks of several datasets: {sorted({b.dataset for _, b in blocks})}")
    start = time.perf_counter()
    stats = read_stats(stats_path(results, dataset), dataset=dataset)
    # Block-sized chunks make thousands of tiny tasks: compute on one chunk per depth.
    runs = combine_blocks(blocks, stats.stats_hash)
    runs = runs.chunk({dim: 1 if dim == "depth" else -1 for dim in runs.dims})
    n_runs = sum(block.cells for _, block in blocks)
    client = dask_client(cluster, workers, slurm, dask_log_directory)
    try:
        with dask.config.set(scheduler="sync" if client is None else None):
            # Read every block once; the tables and the trajectories store reuse it.
            try:
                runs = runs.persist()
            except ValueError as err:  # a chunk failing its crc32c: say which block
                _name_unreadable_blocks(blocks, err)
            read = time.perf_counter()
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
            status = runs["status"].values
            attrs = {
                "dataset": stats.meta.get("label") or stats.meta.get("name", ""),
                "stats_hash": stats.stats_hash,
                "eps_a1": stats.eps_a1,
                "eps_iso": stats.eps_iso,
                "n_runs": n_runs,
                # Runs by status (cells of the combined grid that are not runs, e.g. the
                # aligned init's unused seeds, are "missing" and not counted).
                "status_counts": json.dumps(_status_counts(status)),
                **provenance(),
            }
            paths = {}
            runs.attrs = {"kind": aggregate_kind("trajectories"), **attrs}
            paths["trajectories"] = write_store(
                runs, aggregate_path(results, dataset, "trajectories")
            )
            for name, table in tables.items():
                table = table.compute()
                # Cells that are not runs get no predictions either: tables list runs only.
                ran = table["status"] != MISSING
                for v in table.data_vars:
                    if table[v].dtype.kind in "fc":
                        table[v] = table[v].where(ran)
                table.attrs = {"kind": aggregate_kind(name), **attrs}
                paths[name] = write_store(table, aggregate_path(results, dataset, name))
                paths[f"{name}_csv"] = csv_path(results, dataset, name)
                _table(table, paths[f"{name}_csv"])
    finally:
        if client is not None:
            client.close()
            client.cluster.close()
    log.info(
        "aggregated %d runs of %d blocks in %.1f s (opening %.1f s)",
        n_runs,
        len(blocks),
        time.perf_counter() - start,
        read - start,
    )
    return paths
