"""Combine one dataset's block stores with Dask and measure them against the theory.

Outputs, in ``results/aggregate/{dataset}/`` (:mod:`lindyn.paths`):

``trajectories.zarr.zip``
    Every run's logged trajectory, with the grid axes ``depth``, ``width``,
    ``ratio``, ``eta``, ``delta``, ``init``, ``seed`` as dimensions (NaN for cells
    not in the grid or past a run's stop step), the run ``status`` and the
    ``effective_rank`` of ``W(t)`` at the logged steps (:mod:`lindyn.learning`).
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
``learning.zarr.zip`` / ``learning.csv``
    Per run: the fraction of its consecutive pairs of learnable components
    learned sequentially, and its effective rank's peak, value when the first
    component is learned and final value (:func:`learning`).

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
from lindyn.learning import effective_rank, sequential_pairs
from lindyn.paths import aggregate_kind, aggregate_path, csv_path, stats_path
from lindyn.provenance import provenance
from lindyn.runs import BALANCED, FRACTIONS, GRID_DIMS, MISSING, USABLE_STATUSES
from lindyn.store import StoreError, open_block, read_stats, write_atomically, write_store

__all__ = [
    "GRID_DIMS",
    "PATH_TOLERANCE",
    "aggregate",
    "bounds",
    "combine_blocks",
    "learning",
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
    if "ratio" not in ds.coords:  # a balanced block made before the ratio axis existed
        ds = ds.assign_coords(ratio=BALANCED)
    ds = ds.expand_dims(["init", "width", "ratio"])
    if "seed" not in ds.dims:  # the aligned init has no seed: it is placed at seed 0
        ds = ds.expand_dims(seed=[0])
    return ds


def combine_blocks(
    blocks: Sequence[tuple[str | Path, Block]], stats_hash: str | None = None
) -> xr.Dataset:
    """Open a dataset's block stores lazily and combine them along the grid axes.

    Each block is checked (:func:`lindyn.store.open_block`: whole, verifiable,
    and holding the cells its place in the configuration says), then opened with
    Dask arrays; :func:`xarray.combine_nested` places the blocks of each init,
    width and ratio by their tile, and :func:`xarray.concat` joins the inits,
    then the widths, then the ratios.

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
    opened: dict[tuple[float, int, str], dict[tuple[int, ...], xr.Dataset]] = {}
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
        opened.setdefault((block.ratio, block.width, block.init), {})[block.tile] = _cells(ds)
    if len(damaged) == 1:
        raise damaged[0][1]
    if damaged:
        raise StoreError(
            f"{len(damaged)} of {len(blocks)} block stores cannot be used:\n"
            + "\n".join(f"  {err}" for _, err in damaged)
            + "\ndelete them and rerun the pipeline (make run) to recompute them: rm "
            + " ".join(str(path) for path, _ in damaged)
        )
    groups: dict[tuple[float, int, str], xr.Dataset] = {}
    for key, tiles in opened.items():
        shape = tuple(
            max(tile[axis] for tile in tiles) + 1 for axis in range(len(next(iter(tiles))))
        )
        nested = np.empty(shape, dtype=object)
        for tile, ds in tiles.items():
            nested[tile] = ds
        concat_dims = ["depth", "eta", "delta", "seed"][: len(shape)]
        groups[key] = xr.combine_nested(
            nested.tolist(),
            concat_dim=concat_dims,
            data_vars="all",
            coords="different",
            compat="equals",
            join="exact",
            combine_attrs="drop_conflicts",
        )
    # Join the inits of each (ratio, width), then the widths of each ratio, then the ratios:
    # outer joins, as the inits have different seeds.
    for dim in ("init", "width", "ratio"):
        joined: dict[tuple, list[xr.Dataset]] = {}
        for key, ds in groups.items():
            joined.setdefault(key[:-1], []).append(ds)
        groups = {key: _concat(parts, dim) for key, parts in joined.items()}
    (combined,) = groups.values()
    return combined.sortby(list(GRID_DIMS)).transpose(*GRID_DIMS, ...)


def _concat(parts: Sequence[xr.Dataset], dim: str) -> xr.Dataset:
    if len(parts) == 1:
        return parts[0]
    return xr.concat(
        parts, dim=dim, join="outer", fill_value=TEXT_FILL, combine_attrs="drop_conflicts"
    )


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


def _describe(table: xr.Dataset, long_names: Mapping[str, str], **attrs: str) -> None:
    """Give each named variable of ``table`` its ``long_name`` (and ``attrs``), in place."""
    for name, long_name in long_names.items():
        table[name].attrs = {"long_name": long_name, **attrs}


def _relative_error(measured: xr.DataArray, predicted: xr.DataArray) -> xr.DataArray:
    """(measured − predicted) / predicted; NaN where the prediction is 0.

    A prediction of 0 steps means the init already lies past the fraction: no relative
    error is defined there (it would be 0/0).
    """
    return (measured - predicted) / predicted.where(predicted != 0)


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
            "rel_error_flow": _relative_error(measured, t_flow),
            "rel_error_asymptotic": _relative_error(measured, t_asymptotic),
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
    _describe(
        out,
        {
            "t_measured": "first step with u_i ≥ f·ρ_i",
            "t_flow": "gradient-flow crossing time / η",
            "t_asymptotic": "τ_L(δ)/(η s_i)",
            "t_minus": "Corollary 3 lower bound (depth 2)",
            "t_plus": "Corollary 3 upper bound (depth 2)",
        },
        units="steps",
    )
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
    _describe(
        out,
        {
            "max_violation": "largest Theorem 3 envelope violation over steps and components / ρ_i",
            "bracket_ratio": "t⁺/t⁻ at f = 0.5",
            "separated": (
                "component i reaches 0.9ρ_i before i+1 can reach 0.1ρ_{i+1} (Corollary 3)"
            ),
            "eigengap_margin": "(s_i − s_{i+1})/s_i − 1.5ηs_i (THEORY §7)",
        },
    )
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


def trajectory_effective_rank(runs: xr.Dataset) -> xr.DataArray:
    """The effective rank of ``W(t)`` at each logged step (:func:`lindyn.learning.effective_rank`).

    NaN past a run's stop step and for cells that are no run.
    """
    out = xr.apply_ufunc(
        effective_rank,
        runs["singular_values"],
        input_core_dims=[["sv_index"]],
        dask="parallelized",
        output_dtypes=[float],
    )
    out.attrs = {"long_name": "effective rank of W(t): exp of the entropy of σ/Σσ"}
    return out


def learnable(runs: xr.Dataset, s: xr.DataArray) -> xr.DataArray:
    """Components a run can learn: ``s_i > 0`` and, at depth ≥ 2, at most its width."""
    positive = int(np.sum(s.values > 1e-12 * max(float(s.max()), 1e-300)))
    width = xr.where(runs["depth"] >= 2, runs["width"], positive)
    return runs["component"] <= np.minimum(width, positive)


def learning(runs: xr.Dataset, phase: xr.Dataset, s: xr.DataArray) -> xr.Dataset:
    """Per run: how sequentially it learns, and the effective rank of ``W(t)`` on its way.

    Parameters
    ----------
    runs : xarray.Dataset
        Output of :func:`combine_blocks`, with ``effective_rank``
        (:func:`trajectory_effective_rank`).
    phase : xarray.Dataset
        Output of :func:`phase_times`.
    s : xarray.DataArray
        Singular values of Σxy along ``component``.

    Returns
    -------
    xarray.Dataset
        Grid dims only: ``sequential_fraction`` (of the consecutive pairs of
        learnable components whose crossings are known, those learned
        sequentially, :func:`lindyn.learning.sequential_pairs`),
        ``sequential_pairs`` (how many pairs are known), ``peak_effective_rank``,
        ``effective_rank_at_first`` (at the first logged step at or after
        ``t_1(0.9)``), ``final_effective_rank`` (at the last logged step of the
        run) and ``status``.
    """
    t10, t50, t90 = (
        phase["t_measured"].sel(fraction=f, method="nearest", drop=True) for f in FRACTIONS
    )
    can = learnable(runs, s)
    # Pair (i, i+1) at component i counts when both components are learnable.
    pairs = sequential_pairs(t10, t50, t90).where(can.shift(component=-1, fill_value=False))
    erank = runs["effective_rank"].where(_usable(runs))
    step = runs["step"]
    # Elementwise selections (the runs are Dask arrays): the first logged step ≥ t_1(0.9),
    # and the last logged step with a value.
    first = step.where(step >= t90.isel(component=0, drop=True)).min("step")
    last = step.where(erank.notnull()).max("step")
    out = xr.Dataset(
        {
            "sequential_fraction": pairs.mean("component"),
            "sequential_pairs": pairs.notnull().sum("component").where(_usable(runs)),
            "peak_effective_rank": erank.max("step"),
            "effective_rank_at_first": erank.where(step == first).max("step"),
            "final_effective_rank": erank.where(step == last).max("step"),
            "status": runs["status"],
        }
    )
    _describe(
        out,
        {
            "sequential_fraction": (
                "fraction of consecutive learnable pairs with t_{i+1}(0.1) ≥ t_i(0.5)"
            ),
            "peak_effective_rank": "largest effective rank of W(t)",
            "effective_rank_at_first": (
                "effective rank of W(t) at the first logged step ≥ t_1(0.9)"
            ),
            "final_effective_rank": "effective rank of W(t) at the last step",
        },
    )
    return out


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
    """Aggregate one dataset's blocks into trajectories, phase times, bounds, path, learning.

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
            runs["effective_rank"] = trajectory_effective_rank(runs)
            phase = phase_times(runs, s, lam)
            tables = {
                "phase_times": phase,
                "bounds": bounds(runs, phase, s, lam),
                "path": path_metrics(runs, seq_norm, rrr_norm),
                "learning": learning(runs, phase, s),
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
